"""Plain-text tables for terminal reports."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["format_table"]


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, gap: int = 2) -> str:
    """``header`` and ``rows`` in left-aligned columns, each as wide as its widest cell."""
    widths = [len(cell) for cell in header]
    for row in rows:
        for column, cell in enumerate(row):
            widths[column] = max(widths[column], len(cell))
    lines = []
    for row in (header, *rows):
        cells = [cell.ljust(width + gap) for cell, width in zip(row, widths, strict=True)]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)
