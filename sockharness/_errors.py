"""The exceptions sockharness raises, under one root."""

from __future__ import annotations

__all__ = ["SockharnessError", "UsageError"]


class SockharnessError(Exception):
    """Root of every exception sockharness raises on its own account."""


class UsageError(SockharnessError, ValueError):
    """An argument or setting was invalid; the message names it and says how to fix it."""
