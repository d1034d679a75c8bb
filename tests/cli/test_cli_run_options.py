"""`pydocker run` flags for namespaces, groups, devices, real-time CPU and the entrypoint (issue 10),
against both engines (the reference dockerd and pydockerd): what reaches the container, and the
Docker CLI's own refusals (exit 125, its wording)."""

from __future__ import annotations

import os
import socket

from tests.cli.cli_helpers import CLI, SHARED_IMAGES, Names, explain
from tests.dockerd_ref import without_host_warnings


def test_pid_ipc_uts_userns_flags(cli: CLI, names: Names) -> None:
    donor = names.container("donor")
    cli.ok(
        "run",
        "-d",
        "--name",
        donor,
        "--ipc",
        "shareable",
        "busybox",
        "sh",
        "-c",
        "echo shared > /dev/shm/f; sleep 600",
    )
    out = cli.ok("run", "--rm", "--pid", f"container:{donor}", "--ipc", f"container:{donor}", "busybox",
                 "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /dev/shm/f")  # fmt: skip
    assert out == "sleep 600 \nshared\n"  # sh execs its last command
    assert (
        cli.ok(
            "run", "--rm", "--pid", "host", "busybox", "sh", "-c", f"test -d /proc/{os.getpid()} && echo host"
        )
        == "host\n"
    )
    assert cli.ok("run", "--rm", "--uts", "host", "busybox", "hostname") == socket.gethostname() + "\n"
    assert (
        cli.ok("run", "--rm", "--ipc", "host", "busybox", "readlink", "/proc/self/ns/ipc")
        == os.readlink("/proc/self/ns/ipc") + "\n"
    )
    assert cli.ok("run", "--rm", "--userns", "host", "busybox", "id", "-u") == "0\n"


def test_group_add_device_and_cgroup_rule_flags(cli: CLI, names: Names) -> None:
    assert cli.ok("run", "--rm", "-u", "nobody", "--group-add", "10", "busybox", "id") == (
        "uid=65534(nobody) gid=65534(nogroup) groups=10,65534(nogroup)\n"
    )
    script = "stat -c '%A %t:%T' /dev/f; dd if=/dev/f of=/dev/null count=0 2>/dev/null && echo read-ok; dd if=/dev/null of=/dev/f count=0 2>/dev/null || echo write-refused"
    assert cli.ok("run", "--rm", "--device", "/dev/fuse:/dev/f:r", "busybox", "sh", "-c", script) == (
        "crw------- a:e5\nread-ok\nwrite-refused\n"
    )
    made = "mknod /tmp/fuse c 10 229 && dd if=/tmp/fuse of=/dev/null count=0 2>/dev/null && echo open-ok"
    assert (
        cli.ok("run", "--rm", "--device-cgroup-rule", "c 10:229 r", "busybox", "sh", "-c", made)
        == "open-ok\n"
    )


def test_entrypoint_empty_and_domainname(cli: CLI, names: Names) -> None:
    assert (
        cli.ok("load", "-i", str(SHARED_IMAGES / "layered.tar"), timeout=120)
        == "Loaded image: layered:latest\n"
    )
    assert cli.ok("run", "--rm", "--entrypoint", "", "layered", "echo", "hi") == "hi\n"
    assert (
        cli.ok("run", "--rm", "--domainname", "example.com", "busybox", "cat", "/proc/sys/kernel/domainname")
        == "example.com\n"
    )


def test_cli_refusals(cli: CLI, names: Names) -> None:
    cases: dict[tuple[str, ...], str] = {
        ("--pid", "bogus"): "--pid: invalid PID mode",
        ("--pid", "container:"): "--pid: invalid PID mode",
        ("--uts", "bogus"): "--uts: invalid UTS mode",
        ("--userns", "bogus"): "--userns: invalid USER mode",
        ("--device", "/dev/null:relative"): "relative is not an absolute path",
        ("--device", "/dev/null:/dev/x:rwz"): "bad mode specified: rwz",
        ("--device", "/a:/b:r:w"): "bad format for path: /a:/b:r:w",
        (
            "--device-cgroup-rule",
            "x 1:2 r",
        ): 'invalid argument "x 1:2 r" for "--device-cgroup-rule" flag: invalid device cgroup format \'x 1:2 r\'',
        ("--cpu-rt-runtime", "abc"): 'invalid argument "abc" for "--cpu-rt-runtime" flag',
    }
    for flags, message in cases.items():
        res = cli.run("run", "--rm", *flags, "busybox", "true")
        assert res.returncode == 125 and message in res.stderr, explain(res)
    # The daemon's refusals, at create.
    for flags, message in {
        ("--ipc", "bogus"): "Invalid IPC mode: bogus",
        (
            "--cpu-rt-runtime",
            "2000",
            "--cpu-rt-period",
            "1000",
        ): "cpu real-time runtime cannot be higher than cpu real-time period",
        ("--runtime", "nosuch"): "Unknown runtime specified nosuch",
        ("--uts", "host", "-h", "web"): "conflicting options: hostname and the UTS mode",
    }.items():
        res = cli.run("run", "--rm", "--name", names.container("refused"), *flags, "busybox", "true")
        assert res.returncode == 125 and message in without_host_warnings(res.stderr), explain(res)
    assert cli.ok("ps", "-aq", "--filter", f"name={names.tag}") == ""
