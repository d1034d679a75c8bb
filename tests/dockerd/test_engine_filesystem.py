"""Container filesystems through the Engine API, driven by the real Docker CLI (v28) and raw
HTTP: `docker cp` both ways (files, directories, into running, created and exited
containers, into bind mounts, `cp -a`, tar streams on stdin/stdout), the archive stat
header, hostile archives PUT by hand, `docker export`, `docker diff` and `docker import`.

Each test runs against the reference dockerd (20.10) and against pydockerd, one daemon of
each per module, so the expectations are dockerd's; where dockerd 20.10 answers 500 for a
client's mistake pydockerd answers 400, and the tests accept either. The harness fails the
module on any leaked process, cgroup, mount or FIFO directory: a cp into a stopped container
mounts its snapshot, and that mount must be gone afterwards.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dockerd_ref import BUSYBOX_TAR, DOCKER_CLI, RefDockerd, _mounts_under, reference_dockerd
from tests.pydockerd_harness import PyDockerd, pydockerd_engine
from tests.tarread import member

GO_DIR, GO_SYMLINK, GO_CHAR, GO_DEVICE = 1 << 31, 1 << 27, 1 << 21, 1 << 26


@pytest.fixture(scope="module", params=["reference", "pydockerd"])
def engine(request: pytest.FixtureRequest) -> Iterator[RefDockerd]:
    daemon = (
        reference_dockerd({}, images=(BUSYBOX_TAR,)) if request.param == "reference" else pydockerd_engine()
    )
    with daemon as d:
        yield d


class Docker:
    """The Docker CLI against one engine; removes what a test created."""

    def __init__(self, engine: RefDockerd) -> None:
        self.engine = engine
        self.tag = uuid.uuid4().hex[:8]
        self.containers: list[str] = []
        self.images: list[str] = []

    def name(self, what: str) -> str:
        name = f"pdfs-{what}-{self.tag}"
        self.containers.append(name)
        return name

    def image(self, what: str) -> str:
        name = f"pdfs-{what}-{self.tag}"
        self.images.append(name)
        return name

    def run(
        self, *args: str, input: bytes | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [DOCKER_CLI, "-H", f"unix://{self.engine.socket}", *args],
            input=input, capture_output=True, timeout=timeout, env=self.engine._cli_env,
        )  # fmt: skip

    def ok(self, *args: str, input: bytes | None = None) -> str:
        res = self.run(*args, input=input)
        assert res.returncode == 0, f"docker {' '.join(args)} exited {res.returncode}: {res.stderr.decode()}"
        return res.stdout.decode()

    def fails(self, *args: str, input: bytes | None = None) -> str:
        res = self.run(*args, input=input)
        assert res.returncode != 0, f"docker {' '.join(args)} succeeded: {res.stdout.decode()}"
        return res.stderr.decode()

    def started(self, container: str) -> str:
        """Start a container, wait for its end, return its whole log (not attached: cp is under test)."""
        self.ok("start", container)
        assert self.ok("wait", container).strip() == "0"
        return self.ok("logs", container)

    def api(self) -> httpx.Client:
        return httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.engine.socket)),
            base_url="http://docker/v1.41",
            timeout=120,
        )


@pytest.fixture
def docker(engine: RefDockerd) -> Iterator[Docker]:
    d = Docker(engine)
    yield d
    if d.containers:
        d.run("rm", "-f", *d.containers)
    if d.images:
        d.run("rmi", "-f", *d.images)


def _no_private_mounts(engine: RefDockerd) -> None:
    """pydockerd mounts a stopped container's snapshot only for the time of one request."""
    if isinstance(engine, PyDockerd):
        assert _mounts_under(engine.data_root / "mnt") == []


def _tar(*entries: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e["name"])
            info.type = e.get("type", tarfile.REGTYPE)
            info.linkname = e.get("link", "")
            info.mode = e.get("mode", 0o644)
            info.uid, info.gid = e.get("uid", 0), e.get("gid", 0)
            info.devmajor, info.devminor = e.get("dev", (0, 0))
            data = e.get("data", b"")
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def _members_data(data: bytes) -> dict[str, bytes]:
    """The regular files of an archive; {} for one cut short (dockerd's, when a race aborts its tar)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return {
                m.name: (tar.extractfile(m) or io.BytesIO()).read() for m in tar.getmembers() if m.isfile()
            }
    except tarfile.ReadError:
        return {}


def _stat_header(resp: httpx.Response) -> dict[str, Any]:
    header: dict[str, Any] = json.loads(
        base64.b64decode(resp.headers["X-Docker-Container-Path-Stat"], validate=True)
    )
    return header


# --- docker cp ---------------------------------------------------------------------------------


def test_cp_files_and_directories_both_ways(docker: Docker, tmp_path: Path) -> None:
    c = docker.name("run")
    docker.ok("run", "-d", "--name", c, "busybox", "sleep", "600")
    docker.ok(
        "exec",
        c,
        "sh",
        "-c",
        "mkdir -p /data/sub && echo one > /data/a && echo two > /data/sub/b && ln -s /etc /data/etc-link",
    )
    docker.ok("cp", f"{c}:/data/a", str(tmp_path))
    assert (tmp_path / "a").read_text() == "one\n"
    docker.ok("cp", f"{c}:/data", str(tmp_path / "copy"))
    assert (tmp_path / "copy" / "sub" / "b").read_text() == "two\n"
    assert os.readlink(tmp_path / "copy" / "etc-link") == "/etc"  # copied as a link, never followed
    # a trailing slash follows the link: the container's /etc, not the host's
    docker.ok("cp", f"{c}:/data/etc-link/", str(tmp_path / "their-etc"))
    assert (tmp_path / "their-etc" / "passwd").read_text() == docker.ok("exec", c, "cat", "/etc/passwd")
    assert (tmp_path / "their-etc" / "hostname").read_text() == docker.ok("exec", c, "cat", "/etc/hostname")

    (tmp_path / "in.txt").write_text("from the host\n")
    tree = tmp_path / "tree"
    (tree / "deep").mkdir(parents=True)
    (tree / "deep" / "x").write_text("x\n")
    (tree / "rel").symlink_to("deep/x")
    docker.ok("cp", str(tmp_path / "in.txt"), f"{c}:/tmp/")
    docker.ok("cp", str(tmp_path / "in.txt"), f"{c}:/tmp/renamed.txt")
    docker.ok("cp", str(tree), f"{c}:/tmp")
    docker.ok("cp", f"{tree}/.", f"{c}:/data/sub")
    out = docker.ok(
        "exec",
        c,
        "sh",
        "-c",
        "cat /tmp/in.txt /tmp/renamed.txt /tmp/tree/rel /data/sub/deep/x; readlink /tmp/tree/rel",
    )
    assert out == "from the host\nfrom the host\nx\nx\ndeep/x\n"


def test_cp_into_and_out_of_stopped_containers(engine: RefDockerd, docker: Docker, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("copied while stopped\n")
    created = docker.name("created")
    docker.ok("create", "--name", created, "busybox", "cat", "/tmp/f")
    assert docker.ok("diff", created) == ""
    docker.ok("cp", str(tmp_path / "f"), f"{created}:/tmp/")
    _no_private_mounts(engine)
    assert docker.ok("diff", created) == "C /tmp\nA /tmp/f\n"
    docker.ok("cp", f"{created}:/tmp/f", str(tmp_path / "back"))
    assert (tmp_path / "back").read_text() == "copied while stopped\n"
    assert docker.started(created) == "copied while stopped\n"

    exited = docker.name("exited")
    script = "cat /tmp/f 2>/dev/null || echo none"
    docker.ok("create", "--name", exited, "busybox", "sh", "-c", script)
    assert docker.started(exited) == "none\n"
    docker.ok("cp", str(tmp_path / "f"), f"{exited}:/tmp/f")
    docker.ok("cp", f"{exited}:/etc/passwd", str(tmp_path / "passwd"))
    _no_private_mounts(engine)
    assert (tmp_path / "passwd").read_text().startswith("root:x:0:0:")
    assert docker.started(exited) == "none\ncopied while stopped\n"


def test_cp_into_bind_mounts(engine: RefDockerd, docker: Docker, tmp_path: Path) -> None:
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (rw / "there").write_text("on the host\n")
    (tmp_path / "f").write_text("into the bind\n")
    running = docker.name("binds")
    docker.ok(
        "run",
        "-d",
        "--name",
        running,
        "-v",
        f"{rw}:/mnt/rw",
        "-v",
        f"{ro}:/mnt/ro:ro",
        "busybox",
        "sleep",
        "600",
    )
    docker.ok("cp", str(tmp_path / "f"), f"{running}:/mnt/rw/")
    assert (rw / "f").read_text() == "into the bind\n"
    docker.ok("cp", f"{running}:/mnt/rw/there", str(tmp_path / "there"))
    assert (tmp_path / "there").read_text() == "on the host\n"
    err = docker.fails("cp", str(tmp_path / "f"), f"{running}:/mnt/ro/")
    assert "mounted volume is marked read-only" in err
    assert list(ro.iterdir()) == []

    stopped = docker.name("binds-stopped")
    docker.ok(
        "create", "--name", stopped, "-v", f"{rw}:/srv/data", "-v", f"{ro}:/srv/ro:ro", "busybox", "true"
    )
    docker.ok("cp", str(tmp_path / "f"), f"{stopped}:/srv/data/from-stopped")
    assert (rw / "from-stopped").read_text() == "into the bind\n"
    docker.ok("cp", f"{stopped}:/srv/data/there", str(tmp_path / "there2"))
    assert (tmp_path / "there2").read_text() == "on the host\n"
    assert "mounted volume is marked read-only" in docker.fails(
        "cp", str(tmp_path / "f"), f"{stopped}:/srv/ro/"
    )
    _no_private_mounts(engine)

    readonly = docker.name("ro-rootfs")
    docker.ok("create", "--name", readonly, "--read-only", "busybox", "true")
    assert "container rootfs is marked read-only" in docker.fails(
        "cp", str(tmp_path / "f"), f"{readonly}:/tmp/"
    )


def test_cp_archive_mode_keeps_or_maps_owners(docker: Docker, tmp_path: Path) -> None:
    owned = tmp_path / "owned"
    owned.write_text("z")
    os.chown(owned, 1234, 4321)
    c = docker.name("owners")
    docker.ok("run", "-d", "--name", c, "busybox", "sleep", "600")
    docker.ok("cp", "-a", str(owned), f"{c}:/tmp/with-a")
    docker.ok("cp", str(owned), f"{c}:/tmp/plain")
    assert (
        docker.ok("exec", c, "stat", "-c", "%u:%g", "/tmp/with-a", "/tmp/plain") == "1234:4321\n1234:4321\n"
    )
    # cp -a into a container with a user: the files become that user's (from the container's passwd)
    nobody = docker.name("nobody")
    docker.ok("run", "-d", "--name", nobody, "-u", "nobody", "busybox", "sleep", "600")
    docker.ok("cp", "-a", str(owned), f"{nobody}:/tmp/mine")
    assert docker.ok("exec", nobody, "stat", "-c", "%u:%g", "/tmp/mine") == "65534:65534\n"


def test_cp_tar_streams_on_stdin_and_stdout(docker: Docker) -> None:
    c = docker.name("streams")
    docker.ok("run", "-d", "--name", c, "busybox", "sleep", "600")
    archive = _tar({"name": "streamed", "type": tarfile.DIRTYPE, "mode": 0o750},
                   {"name": "streamed/file", "data": b"through stdin\n", "mode": 0o600})  # fmt: skip
    docker.ok("cp", "-", f"{c}:/tmp", input=archive)
    assert (
        docker.ok(
            "exec", c, "sh", "-c", "cat /tmp/streamed/file; stat -c %a /tmp/streamed /tmp/streamed/file"
        )
        == "through stdin\n750\n600\n"
    )
    out = docker.run("cp", f"{c}:/tmp/streamed", "-")
    assert out.returncode == 0, out.stderr
    members = _members(out.stdout)
    assert sorted(members) == ["streamed", "streamed/file"]
    assert members["streamed"].isdir() and members["streamed/file"].size == len(b"through stdin\n")


def test_cp_errors(docker: Docker, tmp_path: Path) -> None:
    c = docker.name("errors")
    docker.ok("run", "-d", "--name", c, "busybox", "sleep", "600")
    missing = docker.run("cp", f"{c}:/no/such/file", str(tmp_path))
    assert missing.returncode == 1
    assert (
        missing.stderr.decode()
        == f"Error response from daemon: Could not find the file /no/such/file in container {c}\n"
    )
    (tmp_path / "f").write_text("x")
    assert "extraction point is not a directory" in docker.fails(
        "cp", str(tmp_path / "f"), f"{c}:/etc/passwd/inside"
    )
    assert "No such container" in docker.fails("cp", f"pdfs-absent-{docker.tag}:/etc", str(tmp_path))


# --- the archive endpoint by hand ----------------------------------------------------------------


def test_archive_stat_header(docker: Docker) -> None:
    c = docker.name("stat")
    docker.ok("run", "-d", "--name", c, "busybox", "sleep", "600")
    docker.ok(
        "exec",
        c,
        "sh",
        "-c",
        "mkdir -p /data/sub && printf abc > /data/sub/f && ln -s sub/f /data/rel && ln -s /nowhere/x /data/dangling",
    )
    with docker.api() as api:
        cases = {
            "/data": ("data", GO_DIR | 0o755, ""),
            "/data/sub/f": ("f", 0o644, ""),
            "/data/rel": ("rel", GO_SYMLINK | 0o777, "/data/sub/f"),
            "/data/dangling": ("dangling", GO_SYMLINK | 0o777, "/nowhere/x"),
            "/data/.": (".", GO_DIR | 0o755, ""),
            "/": ("/", GO_DIR | 0o755, ""),
        }
        for path, (name, mode, link) in cases.items():
            resp = api.head(f"/containers/{c}/archive", params={"path": path})
            assert resp.status_code == 200, (path, resp.status_code)
            info = _stat_header(resp)
            assert (info["name"], info["mode"], info["linkTarget"]) == (name, mode, link), (path, info)
            assert info["mtime"].endswith("Z") and info["mtime"][4] == "-"
        assert _stat_header(api.head(f"/containers/{c}/archive", params={"path": "/data/sub/f"}))["size"] == 3
        # the header is standard base64 of Go's JSON ("~~~???" encodes to "+" and "/", ">" is escaped)
        docker.ok("exec", c, "touch", "/tmp/~~~???>>> ÿ")
        raw = api.head(f"/containers/{c}/archive", params={"path": "/tmp/~~~???>>> ÿ"}).headers[
            "X-Docker-Container-Path-Stat"
        ]
        assert raw.startswith("eyJuYW1lIjoifn5+Pz8/XHUwMDNl")
        assert (
            _stat_header(api.head(f"/containers/{c}/archive", params={"path": "/tmp/~~~???>>> ÿ"}))["name"]
            == "~~~???>>> ÿ"
        )
        resp = api.get(f"/containers/{c}/archive", params={"path": "/data/rel"})
        assert resp.headers["content-type"] == "application/x-tar"
        assert [(m.name, m.issym(), m.linkname) for m in _members(resp.content).values()] == [
            ("rel", True, "sub/f")
        ]
        resp = api.get(f"/containers/{c}/archive", params={"path": "/data/."})
        assert sorted(_members(resp.content)) == [".", "./dangling", "./rel", "./sub", "./sub/f"]
        resp = api.get(f"/containers/{c}/archive", params={"path": "/nope"})
        assert resp.status_code == 404
        assert resp.json() == {"message": f"Could not find the file /nope in container {c}"}
        assert api.head(f"/containers/{c}/archive", params={"path": "/nope"}).status_code == 404
        assert api.get(f"/containers/{c}/archive").status_code == 400
        assert api.get("/containers/pdfs-nobody/archive", params={"path": "/"}).json() == {
            "message": "No such container: pdfs-nobody"
        }
        resp = api.put(
            f"/containers/{c}/archive",
            params={"path": "/data/sub/f"},
            content=_tar({"name": "x", "data": b"x"}),
        )
        assert resp.status_code in (400, 500) and resp.json() == {
            "message": "extraction point is not a directory"
        }
        resp = api.put(
            f"/containers/{c}/archive", params={"path": "/data"}, content=b"not a tar archive" * 40
        )
        assert resp.status_code in (400, 500) and "archive/tar: invalid tar header" in resp.json()["message"]


@pytest.mark.parametrize("state", ["running", "created"])
def test_hostile_archives_stay_inside_the_container(engine: RefDockerd, docker: Docker, state: str) -> None:
    c = docker.name(f"hostile-{state}")
    if state == "running":
        docker.ok("run", "-d", "--name", c, "busybox", "sleep", "600")
    else:
        docker.ok("create", "--name", c, "busybox", "true")
    mark = f"pdfs-{uuid.uuid4().hex[:10]}"
    host_paths = [Path(f"/{mark}-abs"), Path(f"/{mark}-through"), Path(f"/etc/{mark}-via-link"), Path(f"/{mark}-dotdot"),
                  Path(f"/tmp/{mark}-dotdot"), Path(f"/etc/{mark}-hard")]  # fmt: skip

    with docker.api() as api:

        def put(path: str, *entries: dict[str, Any]) -> httpx.Response:
            return api.put(f"/containers/{c}/archive", params={"path": path}, content=_tar(*entries))

        def inside(path: str) -> tarfile.TarInfo | None:
            resp = api.get(f"/containers/{c}/archive", params={"path": path})
            return next(iter(_members(resp.content).values())) if resp.status_code == 200 else None

        # names that climb out of the destination are refused, whatever their spelling
        for name in (f"../{mark}-dotdot", f"a/../../{mark}-dotdot", f"./../../../{mark}-dotdot"):
            resp = put("/tmp", {"name": name, "data": b"x"})
            assert resp.status_code in (400, 500) and "is outside of" in resp.json()["message"], (
                name,
                resp.text,
            )
        # an absolute name is taken below the destination
        assert put("/tmp", {"name": f"/{mark}-abs", "data": b"abs"}).status_code == 200
        assert inside(f"/tmp/{mark}-abs") is not None and inside(f"/{mark}-abs") is None
        # a symlink to "/" in the archive, then a write through it: lands in the container's root
        resp = put(
            "/tmp",
            {"name": "to-root", "type": tarfile.SYMTYPE, "link": "/"},
            {"name": f"to-root/{mark}-through", "data": b"t"},
        )
        assert resp.status_code == 200, resp.text
        assert inside(f"/{mark}-through") is not None
        # ... and a destination path through that link resolves inside the container too
        assert put("/tmp/to-root/etc", {"name": f"{mark}-via-link", "data": b"v"}).status_code == 200
        assert inside(f"/etc/{mark}-via-link") is not None
        # relative symlinks and hard links out of the destination are refused
        resp = put(
            "/tmp",
            {"name": "up", "type": tarfile.SYMTYPE, "link": "../../../../../../.."},
            {"name": f"up/{mark}-dotdot", "data": b"u"},
        )
        assert resp.status_code in (400, 500) and "invalid symlink" in resp.json()["message"]
        resp = put(
            "/tmp", {"name": f"{mark}-hard", "type": tarfile.LNKTYPE, "link": "../../../../etc/passwd"}
        )
        assert resp.status_code in (400, 500) and "invalid hardlink" in resp.json()["message"]
        # a device node is made inside the container (root-equivalent, as dockerd), nowhere else
        assert (
            put(
                "/tmp", {"name": f"{mark}-null", "type": tarfile.CHRTYPE, "dev": (1, 3), "mode": 0o666}
            ).status_code
            == 200
        )
        node = api.head(f"/containers/{c}/archive", params={"path": f"/tmp/{mark}-null"})
        assert _stat_header(node)["mode"] & (GO_CHAR | GO_DEVICE) == GO_CHAR | GO_DEVICE
        # a symlink to a magic link (/proc/1/root) is only text: "/" of the container, if anything
        # (dockerd's view of a container has no /proc mounted, pydockerd's running one has)
        assert (
            put("/tmp", {"name": "pid1-root", "type": tarfile.SYMTYPE, "link": "/proc/1/root"}).status_code
            == 200
        )
        resp = put("/tmp/pid1-root/tmp", {"name": f"{mark}-pid1", "data": b"p"})
        assert resp.status_code in (200, 404), resp.text
        if resp.status_code == 200:
            assert inside(f"/tmp/{mark}-pid1") is not None
    for path in host_paths + [Path(f"/tmp/{mark}-pid1"), Path(f"/{mark}-null"), Path(f"/tmp/{mark}-null")]:
        assert not path.exists() and not path.is_symlink(), f"{path} was written on the host"
    _no_private_mounts(engine)
    if state == "created":
        docker.ok("start", c)  # the snapshot made for the copies is the one it runs on
        assert docker.ok("wait", c).strip() == "0"
        assert docker.ok("diff", c).count(mark) >= 4


# --- export, diff, import ------------------------------------------------------------------------


def test_diff_and_export(engine: RefDockerd, docker: Docker, tmp_path: Path) -> None:
    c = docker.name("diff")
    docker.ok("run", "-d", "--name", c, "busybox", "sleep", "600")
    docker.ok(
        "exec",
        c,
        "sh",
        "-c",
        "echo x > /tmp/new-file; rm /bin/vi; echo more >> /etc/passwd; touch /root/x; rm /root/x",
    )
    assert sorted(docker.ok("diff", c).splitlines()) == [
        "A /tmp/new-file",
        "C /bin",
        "C /etc",
        "C /etc/passwd",
        "C /tmp",
        "D /bin/vi",
    ]
    with docker.api() as api:
        changes = api.get(f"/containers/{c}/changes").json()
    assert {"Path": "/bin/vi", "Kind": 2} in changes and {"Path": "/tmp/new-file", "Kind": 1} in changes
    assert {"Path": "/etc/passwd", "Kind": 0} in changes

    docker.ok("export", "-o", str(tmp_path / "fs.tar"), c)
    listing = subprocess.run(
        f"{DOCKER_CLI} -H unix://{engine.socket} export {c} | tar t",
        shell=True,
        capture_output=True,
        text=True,
        env=engine._cli_env,
    )
    assert listing.returncode == 0, listing.stderr
    names = listing.stdout.split()
    assert "tmp/new-file" in names and "bin/busybox" in names and "bin/vi" not in names
    assert not [
        n for n in names if n.startswith(("proc/", "sys/")) and n not in ("proc/", "sys/")
    ]  # mounts are not files
    with tarfile.open(tmp_path / "fs.tar") as tar:
        assert member(tar, "tmp/new-file").read() == b"x\n"
        assert member(tar, "etc/passwd").read().endswith(b"more\n")

    # a directory deleted and made again (opaque in the upper layer): everything it had is deleted
    gone = docker.name("opaque")
    script = "mkdir /tmp/b && cp /bin/busybox /tmp/b/ && /tmp/b/busybox rm -rf /bin && /tmp/b/busybox mkdir /bin && /tmp/b/busybox touch /bin/new"
    docker.ok("run", "--name", gone, "busybox", "sh", "-c", script)
    lines = docker.ok("diff", gone).splitlines()
    assert {"C /bin", "A /bin/new", "D /bin/sh", "D /bin/busybox", "A /tmp/b/busybox"} <= set(lines)
    assert "D /bin/new" not in lines
    created = docker.name("export-created")
    docker.ok("create", "--name", created, "busybox", "true")
    docker.ok("export", "-o", str(tmp_path / "created.tar"), created)
    with tarfile.open(tmp_path / "created.tar") as tar:
        assert "bin/busybox" in tar.getnames()
    _no_private_mounts(engine)


def test_import_with_changes_and_message(docker: Docker, tmp_path: Path) -> None:
    src = docker.name("import-src")
    docker.ok("run", "--name", src, "busybox", "sh", "-c", "echo imported-marker > /marker")
    fs = tmp_path / "fs.tar"
    docker.ok("export", "-o", str(fs), src)
    image = docker.image("imported") + ":v1"
    out = docker.ok("import", "-c", 'CMD ["cat", "/marker"]', "-c", "ENV GREETING=hi OTHER=x", "-c", "WORKDIR /tmp",
                    "-c", "LABEL pdfs=yes", "-c", "EXPOSE 8080", "-m", "from the test", str(fs), image)  # fmt: skip
    assert out.startswith("sha256:") and len(out.strip()) == 71
    assert docker.ok("run", "--rm", image) == "imported-marker\n"
    assert docker.ok("run", "--rm", image, "sh", "-c", "echo $GREETING; pwd") == "hi\n/tmp\n"
    info = json.loads(docker.ok("image", "inspect", image))[0]
    assert info["Id"] == out.strip() and info["Comment"] == "from the test"
    assert info["Config"]["Labels"] == {"pdfs": "yes"} and info["Config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert info["Config"]["Env"] == ["GREETING=hi", "OTHER=x"] and info["Config"]["Cmd"] == ["cat", "/marker"]
    assert docker.ok("history", "--format", "{{.Comment}}", image).splitlines() == ["from the test"]
    # gzip'd on stdin, no changes: "Imported from -"
    zipped = docker.image("zipped")
    assert docker.ok("import", "-", zipped, input=gzip.compress(fs.read_bytes())).startswith("sha256:")
    assert docker.ok("run", "--rm", zipped, "cat", "/marker") == "imported-marker\n"
    assert docker.ok("history", "--format", "{{.Comment}}", zipped).splitlines() == ["Imported from -"]
    # what dockerd refuses before it reads the upload
    assert "run is not a valid change command" in docker.fails("import", "-c", "RUN true", str(fs))
    assert "invalid reference format" in docker.fails("import", str(fs), "Not/Lower")
    (tmp_path / "junk").write_bytes(b"this is no tar archive" * 50)
    assert "archive/tar: invalid tar header" in docker.fails("import", str(tmp_path / "junk"))


# --- cp against a container that races it (CVE-2018-15664) ----------------------------------------

# The hostile container's program (the host's Python, bound read-only into the busybox image):
# given DIR, LINK and TARGET, it makes LINK a symlink to TARGET (a path on the host) and
# exchanges the names DIR and LINK (renameat2 RENAME_EXCHANGE) as fast as it can, so that a
# lookup through DIR that checks first and uses the path later can be sent to the host.
SWAPPER = """
import ctypes, os, sys
directory, link, target = (os.fsencode(arg) for arg in sys.argv[1:4])
if not os.path.exists(directory):
    os.makedirs(directory)
    with open(directory + b"/secret", "w") as f:
        f.write("container data\\n")
os.symlink(target, link)
swap = ctypes.CDLL(None, use_errno=True).renameat2
open("/ready", "w").close()
while True:
    for _ in range(1000):
        swap(-100, directory, -100, link, 2)
"""


def _start_swapper(docker: Docker, *args: str) -> str:
    """Run SWAPPER in a busybox container (docker run ARGS... busybox python SWAPPER ...)."""
    python = os.path.realpath(sys.executable)
    binds = [arg for path in (sys.base_prefix, "/lib", "/lib64") for arg in ("-v", f"{path}:{path}:ro")]
    c = docker.name("swapper")
    split = args.index("--")
    docker.ok(
        "run",
        "-d",
        "--name",
        c,
        *binds,
        *args[:split],
        "busybox",
        python,
        "-I",
        "-c",
        SWAPPER,
        *args[split + 1 :],
    )
    deadline = time.monotonic() + 30
    while docker.run("exec", c, "test", "-e", "/ready").returncode != 0:
        assert time.monotonic() < deadline, docker.ok("logs", c)
        time.sleep(0.1)
    return c


def test_cp_stays_inside_a_container_swapping_symlinks(docker: Docker, tmp_path: Path) -> None:
    """docker cp in and out of /w/x, a directory the container keeps exchanging with a symlink to
    the same-named host directory: every copy reads and writes the container's files or fails,
    never the host's. pydockerd resolves and opens one component at a time through fds, never
    following a symlink in the kernel (dockerd/engine/scoped.py; dockerd chroots into the
    container). Checked to fail with a resolve-then-open-by-path variant of scoped.resolve."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("host secret\n")
    (tmp_path / "payload").write_text("from cp\n")
    swapper = _start_swapper(docker, "--", "/w/x", "/w/y", str(host))
    copied_out = copied_in = 0
    # At least 20 rounds, and on until both directions have succeeded at least once (a loaded
    # machine can lose every early round to the swaps); 100 rounds at most.
    for round_ in range(100):
        if round_ >= 20 and copied_out and copied_in:
            break
        out = docker.run("cp", f"{swapper}:/w/x/secret", "-")
        assert b"host secret" not in out.stdout
        if out.returncode == 0:
            # dockerd may send an empty archive when the path went away between stat and tar
            data = _members_data(out.stdout)
            assert data in ({}, {"secret": b"container data\n"}), data
            copied_out += bool(data)
        if docker.run("cp", str(tmp_path / "payload"), f"{swapper}:/w/x/").returncode == 0:
            copied_in += 1
        assert sorted(p.name for p in host.iterdir()) == ["secret"], "cp wrote on the host"
    assert copied_out and copied_in  # the copies did happen, between the swaps


def test_cp_of_a_stopped_container_unmounts_only_its_own_volumes(docker: Docker, tmp_path: Path) -> None:
    """A stopped container's volumes are bound into its snapshot for a copy, then unmounted. The
    volume /v is shared with a running container that keeps exchanging /v/sub (where a read-only
    volume is bound, at /v/sub/h) with a symlink to a host directory holding a mount of the same
    name. The read-only remount and the unmount go through an fd on the bind itself, so the
    host's mount is never touched. Before the fix they went by path, and the host's tmpfs was
    remounted read-only or unmounted."""
    vol, data, decoy = tmp_path / "vol", tmp_path / "data", tmp_path / "decoy"
    (vol / "sub" / "h").mkdir(parents=True)
    data.mkdir()
    (data / "file").write_text("bound data\n")
    (decoy / "h").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "decoy", str(decoy / "h")], check=True)
    try:
        _start_swapper(docker, "-v", f"{vol}:/v", "--", "/v/sub", "/v/evil", str(decoy))
        stopped = docker.name("stopped")
        docker.ok(
            "create", "--name", stopped, "-v", f"{vol}:/v", "-v", f"{data}:/v/sub/h:ro", "busybox", "true"
        )
        copied = 0
        for i in range(15):
            out = docker.run("cp", f"{stopped}:/v/sub/h/file", "-")
            copied += out.returncode == 0 and _members_data(out.stdout) == {"file": b"bound data\n"}
            assert str(decoy / "h") in _mounts_under(decoy), f"the host's mount was unmounted (copy {i})"
            (decoy / "h" / "probe").write_text("still writable\n")  # not remounted read-only either
        assert copied
    finally:
        subprocess.run(["umount", "-l", str(decoy / "h")], check=False)
