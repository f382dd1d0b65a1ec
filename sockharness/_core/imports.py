"""Objects named as ``package.module:name`` (a user's fault, framer or handler), imported."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["import_object", "object_path"]


def import_object(path: str) -> Any:
    """The object ``path`` names: ``package.module:name`` (``name`` may be dotted).

    Raises ``LookupError`` whose message says what went wrong: no colon, a
    module that does not import (with its error), or a missing attribute.
    """
    module_name, colon, attribute = path.strip().partition(":")
    if not colon or not module_name or not attribute:
        raise LookupError(f"{path!r} is not of the form package.module:name")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except Exception as exc:  # Any failure to import it is the user's to fix.
        raise LookupError(f"{type(exc).__name__}: {exc}") from None
    return found


def object_path(value: Any) -> str | None:
    """``package.module:name`` for a class or function that can be imported by it, else ``None``."""
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not module or not qualname or "<locals>" in qualname or module == "__main__":
        return None
    path = f"{module}:{qualname}"
    try:
        return path if import_object(path) is value else None
    except LookupError:
        return None
