"""`pydocker run --security-opt` handled as the Docker CLI handles it before any request (a
value is required but for no-new-privileges; seccomp=FILE sends the file's compacted JSON;
systempaths=unconfined drops the masked and read-only paths), compared with the Docker CLI
on the same engine, against both engines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.cli_helpers import CLI, Names


def same_as_docker(cli: CLI, *args: str) -> tuple[int, str, str]:
    """pydocker's and the Docker CLI's (status, stdout, stderr) for ARGS, the program's name made generic."""
    got = cli.run(*args)
    want = cli.daemon.docker(*args)
    got_view = (got.returncode, got.stdout, got.stderr.replace("pydocker", "docker"))
    assert got_view == (want.returncode, want.stdout, want.stderr), args
    return got_view


@pytest.mark.parametrize(
    "opt",
    ["foo", "disable", "label=", "seccomp=", "seccomp:", "apparmor", "seccomp=/nonexistent/profile.json"],
)
def test_refused_before_any_request(cli: CLI, opt: str) -> None:
    rc, _, err = same_as_docker(cli, "run", "--rm", "--security-opt", opt, "busybox", "true")
    assert rc == 125
    assert err.startswith(("docker: Invalid --security-opt", "docker: opening seccomp profile")), err


@pytest.mark.parametrize(
    "text", ['{"defaultAction": ', '{"defaultAction" "SCMP_ACT_ALLOW"}', "{} {}", "[1, 2,]", ""]
)
def test_profile_that_is_not_json(cli: CLI, tmp_path: Path, text: str) -> None:
    profile = tmp_path / "bad.json"
    profile.write_text(text)
    rc, _, err = same_as_docker(cli, "create", "--security-opt", f"seccomp={profile}", "busybox", "true")
    assert rc == 125
    assert err.startswith(f"docker: compacting json for seccomp profile ({profile}) failed: "), err


def test_profile_file_is_sent_and_applied(cli: CLI, names: Names, tmp_path: Path) -> None:
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}],
    }, indent=4))  # fmt: skip
    name = names.container("seccomp")
    out = cli.ok(
        "run",
        "--name",
        name,
        "--security-opt",
        f"seccomp={profile}",
        "busybox",
        "sh",
        "-c",
        "mkdir /x; echo $?",
    )
    assert out == "1\n"
    sent = json.loads(cli.daemon.docker_ok("inspect", name))[0]["HostConfig"]["SecurityOpt"]
    # The file's JSON with its whitespace removed, as the Docker CLI sends it.
    assert sent == [
        'seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}'
    ]


def test_systempaths_unconfined_and_no_new_privileges(cli: CLI) -> None:
    script = "grep -c ' /proc/timer_list ' /proc/self/mountinfo; grep NoNewPrivs /proc/self/status"
    default = same_as_docker(cli, "run", "--rm", "busybox", "sh", "-c", script)
    assert default[1] == "1\nNoNewPrivs:\t0\n"
    options = ("--security-opt", "systempaths=unconfined", "--security-opt", "no-new-privileges")
    unconfined = same_as_docker(cli, "run", "--rm", *options, "busybox", "sh", "-c", script)
    assert unconfined[1] == "0\nNoNewPrivs:\t1\n"


def security_section(info: str) -> list[str]:
    lines = info.splitlines()
    start = lines.index(" Security Options:")
    section = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        section.append(line)
    return section


def test_info_shows_the_security_options(cli: CLI) -> None:
    want = security_section(cli.daemon.docker_ok("info"))
    assert (
        security_section(cli.ok("info")) == want == [" Security Options:", "  seccomp", "   Profile: default"]
    )
