"""The Markdown every part of the report is written in: sections, tables, verdicts."""

from __future__ import annotations

from typing import Any


def section(heading: str, *body: str) -> list[str]:
    """The lines of one report section: a blank line, `## heading`, a blank line, `body`."""
    return ["", f"## {heading}", "", *body]


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table of `rows` under `header`."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(met: bool) -> str:
    """How a row of the targets table ends: met, or missed in bold."""
    return "met" if met else "**missed**"
