"""common/atomicfile.py: files replaced whole, by concurrent writers too, leaving no temporary file."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from common import atomicfile

REPO = Path(__file__).resolve().parents[2]


def test_replace_gives_exact_mode_and_leaves_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    old = os.umask(0o077)
    try:
        atomicfile.write_atomic(target, b"first", 0o644)
    finally:
        os.umask(old)
    assert target.read_bytes() == b"first"
    assert target.stat().st_mode & 0o777 == 0o644  # not what the umask would have left
    atomicfile.write_text(str(target), "second")
    assert target.read_text() == "second" and target.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    atomicfile.write_atomic(target, b"old")
    with pytest.raises(TypeError):
        atomicfile.write_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    with pytest.raises(RuntimeError), atomicfile.Replacing(target) as f:
        f.write(b"half of the new")
        raise RuntimeError("the stream broke")
    assert target.read_bytes() == b"old"
    with pytest.raises(IsADirectoryError):
        atomicfile.write_atomic(tmp_path, b"x")  # rename over a directory
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_a_stream_replaces_the_file_when_it_ends(tmp_path: Path) -> None:
    target = tmp_path / "export.tar"
    target.write_bytes(b"previous")
    with atomicfile.Replacing(target, 0o640) as f:
        for _ in range(4):
            f.write(b"x" * 100_000)
        assert target.read_bytes() == b"previous"  # nothing visible before the end
    assert target.stat().st_size == 400_000 and target.stat().st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["export.tar"]


def test_concurrent_writers_never_share_a_temporary_file(tmp_path: Path) -> None:
    # Threads of one process and other processes write the same target at once: every reading
    # is one writer's whole content (a shared temporary name would mix or lose them).
    target = tmp_path / "config.v2.json"
    payloads = [bytes([65 + i]) * (50_000 + i) for i in range(8)]
    atomicfile.write_atomic(target, payloads[0])
    seen: set[bytes] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.add(target.read_bytes())

    def write(data: bytes) -> None:
        for _ in range(40):
            atomicfile.write_atomic(target, data, durable=False)

    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); from common import atomicfile\n"
        "for _ in range(40): atomicfile.write_atomic(sys.argv[2], b'Z' * 70000, durable=False)\n"
    )
    reader = threading.Thread(target=read)
    reader.start()
    others = [subprocess.Popen([sys.executable, "-c", script, str(REPO), str(target)]) for _ in range(2)]
    writers = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    assert [p.wait(timeout=60) for p in others] == [0, 0]
    stop.set()
    reader.join()
    assert seen <= set(payloads) | {b"Z" * 70000}
    assert os.listdir(tmp_path) == ["config.v2.json"]


def test_temporary_files_are_hidden_from_listings(tmp_path: Path) -> None:
    # Listings (pyregistry's tags, pyrunc's containers) leave out names with TMP_PREFIX: a writer
    # killed mid-write leaves one, and it must not be taken for a record.
    script = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); from common import atomicfile\n"
        "with atomicfile.Replacing(os.path.join(sys.argv[2], 'tag')) as f:\n"
        "    f.write(b'sha256:'); f.flush(); os._exit(9)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(REPO), str(tmp_path)])
    assert done.returncode == 9
    (left,) = os.listdir(tmp_path)
    assert left.startswith(atomicfile.TMP_PREFIX) and "tag" in left
