"""JSON through CPython's C accelerator, without importing the `json` package.

`json` imports `re` (and with it `enum` and `functools`), which costs more than a
container's whole namespace set-up. The C scanner and encoder in `_json` that `json`
itself uses need none of that; this module wires them up the same way and falls back to
`json` where `_json` is missing. Only compact output is produced here; pretty printing is
left to `json` on the paths where a person reads the result.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover - every CPython build has it; other interpreters may not
    _json = None  # type: ignore[assignment]

_WHITESPACE = " \t\n\r"


class _DecodeContext:
    """The attributes the C scanner reads from its context (a json.JSONDecoder normally)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


class JSONDecodeError(ValueError):
    pass


def _reject(value: Any) -> Any:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


if _json is not None:
    # typeshed describes these with json's own classes; the C side only reads the attributes.
    _scan = _json.make_scanner(_DecodeContext())  # type: ignore[arg-type]
    _encode = _json.make_encoder(
        None, _reject, _json.encode_basestring_ascii, None, ":", ",", False, False, True
    )


def loads(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if _json is None:
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except (StopIteration, ValueError, SystemError):
        # The scanner builds its error from json.decoder, and only if that is already loaded
        # (else SystemError). Errors are rare: let json itself produce the message.
        return _explain(text)
    if text[end:].strip(_WHITESPACE):
        return _explain(text)
    return value


def _explain(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError as exc:
        raise JSONDecodeError(str(exc)) from None


def dumps(value: Any) -> str:
    if _json is None:
        import json

        return json.dumps(value, separators=(",", ":"))
    return "".join(_encode(value, 0))
