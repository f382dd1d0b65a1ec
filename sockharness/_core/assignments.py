"""``NAME=VALUE``: how a variable is given on a command line (``--var``, ``--sockharness-var``)."""

from __future__ import annotations

import argparse
import re

from .errors import UsageError

__all__ = ["assignment_argument", "parse_assignment"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_assignment(text: str, where: str) -> tuple[str, str]:
    """``NAME=VALUE`` as ``(NAME, VALUE)``; a bad one is a :class:`UsageError` naming ``where``."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not _NAME.fullmatch(name):
        raise UsageError(
            f"{where}: expected NAME=VALUE (NAME of letters, digits and _), found {text!r}"
        )
    return name, value


def assignment_argument(text: str) -> tuple[str, str]:
    """:func:`parse_assignment` as an argparse type (for pytest's options)."""
    try:
        return parse_assignment(text, "the variable")
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("the variable: ")) from None
