"""Docker's word processing for Dockerfile arguments: quotes, the escape character and
`$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}`, `${VAR:?message}` (and the forms without the
colon, which test "set" rather than "set and not empty").

The rules are those of moby's `builder/dockerfile/shell` lexer (learned, not copied):
outside quotes the escape character makes the next character literal; inside single quotes
everything is literal; inside double quotes `$` expands and the escape character only
escapes `"`, `$` and itself (elsewhere it stays); an unset variable expands to nothing; a `$`
not followed by a name is a literal `$`. process_words also splits on unquoted whitespace,
including whitespace that came out of an expansion (EXPOSE $PORTS).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dockerd.builder.errors import BuildFailed

_SPECIAL = frozenset("@*#?-$!")


@dataclass
class _Words:
    """Words split on unquoted whitespace while a string is scanned."""

    words: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    in_word: bool = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            self._end()
        else:
            self.current.append(ch)
            self.in_word = True

    def add_raw(self, text: str) -> None:
        self.current.append(text)
        self.in_word = True

    def add_expanded(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def _end(self) -> None:
        if self.in_word:
            self.words.append("".join(self.current))
        self.current, self.in_word = [], False

    def result(self) -> list[str]:
        self._end()
        return self.words


class _Scanner:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    # --- the scan ---

    def until(self, stop: str, words: _Words | None = None) -> tuple[str, bool]:
        """Process up to STOP (consumed) or the end; (result, whether STOP was found)."""
        out: list[str] = []
        while True:
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(out), True
            if not ch:
                return "".join(out), False
            if ch == "'":
                text = self.single_quoted()
                out.append(text)
                if words is not None:
                    words.add_raw(text)
            elif ch == '"':
                text = self.double_quoted()
                out.append(text)
                if words is not None:
                    words.add_raw(text)
            elif ch == "$":
                text = self.dollar()
                out.append(text)
                if words is not None:
                    words.add_expanded(text)
            else:
                self.next()
                if ch == self.escape:
                    ch = self.next()
                    if not ch:
                        return "".join(out), False
                    if words is not None:
                        words.add_raw(ch)
                elif words is not None:
                    words.add_char(ch)
                out.append(ch)

    def single_quoted(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.next()
            if not ch:
                raise BuildFailed("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def double_quoted(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise BuildFailed("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == self.escape:
                following = self.peek()
                if not following:
                    continue  # an escape at the very end is dropped
                if following in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        ch = self.peek()
        if ch.isdigit():
            digits = []
            while self.peek().isdigit():
                digits.append(self.next())
            return "".join(digits)
        if ch and ch in _SPECIAL:
            return self.next()
        chars = []
        while (ch := self.peek()) and (ch.isalnum() or ch == "_"):
            chars.append(self.next())
        return "".join(chars)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            return self.env.get(name, "") if name else "$"
        self.next()
        name = self.name()
        if not name:
            raise BuildFailed(f"bad substitution: {self.text}")
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        colon = ch == ":"
        modifier = self.next() if colon else ch
        if modifier not in ("-", "+", "?"):
            if not colon:
                raise BuildFailed(f"missing ':' in substitution: {self.text}")
            raise BuildFailed(f"unsupported modifier ({modifier}) in substitution: {self.text}")
        word, found = self.until("}")
        if not found:
            raise BuildFailed(f"syntax error: missing '}}': {self.text}")
        value = self.env.get(name)
        present = bool(value) if colon else value is not None
        if modifier == "-":
            return value if present and value is not None else word
        if modifier == "+":
            return word if present else ""
        if not present:
            raise BuildFailed(f"{name}: {word or 'is not allowed to be unset'}")
        return value or ""


def process_word(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """TEXT with quotes removed and variables expanded (one word: whitespace is kept)."""
    return _Scanner(text, env, escape).until("")[0]


def process_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """TEXT processed as process_word does, split on unquoted whitespace."""
    words = _Words()
    _Scanner(text, env, escape).until("", words)
    return words.result()
