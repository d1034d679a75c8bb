"""The shim writing a CRI log itself (`k8s-file://` stdio, what pycontainerd's CRI plugin asks for):
every line once whoever reads or not, the record format containerd's CRI plugin writes, the tee
FIFO lossy (never spooled, never holding the container up), rotation followed without a call."""

from __future__ import annotations

import calendar
import re
import time
from pathlib import Path
from urllib.parse import quote

from containerd.shim_client import ShimClient
from shim import crilog
from tests.shim.conftest import Lab, ShimTask, pid_alive, wait_for
from tests.shim.test_shim_lifecycle import finish

RECORD = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{0,8}[1-9])?Z) (stdout|stderr) ([FP]) (.*)$")


def uri(log: Path, tee: Path | None = None, max_line: int = 0) -> str:
    query = [f"max_line={max_line}"] if max_line else []
    if tee is not None:
        query.append(f"tee={quote(str(tee), safe='')}")
    return f"k8s-file://{quote(str(log))}" + ("?" + "&".join(query) if query else "")


def create(task: ShimTask, client: ShimClient, stdout: str, stderr: str = "") -> int:
    return int(client.create(id=task.id, bundle=str(task.bundle), stdout=stdout, stderr=stderr).pid)


def records(path: Path) -> list[tuple[bytes, bytes, bytes]]:
    out = []
    for line in path.read_bytes().split(b"\n")[:-1]:
        m = RECORD.match(line)
        assert m, line
        out.append((m.group(2), m.group(3), m.group(4)))
    return out


def test_every_line_logged_while_nobody_reads_the_tee(lab: Lab, tmp_path: Path) -> None:
    """200000 lines with no reader on the tee FIFO: all logged as full records, in order; the
    container is not held up, and nothing is spooled (the tee is a live copy only)."""
    log = tmp_path / "logs dir" / "0.log"  # a space: the path travels percent-encoded
    log.parent.mkdir()
    task = lab.task(["sh", "-c", "seq 1 200000; echo oops >&2"])
    tee = task.fifo("stdout")
    client = task.client()
    pid = create(task, client, uri(log, tee), uri(log))
    client.start(id=task.id)
    wait_for(lambda: not pid_alive(pid), timeout=30, what="the writer to finish")
    client.wait(id=task.id)
    got = records(log)
    out = [r for r in got if r[0] == b"stdout"]
    assert [(s, t) for s, t, _ in out] == [(b"stdout", b"F")] * 200000
    assert [int(text) for _, _, text in out] == list(range(1, 200001))
    assert [r for r in got if r[0] == b"stderr"] == [(b"stderr", b"F", b"oops")]
    assert not (task.state_dir / "io" / "init.stdout").exists(), "a k8s-file target never spools"
    finish(task, client)


def test_record_format_and_rotation(lab: Lab, tmp_path: Path) -> None:
    """Over-long lines in max_line pieces (P, then F), "\\r\\n" ending a line, a last line without
    newline a piece (P); a renamed log is followed by a new file at the path, nothing lost."""
    log = tmp_path / "0.log"
    script = (
        "printf 'aaaaaaaaaabbbbb\\n'; printf 'dos\\r\\n'; printf 'x\\n'; "
        "until [ -e /stop ]; do sleep 0.05; done; printf 'after\\n'; printf 'tail'"
    )
    task = lab.task(["sh", "-c", script])
    tee = task.fifo("stdout")
    reader = lab.reader(tee)
    client = task.client()
    create(task, client, uri(log, tee, max_line=10))
    client.start(id=task.id)
    wait_for(lambda: log.exists() and b" x\n" in log.read_bytes(), what="the first records")
    assert records(log) == [
        (b"stdout", b"P", b"aaaaaaaaaa"),
        (b"stdout", b"F", b"bbbbb"),
        (b"stdout", b"F", b"dos"),
        (b"stdout", b"F", b"x"),
    ]
    # the tee got the raw bytes, as attach shows them
    assert reader.read_available() == b"aaaaaaaaaabbbbb\ndos\r\nx\n"
    rotated = log.with_suffix(".1")
    log.rename(rotated)
    (task.bundle / "rootfs" / "stop").touch()
    client.wait(id=task.id)
    assert [r[2] for r in records(rotated)] == [b"aaaaaaaaaa", b"bbbbb", b"dos", b"x"]
    assert records(log) == [(b"stdout", b"F", b"after"), (b"stdout", b"P", b"tail")]
    finish(task, client)


def test_parse_refuses_what_it_does_not_know() -> None:
    assert crilog.parse("k8s-file:///a%20b/0.log?max_line=5&tee=%2Frun%2Fx") == ("/a b/0.log", 5, "/run/x")
    assert crilog.parse("k8s-file:///l") == ("/l", crilog.DEFAULT_MAX_LINE, "")
    for bad in ("k8s-file://relative", "k8s-file:///l?max_line=x", "k8s-file:///l?colour=red"):
        try:
            crilog.parse(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")


def test_timestamps_are_go_rfc3339nano_in_utc() -> None:
    clock = crilog.Clock()
    before = time.time_ns()
    stamp = clock.now().decode()
    after = time.time_ns()
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{0,8}[1-9]))?Z", stamp)
    assert m, stamp
    frac = int((m.group(2) or "").ljust(9, "0"))
    ns = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) * 1_000_000_000 + frac
    assert before <= ns <= after, (before, ns, after)
