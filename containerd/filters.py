"""containerd's filter syntax, as used by `ctr ... ls` and every List request.

A filter string is a comma-separated list of selectors, all of which must match
(AND); a request carries a list of filter strings, any of which may match (OR).

    selector  := fieldpath [operator value]
    fieldpath := field ("." field)*
    field     := quoted | [A-Za-z0-9_-]+
    operator  := "==" | "!=" | "~=" | "@="
    value     := quoted | a run of anything but spaces and commas
    quoted    := "..." | /.../ | |...|   (Go escapes; / and | suit regular expressions)

A bare fieldpath tests presence (`labels.foo`); `!=` also matches an absent field
(containerd compares against the empty string); `~=` searches with a regular
expression; `@=` tests for a substring. Records are reached through an adaptor:
a function from a field path to the field's value, or None when the field is absent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from containerd.errors import InvalidArgument

Adaptor = Callable[[Sequence[str]], str | None]

_OPERATORS = ("==", "!=", "~=", "@=")
_QUOTES = '"/|'
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


@dataclass(frozen=True)
class Selector:
    fieldpath: tuple[str, ...]
    operator: str  # "" for a presence test
    value: str = ""
    regex: re.Pattern[str] | None = None

    def match(self, adaptor: Adaptor) -> bool:
        found = adaptor(self.fieldpath)
        if self.operator == "":
            return found is not None
        if self.operator == "==":
            return found is not None and found == self.value
        value = "" if found is None else found
        if self.operator == "!=":
            return value != self.value
        if self.operator == "@=":
            return self.value in value
        assert self.regex is not None
        return self.regex.search(value) is not None


@dataclass(frozen=True)
class Conjunction:
    """One filter string: every selector must match."""

    selectors: tuple[Selector, ...]

    def match(self, adaptor: Adaptor) -> bool:
        return all(s.match(adaptor) for s in self.selectors)


@dataclass(frozen=True)
class Filter:
    """A list of filter strings: any may match; an empty list matches everything."""

    alternatives: tuple[Conjunction, ...]

    def match(self, adaptor: Adaptor) -> bool:
        if not self.alternatives:
            return True
        return any(c.match(adaptor) for c in self.alternatives)


ALWAYS = Filter(())


def parse_all(filters: Iterable[str]) -> Filter:
    """Parse a request's filter strings (InvalidArgument on a syntax error)."""
    return Filter(tuple(parse(s) for s in filters))


def parse(text: str) -> Conjunction:
    """Parse one filter string; the empty string matches everything."""
    if text == "":
        return Conjunction(())
    return _Parser(text).selectors()


def match(filters: Iterable[str], adaptor: Adaptor) -> bool:
    """Parse and match in one go (for one-off checks; parse once when matching many records)."""
    return parse_all(filters).match(adaptor)


def map_field(mapping: Mapping[str, str], rest: Sequence[str]) -> str | None:
    """Look up `labels.a.b` style paths: the remaining components joined by dots form the key."""
    if not rest:
        return None
    return mapping.get(".".join(rest))


# --- scanner -----------------------------------------------------------------

_FIELD, _VALUE, _QUOTED, _SEP, _OP, _EOF = "field", "value", "quoted", "sep", "op", "eof"


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _is_field_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch in "_-")


def _is_value_char(ch: str) -> bool:
    return ch != "," and not ch.isspace() and ch.isprintable()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.after_operator = False
        self.peeked: _Token | None = None

    def error(self, pos: int, message: str) -> InvalidArgument:
        return InvalidArgument(f"invalid filter {self.text!r}: {message} at position {pos}")

    # Tokens are context dependent (after an operator, a run of characters is a value),
    # so the scanner keeps the one-token lookahead itself.
    def peek(self) -> _Token:
        if self.peeked is None:
            self.peeked = self._scan()
        return self.peeked

    def next(self) -> _Token:
        tok = self.peek()
        self.peeked = None
        return tok

    def _scan(self) -> _Token:
        text = self.text
        while self.pos < len(text) and text[self.pos].isspace():
            self.pos += 1
        start = self.pos
        if start >= len(text):
            return _Token(_EOF, "", start)
        ch = text[start]
        if ch == "\x00":
            raise self.error(start, "unexpected NUL")
        if ch in _QUOTES:
            self.after_operator = False
            return _Token(_QUOTED, self._scan_quoted(ch), start)
        # After an operator only "," separates: containerd would reject `~=.*` for its
        # leading dot, which can only ever be meant as a value.
        if ch == "," or (ch == "." and not self.after_operator):
            self.pos += 1
            self.after_operator = False
            return _Token(_SEP, ch, start)
        if ch in "=!~@":
            end = start
            while end < len(text) and text[end] in "=!~@":
                end += 1
            self.pos = end
            self.after_operator = True
            return _Token(_OP, text[start:end], start)
        if self.after_operator:
            end = start
            while end < len(text) and _is_value_char(text[end]):
                end += 1
            if end == start:
                raise self.error(start, f"unexpected character {ch!r}")
            self.pos = end
            self.after_operator = False
            return _Token(_VALUE, text[start:end], start)
        if _is_field_char(ch):
            end = start
            while end < len(text) and _is_field_char(text[end]):
                end += 1
            self.pos = end
            return _Token(_FIELD, text[start:end], start)
        raise self.error(start, f"unexpected character {ch!r}")

    def _scan_quoted(self, quote: str) -> str:
        """Consume a quoted string starting at self.pos and return its unescaped content."""
        text = self.text
        start = self.pos
        i = start + 1
        out: list[str] = []
        while True:
            if i >= len(text) or text[i] == "\n":
                raise self.error(start, "quoted string not terminated")
            ch = text[i]
            if ch == quote:
                self.pos = i + 1
                return "".join(out)
            if ch != "\\":
                out.append(ch)
                i += 1
                continue
            if i + 1 >= len(text):
                raise self.error(i, "quoted string not terminated")
            esc = text[i + 1]
            if esc in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[esc])
                i += 2
            elif esc == quote:
                out.append(quote)
                i += 2
            elif esc in "xuU":
                width = {"x": 2, "u": 4, "U": 8}[esc]
                digits = text[i + 2 : i + 2 + width]
                if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise self.error(i, "illegal escape sequence")
                code = int(digits, 16)
                if code > 0x10FFFF:
                    raise self.error(i, "illegal escape sequence")
                out.append(chr(code))
                i += 2 + width
            elif esc in "01234567":
                digits = text[i + 1 : i + 4]
                if len(digits) != 3 or not all(c in "01234567" for c in digits) or int(digits, 8) > 255:
                    raise self.error(i, "illegal octal escape sequence")
                out.append(chr(int(digits, 8)))
                i += 4
            else:
                raise self.error(i, f"illegal escape sequence \\{esc}")

    # --- grammar --------------------------------------------------------------

    def selectors(self) -> Conjunction:
        found = [self.selector()]
        while True:
            tok = self.next()
            if tok.kind == _EOF:
                return Conjunction(tuple(found))
            if tok.kind == _SEP and tok.text == ",":
                found.append(self.selector())
                continue
            raise self.error(tok.pos, f"unexpected {tok.text!r}")

    def selector(self) -> Selector:
        path = self.fieldpath()
        tok = self.peek()
        if tok.kind == _EOF or (tok.kind == _SEP and tok.text == ","):
            return Selector(path, "")
        op = self.next()
        if op.kind != _OP:
            raise self.error(op.pos, 'expected an operator ("==", "!=", "~=" or "@=")')
        if op.text not in _OPERATORS:
            raise self.error(op.pos, f"unsupported operator {op.text!r}")
        value = self.next()
        if value.kind not in (_VALUE, _QUOTED, _FIELD):
            raise self.error(value.pos, "expected a value or a quoted string")
        regex = None
        if op.text == "~=":
            try:
                regex = re.compile(value.text)
            except re.error as e:
                raise self.error(value.pos, f"bad regular expression {value.text!r} ({e})") from None
        return Selector(path, op.text, value.text, regex)

    def fieldpath(self) -> tuple[str, ...]:
        parts = [self.field()]
        while True:
            tok = self.peek()
            if tok.kind == _SEP and tok.text == ".":
                self.next()
                parts.append(self.field())
                continue
            return tuple(parts)

    def field(self) -> str:
        tok = self.next()
        if tok.kind in (_FIELD, _QUOTED):
            return tok.text
        raise self.error(tok.pos, "expected a field name or a quoted string")
