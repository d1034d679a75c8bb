"""A subset of Go's text/template, enough for Docker's `--format` idioms.

Supported: field chains (`.State.Status`, `$.Name`, `$v.Key`), method-like fields with
arguments (`.Label "k"`), pipelines (`{{.Config | json}}`), parenthesised pipelines,
variables (`$x := ...`), `if/else if/else`, `range` (with `$i, $v :=`) and `with`, trim
markers (`{{-`, `-}}`), string/number/bool literals, and Docker's functions (json, join,
split, lower, upper, title, pad, truncate, println) plus Go's (index, len, print, printf,
eq, ne, lt, le, gt, ge, and, or, not, slice).

Data is plain JSON (dicts, lists, scalars) or a Mapping whose values may be callables
(computed columns such as ps's `.RunningFor`). Values print the way Go's `%v` prints the
same data decoded into interfaces: nil is `<nil>`, a missing map key `<no value>`, lists
`[a b]`, maps `map[k:v]`.
"""

from __future__ import annotations

import json
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any


class TemplateError(Exception):
    """A template that does not parse or cannot be executed on the data."""


class _Missing:
    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()


# ---- printing like Go's %v ---------------------------------------------------------------
def _go_float(value: float) -> str:
    """Go's %v of a float64: shortest digits, e-notation when the exponent is < -4 or
    >= max(6, digits) (strconv 'g' with precision -1)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    from decimal import Decimal  # floats are rare in API data; keep the import off the hot path

    sign = "-" if value < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    nd = len(digits)
    point = nd + int(exponent)  # decimal point position after the first `point` digits
    eprec = nd if 6 > nd >= point else 6
    dexp = point - 1
    if dexp < -4 or dexp >= eprec:
        mant = digits[0] + ("." + digits[1:] if nd > 1 else "")
        return f"{sign}{mant}e{'+' if dexp >= 0 else '-'}{abs(dexp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= nd:
        return f"{sign}{digits}{'0' * (point - nd)}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def go_str(value: Any) -> str:
    """Format a value as Go's fmt %v would print the same JSON-decoded data."""
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(_value(value, k))}" for k in sorted(value)) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    if callable(value):
        return go_str(value())
    return str(value)


def _value(mapping: Mapping[str, Any], key: str) -> Any:
    item = mapping[key]
    return item() if callable(item) else item


def to_json(value: Any) -> str:
    if value is MISSING:
        value = None
    return json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        # A formatting row (fields computed on demand) marshals as Go's formatter contexts
        # do, through a map: keys sorted. Daemon JSON keeps its order (Go structs).
        keys = sorted(value) if any(callable(v) for v in value.values()) else list(value)
        for k in keys:
            try:
                out[k] = _plain(_value(value, k))
            except TypeError:
                continue  # a method-like field that needs arguments (ps's .Label)
        return out
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if callable(value):
        return _plain(value())
    return value


def truthy(value: Any) -> bool:
    if value is MISSING or value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str | list | tuple | dict):
        return len(value) > 0
    return True


# ---- lexing ------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)')
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<pipe>\|)
  | (?P<comma>,)
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
  | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
""",
    re.VERBOSE,
)


class _Tok:
    __slots__ = ("kind", "text", "spaced")

    def __init__(self, kind: str, text: str, spaced: bool) -> None:
        self.kind = kind
        self.text = text
        self.spaced = spaced  # whitespace came before it: `(x).F` is a field of x, `(x) .F` an argument


def _lex_action(src: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    spaced = False
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if m is None:
            raise TemplateError(f"unexpected {src[pos]!r} in command")
        kind = m.lastgroup or ""
        if kind != "ws":
            toks.append(_Tok(kind, m.group(), spaced))
        spaced = kind == "ws"
        pos = m.end()
    return toks


# ---- AST -----------------------------------------------------------------------------------
class _Node:
    __slots__ = ()


class _Text(_Node):
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _Cmd:
    """Operands: ("field", [names]), ("var", name, [names]), ("lit", v), ("fn", name),
    ("pipe", _Pipe, [names])."""

    __slots__ = ("args",)

    def __init__(self, args: list[Any]) -> None:
        self.args = args


class _Pipe:
    __slots__ = ("decl", "cmds", "assign")

    def __init__(self, decl: list[str], cmds: list[_Cmd], assign: bool = False) -> None:
        self.decl = decl
        self.cmds = cmds
        self.assign = assign


class _Action(_Node):
    __slots__ = ("pipe",)

    def __init__(self, pipe: _Pipe) -> None:
        self.pipe = pipe


class _Branch(_Node):
    __slots__ = ("kind", "pipe", "body", "other")

    def __init__(self, kind: str, pipe: _Pipe) -> None:
        self.kind = kind  # if, range, with
        self.pipe = pipe
        self.body: list[_Node] = []
        self.other: list[_Node] = []


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)


class Template:
    """A parsed template; execute(data) returns the text."""

    def __init__(self, source: str, funcs: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self.source = source
        self.funcs: dict[str, Callable[..., Any]] = dict(_FUNCS)
        if funcs:
            self.funcs.update(funcs)
        self.nodes = self._parse(source)

    # parsing
    def _parse(self, source: str) -> list[_Node]:
        items: list[tuple[str, str]] = []  # ("text", s) | ("action", s)
        pos = 0
        for m in _ACTION.finditer(source):
            text = source[pos : m.start()]
            if m.group(1):
                text = text.rstrip()
            items.append(("text", text))
            items.append(("action", m.group(2).strip()))
            pos = m.end()
            if m.group(3):
                rest = source[pos:]
                pos += len(rest) - len(rest.lstrip())
        items.append(("text", source[pos:]))
        if "{{" in "".join(t for k, t in items if k == "text"):
            raise TemplateError("unclosed action")
        nodes, end = self._block(items, 0, ())
        if end != len(items):
            raise TemplateError(f"unexpected {{{{{items[end][1]}}}}}")
        return nodes

    def _block(self, items: list[tuple[str, str]], i: int, stops: tuple[str, ...]) -> tuple[list[_Node], int]:
        nodes: list[_Node] = []
        while i < len(items):
            kind, text = items[i]
            if kind == "text":
                if text:
                    nodes.append(_Text(text))
                i += 1
                continue
            word = text.split(None, 1)[0] if text else ""
            if word.startswith("/*") or text.startswith("/*"):
                i += 1
                continue
            if word in stops:
                return nodes, i
            if word in ("if", "range", "with"):
                node, i = self._branch(items, i, word, text[len(word) :].strip())
                nodes.append(node)
                continue
            if word in ("end", "else"):
                raise TemplateError(f"unexpected {{{{{word}}}}}")
            if word in ("define", "template", "block"):
                raise TemplateError(f"{word} is not supported")
            nodes.append(_Action(self._pipeline(_lex_action(text))))
            i += 1
        if stops:
            raise TemplateError("unexpected EOF")
        return nodes, i

    def _branch(self, items: list[tuple[str, str]], i: int, kind: str, rest: str) -> tuple[_Branch, int]:
        node = _Branch(kind, self._pipeline(_lex_action(rest)))
        node.body, i = self._block(items, i + 1, ("else", "end"))
        text = items[i][1]
        if text.split(None, 1)[0] == "else":
            after = text[4:].strip()
            if after.startswith("if ") and kind == "if":
                # `else if X` is an if nested in the else branch, sharing our {{end}}
                inner, i = self._branch(items, i, "if", after[3:].strip())
                node.other = [inner]
                return node, i
            node.other, i = self._block(items, i + 1, ("end",))
        return node, i + 1

    def _pipeline(self, toks: list[_Tok]) -> _Pipe:
        decl: list[str] = []
        assign = False
        for j, tok in enumerate(toks):
            if tok.kind in ("declare", "assign"):
                names = [t.text for t in toks[:j] if t.kind != "comma"]
                if names and all(n.startswith("$") for n in names):
                    decl = names
                    assign = tok.kind == "assign"
                    toks = toks[j + 1 :]
                break
        pipe = _Pipe(decl, [], assign)
        pos = 0
        while pos <= len(toks):
            cmd, pos = self._command(toks, pos)
            pipe.cmds.append(cmd)
            if pos < len(toks) and toks[pos].kind == "pipe":
                pos += 1
                continue
            if pos < len(toks):
                raise TemplateError(f"unexpected {toks[pos].text!r} in command")
            break
        if not pipe.cmds or not pipe.cmds[0].args:
            raise TemplateError("missing value for command")
        return pipe

    def _command(self, toks: list[_Tok], pos: int) -> tuple[_Cmd, int]:
        args: list[Any] = []
        while pos < len(toks) and toks[pos].kind not in ("pipe", "rparen"):
            tok = toks[pos]
            if tok.kind == "lparen":
                depth, end = 1, pos + 1
                while end < len(toks) and depth:
                    depth += {"lparen": 1, "rparen": -1}.get(toks[end].kind, 0)
                    end += 1
                if depth:
                    raise TemplateError("unclosed left paren")
                inner = self._pipeline(toks[pos + 1 : end - 1])
                chain: list[str] = []
                if (
                    end < len(toks)
                    and toks[end].kind == "field"
                    and not toks[end].spaced
                    and toks[end].text != "."
                ):
                    chain = toks[end].text.split(".")[1:]
                    end += 1
                args.append(("pipe", inner, chain))
                pos = end
                continue
            args.append(self._operand(tok))
            pos += 1
        if pos < len(toks) and toks[pos].kind == "rparen":
            raise TemplateError("unexpected right paren")
        return _Cmd(args), pos

    def _operand(self, tok: _Tok) -> Any:
        if tok.kind == "field":
            return ("field", [] if tok.text == "." else tok.text.split(".")[1:])
        if tok.kind == "var":
            name, *chain = tok.text.split(".")
            return ("var", name, chain)
        if tok.kind == "str":
            try:
                return ("lit", json.loads(tok.text))
            except ValueError:
                return ("lit", tok.text[1:-1])
        if tok.kind == "raw":
            return ("lit", tok.text[1:-1])
        if tok.kind == "char":
            return ("lit", ord(tok.text[1:-1].encode().decode("unicode_escape")))
        if tok.kind == "number":
            text = tok.text
            if re.fullmatch(r"[-+]?(0[xX][0-9a-fA-F]+|\d+)", text):
                return ("lit", int(text, 0) if "x" in text.lower() else int(text))
            return ("lit", float(text))
        if tok.kind == "ident":
            if tok.text in ("true", "false"):
                return ("lit", tok.text == "true")
            if tok.text == "nil":
                return ("lit", None)
            if tok.text not in self.funcs:
                raise TemplateError(f'function "{tok.text}" not defined')
            return ("fn", tok.text)
        raise TemplateError(f"unexpected {tok.text!r} in operand")

    # execution
    def execute(self, data: Any) -> str:
        out: list[str] = []
        self._run(self.nodes, data, [{"$": data}], out)
        return "".join(out)

    def _run(self, nodes: list[_Node], dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                out.append(node.text)
            elif isinstance(node, _Action):
                value = self._pipe(node.pipe, dot, scopes)
                if not node.pipe.decl:
                    out.append(go_str(value))
            elif isinstance(node, _Branch):
                self._branch_exec(node, dot, scopes, out)

    def _branch_exec(self, node: _Branch, dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
        scope: dict[str, Any] = {}
        inner = [*scopes, scope]
        if node.kind == "range":
            pipe = _Pipe([], node.pipe.cmds)
            value = self._pipe(pipe, dot, inner)
            if isinstance(value, dict):
                pairs = [(k, _value(value, k)) for k in sorted(value)]
            elif isinstance(value, list | tuple):
                pairs = list(enumerate(value))
            elif isinstance(value, int) and not isinstance(value, bool):
                pairs = [(n, n) for n in range(value)]
            elif value is None or value is MISSING:
                pairs = []
            else:
                raise TemplateError(f"range can't iterate over {go_str(value)}")
            if not pairs:
                self._run(node.other, dot, inner, out)
                return
            for key, item in pairs:
                if len(node.pipe.decl) == 1:
                    scope[node.pipe.decl[0]] = item
                elif len(node.pipe.decl) >= 2:
                    scope[node.pipe.decl[0]] = key
                    scope[node.pipe.decl[1]] = item
                self._run(node.body, item, inner, out)
            return
        value = self._pipe(node.pipe, dot, inner)
        if truthy(value):
            self._run(node.body, value if node.kind == "with" else dot, inner, out)
        else:
            self._run(node.other, dot, inner, out)

    def _pipe(self, pipe: _Pipe, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        value: Any = MISSING
        for n, cmd in enumerate(pipe.cmds):
            value = self._cmd(cmd, dot, scopes, value if n else MISSING, n > 0)
        if pipe.decl:
            if pipe.assign:
                for scope in reversed(scopes):
                    if pipe.decl[0] in scope:
                        scope[pipe.decl[0]] = value
                        break
                else:
                    raise TemplateError(f"undefined variable: {pipe.decl[0]}")
            else:
                scopes[-1][pipe.decl[0]] = value
        return value

    def _cmd(self, cmd: _Cmd, dot: Any, scopes: list[dict[str, Any]], piped: Any, has_piped: bool) -> Any:
        head, rest = cmd.args[0], cmd.args[1:]
        extra = [self._arg(a, dot, scopes) for a in rest]
        if has_piped:
            extra.append(piped)
        if head[0] == "fn":
            fn = self.funcs[head[1]]
            try:
                return fn(*extra)
            except TemplateError:
                raise
            except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
                raise TemplateError(f"error calling {head[1]}: {exc}") from None
        if head[0] == "field":
            return self._field(dot, head[1], extra, "")
        if head[0] == "var":
            return self._field(self._lookup(head[1], scopes), head[2], extra, head[1])
        if head[0] == "pipe":
            value = self._pipe(head[1], dot, scopes)
            return self._field(value, head[2], extra, "") if head[2] else value
        if extra:
            raise TemplateError(f"can't give argument to non-function {go_str(head[1])}")
        return head[1]

    def _arg(self, arg: Any, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        if arg[0] == "fn":
            return self.funcs[arg[1]]()
        return self._cmd(_Cmd([arg]), dot, scopes, MISSING, False)

    @staticmethod
    def _lookup(name: str, scopes: list[dict[str, Any]]) -> Any:
        for scope in reversed(scopes):
            if name in scope:
                return scope[name]
        raise TemplateError(f"undefined variable: {name}")

    @staticmethod
    def _field(value: Any, chain: list[str], args: list[Any], origin: str) -> Any:
        for n, name in enumerate(chain):
            last = n == len(chain) - 1
            if value is MISSING or value is None:
                return MISSING if value is MISSING else None
            if isinstance(value, dict):
                if name not in value:
                    value = MISSING
                    continue
                item = value[name]
                if callable(item):
                    value = item(*args) if last else item()
                    if last:
                        return value
                    continue
                value = item
                continue
            raise TemplateError(f"can't evaluate field {name} in type {_type_name(value)}")
        if args:
            if callable(value):
                return value(*args)
            raise TemplateError(f"{origin or '.'} is not a method but has arguments")
        return value


def _type_name(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    return type(value).__name__


# ---- functions ---------------------------------------------------------------------------
def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if value is None or value is MISSING:
            return MISSING
        if isinstance(value, dict):
            value = _value(value, key) if key in value else MISSING
        else:
            value = value[int(key)]
    return value


def _len(value: Any) -> int:
    if value is None or value is MISSING:
        raise TemplateError("len of nil pointer")
    return len(value)


def _printf(fmt: str, *args: Any) -> str:
    # Go verbs map onto Python's % operator once %v/%q/%t are rewritten.
    out: list[str] = []
    arg_i = 0
    pos = 0
    for m in re.finditer(r"%([-+# 0]*\d*(?:\.\d+)?)([vsdqtfgxXeoc%])", fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, verb = m.group(1), m.group(2)
        if verb == "%":
            out.append("%")
            continue
        arg = args[arg_i] if arg_i < len(args) else MISSING
        arg_i += 1
        if verb in ("v", "s", "t"):
            out.append(("%" + flags + "s") % go_str(arg))
        elif verb == "q":
            out.append(("%" + flags + "s") % json.dumps(go_str(arg), ensure_ascii=False))
        else:
            out.append(("%" + flags + verb) % arg)
    out.append(fmt[pos:])
    return "".join(out)


def _cmp(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def compare(a: Any, *bs: Any) -> bool:
        return any(op(a, b) for b in bs) if op is _eq else all(op(a, b) for b in bs)

    return compare


def _eq(a: Any, b: Any) -> bool:
    return bool(a == b)


def _truncate(value: Any, length: int) -> str:
    text = go_str(value)
    return text[: int(length)] if len(text) > int(length) else text


def _pad(value: Any, left: int, right: int) -> str:
    return " " * int(left) + go_str(value) + " " * int(right)


def _and(*values: Any) -> Any:
    for v in values:
        if not truthy(v):
            return v
    return values[-1]


def _or(*values: Any) -> Any:
    for v in values:
        if truthy(v):
            return v
    return values[-1]


def _slice(value: Any, *idx: int) -> Any:
    if len(idx) == 0:
        return value
    if len(idx) == 1:
        return value[int(idx[0]) :]
    return value[int(idx[0]) : int(idx[1])]


_FUNCS: dict[str, Callable[..., Any]] = {
    "json": to_json,
    "join": lambda items, sep: sep.join(go_str(i) for i in (items or [])),
    "split": lambda text, sep: go_str(text).split(sep),
    "lower": lambda text: go_str(text).lower(),
    "upper": lambda text: go_str(text).upper(),
    "title": lambda text: go_str(text).title(),
    "pad": _pad,
    "truncate": _truncate,
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "print": lambda *a: "".join(go_str(x) for x in a),
    "printf": _printf,
    "index": _index,
    "len": _len,
    "eq": _cmp(_eq),
    "ne": _cmp(lambda a, b: a != b),
    "lt": _cmp(lambda a, b: a < b),
    "le": _cmp(lambda a, b: a <= b),
    "gt": _cmp(lambda a, b: a > b),
    "ge": _cmp(lambda a, b: a >= b),
    "and": _and,
    "or": _or,
    "not": lambda v: not truthy(v),
    "slice": _slice,
}


def render(source: str, data: Any) -> str:
    return Template(source).execute(data)
