"""Volumes in containers (issue 13), side by side: the same Docker CLI 28 command (or HTTP
request) against the reference dockerd 20.10 and pydockerd, and what the container sees
compared: copy-up of an image's VOLUME into anonymous and named volumes (owners, modes,
symlinks; `nocopy` off), `--read-only` with writable volumes, `--volumes-from` (and `:ro`),
`--mount` with its keys, the local driver's options (tmpfs, bind), inspect's `Mounts`, `rm -v`,
volumes in use, prune with filters, `system df`'s UsageData, the `/volumes` API's JSON and
errors. Nothing may stay mounted below either daemon's volumes once its containers are gone
(and the harnesses fail the module on any mount left in their roots)."""

from __future__ import annotations

import json
import re
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dockerd.pair import EnginePair
from tests.dockerd_ref import RefDockerd, reference_dockerd
from tests.pydockerd_harness import pydockerd_engine

# The image's files under its VOLUME: owners, modes, a symlink, a nested directory.
IMAGE_SETUP = (
    "mkdir -p /data/sub && echo img > /data/sub/f && ln -s sub/f /data/link && chown -R 1234:5678 /data/sub "
    "&& chmod 750 /data/sub && chmod 640 /data/sub/f && chmod 1777 /data"
)
SHOW_DATA = "stat -c '%n %u:%g %a %F' /data /data/sub /data/sub/f; readlink /data/link; cat /data/link; grep -c ' /data ' /proc/mounts"


class Pair(EnginePair[RefDockerd]):
    """The same command against both engines; the containers, images and volumes it names are removed after."""

    def __init__(self, ref: RefDockerd, pd: RefDockerd) -> None:
        self.engines = {"reference": ref, "pydockerd": pd}
        self.tag = uuid.uuid4().hex[:8]
        self.containers: list[str] = []
        self.volumes: list[str] = []

    def name(self, label: str) -> str:
        n = f"pdv-{label}-{self.tag}"
        self.containers.append(n)
        return n

    def volume(self, label: str) -> str:
        n = f"pdv-{label}-{self.tag}"
        self.volumes.append(n)
        return n

    def http(self, which: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        transport = httpx.HTTPTransport(uds=str(self.engines[which].socket))
        with httpx.Client(transport=transport, base_url="http://engine", timeout=60) as client:
            res = client.request(method, path, **kwargs)
        return res.status_code, (res.json() if res.content else None)

    def cleanup(self) -> None:
        for engine in self.engines.values():
            ids = engine.docker("ps", "-aq", "--filter", f"name={self.tag}").stdout.split()
            if ids:
                engine.docker("rm", "-f", "-v", *ids)
            if self.volumes:
                engine.docker("volume", "rm", "-f", *self.volumes)


@pytest.fixture(scope="module")
def engines() -> Iterator[tuple[RefDockerd, RefDockerd]]:
    with reference_dockerd({}) as ref, pydockerd_engine() as pd:
        yield ref, pd


@pytest.fixture(scope="module")
def image(engines: tuple[RefDockerd, RefDockerd], tmp_path_factory: pytest.TempPathFactory) -> str:
    """An image declaring `VOLUME /data` with files there, made the same way on both engines
    (export of a busybox container, imported with --change)."""
    tag = f"pdv-volimage:{uuid.uuid4().hex[:8]}"
    for engine in engines:
        src = f"pdv-src-{uuid.uuid4().hex[:8]}"
        tar = tmp_path_factory.mktemp("export") / "rootfs.tar"
        engine.docker_ok("run", "--name", src, "busybox", "sh", "-c", IMAGE_SETUP)
        engine.docker_ok("export", "-o", str(tar), src)
        engine.docker_ok("rm", src)
        engine.docker_ok("import", "--change", "VOLUME /data", "--change", 'CMD ["sh"]', str(tar), tag)
    return tag


@pytest.fixture
def pair(engines: tuple[RefDockerd, RefDockerd]) -> Iterator[Pair]:
    p = Pair(*engines)
    yield p
    p.cleanup()
    for which, engine in p.engines.items():
        assert _volume_mounts(engine) == [], f"{which}: volume mounts left"


def _volume_mounts(engine: RefDockerd) -> list[str]:
    """Mount points below the daemon's volumes directory (its data root is <workdir>/data)."""
    root = f"{engine.workdir}/data/volumes/"
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(root)]


def _anonymous(engine: RefDockerd) -> set[str]:
    names = engine.docker("volume", "ls", "-q").stdout.split()
    return {n for n in names if re.fullmatch(r"[0-9a-f]{64}", n)}


def _normal_mounts(raw: str, named: dict[str, str]) -> list[dict[str, Any]]:
    """inspect's Mounts with the engine's paths and random names taken out."""
    out = []
    for m in json.loads(raw):
        m = dict(m)
        name = m.get("Name")
        if name:
            m["Name"] = named.get(name, "<anonymous>" if re.fullmatch(r"[0-9a-f]{64}", name) else name)
        if m["Type"] == "volume":
            m["Source"] = "<volume path>"
        out.append(m)
    return sorted(out, key=lambda m: m["Destination"])


# --- copy-up and the image's VOLUME -----------------------------------------------------------


def test_image_volume_gets_anonymous_volume_with_the_images_files(pair: Pair, image: str) -> None:
    code, out, _ = pair.same("run", "--rm", image, "sh", "-c", SHOW_DATA)
    assert code == 0
    assert out.splitlines() == [
        "/data 0:0 1777 directory", "/data/sub 1234:5678 750 directory", "/data/sub/f 1234:5678 640 regular file",
        "sub/f", "img", "1",
    ]  # fmt: skip
    pair.same("inspect", "-f", "{{json .Config.Volumes}}", image)


def test_named_volume_copy_up_and_nocopy(pair: Pair, image: str) -> None:
    filled, empty, empty2 = pair.volume("filled"), pair.volume("empty"), pair.volume("empty2")
    code, out, _ = pair.same("run", "--rm", "-v", f"{filled}:/data", image, "sh", "-c", SHOW_DATA)
    assert code == 0 and "img" in out.splitlines()
    # the volume keeps the copy; a volume that holds anything is never filled again
    pair.same("run", "--rm", "-v", f"{filled}:/data", "busybox", "sh", "-c", "rm /data/sub/f; ls -A /data")
    pair.same("run", "--rm", "-v", f"{filled}:/data", image, "ls", "-A", "/data/sub")
    assert pair.same("run", "--rm", "-v", f"{empty}:/data:nocopy", image, "ls", "-A", "/data")[1] == ""
    mount = f"type=volume,src={empty2},dst=/data,volume-nocopy"
    assert pair.same("run", "--rm", "--mount", mount, image, "ls", "-A", "/data")[1] == ""


def test_volume_over_a_file_is_refused(pair: Pair) -> None:
    vol = pair.volume("overfile")
    results = pair.both("run", "--rm", "-v", f"{vol}:/etc/passwd", "busybox", "true")
    # dockerd fails while it copies up ("source .../merged/etc/passwd is not directory"): a 500
    # naming its own paths; pydockerd refuses the request in the words of dockerd's later check.
    assert results["reference"][0] == 125 and "etc/passwd is not directory" in results["reference"][2]
    assert results["pydockerd"][0] == 125
    assert "cannot mount volume over existing file, file exists /etc/passwd" in results["pydockerd"][2]


# --- read-only roots, volumes-from, --mount -----------------------------------------------------


def test_read_only_root_keeps_volumes_writable(pair: Pair) -> None:
    vol = pair.volume("rw")
    script = (
        "touch /anon/a && touch /n/b && echo volumes-writable; touch /root-file 2>&1; touch /ro/c 2>&1; true"
    )
    _, out, _ = pair.same("run", "--rm", "--read-only", "-v", "/anon", "-v", f"{vol}:/n", "-v", f"{vol}:/ro:ro",
                          "busybox", "sh", "-c", script)  # fmt: skip
    assert out.splitlines() == [
        "volumes-writable", "touch: /root-file: Read-only file system", "touch: /ro/c: Read-only file system",
    ]  # fmt: skip


def test_volumes_from_shares_and_inspect_shows_mounts(pair: Pair) -> None:
    vol = pair.volume("shared")
    writer, reader, ro_reader = pair.name("writer"), pair.name("reader"), pair.name("roreader")
    # (no --mount type=tmpfs in the writer: dockerd 20.10 cannot copy one, "get: no such volume")
    pair.ok_both("run", "--name", writer, "-v", f"{vol}:/data", "-v", "/anon", "-v", "/tmp:/hosttmp:ro",
                 "busybox", "sh", "-c", "echo shared > /data/f; echo anon > /anon/f")  # fmt: skip
    script = "cat /data/f /anon/f; touch /data/g 2>&1; touch /hosttmp/x 2>&1; true"
    _, out, _ = pair.same("run", "--name", reader, "--volumes-from", writer, "busybox", "sh", "-c", script)
    assert out.splitlines() == ["shared", "anon", "touch: /hosttmp/x: Read-only file system"]
    _, out, _ = pair.same(
        "run", "--name", ro_reader, "--volumes-from", f"{writer}:ro", "busybox", "sh", "-c", script
    )
    assert out.splitlines()[:3] == ["shared", "anon", "touch: /data/g: Read-only file system"]
    views = {}
    for which, engine in pair.engines.items():
        views[which] = [
            _normal_mounts(engine.docker_ok("inspect", "-f", "{{json .Mounts}}", c), {vol: "<named>"})
            for c in (writer, reader)
        ]
    assert views["pydockerd"] == views["reference"]
    # the shared volumes are in use by all three containers
    for which, (code, _, err) in pair.both("volume", "rm", vol).items():
        ids = re.fullmatch(rf"Error response from daemon: remove {vol}: volume is in use - \[(.*)\]\n", err)
        assert code == 1 and ids is not None and len(ids.group(1).split(", ")) == 3, (which, err)


def test_mount_keys_and_local_driver_options(pair: Pair, tmp_path: Path) -> None:
    tmpfs_vol, bind_vol, labelled = pair.volume("tmpfsvol"), pair.volume("bindvol"), pair.volume("labelled")
    host_dir = tmp_path / "bound"
    host_dir.mkdir()
    (host_dir / "from-host").write_text("host\n")
    mounts = [
        f"type=volume,src={tmpfs_vol},dst=/tv,volume-driver=local,volume-opt=type=tmpfs,volume-opt=device=tmpfs,"
        "volume-opt=o=size=2m",
        f"type=volume,source={labelled},target=/lv,volume-label=pdv=1,readonly",
        f"type=volume,src={bind_vol},dst=/bv,volume-opt=type=none,volume-opt=o=bind,volume-opt=device={host_dir}",
        f"type=bind,src={host_dir},dst=/hb,bind-propagation=rprivate",
        "type=tmpfs,dst=/tt,tmpfs-size=1048576,tmpfs-mode=0700",
    ]
    args = [arg for m in mounts for arg in ("--mount", m)]
    script = (
        "for p in /tv /lv /bv /hb /tt; do grep \" $p \" /proc/mounts | cut -d' ' -f3,4 | cut -d, -f1; done; "
        "stat -c %a /tt; cat /bv/from-host; echo v > /bv/from-container; touch /lv/x 2>&1; true"
    )
    code, out, _ = pair.same("run", "--rm", *args, "busybox", "sh", "-c", script)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 8, out
    # (the volumes' and binds' file system is whatever the data roots and /tmp are on)
    assert lines[0] == "tmpfs rw" and lines[1].endswith(" ro") and lines[2].endswith(" rw"), out
    assert lines[4:] == ["tmpfs rw", "700", "host", "touch: /lv/x: Read-only file system"], out
    assert (host_dir / "from-container").read_text() == "v\n"
    for vol in (tmpfs_vol, labelled, bind_vol):
        pair.same("volume", "inspect", "-f", "{{.Driver}} {{json .Options}} {{json .Labels}} {{.Scope}}", vol)


def test_bad_mounts_are_refused_alike(pair: Pair) -> None:
    bodies = [
        {"Mounts": [{"Type": "bind", "Source": "/pdv-nonexistent", "Target": "/x"}]},
        {"Mounts": [{"Type": "nope", "Target": "/x"}]},
        {"Mounts": [{"Type": "tmpfs", "Target": "/x", "Source": "a"}]},
        {"Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/x", "VolumeOptions": {}}]},
        {"Binds": ["pdv-a:/x", "pdv-b:/x"]},
        {"Binds": ["bad/name:/x"]},
        {"Binds": ["pdv-vv:/x"], "VolumeDriver": "pdv-nosuch"},
        {"VolumesFrom": ["pdv-nosuch-container"]},
    ]
    for host in bodies:
        answers = {
            which: pair.http(
                which, "POST", "/v1.41/containers/create", json={"Image": "busybox", "HostConfig": host}
            )
            for which in pair.engines
        }
        assert answers["pydockerd"] == answers["reference"], host
        assert answers["reference"][0] in (400, 404)
    assert "pdv-vv" not in pair.engines["pydockerd"].docker("volume", "ls", "-q").stdout.split()


# --- lifecycle ---------------------------------------------------------------------------------------


def test_rm_v_removes_anonymous_volumes_only(pair: Pair, image: str) -> None:
    named = pair.volume("keep")
    c1, c2 = pair.name("rmv"), pair.name("rmnov")
    for which, engine in pair.engines.items():
        before = _anonymous(engine)
        engine.docker_ok("create", "--name", c1, "-v", f"{named}:/n", "-v", "/anon", image)
        engine.docker_ok("create", "--name", c2, "-v", "/anon", "busybox")
        made = _anonymous(engine) - before
        assert len(made) == 3, which  # /anon twice and the image's /data
        engine.docker_ok("rm", "-v", c1)
        left = _anonymous(engine) - before
        assert len(left) == 1, which  # c2's
        engine.docker_ok("rm", c2)
        assert _anonymous(engine) - before == left, which  # without -v it stays
        engine.docker_ok("volume", "rm", *left)
        assert named in engine.docker("volume", "ls", "-q").stdout.split()


def test_prune_keeps_volumes_in_use_and_honours_label_filters(pair: Pair) -> None:
    used, a, b = pair.volume("used"), pair.volume("pa"), pair.volume("pb")
    holder = pair.name("holder")
    pair.ok_both("volume", "create", "--label", f"pdv={pair.tag}", "--label", "keep=yes", a)
    pair.ok_both("volume", "create", "--label", f"pdv={pair.tag}", b)
    pair.ok_both("volume", "create", "--label", f"pdv={pair.tag}", used)
    pair.ok_both("create", "--name", holder, "-v", f"{used}:/u", "busybox")
    _, out, _ = pair.same(
        "volume", "prune", "-f", "--filter", f"label=pdv={pair.tag}", "--filter", "label!=keep=yes"
    )
    assert out == f"Deleted Volumes:\n{b}\n\nTotal reclaimed space: 0B\n"
    _, out, _ = pair.same("volume", "ls", "-q", "--filter", f"label=pdv={pair.tag}")
    assert sorted(out.split()) == sorted([a, used])
    pair.same("volume", "ls", "-q", "--filter", f"label=pdv={pair.tag}", "--filter", "dangling=false")
    pair.same("volume", "prune", "-f", "--filter", "until=1h")  # not a volume prune filter in dockerd 20.10


def test_bind_propagation_needs_a_shared_host_mount(pair: Pair, tmp_path: Path) -> None:
    code, _, err = pair.same("run", "--rm", "--mount", f"type=bind,src={tmp_path},dst=/hb,bind-propagation=rshared",
                             "busybox", "true")  # fmt: skip
    assert code != 0 and "is mounted on" in err and "but it is not a shared mount" in err


def test_system_df_usage_data(pair: Pair) -> None:
    vol = pair.volume("df")
    user = pair.name("dfuser")
    pair.ok_both("run", "--name", user, "-v", f"{vol}:/d", "busybox", "sh", "-c",
                 "head -c 12345 /dev/zero > /d/a; mkdir /d/s; head -c 100 /dev/zero > /d/s/b")  # fmt: skip
    rows = {}
    for which in pair.engines:
        code, df = pair.http(which, "GET", "/v1.41/system/df")
        assert code == 200
        rows[which] = [
            {k: v for k, v in row.items() if k not in ("CreatedAt", "Mountpoint")}
            for row in df["Volumes"] if row["Name"] == vol
        ]  # fmt: skip
    assert rows["pydockerd"] == rows["reference"]
    assert rows["reference"][0]["UsageData"]["RefCount"] == 1
    pair.same(
        "system",
        "df",
        "-v",
        "--format",
        '{{range .Volumes}}{{if eq .Name "' + vol + '"}}{{.Name}} {{.Links}} {{.Size}}{{end}}{{end}}',
    )


# --- the /volumes API -----------------------------------------------------------------------------


def test_volumes_api_json_and_errors(pair: Pair) -> None:
    vol = pair.volume("api")
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1.41/volumes/create", {"json": {"Name": vol, "Labels": {"a": "b"}, "DriverOpts": {}}}),
        ("POST", "/v1.41/volumes/create", {"json": {"Name": vol}}),  # again: the same volume
        ("POST", "/v1.41/volumes/create", {"json": {"Name": vol, "Driver": "pdv-nosuch"}}),
        ("POST", "/v1.41/volumes/create", {"json": {"Name": "bad/name"}}),
        ("POST", "/v1.41/volumes/create", {"json": {"Name": "y"}}),
        ("POST", "/v1.41/volumes/create", {"json": {"Name": 5}}),
        ("POST", "/v1.41/volumes/create", {"json": {"Name": "pdv-z", "Labels": {"a": 1}}}),
        ("POST", "/v1.41/volumes/create", {"json": {"Name": "pdv-z", "DriverOpts": {"bogus": "1"}}}),
        ("POST", "/v1.41/volumes/create", {"json": {"Name": "pdv-z", "DriverOpts": {"type": "tmpfs"}}}),
        ("POST", "/v1.41/volumes/create", {"json": {"Name": "pdv-z", "DriverOpts": {"size": "1m"}}}),
        ("GET", f"/v1.41/volumes/{vol}", {}),
        ("GET", "/v1.41/volumes/pdv-nosuch", {}),
        ("GET", "/v1.41/volumes", {"params": {"filters": json.dumps({"name": {vol: True}})}}),
        (
            "GET",
            "/v1.41/volumes",
            {"params": {"filters": json.dumps({"label": ["a=b"], "name": [pair.tag]})}},
        ),
        ("GET", "/v1.41/volumes", {"params": {"filters": json.dumps({"driver": ["local"], "name": [vol]})}}),
        ("GET", "/v1.41/volumes", {"params": {"filters": json.dumps({"bogus": ["x"]})}}),
        ("GET", "/v1.41/volumes", {"params": {"filters": json.dumps({"dangling": ["x"]})}}),
        ("DELETE", "/v1.41/volumes/pdv-nosuch", {}),
        ("DELETE", "/v1.41/volumes/pdv-nosuch?force=1", {}),
        ("POST", "/v1.41/volumes/prune", {"params": {"filters": json.dumps({"until": ["10m"]})}}),
        ("DELETE", f"/v1.41/volumes/{vol}", {}),
        ("GET", f"/v1.41/volumes/{vol}", {}),
    ]
    for method, path, kwargs in calls:
        answers = {}
        for which, engine in pair.engines.items():
            code, body = pair.http(which, method, path, **kwargs)
            answers[which] = (code, _without_paths(body, engine))
        assert answers["pydockerd"] == answers["reference"], (method, path, kwargs)


def _without_paths(body: Any, engine: RefDockerd) -> Any:
    """The engine's data root and the creation time taken out (they differ by engine)."""
    text = json.dumps(body).replace(str(engine.workdir), "<root>")
    return json.loads(re.sub(r'"CreatedAt": "[^"]*"', '"CreatedAt": "<time>"', text))


def test_docker_py_volumes(pair: Pair) -> None:
    import docker

    vol = pair.volume("dockerpy")
    seen = {}
    for which, engine in pair.engines.items():
        client = docker.DockerClient(base_url=f"unix://{engine.socket}", version="1.41", timeout=60)
        try:
            v = client.volumes.create(vol, labels={"pdv": "py"})
            out = client.containers.run("busybox", ["sh", "-c", "echo py > /v/f; cat /v/f"], remove=True,
                                        volumes={vol: {"bind": "/v", "mode": "rw"}})  # fmt: skip
            listed = [x.name for x in client.volumes.list(filters={"label": "pdv=py"})]
            with pytest.raises(docker.errors.NotFound):
                client.volumes.get("pdv-nosuch")
            v.remove()
            seen[which] = (out, listed)
        finally:
            client.close()
    assert seen["pydockerd"] == seen["reference"] == (b"py\n", [vol])


# --- cp, diff, export ----------------------------------------------------------------------------


def test_cp_reaches_into_volumes_and_diff_and_export_leave_them_out(pair: Pair, tmp_path: Path) -> None:
    vol = pair.volume("cp")
    c = pair.name("cp")
    pair.ok_both("run", "--name", c, "-v", f"{vol}:/data", "-v", "/anon", "busybox", "sh", "-c",
                 "echo in-volume > /data/f; echo in-anon > /anon/g; echo in-layer > /layer")  # fmt: skip
    (tmp_path / "up").write_text("copied in\n")
    results = {}
    for which, engine in pair.engines.items():
        out = tmp_path / which
        out.mkdir()
        engine.docker_ok("cp", f"{c}:/data/f", str(out / "f"))  # from a stopped container's volume
        engine.docker_ok("cp", str(tmp_path / "up"), f"{c}:/data/up")  # into it
        seen = engine.docker_ok("run", "--rm", "-v", f"{vol}:/v", "busybox", "cat", "/v/up")
        engine.docker_ok("export", "-o", str(out / "export.tar"), c)
        with tarfile.open(out / "export.tar") as tar:
            exported = sorted(n for n in tar.getnames() if n.startswith(("data", "anon", "layer")))
        results[which] = ((out / "f").read_text(), seen, exported)
    assert results["pydockerd"] == results["reference"]
    assert results["reference"][:2] == ("in-volume\n", "copied in\n")
    diffs = {which: sorted(out.splitlines()) for which, out in pair.ok_both("diff", c).items()}
    # the mount points are in the container's layer, never what the volumes hold (order: the file system's)
    assert diffs["pydockerd"] == diffs["reference"] == ["A /anon", "A /data", "A /layer"]


def test_volume_events(pair: Pair) -> None:
    vol = pair.volume("events")
    c = pair.name("events")
    seen = {}
    for which, engine in pair.engines.items():
        # `since` no earlier than now (truncated to the millisecond the CLI sends): the previous
        # test's clean-up removed volumes a moment ago, and their destroy events are no part of this
        since = f"{int(time.time() * 1000) / 1000:.3f}"
        # `-v /anon` is an anonymous volume (`/anon:/anon:ro` would bind, and create, the host's /anon)
        engine.docker_ok("run", "--name", c, "-v", f"{vol}:/d", "-v", "/anon", "busybox", "true")
        cid = engine.docker_ok("inspect", "-f", "{{.Id}}", c).strip()
        engine.docker_ok("rm", "-v", c)
        engine.docker_ok("volume", "rm", vol)
        until = f"{time.time() + 1:.3f}"
        out = engine.docker_ok("events", "--since", since, "--until", until, "--filter", "type=volume",
                               "--format", "{{.Action}} {{.Actor.ID}} {{json .Actor.Attributes}}")  # fmt: skip
        out = re.sub(r"\b[0-9a-f]{64}\b", "<anonymous>", out.replace(cid, "<container>"))
        seen[which] = sorted(out.splitlines())
    assert seen["pydockerd"] == seen["reference"]
    assert any(line.startswith(f"mount {vol} ") for line in seen["reference"])
    assert any(line.startswith("destroy <anonymous> ") for line in seen["reference"])


def test_commit_leaves_volume_contents_out(pair: Pair) -> None:
    """`docker commit` keeps the container's layer (the mount points are in it, empty) but never
    what its volumes hold; an anonymous `-v /anon` stays a VOLUME of the image, as the
    container's config declared it."""
    vol = pair.volume("commit")
    c = pair.name("commit")
    image = f"pdv-commit:{pair.tag}"
    pair.ok_both("run", "--name", c, "-v", f"{vol}:/data", "-v", "/anon", "busybox", "sh", "-c",
                 "echo v > /data/f; echo a > /anon/g; echo l > /layer")  # fmt: skip
    try:
        pair.ok_both("commit", c, image)
        volumes = pair.ok_both("image", "inspect", "-f", "{{json .Config.Volumes}}", image)
        seen = pair.ok_both("run", "--rm", "-v", "/anon", image, "sh", "-c", "ls -A /data /anon; cat /layer")
        assert volumes["pydockerd"] == volumes["reference"] == '{"/anon":{}}\n'
        assert seen["pydockerd"] == seen["reference"] == "/anon:\n\n/data:\nl\n"
    finally:
        pair.both("image", "rm", "-f", image)
