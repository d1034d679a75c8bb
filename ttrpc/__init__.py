"""ttrpc, containerd's light RPC protocol for shims: framing, status codes, the envelope.

The shim serves it and pycontainerd's shim client speaks it; both import this package, which
imports nothing (ttrpc.wire, the protobuf codec the envelope is written in, is plain Python too),
so the shim stays free of grpcio and protobuf.

Every message is a 10-byte header -- payload length (4 bytes, big-endian), stream id (4
bytes, big-endian), message type (1: request, 2: response, 3: stream data) and flags (1
byte) -- followed by a protobuf payload: a ttrpc Request (service, method, payload,
timeout, metadata) from the client, a ttrpc Response (google.rpc.Status, payload) back on
the same stream id. Clients number their streams with odd ids. Unary calls only: the
shim API has no streaming methods.
"""

from __future__ import annotations

from ttrpc.wire import ANY, BYTES, INT, MESSAGE, STRING

HEADER_SIZE = 10
MAX_MESSAGE = 4 << 20  # ttrpc's limit on a payload

TYPE_REQUEST = 1
TYPE_RESPONSE = 2
TYPE_DATA = 3

# google.rpc.Code values ttrpc uses for its status.
OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
ALREADY_EXISTS = 6
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14


# The envelope (github.com/containerd/ttrpc request.proto), as ttrpc.wire schemas.
KEY_VALUE = ((1, "key", STRING), (2, "value", STRING))
REQUEST = (
    (1, "service", STRING),
    (2, "method", STRING),
    (3, "payload", BYTES),
    (4, "timeout_nano", INT),
    (5, "metadata", [MESSAGE], KEY_VALUE),
)
STATUS = ((1, "code", INT), (2, "message", STRING), (3, "details", [MESSAGE], ANY))  # google.rpc.Status
RESPONSE = ((1, "status", MESSAGE, STATUS), (2, "payload", BYTES))


class ProtocolError(Exception):
    """The peer sent something that is not ttrpc; the connection is dropped."""


class RpcError(Exception):
    """A call that fails with a status code and a one-line message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def frame(stream_id: int, mtype: int, payload: bytes, flags: int = 0) -> bytes:
    if len(payload) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(payload)} bytes exceeds ttrpc's limit of {MAX_MESSAGE}")
    return len(payload).to_bytes(4, "big") + stream_id.to_bytes(4, "big") + bytes((mtype, flags)) + payload


class FrameReader:
    """Collects bytes from a stream socket and cuts them into (stream id, type, flags, payload)."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, int, bytes]]:
        self.buf += data
        frames = []
        while len(self.buf) >= HEADER_SIZE:
            size = int.from_bytes(self.buf[0:4], "big")
            if size > MAX_MESSAGE:
                raise ProtocolError(f"message of {size} bytes exceeds ttrpc's limit of {MAX_MESSAGE}")
            if len(self.buf) < HEADER_SIZE + size:
                break
            stream_id = int.from_bytes(self.buf[4:8], "big")
            mtype, flags = self.buf[8], self.buf[9]
            frames.append((stream_id, mtype, flags, bytes(self.buf[HEADER_SIZE : HEADER_SIZE + size])))
            del self.buf[: HEADER_SIZE + size]
        return frames
