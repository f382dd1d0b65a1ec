"""Public names say where users import them from."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["publish"]


def publish(namespace: dict[str, Any], names: Iterable[str], module: str) -> None:
    """Set ``__module__`` of each class and function among ``names`` to ``module``.

    Reprs, tracebacks, pickles and the docs then name the public module
    (``sockharness.faults.Latency``), not the private one that defines it.
    Constants and other values are left alone.
    """
    for name in names:
        value = namespace[name]
        if isinstance(value, type) or callable(value):
            try:
                value.__module__ = module
            except (AttributeError, TypeError):  # A built-in or slotted object: as it is.
                pass
