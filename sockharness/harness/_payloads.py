"""Seeded test data: the same seed gives the same bytes, text and records."""

from __future__ import annotations

import builtins
import datetime
import random
from functools import cached_property
from typing import Any, final

from sockharness._core import UsageError

__all__ = ["Payloads"]

#: The latest date a record carries: a fixed day, so the same seed gives the same data on any day.
_DATES_END = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)


@final
class Payloads:
    """Deterministic payloads from ``faker`` and ``random``, seeded.

    Example:
        >>> from sockharness import Payloads
        >>> Payloads(7).bytes(8) == Payloads(7).bytes(8)
        True
        >>> Payloads(7).line().endswith(b"\\n")
        True
    """

    def __init__(self, seed: int) -> None:
        if not isinstance(seed, int):
            raise UsageError(f"seed must be an int, got {seed!r}")
        self.seed = seed
        self._random = random.Random(seed)

    def __repr__(self) -> str:
        return f"Payloads(seed={self.seed})"

    @cached_property
    def faker(self) -> Any:
        """The seeded ``faker.Faker`` behind :meth:`text`, :meth:`line` and :meth:`json_record`."""
        import faker

        fake = faker.Faker()
        fake.seed_instance(self.seed)
        return fake

    def text(self, max_chars: int = 200) -> str:
        """A paragraph of text of at most ``max_chars`` characters (at least 5)."""
        if max_chars < 5:
            raise UsageError(f"text() needs max_chars >= 5, got {max_chars}")
        return str(self.faker.text(max_nb_chars=max_chars))

    def line(self, max_chars: int = 80) -> builtins.bytes:
        """One UTF-8 line of text without inner newlines, ending in ``\\n``."""
        text = self.text(max(max_chars, 5)).replace("\n", " ")
        return text.encode() + b"\n"

    def bytes(self, n: int) -> builtins.bytes:
        """``n`` random bytes."""
        if not isinstance(n, int) or n < 0:
            raise UsageError(f"bytes() needs a size >= 0, got {n!r}")
        return self._random.randbytes(n)

    def json_record(self) -> dict[str, Any]:
        """A JSON-serializable record: a person with an address, an email and a note."""
        fake = self.faker
        return {
            "id": self._random.randrange(1, 10**9),
            "name": fake.name(),
            "email": fake.email(),
            "address": fake.address(),
            # Anchored: faker's dates are otherwise relative to today.
            "created": fake.iso8601(tzinfo=datetime.timezone.utc, end_datetime=_DATES_END),
            "note": fake.sentence(),
        }

    def chunks(self, total: int, max_size: int) -> list[builtins.bytes]:
        """``total`` random bytes split into chunks of 1 to ``max_size`` bytes."""
        if not isinstance(total, int) or total < 0:
            raise UsageError(f"chunks() needs a total >= 0, got {total!r}")
        if not isinstance(max_size, int) or max_size < 1:
            raise UsageError(f"chunks() needs a max_size >= 1, got {max_size!r}")
        data = self.bytes(total)
        pieces = []
        offset = 0
        while offset < total:
            size = self._random.randint(1, max_size)
            pieces.append(data[offset : offset + size])
            offset += size
        return pieces
