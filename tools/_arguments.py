"""Argument types the tools' command lines share."""

from __future__ import annotations

import argparse


def whole_number(text: str) -> int:
    """A count of 0 or more, or an argparse error that says what was wrong."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative: give 0 or more")
    return value
