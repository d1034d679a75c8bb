"""A tiny protobuf wire codec driven by per-message field tables.

The shim must stay small (importing google.protobuf alone costs a Python process more
memory than the whole shim budget), so it encodes and decodes the few messages it speaks
itself; ttrpc's envelope is written with it on both sides of the shim's socket. A message
is a plain dict; a schema is a tuple of fields, each `(number, name, kind)` or
`(number, name, kind, sub_schema)`, with `repeated` kinds spelled as a list around the
kind: `(4, "options", [STRING])`.

Proto3 rules apply: default values (0, "", b"", False, empty lists) are not written;
nested messages are written whenever present (not None), even when empty; unknown
fields are skipped on decode; repeated numbers are written packed and read either way.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Field kinds. Varint kinds first: they are the ones that may come packed.
UINT = 0  # uint32, uint64, enum
INT = 1  # int32, int64: negatives are ten-byte two's complement
BOOL = 2
FIXED64 = 3
FIXED32 = 4
STRING = 5
BYTES = 6
MESSAGE = 7

_WIRE_VARINT, _WIRE_I64, _WIRE_LEN, _WIRE_I32 = 0, 1, 2, 5
_WIRE_OF = {UINT: 0, INT: 0, BOOL: 0, FIXED64: 1, FIXED32: 5, STRING: 2, BYTES: 2, MESSAGE: 2}
_MASK64 = (1 << 64) - 1


class WireError(ValueError):
    """Bytes that are not a valid encoding of the expected message."""


def varint(value: int) -> bytes:
    value &= _MASK64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def _scalar(kind: int, value: Any, sub: Any) -> bytes:
    if kind == STRING:
        raw: bytes = value.encode()
        return varint(len(raw)) + raw
    if kind == BYTES:
        return varint(len(value)) + bytes(value)
    if kind == MESSAGE:
        raw = encode(sub, value)
        return varint(len(raw)) + raw
    if kind == FIXED64:
        return int.to_bytes(value & _MASK64, 8, "little")
    if kind == FIXED32:
        return int.to_bytes(value & 0xFFFFFFFF, 4, "little")
    return varint(int(value))


def encode(schema: tuple[Any, ...], values: dict[str, Any]) -> bytes:
    out = []
    for field in schema:
        number, name, kind = field[0], field[1], field[2]
        sub = field[3] if len(field) > 3 else None
        value = values.get(name)
        if isinstance(kind, list):
            if not value:
                continue
            kind = kind[0]
            if kind <= FIXED32:  # packed
                body = b"".join(_scalar(kind, v, None) for v in value)
                out.append(varint(number << 3 | _WIRE_LEN) + varint(len(body)) + body)
            else:
                tag = varint(number << 3 | _WIRE_LEN)
                out.extend(tag + _scalar(kind, v, sub) for v in value)
            continue
        if value is None or (kind != MESSAGE and not value):
            continue
        out.append(varint(number << 3 | _WIRE_OF[kind]) + _scalar(kind, value, sub))
    return b"".join(out)


def _decode_scalar(kind: int, wire: int, data: bytes, pos: int, sub: Any) -> tuple[Any, int]:
    if wire == _WIRE_VARINT:
        value, pos = _read_varint(data, pos)
        if kind == INT and value >= 1 << 63:
            value -= 1 << 64
        elif kind == BOOL:
            value = bool(value)
        return value, pos
    if wire == _WIRE_I64:
        return int.from_bytes(data[pos : pos + 8], "little"), pos + 8
    if wire == _WIRE_I32:
        return int.from_bytes(data[pos : pos + 4], "little"), pos + 4
    size, pos = _read_varint(data, pos)
    end = pos + size
    if end > len(data):
        raise WireError("truncated field")
    raw = data[pos:end]
    if kind == STRING:
        try:
            return raw.decode(), end
        except UnicodeDecodeError:
            raise WireError("invalid UTF-8 in a string field") from None
    if kind == MESSAGE:
        return decode(sub, raw), end
    return raw, end


def _skip(wire: int, data: bytes, pos: int) -> int:
    if wire == _WIRE_VARINT:
        return _read_varint(data, pos)[1]
    if wire == _WIRE_I64:
        return pos + 8
    if wire == _WIRE_I32:
        return pos + 4
    if wire == _WIRE_LEN:
        size, pos = _read_varint(data, pos)
        return pos + size
    raise WireError(f"unsupported wire type {wire}")


def decode(schema: tuple[Any, ...], data: bytes) -> dict[str, Any]:
    fields = {f[0]: f for f in schema}
    result: dict[str, Any] = {}
    pos = 0
    data = bytes(data)
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        field = fields.get(number)
        if field is None:
            pos = _skip(wire, data, pos)
            continue
        name, kind = field[1], field[2]
        sub = field[3] if len(field) > 3 else None
        if isinstance(kind, list):
            kind = kind[0]
            items = result.setdefault(name, [])
            if wire == _WIRE_LEN and kind <= FIXED32:  # packed numbers
                size, pos = _read_varint(data, pos)
                end = pos + size
                while pos < end:
                    value, pos = _decode_scalar(kind, _WIRE_OF[kind], data, pos, None)
                    items.append(value)
            else:
                value, pos = _decode_scalar(kind, wire, data, pos, sub)
                items.append(value)
            continue
        if wire != _WIRE_OF[kind]:
            raise WireError(f"field {name} has wire type {wire}, expected {_WIRE_OF[kind]}")
        result[name], pos = _decode_scalar(kind, wire, data, pos, sub)
    if pos > len(data):
        raise WireError("truncated message")
    return result


# Well-known types every message file needs.
TIMESTAMP = ((1, "seconds", INT), (2, "nanos", INT))
ANY = ((1, "type_url", STRING), (2, "value", BYTES))
EMPTY: tuple[Any, ...] = ()


def timestamp(ns: int) -> dict[str, int]:
    return {"seconds": ns // 1_000_000_000, "nanos": ns % 1_000_000_000}
