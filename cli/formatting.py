"""Output helpers shared by the commands: Docker's unit and duration wording, tab-aligned
tables, and the `--format` modes (`table ...`, `json`, a Go-like template)."""

from __future__ import annotations

import json
import time

from common.humanize import human_duration as human_duration

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _scaled(size: float, base: float, units: tuple[str, ...], precision: int) -> str:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return f"{size:.{precision}g}{units[i]}"


def human_size(size: float, precision: int = 4) -> str:
    """Decimal units with `precision` significant digits: 1984000 -> "1.984MB"."""
    return _scaled(float(size), 1000.0, _DECIMAL_UNITS, precision)


def bytes_size(size: float) -> str:
    """Binary units: 1532000 -> "1.461MiB"."""
    return _scaled(float(size), 1024.0, _BINARY_UNITS, 4)


def since(timestamp: float) -> str:
    return human_duration(time.time() - timestamp) + " ago"


def go_time(timestamp: float) -> str:
    """Go's time.Time.String() for a unix time in local time: "2024-01-02 15:04:05 +0000 UTC"."""
    t = time.localtime(timestamp)
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", t)


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp with up to nanosecond digits."""
    from datetime import datetime

    if not text or text.startswith("0001-01-01"):
        return 0.0
    main, _, frac = text.partition(".")
    tz = ""
    if frac:
        digits = ""
        for n, ch in enumerate(frac):
            if not ch.isdigit():
                tz = frac[n:]
                break
            digits += ch
        frac = digits
    else:
        for marker in ("Z", "+", "-"):
            idx = main.rfind(marker)
            if idx > 10:
                main, tz = main[:idx], main[idx:]
                break
    if tz == "Z":
        tz = "+00:00"
    base = datetime.fromisoformat(main + tz).timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def tabulate(lines: Iterable[str], minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-separated cells like Go's text/tabwriter (cells ended by a tab are padded;
    the last cell of a line is not)."""
    rows = [line.split("\t") for line in lines]
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, minwidth), len(cell) + padding)
    out = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        out.append("".join(cells) + row[-1])
    return "".join(line + "\n" for line in out)


def normalize_format(fmt: str) -> str:
    """Docker's format preprocessing: literal \\t and \\n become tab and newline."""
    return fmt.strip(" ").replace("\\t", "\t").replace("\\n", "\n")


def render_rows(
    fmt: str,
    rows: Iterable[Mapping[str, Any]],
    headers: Mapping[str, str],
    json_row: Callable[[Mapping[str, Any]], Any] | None = None,
    minwidth: int = 10,
) -> str:
    """Render rows with `fmt`: "table TEMPLATE" (header + aligned), "json" (a JSON object
    per line), or a bare template (a line per row)."""
    from cli.template import Template, to_json

    if fmt == "json":
        return "".join(
            (json.dumps(json_row(r), ensure_ascii=False, separators=(",", ":")) if json_row else to_json(r))
            + "\n"
            for r in rows
        )
    table = fmt.startswith("table")
    body = normalize_format(fmt[len("table") :] if table else fmt)
    tmpl = Template(body)
    rendered = [tmpl.execute(r) for r in rows]
    if not table:
        return "".join(r + "\n" for r in rendered)
    header_data = {k: (lambda *_a, _h=v: _h) for k, v in headers.items()}
    header = tmpl.execute(_HeaderMap(header_data))
    lines: list[str] = []
    for text in [header, *rendered]:
        lines.extend(text.split("\n"))
    return tabulate(lines, minwidth=minwidth)


class _HeaderMap(dict):  # type: ignore[type-arg]
    """Header context: every known column answers with its title, unknown ones with the
    field name in capitals (so a custom table never fails on the header row)."""

    def __missing__(self, key: str) -> Any:
        return lambda *_a: key.upper()

    def __contains__(self, key: object) -> bool:
        return True


def print_json(value: Any) -> str:
    """Docker's inspect layout: 4-space indentation, non-ASCII kept."""
    return json.dumps(value, indent=4, ensure_ascii=False) + "\n"
