#!/usr/bin/env python3
"""Benchmark: pull and push, pydockerd + pyregistry against dockerd 20.10 + docker-registry.

One run starts both engines (tests/pydockerd_harness.py and tests/dockerd_ref.py) and, per
round, a fresh pyregistry (tests/registry/registry_harness.py) and a fresh Debian
docker-registry (docker/distribution 2.8) on loopback ports with temporary roots, so every
push really uploads every blob (no cross-repository mount, no "Layer already exists").

The image is generated once: LAYERS layers of LAYER_MIB MiB of random (incompressible) data
each, written as a `docker save` archive (bench/big:latest) and `docker load`ed into each
engine at the start of every round (untimed). Per round, engines interleaved:

1. push: wall time of `docker push HOST:PORT/bench/big:rN` (the CLI 28 for both engines);
   every layer must say "Pushed".
2. pull: after `docker rmi` of both names (the image and its layers are gone), wall time
   of `docker pull` from the same registry; every layer must say "Pull complete".
3. cross pulls (extra rows): pydockerd from docker-registry, dockerd from pyregistry.

MB/s is the image's size in the registry (config + layers from the pushed manifest, the larger
of the two pushes; MB = 10^6 bytes) over the median wall time. dockerd gzips the layers while
it pushes; pydockerd pushes the uncompressed layer tars it loaded (as containerd does).

    .venv/bin/python bench/bench_distribution.py                # prints the table
    .venv/bin/python bench/bench_distribution.py --write-doc    # also updates docs/BENCHMARKS.md

A script, not a test: it exits 1 when anything fails.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import statistics
import sys
import tarfile
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.dockerd_ref import DockerdRefError, RefDockerd, reference_dockerd  # noqa: E402
from tests.pydockerd_harness import pydockerd_engine  # noqa: E402
from tests.registry.registry_harness import Server, pyregistry, reference_registry  # noqa: E402

DOC = REPO / "docs" / "BENCHMARKS.md"
DOC_SECTION = "## Pull and push: pydockerd + pyregistry vs dockerd 20.10 + docker-registry"
DOC_INTRO = """\
`docker push` and `docker pull` (the Docker CLI 28 for both) of a generated image of four
layers of 50 MiB of random, incompressible data, over loopback: pydockerd (with
pycontainerd) against pyregistry, side by side in one run with Debian's dockerd 20.10 against
Debian's docker-registry (docker/distribution 2.8). Each round starts fresh registries and
loads the image anew, so every push uploads every blob and every pull downloads every layer
(checked in the CLI's output). Target: push and pull no slower than the reference, and at
least 200 MB/s (the image's compressed size over the wall time).

The layers are not pushed alike: dockerd 20.10 gzips each layer during the push (about
10-20 MB/s on random data here, most of its push), while pydockerd, like containerd, pushes the
blobs its content store holds, here the uncompressed layer tars of the `docker save` archive
(media type `rootfs.diff.tar`); random data makes both about the same size. So the pulls
differ too (gzip from docker-registry, plain tar from pyregistry), which the two cross rows
show: each engine pulling the other's push."""
IMAGE = "bench/big:latest"
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
)
OURS, REF = "pydockerd + pyregistry", "dockerd 20.10 + docker-registry"
CROSS_PY, CROSS_REF = "pydockerd pulling from docker-registry", "dockerd pulling from pyregistry"


def write_image(path: Path, layers: int, layer_mib: int) -> None:
    """A `docker save` archive: manifest.json, the config, one tar per layer (one random file each)."""
    diff_ids: list[str] = []
    layer_tars: list[bytes] = []
    for i in range(layers):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            info = tarfile.TarInfo(f"data/layer{i}.bin")
            info.size, info.mode, info.mtime = layer_mib << 20, 0o644, 0
            t.addfile(info, io.BytesIO(os.urandom(info.size)))
        layer_tars.append(buf.getvalue())
        diff_ids.append("sha256:" + hashlib.sha256(layer_tars[-1]).hexdigest())
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [
                {"created": "2026-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(layers)
            ],
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    members: list[tuple[str, bytes]] = [(config_name, config)]
    names: list[str] = []
    for diff_id, data in zip(diff_ids, layer_tars, strict=True):
        names.append(f"{diff_id.removeprefix('sha256:')}/layer.tar")
        members.append((names[-1], data))
    manifest = [{"Config": config_name, "RepoTags": [IMAGE], "Layers": names}]
    members.append(("manifest.json", json.dumps(manifest).encode()))
    with tarfile.open(path, "w") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            t.addfile(info, io.BytesIO(data))


@dataclass
class Engine:
    name: str
    daemon: RefDockerd
    registry: Server | None = None  # this round's registry of its own pair
    load: list[float] = field(default_factory=list)
    push: list[float] = field(default_factory=list)
    pushed_as: str = ""  # the layers' media types in the pushed manifest
    pull: list[float] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 600) -> str:
        try:
            return self.daemon.docker_ok(*args, timeout=timeout)
        except DockerdRefError as exc:
            raise SystemExit(f"{self.name}: {exc}") from exc

    def forget(self, *names: str) -> None:
        """Remove the names; with the last the image and its layers go, so a pull must download."""
        for name in names:
            self.run("rmi", name)
        if self.run("images", "-q").strip():
            raise SystemExit(f"{self.name}: images left after rmi: {self.run('images')}")

    def timed_pull(self, ref: str, layers: int) -> float:
        started = time.perf_counter()
        out = self.run("pull", ref)
        took = time.perf_counter() - started
        complete = out.count(": Pull complete")
        if complete != layers or "Status: Downloaded newer image" not in out:
            raise SystemExit(f"{self.name}: pull of {ref} fetched {complete} of {layers} layers:\n{out}")
        return took


def pushed_size(registry: Server, repo: str, tag: str) -> tuple[int, str]:
    with registry.client() as c:
        r = c.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES})
        r.raise_for_status()
        manifest = r.json()
    kinds = sorted({str(layer["mediaType"]).rsplit(".", 2)[-1] for layer in manifest["layers"]})
    size = int(manifest["config"]["size"]) + sum(int(layer["size"]) for layer in manifest["layers"])
    return size, ", ".join("tar" if k == "tar" else f"tar+{k}" for k in kinds)


def one_round(engines: list[Engine], tar: Path, layers: int, n: int, cross: dict[str, list[float]]) -> int:
    """Push then pull per engine (order alternating by round); returns the pushed image's size."""
    order = engines if n % 2 == 0 else list(reversed(engines))
    sizes: list[int] = []
    for e in order:
        assert e.registry is not None
        started = time.perf_counter()
        e.run("load", "-i", str(tar))
        e.load.append(time.perf_counter() - started)
        ref = f"{e.registry.host}/bench/big:r{n}"
        e.run("tag", IMAGE, ref)
        started = time.perf_counter()
        out = e.run("push", ref)
        e.push.append(time.perf_counter() - started)
        if out.count(": Pushed") != layers:
            raise SystemExit(f"{e.name}: push of {ref} did not upload {layers} layers:\n{out}")
        size, e.pushed_as = pushed_size(e.registry, "bench/big", f"r{n}")
        sizes.append(size)
        e.forget(IMAGE, ref)
    for e in order:
        assert e.registry is not None
        ref = f"{e.registry.host}/bench/big:r{n}"
        e.pull.append(e.timed_pull(ref, layers))
        e.forget(ref)
    # Cross pairs: each engine from the other's registry.
    ours, theirs = engines
    for puller, source, row in ((ours, theirs, CROSS_PY), (theirs, ours, CROSS_REF)):
        assert source.registry is not None
        ref = f"{source.registry.host}/bench/big:r{n}"
        cross[row].append(puller.timed_pull(ref, layers))
        puller.forget(ref)
    return max(sizes)


def rate(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def measure(engines: list[Engine], tar: Path, layers: int, rounds: int) -> str:
    cross: dict[str, list[float]] = {CROSS_PY: [], CROSS_REF: []}
    size = 0
    for n in range(rounds):
        with ExitStack() as stack:
            for e in engines:
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-dist-")))
                start = pyregistry if e.name == OURS else reference_registry
                e.registry = stack.enter_context(start(tmp))
            size = max(size, one_round(engines, tar, layers, n, cross))
            for e in engines:
                e.registry = None
    rows = [
        f"Image: {layers} layers, {size / 1e6:.1f} MB in the registry (config + layers as pushed, the larger "
        "of the two pushes); "
        f"{rounds} rounds, medians.",
        "",
        "| pair | `docker load` (not a target) | layers pushed as | push median | push MB/s | pull median | pull MB/s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in engines:
        load, push, pull = statistics.median(e.load), statistics.median(e.push), statistics.median(e.pull)
        rows.append(
            f"| {e.name} | {load:.2f} s | {e.pushed_as} | {push:.2f} s | {rate(size, push):.0f} | {pull:.2f} s | {rate(size, pull):.0f} |"
        )
    for row, samples in cross.items():
        pull = statistics.median(samples)
        rows.append(f"| {row} | - | - | - | - | {pull:.2f} s | {rate(size, pull):.0f} |")
    ours, ref = engines
    verdicts: list[str] = []
    for what, mine, theirs in (
        ("push", statistics.median(ours.push), statistics.median(ref.push)),
        ("pull", statistics.median(ours.pull), statistics.median(ref.pull)),
    ):
        met = mine <= theirs and rate(size, mine) >= 200
        verdicts.append(
            f"{what} {'met' if met else '**not met**'} ({mine:.2f} s against {theirs:.2f} s, "
            f"{mine / theirs:.2f}x; {rate(size, mine):.0f} MB/s)"
        )
    rows += ["", "Targets (no slower than the reference and >= 200 MB/s): " + "; ".join(verdicts) + "."]
    return "\n".join(rows) + "\n"


def write_doc(body: str, command: str) -> None:
    from benchdoc import update_section

    update_section(DOC, DOC_SECTION, DOC_INTRO, command, body)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="pull and push: pydockerd + pyregistry vs dockerd + docker-registry"
    )
    p.add_argument("--rounds", type=int, default=3, help="rounds per pair (default 3)")
    p.add_argument("--layers", type=int, default=4, help="layers in the image (default 4)")
    p.add_argument("--layer-mib", type=int, default=50, help="MiB of random data per layer (default 50)")
    p.add_argument("--write-doc", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-dist-image-") as image_dir, ExitStack() as stack:
        tar = Path(image_dir) / "big.tar"
        write_image(tar, args.layers, args.layer_mib)
        ours = stack.enter_context(pydockerd_engine(images=()))
        ref = stack.enter_context(reference_dockerd({}, images=()))
        engines = [Engine(OURS, ours), Engine(REF, ref)]
        body = measure(engines, tar, args.layers, args.rounds)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    body = f"Measured {stamp} on {platform.node()} (kernel {platform.release()}).\n\n" + body
    print(body)
    if args.write_doc:
        write_doc(body, ".venv/bin/python bench/bench_distribution.py --write-doc")
    return 0


if __name__ == "__main__":
    sys.exit(main())
