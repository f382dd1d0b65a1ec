"""``--var NAME=VALUE`` and ``--var-file FILE``: the variables a scenario's ``${NAME}`` names."""

from __future__ import annotations

from collections.abc import Sequence

from sockharness._core import UsageError, parse_assignment

__all__ = ["parse_var", "read_var_file", "variables_from"]


def parse_var(text: str, where: str = "--var") -> tuple[str, str]:
    """``NAME=VALUE`` as ``(NAME, VALUE)``; a bad one is a :class:`UsageError`."""
    return parse_assignment(text, where)


def read_var_file(path: str) -> dict[str, str]:
    """The ``NAME=VALUE`` lines of ``path`` (``#`` comments and blank lines skipped)."""
    try:
        with open(path, encoding="utf-8") as stream:
            lines = stream.read().splitlines()
    except OSError as exc:
        raise UsageError(f"--var-file {path}: cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"--var-file {path}: is not UTF-8 text ({exc.reason})") from None
    found: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, value = parse_var(stripped, f"--var-file {path}:{number}")
        found[name] = value
    return found


def variables_from(var_files: Sequence[str], given: Sequence[str]) -> dict[str, str]:
    """The files' variables in order, then each ``--var`` (the last one given wins)."""
    found: dict[str, str] = {}
    for path in var_files:
        found.update(read_var_file(path))
    for text in given:
        name, value = parse_var(text)
        found[name] = value
    return found
