"""Writes one benchmark's figures into docs/BENCHMARKS.md, leaving the other sections alone.

Each benchmark owns a `## ` section: its heading, an introduction written once, then from
its "Command:" line to the next heading the figures of the last run, replaced each time.
"""

from __future__ import annotations

from pathlib import Path


def update_section(doc: Path, section: str, intro: str, command: str, body: str) -> None:
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    try:
        head = lines.index(section)
    except ValueError:
        # A new section goes before "## Later layers" (what is not measured yet), else at the end.
        at = next((i for i, line in enumerate(lines) if line.startswith("## Later layers")), len(lines))
        lines[at:at] = [section, "", *intro.splitlines(), ""]
        head = at
    end = next((i for i in range(head + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    start = next((i for i in range(head + 1, end) if lines[i].startswith("Command:")), end)
    lines[start:end] = [f"Command: `{command}`", "", *body.splitlines(), ""]
    doc.write_text("\n".join(lines).rstrip("\n") + "\n")
