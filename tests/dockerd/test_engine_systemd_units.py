"""contrib/systemd: the unit files for pydockerd (socket-activated), pycontainerd and pyregistry.

Nothing is installed or started here: the units are checked with `systemd-analyze verify`
(on a copy whose ExecStart points at this checkout's programs, since verify requires them to
exist) and read for what matters to a user: the socket is /run/pydocker.sock, 0660, group
docker, handed to pydockerd as `-H fd://`; both daemons stop alone (KillMode=process), so
containers outlive a daemon restart; pydockerd starts after a local pyregistry without
requiring one; every flag in ExecStart is one the program accepts.
(tests/dockerd/test_engine_daemon_flags.py runs pydockerd under the same fd:// and
NOTIFY_SOCKET protocol systemd uses.)
"""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

from dockerd.config import parse
from registry.main import _parser as registry_parser
from registry.main import _settings as registry_settings

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "contrib" / "systemd"
VENV_BIN = REPO / ".venv" / "bin"


class _UnitParser(configparser.ConfigParser):
    def optionxform(self, optionstr: str) -> str:
        return optionstr  # a unit's keys are case-sensitive


def _unit(name: str) -> configparser.ConfigParser:
    parser = _UnitParser(strict=False, interpolation=None, delimiters=("=",))
    parser.read_string((UNITS / name).read_text())
    return parser


def _exec_start(name: str) -> list[str]:
    return shlex.split(_unit(name)["Service"]["ExecStart"])


def test_units_say_what_they_should() -> None:
    socket_unit = _unit("pydocker.socket")["Socket"]
    assert socket_unit["ListenStream"] == "/run/pydocker.sock"
    assert socket_unit["SocketMode"] == "0660" and socket_unit["SocketGroup"] == "docker"
    service = _unit("pydocker.service")
    assert service["Service"]["KillMode"] == "process" and service["Service"]["Type"] == "notify"
    assert (
        "pydocker.socket" in service["Unit"]["Requires"]
        and "pycontainerd.service" in service["Unit"]["Requires"]
    )
    argv = _exec_start("pydocker.service")
    assert Path(argv[0]).name == "pydockerd"
    opts = parse(argv[1:])  # every flag is pydockerd's
    assert opts["hosts"] == ["fd://"]
    assert opts["containerd"] == shlex.split(_unit("pycontainerd.service")["Service"]["ExecStart"]).pop()
    containerd = _unit("pycontainerd.service")["Service"]
    assert containerd["KillMode"] == "process"
    argv = _exec_start("pycontainerd.service")
    assert Path(argv[0]).name == "pycontainerd"
    res = subprocess.run(
        [str(VENV_BIN / "pycontainerd"), *argv[1:], "--version"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr  # the flags parse
    assert "pyregistry.service" in service["Unit"]["After"]
    assert "pyregistry" not in service["Unit"]["Requires"] + service["Unit"]["Wants"]
    argv = _exec_start("pyregistry.service")
    assert Path(argv[0]).name == "pyregistry"
    settings = registry_settings(registry_parser().parse_args(argv[1:]))  # every flag is pyregistry's
    assert (settings.host, settings.port, str(settings.root)) == ("127.0.0.1", 5000, "/var/lib/pyregistry")


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    assert tool is not None, (
        "systemd-analyze is missing: scripts/setup-test installs Debian's systemd package"
    )
    for unit in UNITS.iterdir():
        text = unit.read_text().replace("/usr/local/bin/", f"{VENV_BIN}/")
        (tmp_path / unit.name).write_text(text)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["pycontainerd.service", "pydocker.service", "pydocker.socket", "pyregistry.service"]
    res = subprocess.run(
        [tool, "verify", *(f"./{n}" for n in names)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # verify only warns about an unknown key or section: any output at all is a finding
    assert res.returncode == 0 and res.stdout == "" and res.stderr == "", res
