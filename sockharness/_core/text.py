"""Small pieces of English for messages."""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 flow``, ``2 flows``; ``many`` where adding an s is wrong (``1 property``)."""
    return f"{count} {word if count == 1 else (many or word + 's')}"
