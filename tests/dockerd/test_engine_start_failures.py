"""Why a container could not start, in dockerd's words, side by side with the reference dockerd
(Debian's 20.10: containerd 1.6 and runc 1.1 beneath it).

Each layer adds its own part, as in the reference's stack: pyrunc "runc create failed: unable to
start container process: exec: ..." (runc 1.1's words, under the runtime name `runc` that dockerd
gives it), the shim "OCI runtime create failed: ", pycontainerd "failed to create shim task: ",
and pydockerd prints the error's code after it (": unknown") as Go's errdefs do. `docker run`'s
message and exit code, `docker start`'s, and the record's State.Error and ExitCode are compared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.dockerd_ref import RefDockerd, reference_dockerd
from tests.pydockerd_harness import PyDockerd, pydockerd_engine

CASES = {
    "not-in-path": ["busybox", "no-such-cmd"],
    "absolute-missing": ["busybox", "/no/such/cmd"],
    "relative-missing": ["busybox", "./nothere"],
    "a-directory": ["busybox", "/etc"],
    "not-executable": ["busybox", "/etc/passwd"],
    "unknown-user": ["-u", "nosuchuser", "busybox", "true"],
    "unknown-group": ["-u", "0:nosuchgroup", "busybox", "true"],
}


@pytest.fixture(scope="module")
def engines() -> Iterator[tuple[RefDockerd, PyDockerd]]:
    with reference_dockerd({}) as ref, pydockerd_engine() as pyd:
        yield ref, pyd


def outcome(daemon: RefDockerd, args: list[str]) -> tuple[object, ...]:
    run = daemon.docker("run", "--rm", *args)
    cid = daemon.docker_ok("create", *args).strip()
    try:
        start = daemon.docker("start", cid)
        state = json.loads(daemon.docker_ok("inspect", cid))[0]["State"]
    finally:
        daemon.docker("rm", "-f", cid)
    started = start.stderr.replace(cid, "<id>")
    return (
        run.returncode,
        run.stderr.splitlines()[0],
        start.returncode,
        started,
        state["Error"],
        state["ExitCode"],
    )


@pytest.mark.parametrize("case", list(CASES))
def test_start_failure_is_worded_as_dockerd(engines: tuple[RefDockerd, PyDockerd], case: str) -> None:
    ref, pyd = engines
    want, got = outcome(ref, CASES[case]), outcome(pyd, CASES[case])
    assert got == want
    if "user" not in case and "group" not in case:
        assert str(got[1]).startswith(
            "docker: Error response from daemon: failed to create shim task: OCI runtime create failed: "
            "runc create failed: unable to start container process: exec: "
        )
        assert str(got[1]).endswith(": unknown")


def test_working_dir_that_is_a_file_is_refused_at_create(engines: tuple[RefDockerd, PyDockerd]) -> None:
    """dockerd makes the working directory at create; where the image has a file it refuses."""
    outs = []
    for daemon in engines:
        made = daemon.docker("create", "-w", "/etc/passwd", "busybox", "true")
        run = daemon.docker("run", "--rm", "-w", "/etc/passwd", "busybox", "true")
        fine = daemon.docker("run", "--rm", "-w", "/new/dir", "busybox", "pwd")
        outs.append((made.returncode, made.stderr, run.returncode, run.stderr.splitlines()[0], fine.stdout))
        assert daemon.docker_ok("ps", "-aq") == ""
    assert outs[1] == outs[0]
    assert outs[1][1] == "Error response from daemon: Cannot mkdir: /etc/passwd is not a directory\n"
