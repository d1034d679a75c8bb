"""OCI runtimes named in the daemon's configuration, side by side with the reference dockerd:
daemon.json `runtimes` and `--add-runtime` (merged, as dockerd merges them), `default-runtime`,
`runtimeArgs`, `docker info`, and dockerd's refusals of bad settings, word for word.

The runtime under test is Debian's runc (/usr/sbin/runc), next to pydocker's stock pyrunc.
"""

from __future__ import annotations

import json
import subprocess
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.dockerd_ref import BUSYBOX_TAR, DAEMON_ENV, DockerdRefError, RefDockerd, reference_dockerd
from tests.pydockerd_harness import PYDOCKERD, pydockerd_engine

RUNC = "/usr/sbin/runc"


def _engine(which: str, args: list[str]) -> AbstractContextManager[RefDockerd]:
    if which == "reference":
        return reference_dockerd({}, images=(BUSYBOX_TAR,), extra_args=args)
    return pydockerd_engine(images=(BUSYBOX_TAR,), extra_args=args)


def _recorder(tmp_path: Path) -> tuple[Path, Path]:
    """A runtime that notes its arguments, then is Debian's runc."""
    log = tmp_path / "argv.log"
    script = tmp_path / "recording-runc"
    script.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {RUNC} "$@"\n')
    script.chmod(0o755)
    return script, log


@pytest.mark.parametrize("which", ["reference", "pydockerd"])
def test_default_runtime_file_and_flag_runtimes_and_runtime_args(which: str, tmp_path: Path) -> None:
    recorder, log = _recorder(tmp_path)
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({
        "runtimes": {"debian-runc": {"path": RUNC}, "recorded": {"path": str(recorder), "runtimeArgs": ["--debug"]}},
        "default-runtime": "debian-runc",
    }))  # fmt: skip
    with _engine(which, ["--config-file", str(config), "--add-runtime", f"flagged={RUNC}"]) as daemon:
        info = json.loads(daemon.docker_ok("info", "--format", "{{json .}}"))
        assert info["DefaultRuntime"] == "debian-runc"
        assert info["Runtimes"]["debian-runc"] == {"path": RUNC} and info["Runtimes"]["flagged"] == {
            "path": RUNC
        }
        assert info["Runtimes"]["recorded"] == {"path": str(recorder), "runtimeArgs": ["--debug"]}
        # Without --runtime a container gets the default one.
        name = "rt-default"
        daemon.docker_ok("run", "-d", "--name", name, "busybox", "sleep", "600")
        assert daemon.docker_ok("inspect", "-f", "{{.HostConfig.Runtime}}", name) == "debian-runc\n"
        daemon.docker_ok("rm", "-f", name)
        assert (
            daemon.docker_ok("run", "--rm", "--runtime", "flagged", "busybox", "echo", "flag-ok")
            == "flag-ok\n"
        )
        assert (
            daemon.docker_ok("run", "--rm", "--runtime", "runc", "busybox", "echo", "stock-ok")
            == "stock-ok\n"
        )
        # runtimeArgs come before the runtime's own command line.
        assert (
            daemon.docker_ok("run", "--rm", "--runtime", "recorded", "busybox", "echo", "args-ok")
            == "args-ok\n"
        )
        calls = log.read_text().splitlines()
        assert any(c.startswith("--debug ") and " create " in f" {c} " for c in calls), calls


BAD_SETTINGS = {
    "reserved flag": (["--add-runtime", "runc=/usr/sbin/runc"], "runtime name 'runc' is reserved"),
    "no equals": (["--add-runtime", "noequals"], "invalid runtime argument: noequals"),
    "twice": (["--add-runtime", "a=/x", "--add-runtime", "A=/y"], "runtime 'a' was already defined"),
    "missing default": (["--default-runtime", "nosuch"], "specified default runtime 'nosuch' does not exist"),
    "reserved in file": (
        {"runtimes": {"runc": {"path": RUNC}}},
        "configuration validation from file failed: runtime name 'runc' is reserved",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_bad_runtime_settings_are_refused_as_dockerd_does(case: str, tmp_path: Path) -> None:
    setting, message = BAD_SETTINGS[case]
    args = setting
    if isinstance(setting, dict):
        config = tmp_path / "daemon.json"
        config.write_text(json.dumps(setting))
        args = ["--config-file", str(config)]
    assert isinstance(args, list)
    with (
        pytest.raises(DockerdRefError) as refused,
        reference_dockerd({}, images=(), extra_args=args, start_timeout=30),
    ):
        pass
    assert message in str(refused.value)
    done = subprocess.run(
        [str(PYDOCKERD), "--data-root", str(tmp_path / "data"), "--exec-root", str(tmp_path / "exec"), "-H", f"unix://{tmp_path}/d.sock", *args],
        capture_output=True, text=True, timeout=60, env=dict(DAEMON_ENV),
    )  # fmt: skip
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "exec" / "containerd").exists()  # refused before anything started
