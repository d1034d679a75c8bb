"""userns-remap side by side with the reference dockerd (Debian's 20.10 with runc).

Both daemons run with `--userns-remap USER` for a system user this module creates (with
shadow's useradd) and gives one subordinate uid range and one gid range (usermod
--add-subuids/--add-subgids); userdel takes the user, its group and both ranges away at the
end, and the module checks that /etc/subuid and /etc/subgid hold nothing of it any more.
The ranges differ (uids and gids start apart), so a uid used where a gid belongs shows.

What is compared: the mapping a container sees, the owners of what its root writes to a bind
mount, a volume and a bind source the daemon creates, `--userns=host`, dockerd's create-time
refusals, namespaces shared with another container, `docker info`, and the security probe of
test_engine_security (capabilities, seccomp, the /proc, /sys and /dev mounts, devices, what
mount/unshare/mknod/keyctl do) line for line.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.dockerd.test_engine_security import HERE, PROBE_SH, normalised
from tests.dockerd_ref import RefDockerd, reference_dockerd
from tests.pydockerd_harness import PYDOCKERD, PyDockerd, pydockerd_engine

SIZE = 65536


def _in_subid_files(name: str) -> list[str]:
    found = []
    for path in ("/etc/subuid", "/etc/subgid"):
        with open(path) as f:
            found += [f"{path}: {line.strip()}" for line in f if line.split(":", 1)[0] == name]
    return found


@pytest.fixture(scope="module")
def remap_user() -> Iterator[tuple[str, int, int]]:
    """(name, first uid, first gid) of a throw-away system user with one range of each kind."""
    name = f"pydtest{uuid.uuid4().hex[:8]}"
    # Ranges apart from each other and from other workers' (a random 64 Ki-aligned slot).
    slot = random.randrange(8, 2000) * 2
    uid, gid = slot * SIZE, (slot + 1) * SIZE
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/bin/false", "--user-group", name],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        subprocess.run(
            ["usermod", "--add-subuids", f"{uid}-{uid + SIZE - 1}", "--add-subgids", f"{gid}-{gid + SIZE - 1}", name],
            check=True, capture_output=True,
        )  # fmt: skip
        yield name, uid, gid
    finally:
        subprocess.run(["userdel", name], check=True, capture_output=True)
        assert _in_subid_files(name) == []


@pytest.fixture(scope="module")
def tools() -> Iterator[Path]:
    """The security probe and its script, in a directory a remapped root may reach (bind sources
    are looked up with the container's credentials, which pass no 0700 directory)."""
    d = Path(tempfile.mkdtemp(prefix="pydocker-userns-probe-", dir="/tmp"))
    try:
        d.chmod(0o755)
        gcc = shutil.which("gcc")
        assert gcc, "gcc is needed to build the probe (scripts/setup installs it)"
        subprocess.run(
            [gcc, "-static", "-O2", "-Wall", "-o", str(d / "probe"), str(HERE / "security_probe.c")],
            check=True,
        )
        (d / "probe.sh").write_text(PROBE_SH)
        (d / "probe.sh").chmod(0o644)
        yield d
    finally:
        shutil.rmtree(d)


@pytest.fixture(scope="module")
def ref(remap_user: tuple[str, int, int]) -> Iterator[RefDockerd]:
    with reference_dockerd({}, extra_args=("--userns-remap", remap_user[0])) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def pyd(remap_user: tuple[str, int, int]) -> Iterator[PyDockerd]:
    with pydockerd_engine(extra_args=("--userns-remap", remap_user[0])) as daemon:
        yield daemon


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A host directory anyone may write into, for bind mounts."""
    d = Path(tempfile.mkdtemp(prefix="pydocker-userns-bind-", dir="/tmp"))
    d.chmod(0o777)
    try:
        yield d
    finally:
        shutil.rmtree(d)


def owner(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid


def test_info_reports_userns_and_the_remapped_root(
    ref: RefDockerd, pyd: PyDockerd, remap_user: tuple[str, int, int]
) -> None:
    _, uid, gid = remap_user
    for daemon in (ref, pyd):
        options, root = daemon.docker_ok(
            "info", "--format", "{{json .SecurityOptions}} {{.DockerRootDir}}"
        ).split()
        assert options == '["name=seccomp,profile=default","name=userns"]'
        assert root == str(daemon.workdir / "data" / f"{uid}.{gid}")
        # dockerd's layout: the data root and its remapped directory 0710, group the remapped root's
        for path in (daemon.workdir / "data", Path(root)):
            st = os.stat(path)
            assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o710, 0, gid), path


def test_container_root_is_mapped_to_the_range(
    ref: RefDockerd, pyd: PyDockerd, remap_user: tuple[str, int, int]
) -> None:
    _, uid, gid = remap_user
    script = (
        "cat /proc/self/uid_map /proc/self/gid_map; id; ls -ln /bin/busybox /etc/hosts /.dockerenv /etc/mtab"
    )
    outs = [d.docker_ok("run", "--rm", "busybox", "sh", "-c", script) for d in (ref, pyd)]
    assert outs[1].splitlines()[:3] == outs[0].splitlines()[:3] == [
        f"{0:>10} {uid:>10} {SIZE:>10}", f"{0:>10} {gid:>10} {SIZE:>10}", "uid=0(root) gid=0(root) groups=0(root)"
    ]  # fmt: skip
    owners = [
        [(line.split()[2], line.split()[3], line.split()[-1]) for line in out.splitlines()[3:]]
        for out in outs
    ]
    assert owners[1] == owners[0]
    # the image's files and the init layer's are root's inside; /etc/mtab (a symlink) is not remapped
    assert owners[1] == [("0", "0", "/.dockerenv"), ("0", "0", "/bin/busybox"),
                         ("0", "0", "/etc/hosts"), ("65534", "65534", "/proc/mounts")]  # fmt: skip


def test_files_written_by_container_root_belong_to_the_range(
    ref: RefDockerd, pyd: PyDockerd, remap_user: tuple[str, int, int], shared_dir: Path
) -> None:
    _, uid, gid = remap_user
    for daemon in (ref, pyd):
        mine = shared_dir / daemon.workdir.name
        mine.mkdir(mode=0o777)
        mine.chmod(0o777)
        daemon.docker_ok(
            "run", "--rm", "-v", f"{mine}:/b", "-v", f"{mine}/made/by/daemon:/m", "busybox",
            "sh", "-c", "touch /b/f && mkdir /b/d && touch /m/f",
        )  # fmt: skip
        for path in ("f", "d", "made", "made/by", "made/by/daemon", "made/by/daemon/f"):
            assert owner(mine / path) == (uid, gid), (daemon, path)
        # --userns=host: the host's root writes as itself
        daemon.docker_ok("run", "--rm", "--userns=host", "-v", f"{mine}:/b", "busybox", "touch", "/b/host")
        assert owner(mine / "host") == (0, 0)


def test_volumes_belong_to_the_remapped_root(
    ref: RefDockerd, pyd: PyDockerd, remap_user: tuple[str, int, int]
) -> None:
    _, uid, gid = remap_user
    views = []
    for daemon in (ref, pyd):
        daemon.docker_ok("volume", "create", "userns-vol")
        try:
            out = daemon.docker_ok(
                "run",
                "--rm",
                "-v",
                "userns-vol:/data",
                "busybox",
                "sh",
                "-c",
                "touch /data/x; ls -lnd /data /data/x",
            )
            path = Path(
                daemon.docker_ok("volume", "inspect", "userns-vol", "--format", "{{.Mountpoint}}").strip()
            )
            assert owner(path) == owner(path / "x") == (uid, gid)
            assert path.parent.parent == daemon.workdir / "data" / f"{uid}.{gid}" / "volumes"
            views.append([line.split()[:4] for line in out.splitlines()])
        finally:
            daemon.docker("volume", "rm", "-f", "userns-vol")
    assert views[1] == views[0]


def test_userns_host_opts_out(ref: RefDockerd, pyd: PyDockerd, remap_user: tuple[str, int, int]) -> None:
    _, uid, gid = remap_user
    script = "cat /proc/self/uid_map; touch /x; ls -ln /x /bin/busybox /.dockerenv"
    outs = [d.docker_ok("run", "--rm", "--userns=host", "busybox", "sh", "-c", script) for d in (ref, pyd)]
    shown = [[line.split()[:4] + line.split()[-1:] for line in out.splitlines()[1:]] for out in outs]
    assert shown[1] == shown[0]
    assert outs[1].split("\n")[0].split() == outs[0].split("\n")[0].split() == ["0", "0", "4294967295"]
    # the image's files stay the range's (dockerd's layers are remapped once, for every container)
    assert ["-rwxr-xr-x", "1", str(uid), str(gid), "/.dockerenv"] in shown[1]


def api_create(daemon: RefDockerd, host_config: dict[str, object]) -> httpx.Response:
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": host_config}
    transport = httpx.HTTPTransport(uds=str(daemon.socket))
    with httpx.Client(transport=transport, base_url="http://engine", timeout=30) as client:
        return client.post("/v1.41/containers/create", json=body)


@pytest.mark.parametrize(
    "host_config",
    [{"Privileged": True}, {"NetworkMode": "host"}, {"PidMode": "host"}],
    ids=lambda h: next(iter(h)),
)
def test_refused_with_remapping_as_dockerd(
    ref: RefDockerd, pyd: PyDockerd, host_config: dict[str, object]
) -> None:
    want, got = api_create(ref, host_config), api_create(pyd, host_config)
    assert got.json() == want.json()
    assert want.status_code in (400, 500)  # dockerd 20.10 answers some of these with a 500...
    assert got.status_code == 400  # ...pydockerd, a client's mistake, with a 400
    assert pyd.docker_ok("ps", "-aq") == ""


def test_bad_userns_mode_is_refused_at_create(ref: RefDockerd, pyd: PyDockerd) -> None:
    # dockerd 20.10 leaves it to the CLI (which refuses it) and creates the container; pydockerd
    # refuses bad input at create
    want = api_create(ref, {"UsernsMode": "bogus"})
    assert want.status_code == 201
    ref.docker_ok("rm", want.json()["Id"])
    got = api_create(pyd, {"UsernsMode": "bogus"})
    assert (got.status_code, got.json()) == (400, {"message": "invalid USER mode: bogus"})


def test_privileged_with_userns_host_is_allowed(pyd: PyDockerd) -> None:
    # (dockerd 20.10 then fails in runc on this host: --privileged asks for CAP_SYS_RESOURCE,
    # outside the sandbox's bounding set; test_engine_security covers that difference)
    out = pyd.docker_ok(
        "run", "--rm", "--privileged", "--userns=host", "busybox", "cat", "/proc/self/uid_map"
    )
    assert out.split() == ["0", "0", "4294967295"]


def test_shared_namespaces_share_the_user_namespace(ref: RefDockerd, pyd: PyDockerd) -> None:
    for daemon in (ref, pyd):
        donor = daemon.docker_ok("run", "-d", "busybox", "sleep", "60").strip()
        try:
            theirs = daemon.docker_ok("exec", donor, "readlink", "/proc/self/ns/user")
            for mode in ("--network", "--pid", "--ipc"):
                if mode == "--ipc":  # a donor must be shareable
                    continue
                mine = daemon.docker_ok(
                    "run", "--rm", mode, f"container:{donor}", "busybox", "readlink", "/proc/self/ns/user"
                )
                assert mine == theirs, (daemon, mode)
            own = daemon.docker_ok("run", "--rm", "busybox", "readlink", "/proc/self/ns/user")
            assert own != theirs
        finally:
            daemon.docker("rm", "-f", donor)


def test_container_root_owns_its_network_namespace(ref: RefDockerd, pyd: PyDockerd) -> None:
    """runc makes the network namespace inside the container's user namespace; pydockerd makes
    it there too, so the remapped root may set its sysctls and bring links down, as under runc."""
    script = (
        "ip link set lo down && echo down; cat /proc/sys/net/ipv4/ip_unprivileged_port_start "
        "/proc/sys/net/ipv4/ping_group_range; nc -l -p 80 & sleep 0.2; netstat -ltn | grep -c ':80 '"
    )
    outs = [
        d.docker("run", "--rm", "--cap-add", "NET_ADMIN", "busybox", "sh", "-c", script) for d in (ref, pyd)
    ]
    assert (outs[1].returncode, outs[1].stdout) == (outs[0].returncode, outs[0].stdout)
    # lo is its to take down; port 80 its to bind; the ping range left as the kernel's (dockerd's
    # default one names gids the mapping does not cover)
    assert outs[1].stdout.split("\n")[:2] == ["down", "0"]
    assert outs[1].stdout.split("\n")[-2] == "1"


@pytest.mark.parametrize("case", ["default", "cap-drop-all"])
def test_probe_prints_the_same_profile_on_both_engines(
    ref: RefDockerd, pyd: PyDockerd, tools: Path, case: str
) -> None:
    options = {"default": (), "cap-drop-all": ("--cap-drop", "ALL")}[case]
    runs = [
        d.docker("run", "--rm", "-v", f"{tools}/probe:/probe:ro", "-v", f"{tools}/probe.sh:/probe.sh:ro", *options,
                 "busybox", "sh", "/probe.sh", timeout=60)
        for d in (ref, pyd)
    ]  # fmt: skip
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[1].returncode == 0, runs[1].stderr
    assert normalised(runs[1].stdout) == normalised(runs[0].stdout)
    lines = normalised(runs[1].stdout)
    assert "mount /sys root=/ ro,nosuid,nodev,noexec,relatime sysfs ro" in lines  # its own sysfs, as runc's


def _start_error(args: list[str], tmp_path: Path, reference: bool) -> str:
    """What a daemon prints when it refuses to start with ARGS (its last line's message)."""
    if reference:
        with pytest.raises(Exception) as failed:
            with reference_dockerd({}, extra_args=args):
                pass
        text = str(failed.value)
        line = next(
            ln for ln in reversed(text.splitlines()) if "failed to start daemon" in ln or "level=" not in ln
        )
        return line.split("failed to start daemon: ", 1)[-1].strip()
    res = subprocess.run(
        [str(PYDOCKERD), "--data-root", str(tmp_path / "data"), "--exec-root", str(tmp_path / "exec"),
         "-H", f"unix://{tmp_path}/d.sock", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert not (tmp_path / "exec" / "containerd").exists()  # refused before anything started
    return res.stderr.strip().split("failed to start daemon: ", 1)[-1]


@pytest.mark.parametrize(
    "value", ["pydtest-nobody-such", "a:b:c", "daemon"], ids=["unknown-user", "bad-spec", "no-ranges"]
)
def test_bad_remap_settings_stop_the_daemon_as_dockerd(value: str, tmp_path: Path) -> None:
    want = _start_error(["--userns-remap", value], tmp_path, reference=True)
    got = _start_error(["--userns-remap", value], tmp_path, reference=False)
    assert got == want


def _private_etc_pydockerd(workdir: Path, args: list[str]) -> subprocess.Popen[bytes]:
    """pydockerd in a mount namespace of its own whose /etc is a throw-away overlay, as the
    reference runs: `default` makes the dockremap user and its ranges, which must not reach the
    host's /etc. It is only asked `docker info` (no container: its mounts would be out of reach)."""
    for d in ("upper", "work"):
        (workdir / "etc" / d).mkdir(parents=True)
    script = (
        f"mount -t overlay overlay -o lowerdir=/etc,upperdir={workdir}/etc/upper,workdir={workdir}/etc/work /etc"
        f" && exec {PYDOCKERD} -H unix://{workdir}/d.sock --data-root {workdir}/data --exec-root {workdir}/exec "
        f"--pidfile {workdir}/d.pid " + " ".join(args)
    )
    log = open(workdir / "pydockerd.log", "wb")
    return subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def _merged(upper: Path, name: str) -> str:
    """A file of /etc as the daemon saw it through its overlay: the upper copy if it wrote one, else
    the host's (on a host that already has dockremap, both engines must reuse its range)."""
    written = upper / name
    return (written if written.exists() else Path("/etc") / name).read_text()


def test_default_creates_dockremap_as_dockerd(ref: RefDockerd, remap_user: tuple[str, int, int]) -> None:
    from tests.pydockerd_harness import stop_pid, until

    workdir = Path(tempfile.mkdtemp(prefix="pydocker-userns-default-", dir="/tmp"))
    workdir.chmod(0o711)
    views = []
    try:
        with reference_dockerd({}, extra_args=("--userns-remap", "default"), images=()) as daemon:
            root = daemon.docker_ok("info", "--format", "{{.DockerRootDir}}").strip()
            subuid = _merged(daemon.workdir / "ns/etc/upper", "subuid")
            views.append((Path(root).name, [ln for ln in subuid.splitlines() if ln.startswith("dockremap:")]))
        proc = _private_etc_pydockerd(workdir, ["--userns-remap", "default"])
        cli = [
            "docker",
            "-H",
            f"unix://{workdir}/d.sock",
            "info",
            "--format",
            "{{json .SecurityOptions}} {{.DockerRootDir}}",
        ]

        def info() -> str:
            res = subprocess.run(
                cli,
                capture_output=True,
                text=True,
                env={"PATH": os.environ["PATH"], "DOCKER_CONFIG": str(workdir / "cli")},
            )
            return res.stdout if res.returncode == 0 else ""

        try:
            until("pydockerd with userns-remap default", lambda: info() or proc.poll() is not None, 60)
            options, root = info().split()
            assert options == '["name=seccomp,profile=default","name=userns"]'
            subuid = _merged(workdir / "etc/upper", "subuid")
            views.append((Path(root).name, [ln for ln in subuid.splitlines() if ln.startswith("dockremap:")]))
            assert "dockremap:" in _merged(workdir / "etc/upper", "passwd")
        finally:
            containerd_pid = workdir / "exec/containerd/pycontainerd.pid"
            assert stop_pid(proc.pid)
            if containerd_pid.exists():
                assert stop_pid(int(containerd_pid.read_text()))
            proc.wait()
    finally:
        subprocess.run(["umount", "-R", str(workdir)], capture_output=True)
        shutil.rmtree(workdir)
    assert views[1] == views[0]
    start = int(views[1][1][0].split(":")[1])
    assert views[1][0] == f"{start}.{start}"
    # the host's files never saw it
    assert _in_subid_files("dockremap") == []
    assert subprocess.run(["getent", "passwd", "dockremap"], capture_output=True).returncode == 2
