"""``${NAME}`` in a scenario's strings: from ``--var``, ``--var-file`` and the environment.

A CI job often knows what a scenario cannot: the address of its service container, a
token. Any string value of a scenario file may name variables as ``${NAME}`` (letters,
digits and ``_``, not starting with a digit), or as ``${NAME:-default}`` for a value to
fall back on; ``$${`` is a literal ``${``. A variable that is not defined is an error
naming the file, the line, the key and the variable, never a silent empty string. Only
strings are filled in: a number stays written as a number.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["UndefinedVariable", "environment_with", "expand"]

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Key = tuple[str | int, ...]


class UndefinedVariable(Exception):
    """A ``${NAME}`` with no value (or a malformed one): where, and which."""

    def __init__(self, key: Key, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(message)


def _fill(text: str, key: Key, variables: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, fallback, default = match.group(1).partition(":-")
        if not _NAME.fullmatch(name):
            raise UndefinedVariable(
                key,
                f"${{{name}}} is not a variable name (letters, digits and _, not starting "
                f"with a digit); write $${{ for a literal ${{",
            )
        if name not in variables and fallback:
            return default
        if name not in variables:
            raise UndefinedVariable(
                key,
                f"${{{name}}} is not defined: set {name} in the environment, or pass "
                f"--var {name}=VALUE (or a --var-file)",
            )
        return variables[name]

    return _REFERENCE.sub(replace, text)


def expand(value: Any, variables: Mapping[str, str], key: Key = ()) -> Any:
    """``value`` (a parsed TOML document or part of it) with every string's variables filled in."""
    if isinstance(value, str):
        return _fill(value, key, variables) if "${" in value else value
    if isinstance(value, dict):
        return {name: expand(item, variables, (*key, name)) for name, item in value.items()}
    if isinstance(value, list):
        return [expand(item, variables, (*key, index)) for index, item in enumerate(value)]
    return value


def environment_with(given: Mapping[str, str] | None) -> dict[str, str]:
    """The variables a scenario sees: the environment, overridden by those ``given``."""
    return {**os.environ, **(given or {})}
