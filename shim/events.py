"""The shim's event queue: containerd task events kept until the daemon acknowledges them.

Each event is one file, events/<seq>, holding its encoded ShimEvent (written whole, renamed into
place), so an event published while no daemon listens -- a container exiting while pycontainerd
is down, or after the shim itself was killed -- is there for the next one. Not synced: the events
describe processes, which a power loss ends along with the shim (whose state directory is under
/run, a tmpfs on most hosts, anyway), and two syncs cost 2-13 ms on this disk at every
Create, Start, exit and Delete. The daemon pulls with
Fetch(after, wait) on the shim's socket (a long poll when `wait` is set) and drops what
it has handled with Ack(seq).
"""

from __future__ import annotations

import os
import time

from common.atomicfile import write_atomic
from shim import messages as m
from shim.loop import Loop, Timer
from ttrpc import RpcError
from ttrpc.wire import encode, timestamp, varint

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from shim.server import Call


class EventQueue:
    def __init__(self, loop: Loop, directory: str, namespace: str) -> None:
        self.loop = loop
        self.directory = directory
        self.namespace = namespace
        os.makedirs(directory, mode=0o700, exist_ok=True)
        # (seq, encoded ShimEvent); a shim restarted on the same state directory keeps numbering.
        self.queue: list[tuple[int, bytes]] = []
        for name in sorted(os.listdir(directory)):
            if name.isdigit():
                with open(os.path.join(directory, name), "rb") as f:
                    self.queue.append((int(name), f.read()))
        self.seq = self.queue[-1][0] if self.queue else 0
        self.waiters: list[tuple[Call, int, Timer | None]] = []

    def publish(self, topic: str, type_name: str, schema: tuple[Any, ...], values: dict[str, Any]) -> None:
        self.seq += 1
        raw = encode(
            m.SHIM_EVENT,
            {
                "seq": self.seq,
                "timestamp": timestamp(time.time_ns()),
                "namespace": self.namespace,
                "topic": topic,
                "event": {"type_url": f"containerd.events.{type_name}", "value": encode(schema, values)},
            },
        )
        write_atomic(os.path.join(self.directory, f"{self.seq:020d}"), raw, durable=False)
        self.queue.append((self.seq, raw))
        waiters, self.waiters = self.waiters, []
        for call, after, timer in waiters:
            if timer is not None:
                timer.cancel()
            if call.alive:
                call.reply(self._response(after))

    def _response(self, after: int) -> bytes:
        # FetchEventsResponse: field 1, repeated ShimEvent, written from the stored bytes.
        out = bytearray()
        for seq, raw in self.queue:
            if seq > after:
                out += b"\x0a" + varint(len(raw)) + raw
        return bytes(out)

    def fetch(self, req: dict[str, Any], call: Call) -> bytes | None:
        after = req.get("after", 0)
        if any(seq > after for seq, _ in self.queue) or not req.get("wait"):
            return self._response(after)
        timer = None
        if req.get("timeout_ms"):
            timer = self.loop.call_later(req["timeout_ms"] / 1000, lambda: self._expire(call))
        self.waiters = [w for w in self.waiters if w[0].alive]
        self.waiters.append((call, after, timer))
        return None

    def _expire(self, call: Call) -> None:
        self.waiters = [w for w in self.waiters if w[0] is not call]
        if call.alive:
            call.reply(b"")

    def ack(self, req: dict[str, Any], _call: Call) -> bytes:
        upto = req.get("seq", 0)
        if upto > self.seq:
            raise RpcError(3, f"cannot acknowledge event {upto}: the last one published is {self.seq}")
        keep = []
        for seq, raw in self.queue:
            if seq <= upto:
                try:
                    os.unlink(os.path.join(self.directory, f"{seq:020d}"))
                except FileNotFoundError:
                    pass
            else:
                keep.append((seq, raw))
        self.queue = keep
        return b""
