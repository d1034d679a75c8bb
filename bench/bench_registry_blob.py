"""Blob throughput over loopback: push and pull one 200 MiB blob with httpx, pyregistry and
(with --reference) Debian's docker-registry side by side.

    .venv/bin/python bench/bench_registry_blob.py [--size-mib 200] [--runs 3] [--reference]

Each registry runs on a temp root and is stopped by pid at the end. Upload is a monolithic
POST ?digest= streamed in 1 MiB pieces (plus, for pyregistry, a chunked POST/PATCH/PUT in
16 MiB chunks, as docker's pusher does it); download is a streamed GET. The best of --runs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
PIECE = 1 << 20


def _start_pyregistry(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    log = tmp / "pyregistry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(REPO / ".venv" / "bin" / "pyregistry"),
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--root",
                str(tmp / "root"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, _wait(proc, log, r"listening on (http://[\d.:]+)")


def _start_reference(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp / "config.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {tmp / 'ref-root'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = tmp / "ref.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _wait(proc, log, r"listening on")
    return proc, f"http://127.0.0.1:{port}"


def _wait(proc: subprocess.Popen[bytes], log: Path, pattern: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(pattern, log.read_text(errors="replace"))
        if m:
            return m.group(1) if m.groups() else ""
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit(f"registry did not start:\n{log.read_text(errors='replace')}")


def _pieces(data: bytes, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    view = memoryview(data)
    end = len(data) if end is None else end
    for i in range(start, end, PIECE):
        yield bytes(view[i : min(i + PIECE, end)])


def _mbps(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def bench(url: str, data: bytes, digest: str, runs: int, chunked: bool, repo: str) -> dict[str, float]:
    best: dict[str, float] = {}
    with httpx.Client(base_url=url, timeout=300) as c:
        for run in range(runs):
            name = f"{repo}{run}"
            t = time.perf_counter()
            r = c.post(
                f"/v2/{name}/blobs/uploads/",
                params={"digest": digest},
                content=_pieces(data),
                headers={"Content-Length": str(len(data)), "Content-Type": "application/octet-stream"},
            )
            if r.status_code == 202:  # distribution 2.8 ignores a monolithic POST's body: PUT it instead
                loc = r.headers["location"]
                r = c.put(
                    loc + ("&" if "?" in loc else "?") + f"digest={digest}",
                    content=_pieces(data),
                    headers={"Content-Length": str(len(data)), "Content-Type": "application/octet-stream"},
                )
            up = time.perf_counter() - t
            assert r.status_code == 201, r.text
            best["upload"] = max(best.get("upload", 0), _mbps(len(data), up))
            if chunked:
                t = time.perf_counter()
                loc = c.post(f"/v2/{name}c/blobs/uploads/").headers["location"]
                step = 16 << 20
                for off in range(0, len(data), step):
                    end = min(off + step, len(data))
                    r = c.patch(
                        loc,
                        content=_pieces(data, off, end),
                        headers={"Content-Range": f"{off}-{end - 1}", "Content-Length": str(end - off)},
                    )
                    assert r.status_code == 202, r.text
                    loc = r.headers["location"]
                r = c.put(loc + ("&" if "?" in loc else "?") + f"digest={digest}")
                assert r.status_code == 201, r.text
                best["chunked upload"] = max(
                    best.get("chunked upload", 0), _mbps(len(data), time.perf_counter() - t)
                )
            t = time.perf_counter()
            h = hashlib.sha256()
            with c.stream("GET", f"/v2/{name}/blobs/{digest}") as r:
                for chunk in r.iter_raw(PIECE):
                    h.update(chunk)
            down = time.perf_counter() - t
            assert "sha256:" + h.hexdigest() == digest
            best["download"] = max(best.get("download", 0), _mbps(len(data), down))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--reference", action="store_true", help="also measure Debian's docker-registry")
    args = ap.parse_args()
    data = os.urandom(args.size_mib << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    targets = [("pyregistry", _start_pyregistry)]
    if args.reference:
        if not shutil.which("docker-registry"):
            print("docker-registry is not installed (scripts/setup-test installs it)", file=sys.stderr)
            return 1
        targets.append(("docker-registry", _start_reference))
    print(
        f"blob of {args.size_mib} MiB, best of {args.runs}, client httpx (load average {os.getloadavg()[0]:.1f})"
    )
    for label, start in targets:
        with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
            proc, url = start(Path(tmp))
            try:
                result = bench(url, data, digest, args.runs, label == "pyregistry", "bench/r")
            finally:
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
        print(f"  {label:16} " + "  ".join(f"{k} {v:6.0f} MB/s" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
