#!/usr/bin/env python3
"""Build the CRI sandbox ("pause") image from Debian's static catatonit, offline.

A pod's infra container only holds the pod's namespaces and reaps orphans: catatonit (the init
Podman uses as its pause process, shipped static by Debian's `catatonit` package) in pause mode
(`-P`) does exactly that. Produces, under the output directory (default: <repo>/images):

  pause-oci/        an OCI image layout, ref "3.6-catatonit", named PAUSE_IMAGE
  pause.tar         the same layout as a tar archive (what `ctr images import` and
                    containerd's CRI reference set-up take)
  pause-image.stamp what the outputs were built from

Deterministic like build_default_image.py (whose helpers it uses): same catatonit, same bytes.
Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from build_default_image import (  # noqa: E402
    FIXED_EPOCH,
    Entry,
    ImageBuildError,
    _replace_dir,
    elf_architecture,
    layer_tar,
    write_oci_layout,
)

# The name pycontainerd's CRI plugin uses by default (its `sandbox_image`): a name of our own, so
# nobody mistakes it for the registry.k8s.io image or tries to pull it from there.
PAUSE_IMAGE = "docker.io/pydocker/pause:3.6-catatonit"
PAUSE_TAG = "3.6-catatonit"
CATATONIT_CANDIDATES = ("/usr/bin/catatonit", "/usr/libexec/podman/catatonit")
OCI_DIR = "pause-oci"
TAR_FILE = "pause.tar"
STAMP_FILE = "pause-image.stamp"


def find_catatonit() -> Path:
    for cand in CATATONIT_CANDIDATES:
        if os.access(cand, os.X_OK):
            return Path(cand)
    raise ImageBuildError("no catatonit binary found: install the catatonit package")


def rootfs_entries(binary: bytes) -> list[Entry]:
    # /dev, /proc, /sys, /etc exist as mount points and for the runtime's resolv.conf/hosts binds.
    dirs = ["dev", "etc", "proc", "sys"]
    entries = [Entry(d, "dir", 0o755) for d in dirs]
    entries.append(Entry("etc/passwd", "file", 0o644, b"root:x:0:0:root:/:/catatonit\n"))
    entries.append(Entry("etc/group", "file", 0o644, b"root:x:0:\n"))
    entries.append(Entry("catatonit", "file", 0o755, binary))
    return entries


def write_layout(out: Path, layer: bytes, arch: str) -> str:
    return write_oci_layout(
        out,
        layer,
        arch,
        image_config={"Entrypoint": ["/catatonit", "-P"], "User": "65535:65535", "WorkingDir": "/"},
        created_by="scripts/build_pause_image.py (catatonit -P)",
        name=PAUSE_IMAGE,
        tag=PAUSE_TAG,
    )


def tar_layout(layout: Path, dest: Path) -> None:
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(layout.rglob("*")):
            info = tar.gettarinfo(str(path), str(path.relative_to(layout)))
            info.mtime = FIXED_EPOCH
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if path.is_file():
                with open(path, "rb") as f:
                    tar.addfile(info, io.BytesIO(f.read()))
            else:
                tar.addfile(info)


def build(out: Path, force: bool = False) -> str:
    binary_path = find_catatonit()
    binary = binary_path.read_bytes()
    stamp = {
        "catatonit_sha256": hashlib.sha256(binary).hexdigest(),
        "builder_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
    }
    try:
        recorded = json.loads((out / STAMP_FILE).read_text())
    except (OSError, ValueError):
        recorded = None
    if (
        not force
        and isinstance(recorded, dict)
        and recorded.get("inputs") == stamp
        and (out / OCI_DIR / "index.json").is_file()
        and (out / TAR_FILE).is_file()
    ):
        return str(recorded.get("manifest_digest", ""))
    arch = elf_architecture(binary, str(binary_path))
    out.mkdir(parents=True, exist_ok=True)
    work = out / f".build-pause-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        digest = write_layout(work / OCI_DIR, layer_tar(rootfs_entries(binary)), arch)
        tar_layout(work / OCI_DIR, work / TAR_FILE)
        (out / STAMP_FILE).unlink(missing_ok=True)
        _replace_dir(work / OCI_DIR, out / OCI_DIR)
        os.replace(work / TAR_FILE, out / TAR_FILE)
        (out / STAMP_FILE).write_text(
            json.dumps({"inputs": stamp, "manifest_digest": digest}, indent=2) + "\n"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the CRI pause image from catatonit.")
    parser.add_argument(
        "--out", type=Path, default=REPO / "images", help="output directory (default: <repo>/images)"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    try:
        digest = build(args.out.resolve(), args.force)
    except (ImageBuildError, OSError) as exc:
        print(f"build_pause_image: error: {exc}", file=sys.stderr)
        return 1
    print(f"pause image ready: {args.out.resolve() / OCI_DIR} ({PAUSE_IMAGE}, {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
