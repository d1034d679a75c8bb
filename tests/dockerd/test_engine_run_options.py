"""Create and run options (issue 10), side by side: the same Docker CLI 28 command against the
reference dockerd 20.10 (Debian's, with Debian's runc) and against pydockerd, and the
container's own view compared: `id`, $HOME, /proc/self/status, `ps`, /proc/self/ns/*,
/dev/shm, `hostname`, /etc/hosts, /dev nodes and the devices cgroup's list, real-time
scheduling. Where ids differ between engines they are compared with the ids taken out.

Both engines run with `--cpu-rt-runtime 95000` (the containers' parent cgroups get real-time
time to hand out) and know a runtime `debian-runc` (/usr/sbin/runc): the reference through
`--add-runtime`, pydockerd through daemon.json `runtimes`.

One engine pair per module; the harnesses fail the module on any leaked process, cgroup,
mount or FIFO directory.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.dockerd.pair import EnginePair
from tests.dockerd_ref import SHARED_IMAGES, RefDockerd, reference_dockerd
from tests.pydockerd_harness import PyDockerd, pydockerd_engine

RUNC = "/usr/sbin/runc"
IMAGES = (SHARED_IMAGES / "busybox.tar", SHARED_IMAGES / "layered.tar")
RT_BUDGET = "95000"
# The host's chrt (util-linux) and the libraries it needs, for a real SCHED_FIFO request.
CHRT = [
    "-v",
    "/usr/lib:/usr/lib:ro",
    "-v",
    "/usr/lib:/lib:ro",
    "-v",
    "/usr/lib64:/lib64:ro",
    "-v",
    "/usr/bin/chrt:/bin/chrt:ro",
]


class Pair(EnginePair[RefDockerd]):
    """The same docker command against both engines; names it hands out are removed afterwards."""

    def __init__(self, ref: RefDockerd, pd: PyDockerd) -> None:
        self.engines = {"reference": ref, "pydockerd": pd}
        self.tag = uuid.uuid4().hex[:8]
        self.names: list[str] = []

    @property
    def pd(self) -> PyDockerd:
        engine = self.engines["pydockerd"]
        assert isinstance(engine, PyDockerd)
        return engine

    def name(self, label: str) -> str:
        n = f"ro-{label}-{self.tag}"
        self.names.append(n)
        return n

    def run(self, which: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.engines[which].docker(*args)

    def cleanup(self) -> None:
        for engine in self.engines.values():
            if self.names:
                engine.docker("rm", "-f", *self.names)


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RefDockerd, PyDockerd]]:
    config = tmp_path_factory.mktemp("runopts") / "daemon.json"
    config.write_text(json.dumps({"runtimes": {"debian-runc": {"path": RUNC}}}))
    with (
        reference_dockerd(
            {"debian-runc": RUNC}, images=IMAGES, extra_args=["--cpu-rt-runtime", RT_BUDGET]
        ) as ref,
        pydockerd_engine(
            images=IMAGES, extra_args=["--config-file", str(config), "--cpu-rt-runtime", RT_BUDGET]
        ) as pd,
    ):
        yield ref, pd


@pytest.fixture
def pair(engines: tuple[RefDockerd, PyDockerd]) -> Iterator[Pair]:
    p = Pair(*engines)
    yield p
    p.cleanup()


def _without_ids(text: str) -> str:
    return re.sub(r"\b[0-9a-f]{64}\b", "<id>", text)


# --- capabilities ----------------------------------------------------------------------------


def test_cap_drop_all_then_add_works_in_any_order(pair: Pair) -> None:
    for flags in (
        ["--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE"],
        ["--cap-add", "net_bind_service", "--cap-drop", "all"],
    ):
        _, out, _ = pair.same("run", "--rm", *flags, "busybox", "grep", "Cap", "/proc/self/status")
        assert "CapEff:\t0000000000000400\n" in out and "CapBnd:\t0000000000000400\n" in out
    # An add and a drop of everything else: dockerd's rule, whatever the order.
    _, out, _ = pair.same("run", "--rm", "--cap-add", "sys_admin", "--cap-drop", "ALL", "--cap-add", "cap_net_raw",
                          "busybox", "grep", "CapEff", "/proc/self/status")  # fmt: skip
    assert out == "CapEff:\t0000000000202000\n"
    _, out, _ = pair.same(
        "run",
        "--rm",
        "--cap-drop",
        "chown",
        "--cap-add",
        "chown",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    )
    assert out == "CapEff:\t00000000a80425fb\n"
    code, _, err = pair.same("create", "--cap-add", "foo", "busybox")
    assert code == 1 and 'invalid CapAdd: unknown capability: "CAP_FOO"' in err


# --- users, groups, HOME ---------------------------------------------------------------------


def test_home_user_groups_and_group_add(pair: Pair) -> None:
    script = 'id; echo "HOME=$HOME"; grep Groups /proc/self/status'
    cases = {
        (): "uid=0(root) gid=0(root) groups=0(root)\nHOME=/root\nGroups:\t0 \n",
        (
            "-u",
            "nobody",
        ): "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\nHOME=/nonexistent\nGroups:\t65534 \n",
        (
            "-u",
            "65534",
        ): "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\nHOME=/nonexistent\nGroups:\t65534 \n",
        ("-u", "1000"): "uid=1000 gid=0(root) groups=0(root)\nHOME=/\nGroups:\t0 \n",
        (
            "-u",
            "nobody:root",
        ): "uid=65534(nobody) gid=0(root) groups=0(root)\nHOME=/nonexistent\nGroups:\t0 \n",
        ("-u", "1000:1000"): "uid=1000 gid=1000 groups=1000\nHOME=/\nGroups:\t1000 \n",
        ("-u", "nobody", "--group-add", "10", "--group-add", "nogroup"): (
            "uid=65534(nobody) gid=65534(nogroup) groups=10,65534(nogroup)\nHOME=/nonexistent\nGroups:\t10 65534 \n"
        ),
        (
            "--group-add",
            "10",
            "--group-add",
            "10",
        ): "uid=0(root) gid=0(root) groups=0(root),10\nHOME=/root\nGroups:\t0 10 \n",
        ("-e", "HOME=/elsewhere"): "uid=0(root) gid=0(root) groups=0(root)\nHOME=/elsewhere\nGroups:\t0 \n",
        ("-e", "HOME="): "uid=0(root) gid=0(root) groups=0(root)\nHOME=/root\nGroups:\t0 \n",
    }
    for flags, want in cases.items():
        assert pair.same("run", "--rm", *flags, "busybox", "sh", "-c", script) == (0, want, ""), flags
    # The image's USER (layered: nobody) gets its home too.
    _, out, _ = pair.same("run", "--rm", "layered", 'id; echo "HOME=$HOME"')
    assert out == "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\nHOME=/nonexistent\n"
    code, _, err = pair.same("run", "--rm", "--group-add", "nosuch", "busybox", "id")
    assert code == 125 and "Unable to find group nosuch: no matching entries in group file" in err
    code, _, err = pair.same("run", "--rm", "-u", "nosuch", "busybox", "id")
    assert code == 125 and "unable to find user nosuch: no matching entries in passwd file" in err


def test_users_come_from_the_containers_own_files(pair: Pair, tmp_path: Path) -> None:
    """dockerd reads the container's /etc/passwd and /etc/group (not the image's): a group that
    lists the user is a supplementary group, and a user added to the container exists."""
    (tmp_path / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1500:1500:alice:/home/alice:/bin/sh\n"
    )
    (tmp_path / "group").write_text("root:x:0:\nalice:x:1500:\nwheel:x:10:alice,bob\naudio:x:29:bob\n")
    name = pair.name("files")
    for engine in pair.engines.values():
        created = engine.docker(
            "create",
            "--name",
            name,
            "-u",
            "alice",
            "--group-add",
            "audio",
            "busybox",
            "sh",
            "-c",
            'id; echo "HOME=$HOME"',
        )
        assert created.returncode == 0, created.stderr
        for f in ("passwd", "group"):
            copied = engine.docker("cp", str(tmp_path / f), f"{name}:/etc/{f}")
            assert copied.returncode == 0, copied.stderr
    code, out, _ = pair.same("start", "-a", name)
    assert (code, out) == (
        0,
        "uid=1500(alice) gid=1500(alice) groups=10(wheel),29(audio),1500(alice)\nHOME=/home/alice\n",
    )
    # An exec as another user looks it up in the running container's files too.
    keeper = pair.name("keeper")
    pair.ok_both("run", "-d", "--name", keeper, "busybox", "sleep", "600")
    for engine in pair.engines.values():
        assert engine.docker("cp", str(tmp_path / "passwd"), f"{keeper}:/etc/passwd").returncode == 0
        assert engine.docker("cp", str(tmp_path / "group"), f"{keeper}:/etc/group").returncode == 0
    _, out, _ = pair.same("exec", "-u", "alice", keeper, "sh", "-c", 'id; echo "HOME=$HOME"')
    assert out == "uid=1500(alice) gid=1500(alice) groups=10(wheel),1500(alice)\nHOME=/home/alice\n"
    _, out, _ = pair.same("exec", keeper, "sh", "-c", 'echo "HOME=$HOME"')
    assert out == "HOME=/root\n"


# --- entrypoint ------------------------------------------------------------------------------


def test_empty_entrypoint_clears_the_images(pair: Pair) -> None:
    assert pair.same("run", "--rm", "--entrypoint", "", "layered", "echo", "hi") == (0, "hi\n", "")
    name = pair.name("ep")
    pair.ok_both("create", "--name", name, "--entrypoint", "", "layered", "echo", "hi")
    _, out, _ = pair.same("inspect", "-f", "{{json .Config.Entrypoint}} {{.Path}} {{json .Args}}", name)
    assert out == 'null echo ["hi"]\n'
    # The image's Cmd goes with its entrypoint: nothing is left to run.
    code, _, err = pair.same("run", "--rm", "--entrypoint", "", "busybox")
    assert code == 125 and "No command specified" in err


# --- namespaces ------------------------------------------------------------------------------


def _sleeper(pair: Pair, label: str, *flags: str) -> str:
    name = pair.name(label)
    pair.ok_both("run", "-d", "--name", name, *flags, "busybox", "sleep", "600")
    return name


def test_pid_host_and_container(pair: Pair) -> None:
    me = os.getpid()
    _, out, _ = pair.same(
        "run", "--rm", "--pid", "host", "busybox", "sh", "-c", f"test -d /proc/{me} && echo sees-the-host"
    )
    assert out == "sees-the-host\n"
    donor = _sleeper(pair, "piddonor")
    _, out, _ = pair.same(
        "run",
        "--rm",
        "--pid",
        f"container:{donor}",
        "busybox",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '",
    )
    assert out == "sleep 600 "
    # The joiner is in the donor's namespace: the donor sees it.
    _sleeper(pair, "pidjoiner", "--pid", f"container:{donor}")
    for which in pair.engines:
        ps = pair.run(which, "exec", donor, "ps", "-o", "comm")
        assert ps.stdout.split().count("sleep") == 2, (which, ps.stdout)
    code, _, err = pair.same("run", "--rm", "--pid", "container:nosuch", "busybox", "true")
    assert code == 125 and "No such container: nosuch" in err
    stopped = pair.name("pidstopped")
    pair.ok_both("create", "--name", stopped, "busybox", "true")
    results = pair.both("run", "--rm", "--pid", f"container:{stopped}", "busybox", "true")
    assert _without_ids(results["pydockerd"][2]) == _without_ids(results["reference"][2])
    assert (
        "is not running" in results["reference"][2]
        and results["pydockerd"][0] == results["reference"][0] == 125
    )


def test_ipc_shareable_container_host_none(pair: Pair) -> None:
    donor = pair.name("ipcdonor")
    pair.ok_both(
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
    for which in pair.engines:
        ns = pair.run(which, "exec", donor, "readlink", "/proc/self/ns/ipc").stdout
        joined = pair.run(
            which,
            "run",
            "--rm",
            "--ipc",
            f"container:{donor}",
            "busybox",
            "sh",
            "-c",
            "readlink /proc/self/ns/ipc; cat /dev/shm/f",
        )
        assert joined.stdout == f"{ns}shared\n", (which, joined)
    host_ns = os.readlink("/proc/self/ns/ipc")
    _, out, _ = pair.same(
        "run",
        "--rm",
        "--ipc",
        "host",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/self/ns/ipc; test -d /dev/shm && echo shm",
    )
    assert out == f"{host_ns}\nshm\n"
    code, _, err = pair.same("run", "--rm", "--ipc", "none", "busybox", "ls", "/dev/shm")
    assert code == 1 and "No such file or directory" in err
    private = _sleeper(pair, "ipcprivate")
    results = pair.both("run", "--rm", "--ipc", f"container:{private}", "busybox", "true")
    assert _without_ids(results["pydockerd"][2]) == _without_ids(results["reference"][2])
    assert (
        "non-shareable IPC (hint: use IpcMode:shareable for the donor container)" in results["reference"][2]
    )
    code, _, err = pair.same("run", "--rm", "--ipc", "bogus", "busybox", "true")
    assert code == 125 and "Invalid IPC mode: bogus" in err


def test_uts_host_domainname_and_hosts_file(pair: Pair) -> None:
    _, out, _ = pair.same("run", "--rm", "--uts", "host", "busybox", "hostname")
    assert out == socket.gethostname() + "\n"
    code, _, err = pair.same("run", "--rm", "--uts", "host", "-h", "web", "busybox", "true")
    assert code == 125 and "conflicting options: hostname and the UTS mode" in err
    # A domain name without a UTS namespace: runc refuses it at start under dockerd; pydockerd
    # refuses it at create, in the words it uses for the host name.
    results = pair.both("run", "--rm", "--uts", "host", "--domainname", "example.invalid", "busybox", "true")
    assert results["reference"][0] == results["pydockerd"][0] == 125
    assert 'sysctl "kernel.domainname" is not in a separate kernel namespace' in results["reference"][2]
    assert "conflicting options: domainname and the UTS mode" in results["pydockerd"][2]
    script = "hostname; cat /proc/sys/kernel/domainname; cat /etc/hostname; cat /etc/hosts"
    outputs = pair.ok_both(
        "run", "--rm", "-h", "web", "--domainname", "example.com", "busybox", "sh", "-c", script
    )
    defaults = (
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    )
    head = "web\nexample.com\nweb\n"
    # The reference runs without networks (--bridge=none), so it writes no line for the container's
    # own address; pydockerd's default bridge gives it one, with the name as libnetwork writes it: FQDN first.
    assert outputs["reference"] == head + defaults
    assert outputs["pydockerd"].startswith(head + defaults)
    assert re.fullmatch(
        r"(\d+\.){3}\d+\tweb\.example\.com web\n", outputs["pydockerd"][len(head + defaults) :]
    )
    assert pair.same("run", "--rm", "--network", "none", "busybox", "cat", "/etc/hosts") == (0, defaults, "")


def test_userns_host(pair: Pair) -> None:
    assert pair.same("run", "--rm", "--userns", "host", "busybox", "id", "-u") == (0, "0\n", "")
    code, _, err = pair.same("run", "--rm", "--userns", "bogus", "busybox", "true")
    assert code == 125 and "--userns: invalid USER mode" in err


# --- devices ---------------------------------------------------------------------------------


def test_device_node_and_cgroup_permissions(pair: Pair) -> None:
    # /dev/fuse (10:229) is denied by default: listed, it is there and may be opened.
    script = "stat -c '%A %t:%T' /dev/fuse; dd if=/dev/fuse of=/dev/null count=0 2>/dev/null && echo open-ok"
    assert pair.same("run", "--rm", "--device", "/dev/fuse", "busybox", "sh", "-c", script) == (
        0,
        "crw------- a:e5\nopen-ok\n",
        "",
    )
    # Unlisted, the same node made by hand is refused by the devices cgroup.
    denied = "mknod /tmp/fuse c 10 229 && dd if=/tmp/fuse of=/dev/null count=0"
    code, _, err = pair.same("run", "--rm", "busybox", "sh", "-c", denied)
    assert code == 1 and "can't open '/tmp/fuse': Operation not permitted" in err
    # Read-only permission: reading allowed, writing refused.
    rw = "dd if=/dev/f of=/dev/null count=0 2>/dev/null && echo read-ok; dd if=/dev/null of=/dev/f count=0 2>&1 | tail -1"
    assert pair.same("run", "--rm", "--device", "/dev/fuse:/dev/f:r", "busybox", "sh", "-c", rw) == (
        0, "read-ok\ndd: can't open '/dev/f': Operation not permitted\n", "",
    )  # fmt: skip
    # A cgroup rule alone lets a node made by hand be used.
    allowed = "mknod /tmp/fuse c 10 229 && dd if=/tmp/fuse of=/dev/null count=0 2>/dev/null && echo open-ok"
    assert pair.same(
        "run", "--rm", "--device-cgroup-rule", "c 10:229 rw", "busybox", "sh", "-c", allowed
    ) == (0, "open-ok\n", "")
    # The kernel's list of what the container may use is the same (in the kernel's own order per engine).
    lists = pair.ok_both("run", "--rm", "--device", "/dev/fuse:/dev/f:r", "--device-cgroup-rule", "b 7:* rm",
                         "busybox", "cat", "/sys/fs/cgroup/devices/devices.list")  # fmt: skip
    assert sorted(lists["pydockerd"].splitlines()) == sorted(lists["reference"].splitlines())
    assert "c 10:229 r" in lists["reference"].splitlines() and "b 7:* rm" in lists["reference"].splitlines()


def test_device_errors(pair: Pair) -> None:
    code, _, err = pair.same("run", "--rm", "--device", "/dev/nosuch", "busybox", "true")
    assert (
        code == 127
        and 'error gathering device information while adding custom device "/dev/nosuch": no such file or directory'
        in err
    )
    code, _, err = pair.same("run", "--rm", "--device", "/etc/passwd", "busybox", "true")
    assert code == 125 and "not a device node" in err
    code, _, err = pair.same("run", "--rm", "--device-cgroup-rule", "x 1:2 r", "busybox", "true")
    assert code == 125 and "invalid device cgroup format 'x 1:2 r'" in err
    code, _, err = pair.same("run", "--rm", "--device", "/dev/null:/dev/x:rwz", "busybox", "true")
    assert code == 125 and "bad mode specified: rwz" in err


# --- runtimes --------------------------------------------------------------------------------


def test_runtime_from_the_daemon_configuration(pair: Pair) -> None:
    for which in pair.engines:
        info = json.loads(pair.run(which, "info", "--format", "{{json .Runtimes}}").stdout)
        assert info["debian-runc"] == {"path": RUNC} and "runc" in info, (which, info)
    script = 'id; grep CapEff /proc/self/status; echo "HOME=$HOME"'
    _, out, _ = pair.same("run", "--rm", "--runtime", "debian-runc", "busybox", "sh", "-c", script)
    assert out == "uid=0(root) gid=0(root) groups=0(root)\nCapEff:\t00000000a80425fb\nHOME=/root\n"
    name = _sleeper(pair, "runc", "--runtime", "debian-runc")
    assert pair.same("inspect", "-f", "{{.HostConfig.Runtime}}", name) == (0, "debian-runc\n", "")
    default = _sleeper(pair, "stock")
    assert pair.same("inspect", "-f", "{{.HostConfig.Runtime}}", default) == (0, "runc\n", "")
    # Debian's runc keeps its own state for the container (pyrunc's it cannot read).
    cid = pair.run("pydockerd", "inspect", "-f", "{{.Id}}", name).stdout.strip()
    stock = pair.run("pydockerd", "inspect", "-f", "{{.Id}}", default).stdout.strip()
    root = pair.pd.exec_root / "containerd" / "state" / "runtime" / "moby"
    state = subprocess.run([RUNC, "--root", str(root), "state", cid], capture_output=True, text=True)
    assert state.returncode == 0 and json.loads(state.stdout)["status"] == "running", state.stderr
    assert subprocess.run([RUNC, "--root", str(root), "state", stock], capture_output=True).returncode != 0
    code, _, err = pair.same("run", "--rm", "--runtime", "nosuch", "busybox", "true")
    assert code == 125 and "Unknown runtime specified nosuch" in err


# --- real-time CPU -----------------------------------------------------------------------------


def test_cpu_realtime_runtime(pair: Pair) -> None:
    script = "cat /sys/fs/cgroup/cpu/cpu.rt_runtime_us; chrt -f 10 echo fifo-ok"
    assert pair.same("run", "--rm", "--cpu-rt-runtime", "10000", "--cap-add", "SYS_NICE", *CHRT, "busybox", "sh", "-c", script) == (
        0, "10000\nfifo-ok\n", "",
    )  # fmt: skip
    # Without real-time time of its own the kernel refuses SCHED_FIFO.
    code, out, err = pair.same("run", "--rm", "--cap-add", "SYS_NICE", *CHRT, "busybox", "sh", "-c", script)
    assert (code, out) == (1, "0\n") and "Operation not permitted" in err
    code, _, err = pair.same(
        "run", "--rm", "--cpu-rt-runtime", "2000", "--cpu-rt-period", "1000", "busybox", "true"
    )
    assert code == 125 and "cpu real-time runtime cannot be higher than cpu real-time period" in err
    # More than the parent has: the kernel refuses it at start.
    for which in pair.engines:
        res = pair.run(which, "run", "--rm", "--cpu-rt-runtime", "200000", "busybox", "true")
        assert res.returncode == 125 and "invalid argument" in res.stderr.lower(), (which, res.stderr)


# --- exec: framing by the start request --------------------------------------------------------


def test_exec_framing_follows_the_start_request(pair: Pair) -> None:
    name = _sleeper(pair, "exec")
    seen = {}
    for which, engine in pair.engines.items():
        client = docker.DockerClient(base_url=f"unix://{engine.socket}", version="1.41")
        try:
            results = []
            for created_tty, started_tty in ((True, False), (False, True), (True, True)):
                ex = client.api.exec_create(
                    name, ["sh", "-c", "echo out; echo err >&2; tty"], tty=created_tty
                )
                output = client.api.exec_start(ex["Id"], tty=started_tty)
                # Which pty the exec gets depends on when the last one was let go.
                output = re.sub(rb"/dev/pts/\d+", b"/dev/pts/N", output)
                results.append((output, client.api.exec_inspect(ex["Id"])["ExitCode"]))
            seen[which] = results
        finally:
            client.close()
    assert seen["pydockerd"] == seen["reference"]
    assert seen["reference"] == [
        (
            b"out\r\nerr\r\n/dev/pts/N\r\n",
            0,
        ),  # a terminal, read as frames: docker-py's exec_run(tty=True) start
        (b"out\nnot a tty\n", 1),  # no terminal, unframed: stderr has nowhere to go
        (b"out\r\nerr\r\n/dev/pts/N\r\n", 0),
    ]
