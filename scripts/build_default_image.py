#!/usr/bin/env python3
"""Build the project's default image from the host's static busybox.

Produces, under the output directory (default: <repo>/images):

  busybox-bundle/            an OCI runtime bundle: config.json + rootfs/
  busybox-oci/               the same rootfs as an OCI image layout
                             (ref "latest", docker.io/library/busybox:latest)
  default-image.stamp        what the outputs were built from

The build is deterministic (fixed mtimes, owners and ordering; gzip without a
timestamp), so the manifest digest only changes when busybox, this script or
the default spec change. When the stamp matches, nothing is rebuilt.

Standard library only: set-up runs it before anything else is installed.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runtime.spec_default import DEFAULT_PATH, default_spec  # noqa: E402

IMAGE_NAME = "docker.io/library/busybox:latest"
IMAGE_TAG = "latest"
BUNDLE_DIR = "busybox-bundle"
OCI_DIR = "busybox-oci"
STAMP_FILE = "default-image.stamp"

# Every timestamp in the image (file mtimes, config "created"): a fixed instant
# so that two builds of the same inputs give byte-identical blobs.
FIXED_EPOCH = 1_700_000_000
FIXED_CREATED = "2023-11-14T22:13:20Z"

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

# ELF e_machine -> Go/OCI architecture name.
_ELF_ARCH = {62: "amd64", 183: "arm64", 3: "386", 40: "arm", 243: "riscv64", 22: "s390x", 21: "ppc64le"}
_PT_INTERP = 3

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"
HOSTNAME = "pyrunc\n"


class ImageBuildError(Exception):
    """The default image could not be built; the message says why in one line."""


@dataclass(frozen=True)
class Entry:
    """One filesystem object of the rootfs, described once and written twice (dir and tar)."""

    path: str  # relative to the rootfs, no leading slash
    kind: Literal["dir", "file", "symlink"]
    mode: int
    data: bytes = b""
    target: str = ""


@dataclass(frozen=True)
class BuildResult:
    out: Path
    manifest_digest: str
    rebuilt: bool


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def find_busybox(explicit: str | None) -> Path:
    candidates = [explicit] if explicit else [*BUSYBOX_CANDIDATES, shutil.which("busybox")]
    for cand in candidates:
        if cand and os.access(cand, os.X_OK):
            return Path(cand)
    raise ImageBuildError("no busybox binary found: install the busybox-static package")


def elf_architecture(binary: bytes, name: str) -> str:
    """Return the OCI architecture of a static ELF64 binary; refuse dynamic ones.

    A dynamically linked busybox (Debian's plain `busybox` package) would not run
    in a rootfs without a libc, so catch that here rather than at first `run`.
    """
    if binary[:4] != b"\x7fELF" or binary[4] != 2 or binary[5] != 1:
        raise ImageBuildError(f"{name} is not a 64-bit little-endian ELF binary")
    (machine,) = struct.unpack_from("<H", binary, 0x12)
    (phoff,) = struct.unpack_from("<Q", binary, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", binary, 0x36)
    for i in range(phnum):
        (p_type,) = struct.unpack_from("<I", binary, phoff + i * phentsize)
        if p_type == _PT_INTERP:
            raise ImageBuildError(f"{name} is dynamically linked: install the busybox-static package")
    arch = _ELF_ARCH.get(machine)
    if arch is None:
        raise ImageBuildError(f"{name} has an unknown ELF machine type {machine}")
    return arch


def applet_paths(busybox: Path) -> list[str]:
    """Where `busybox --install` would put each applet (bin/sh, usr/bin/env, ...)."""
    try:
        out = subprocess.run([str(busybox), "--list-full"], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ImageBuildError(f"cannot list busybox applets: {exc}") from exc
    # linuxrc is busybox's initrd init: meaningless inside a container.
    paths = sorted({line.strip() for line in out.splitlines() if "/" in line.strip()})
    if "bin/sh" not in paths:
        raise ImageBuildError(f"{busybox} has no sh applet")
    return paths


def rootfs_entries(busybox_bytes: bytes, applets: list[str]) -> list[Entry]:
    dirs: dict[str, int] = {
        "bin": 0o755,
        "dev": 0o755,
        "etc": 0o755,
        "home": 0o755,
        "proc": 0o555,
        "root": 0o700,
        "sbin": 0o755,
        "sys": 0o555,
        "tmp": 0o1777,
        "usr": 0o755,
        "usr/bin": 0o755,
        "usr/sbin": 0o755,
        "var": 0o755,
    }
    # Every applet gets a link in bin/ (as in Docker's busybox image, so a plain
    # /bin/NAME always works) and another where `busybox --install` puts it, so
    # absolute paths such as /usr/bin/env or /sbin/ip work too.
    links: set[str] = set()
    for applet in applets:
        links.add("bin/" + os.path.basename(applet))
        links.add(applet)
    links.discard("bin/busybox")
    entries: list[Entry] = []
    for link in sorted(links):
        parent = os.path.dirname(link)
        while parent and parent not in dirs:
            dirs[parent] = 0o755
            parent = os.path.dirname(parent)
        target = os.path.relpath("bin/busybox", os.path.dirname(link))
        entries.append(Entry(link, "symlink", 0o777, target=target))
    entries += [Entry(d, "dir", mode) for d, mode in dirs.items()]
    entries += [
        Entry("bin/busybox", "file", 0o755, data=busybox_bytes),
        Entry("etc/passwd", "file", 0o644, data=PASSWD.encode()),
        Entry("etc/group", "file", 0o644, data=GROUP.encode()),
        Entry("etc/hostname", "file", 0o644, data=HOSTNAME.encode()),
    ]
    # Component-wise order puts every directory before its contents.
    return sorted(entries, key=lambda e: e.path.split("/"))


def write_rootfs(root: Path, entries: list[Entry]) -> None:
    root.mkdir(mode=0o755)
    for e in entries:
        p = root / e.path
        if e.kind == "dir":
            p.mkdir()
        elif e.kind == "file":
            p.write_bytes(e.data)
        else:
            os.symlink(e.target, p)
        if e.kind != "symlink":
            os.chmod(p, e.mode)  # explicit: mkdir/open modes are filtered by the umask
    # Children first, so setting a file's mtime does not disturb its directory's.
    for e in reversed(entries):
        os.utime(root / e.path, (FIXED_EPOCH, FIXED_EPOCH), follow_symlinks=False)
    os.utime(root, (FIXED_EPOCH, FIXED_EPOCH))


def layer_tar(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.path)
            info.mode = e.mode
            info.mtime = FIXED_EPOCH
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if e.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif e.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = e.target
                tar.addfile(info)
            else:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
    return buf.getvalue()


def gzip_deterministic(data: bytes) -> bytes:
    buf = io.BytesIO()
    # mtime=0 and an empty filename keep the gzip header free of build-time facts.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return buf.getvalue()


def write_oci_layout(
    out: Path,
    layer: bytes,
    arch: str,
    image_config: dict[str, Any] | None = None,
    created_by: str = "scripts/build_default_image.py",
    name: str = IMAGE_NAME,
    tag: str = IMAGE_TAG,
) -> str:
    """Write an OCI image layout holding one single-layer image; return the manifest digest.
    The defaults are the default image's; scripts/build_pause_image.py passes the pause image's."""
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = _sha256(data)
        (blobs / digest.split(":", 1)[1]).write_bytes(data)
        return digest

    compressed = gzip_deterministic(layer)
    layer_digest = put(compressed)
    config = {
        "architecture": arch,
        "os": "linux",
        "created": FIXED_CREATED,
        "config": image_config if image_config is not None else {"Env": [DEFAULT_PATH], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [_sha256(layer)]},
        "history": [{"created": FIXED_CREATED, "created_by": created_by}],
    }
    config_bytes = _canonical_json(config)
    config_digest = put(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": MEDIA_LAYER_GZIP, "digest": layer_digest, "size": len(compressed)}],
    }
    manifest_bytes = _canonical_json(manifest)
    manifest_digest = put(manifest_bytes)
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [
            {
                "mediaType": MEDIA_MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest_bytes),
                "platform": {"architecture": arch, "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": tag,
                },
            }
        ],
    }
    (out / "index.json").write_bytes(_canonical_json(index))
    (out / "oci-layout").write_bytes(_canonical_json({"imageLayoutVersion": "1.0.0"}))
    return manifest_digest


def bundle_config() -> dict[str, Any]:
    spec = default_spec()
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["sh"]
    spec["root"] = {"path": "rootfs", "readonly": True}
    return spec


def _stamp(busybox: Path, busybox_bytes: bytes) -> dict[str, str]:
    return {
        "busybox": str(busybox),
        "busybox_sha256": hashlib.sha256(busybox_bytes).hexdigest(),
        "builder_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "spec_sha256": hashlib.sha256((REPO / "runtime" / "spec_default.py").read_bytes()).hexdigest(),
    }


def _up_to_date(out: Path, stamp: dict[str, str]) -> str | None:
    """The recorded manifest digest if the outputs match `stamp`, else None."""
    try:
        recorded = json.loads((out / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict) or recorded.get("inputs") != stamp:
        return None
    if not (out / BUNDLE_DIR / "rootfs" / "bin" / "busybox").is_file():
        return None
    if not (out / OCI_DIR / "index.json").is_file():
        return None
    digest = recorded.get("manifest_digest")
    return digest if isinstance(digest, str) else None


def _replace_dir(new: Path, dest: Path) -> None:
    """Swap `new` into `dest`, removing whatever was there only after the swap."""
    old = dest.with_name(f".old-{dest.name}-{os.getpid()}")
    if dest.exists():
        dest.rename(old)
    new.rename(dest)
    if old.exists():
        shutil.rmtree(old)


def build(out: Path, busybox_path: str | None = None, force: bool = False) -> BuildResult:
    busybox = find_busybox(busybox_path)
    try:
        busybox_bytes = busybox.read_bytes()
    except OSError as exc:
        raise ImageBuildError(f"cannot read {busybox}: {exc.strerror}") from exc
    stamp = _stamp(busybox, busybox_bytes)
    if not force:
        recorded = _up_to_date(out, stamp)
        if recorded is not None:
            return BuildResult(out, recorded, rebuilt=False)

    arch = elf_architecture(busybox_bytes, str(busybox))
    entries = rootfs_entries(busybox_bytes, applet_paths(busybox))
    out.mkdir(parents=True, exist_ok=True)
    work = out / f".build-{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    try:
        bundle = work / BUNDLE_DIR
        bundle.mkdir()
        write_rootfs(bundle / "rootfs", entries)
        (bundle / "config.json").write_text(json.dumps(bundle_config(), indent=2) + "\n")
        digest = write_oci_layout(work / OCI_DIR, layer_tar(entries), arch)
        # Drop the stamp first: a crash mid-swap then forces a rebuild next time.
        (out / STAMP_FILE).unlink(missing_ok=True)
        _replace_dir(bundle, out / BUNDLE_DIR)
        _replace_dir(work / OCI_DIR, out / OCI_DIR)
        (out / STAMP_FILE).write_text(
            json.dumps({"inputs": stamp, "manifest_digest": digest}, indent=2) + "\n"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BuildResult(out, digest, rebuilt=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the default busybox image (bundle + OCI layout).")
    parser.add_argument(
        "--out", type=Path, default=REPO / "images", help="output directory (default: <repo>/images)"
    )
    parser.add_argument("--busybox", help="static busybox binary to use (default: /bin/busybox)")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    try:
        result = build(args.out.resolve(), args.busybox, args.force)
    except (ImageBuildError, OSError) as exc:
        print(f"build_default_image: error: {exc}", file=sys.stderr)
        return 1
    state = "built" if result.rebuilt else "up to date"
    print(f"default image {state}: {result.out / OCI_DIR} ({IMAGE_NAME}, {result.manifest_digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
