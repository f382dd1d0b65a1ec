"""Reading scenario files: TOML text to a document, and the line a key was written on."""

from __future__ import annotations

import re
import sys
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]

__all__ = ["TOMLDecodeError", "line_of", "parse_toml"]

TOMLDecodeError = tomllib.TOMLDecodeError

_ARRAY_HEADER = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]")
_TABLE_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")
_DECODE_LINE = re.compile(r"line (\d+)")


def parse_toml(text: str) -> dict[str, Any]:
    """The document in ``text``; raises ``TOMLDecodeError`` (with a line) if it is not TOML."""
    return tomllib.loads(text)


def decode_error_line(error: Exception) -> int | None:
    """The line number a TOML parse error names, if it names one."""
    lineno = getattr(error, "lineno", None)
    if isinstance(lineno, int):
        return lineno
    match = _DECODE_LINE.search(str(error))
    return int(match.group(1)) if match else None


def _top_level_line(text: str, key: str) -> int | None:
    """The line of a key written before the first table header."""
    for number, line in enumerate(text.splitlines(), start=1):
        if _ARRAY_HEADER.match(line) or _TABLE_HEADER.match(line):
            return None
        match = _KEY.match(line)
        if match and match.group(1).strip("\"'") == key:
            return number
    return None


def line_of(text: str, path: tuple[str | int, ...]) -> int | None:
    """The line (from 1) where the key at ``path`` is written, or its table's header.

    ``path`` is like ``("server", "kind")`` or ``("clients", 1, "rate")`` (the
    second ``[[clients]]`` table). A best effort for the usual layout, one table
    header per section and one key per line: ``None`` where it cannot tell.
    """
    if len(path) > 1 and isinstance(path[0], str) and isinstance(path[1], str):
        # A sub-table written as its own section: [steady_state.abort_when].
        inner = _line_in_table(text, (f"{path[0]}.{path[1]}", *path[2:]))
        if inner is not None:
            return inner
    return _line_in_table(text, path)


def _line_in_table(text: str, path: tuple[str | int, ...]) -> int | None:
    if not path:
        return None
    if len(path) == 1:
        top = _top_level_line(text, str(path[0]))
        if top is not None:
            return top
    table = path[0]
    index = path[1] if len(path) > 1 and isinstance(path[1], int) else None
    keys = [part for part in path[1:] if isinstance(part, str)]
    key = keys[0] if keys else None
    counts: dict[str, int] = {}
    current: tuple[str, int | None] | None = None
    header_line: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        array = _ARRAY_HEADER.match(line)
        if array:
            name = array.group(1)
            position = counts.get(name, 0)
            counts[name] = position + 1
            current = (name, position)
        else:
            plain = _TABLE_HEADER.match(line)
            if plain:
                current = (plain.group(1), None)
        if array or (current is not None and _TABLE_HEADER.match(line)):
            if current == (table, index):
                header_line = number
            continue
        if current != (table, index) or key is None:
            continue
        match = _KEY.match(line)
        if match and match.group(1).strip("\"'") == key:
            return number
    return header_line
