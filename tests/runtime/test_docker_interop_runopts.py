"""What pyrunc must do itself for Docker's run options (issue 10), checked under the real Docker
(Debian's dockerd 20.10) with `--runtime runc` as the control and `--runtime pyrunc`:

* HOME: dockerd puts none in the spec; runc sets it from the container's /etc/passwd entry of
  the process's uid ("/" without one), for the init and for execs, unless the environment
  has a non-empty HOME;
* a device of linux.devices gets no access of its own: the spec's device rules decide (a
  read-only `--device` cannot be written);
* a sysctl needs a namespace of the container's own (runc's validator): with `--uts host` a
  domain name (which dockerd passes as the sysctl kernel.domainname) fails the create, with
  `--ipc host` an IPC sysctl does, and the host's values are untouched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dockerd_ref import PYRUNC, RefDockerd, reference_dockerd


@pytest.fixture(scope="module")
def dockerd() -> Iterator[RefDockerd]:
    with reference_dockerd({"pyrunc": PYRUNC}) as daemon:
        yield daemon


@pytest.fixture(params=("runc", "pyrunc"))
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def name(dockerd: RefDockerd) -> Iterator[str]:
    container = f"runopts-{uuid.uuid4().hex[:12]}"
    yield container
    dockerd.docker("rm", "-f", container)


def test_home_from_the_containers_passwd(dockerd: RefDockerd, runtime: str, name: str) -> None:
    for flags, home in (
        ((), "/root"),
        (("-u", "nobody"), "/nonexistent"),
        (("-u", "1000"), "/"),
        (("-e", "HOME="), "/root"),
        (("-e", "HOME=/x"), "/x"),
    ):
        res = dockerd.docker(
            "run", "--rm", "--runtime", runtime, *flags, "busybox", "sh", "-c", 'echo "$HOME"'
        )
        assert (res.returncode, res.stdout) == (0, f"{home}\n"), (flags, res.stderr)
    dockerd.docker_ok("run", "-d", "--runtime", runtime, "--name", name, "busybox", "sleep", "600")
    assert dockerd.docker_ok("exec", name, "sh", "-c", 'echo "$HOME"') == "/root\n"
    assert dockerd.docker_ok("exec", "-u", "nobody", name, "sh", "-c", 'echo "$HOME"') == "/nonexistent\n"


def test_listed_device_gets_only_the_specs_access(dockerd: RefDockerd, runtime: str) -> None:
    script = (
        "grep 10:229 /sys/fs/cgroup/devices/devices.list; dd if=/dev/null of=/dev/f count=0 2>&1 | tail -1"
    )
    res = dockerd.docker(
        "run", "--rm", "--runtime", runtime, "--device", "/dev/fuse:/dev/f:r", "busybox", "sh", "-c", script
    )
    assert (res.returncode, res.stdout) == (
        0,
        "c 10:229 r\ndd: can't open '/dev/f': Operation not permitted\n",
    ), res.stderr


DOMAINNAME = Path("/proc/sys/kernel/domainname")


def test_domainname_needs_a_uts_namespace(dockerd: RefDockerd, runtime: str) -> None:
    """dockerd 20.10 passes --domainname as the sysctl kernel.domainname: with the host's UTS
    namespace that would be the host's domain name."""
    before = DOMAINNAME.read_text()
    try:
        res = dockerd.docker(
            "run",
            "--rm",
            "--runtime",
            runtime,
            "--uts",
            "host",
            "--domainname",
            "example.invalid",
            "busybox",
            "true",
        )
        after = DOMAINNAME.read_text()
    finally:
        if DOMAINNAME.read_text() != before:
            DOMAINNAME.write_text(before)  # never leave the host renamed, whatever failed
    assert after == before
    assert (
        res.returncode == 125
        and 'sysctl "kernel.domainname" is not in a separate kernel namespace' in res.stderr
    ), res.stderr


def test_sysctls_of_a_shared_namespace_are_refused(dockerd: RefDockerd, runtime: str) -> None:
    for flags, message in (
        (
            ("--ipc", "host", "--sysctl", "kernel.shm_rmid_forced=1"),
            'sysctl "kernel.shm_rmid_forced" is not allowed in the hosts ipc namespace',
        ),
        (("--sysctl", "kernel.shm_rmid_forced=1"), ""),  # its own IPC namespace: allowed
    ):
        res = dockerd.docker(
            "run", "--rm", "--runtime", runtime, *flags, "busybox", "cat", "/proc/sys/kernel/shm_rmid_forced"
        )
        if message:
            assert res.returncode == 125 and message in res.stderr, res.stderr
        else:
            assert (res.returncode, res.stdout) == (0, "1\n"), res.stderr
