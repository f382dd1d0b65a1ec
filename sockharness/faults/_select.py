"""Which connections (or peers, or messages) a fault strikes: ordinals, as sets.

An ordinal counts from 0: connection 0 is the first the proxy accepted (or the
first the wrapped server accepted, or the first a faulty client opened).
:class:`Ordinals` is the set, written as text the way people write page
ranges::

    "3"          the 4th only
    "0-1"        the first two (both ends included)
    "0,2,5-"     the 1st, the 3rd, and the 6th onwards
    "every 3"    every third: ordinals 2, 5, 8, ... (the 3rd, the 6th, ...)

In Python a ``range``, a set or list of whole numbers, one number, or that
text, all become :class:`Ordinals`, which compares, hashes and prints as its
canonical text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sockharness._core import UsageError

__all__ = ["Ordinals", "OrdinalsLike", "ordinals"]

_SPAN = re.compile(r"^(\d+)(?:\s*-\s*(\d*))?$")
_EVERY = re.compile(r"^every\s+(\d+)$")
_SYNTAX = "write e.g. '3', '0-1', '0,2,5-' or 'every 3' (ordinals count from 0)"


@dataclass(frozen=True)
class Ordinals:
    """A set of ordinals: whole spans (``start`` to ``stop``, ``stop`` ``None``: open) and
    every ``every``-th one.

    Build it with :func:`ordinals`; ``n in ordinals`` says whether ``n`` is in it.
    """

    spans: tuple[tuple[int, int | None], ...] = ()
    every: int | None = None

    def __contains__(self, ordinal: object) -> bool:
        if not isinstance(ordinal, int) or ordinal < 0:
            return False
        if self.every is not None and (ordinal + 1) % self.every == 0:
            return True
        return any(
            start <= ordinal and (stop is None or ordinal < stop) for start, stop in self.spans
        )

    @property
    def first(self) -> int:
        """The smallest ordinal in the set."""
        candidates = [start for start, _ in self.spans]
        if self.every is not None:
            candidates.append(self.every - 1)
        return min(candidates)

    def __str__(self) -> str:
        parts = []
        for start, stop in self.spans:
            if stop is None:
                parts.append(f"{start}-")
            elif stop == start + 1:
                parts.append(str(start))
            else:
                parts.append(f"{start}-{stop - 1}")
        if self.every is not None:
            parts.append(f"every {self.every}")
        return ",".join(parts)

    def __repr__(self) -> str:
        # As the text that builds it: ResetPeer(connections='0-1') reads like its call.
        return repr(str(self))


#: What a ``connections=`` parameter takes: text, a range, whole numbers, or :class:`Ordinals`.
OrdinalsLike = Ordinals | str | int | range | Iterable[int]


def _merged(spans: Iterable[tuple[int, int | None]]) -> tuple[tuple[int, int | None], ...]:
    """Spans sorted, with overlapping and touching ones joined: one canonical form."""
    out: list[tuple[int, int | None]] = []
    for start, stop in sorted(spans, key=lambda span: span[0]):
        if out:
            last_start, last_stop = out[-1]
            if last_stop is None:
                continue  # An open span swallows everything after its start.
            if start <= last_stop:
                out[-1] = (last_start, None if stop is None else max(last_stop, stop))
                continue
        out.append((start, stop))
    return tuple(out)


def _from_text(text: str, what: str, label: str) -> Ordinals:
    spans: list[tuple[int, int | None]] = []
    every: int | None = None
    items = [item.strip().lower() for item in text.split(",")]
    if not any(items):
        raise UsageError(f"{label} selects nothing; {_SYNTAX}", parameter=what, value=text)
    for item in items:
        match = _EVERY.match(item)
        if match:
            if every is not None:
                raise UsageError(
                    f"{label} has two 'every' items; keep one",
                    parameter=what,
                    value=text,
                )
            every = int(match.group(1))
            if every < 1:
                raise UsageError(
                    f"{label}: 'every' needs a count of at least 1",
                    parameter=what,
                    value=text,
                )
            continue
        match = _SPAN.match(item)
        if not match:
            raise UsageError(
                f"{label}: {item!r} is not an ordinal or a range; {_SYNTAX}",
                parameter=what,
                value=text,
            )
        start = int(match.group(1))
        if match.group(2) is None:
            spans.append((start, start + 1))
        elif match.group(2) == "":
            spans.append((start, None))
        else:
            end = int(match.group(2))
            if end < start:
                raise UsageError(
                    f"{label}: the range {item!r} ends before it starts",
                    parameter=what,
                    value=text,
                )
            spans.append((start, end + 1))
    return Ordinals(_merged(spans), every)


def ordinals(value: Any, what: str = "connections", owner: str = "") -> Ordinals:
    """``value`` (text, a range, a set or list of whole numbers, one number) as :class:`Ordinals`.

    ``what`` names the parameter in error messages, ``owner`` the fault it belongs to.

    Example:
        >>> from sockharness.faults import ordinals
        >>> ordinals("0,2,5-")
        '0,2,5-'
        >>> 6 in ordinals("0,2,5-"), 3 in ordinals(range(2))
        (True, False)
        >>> ordinals({1, 2, 3, 7})
        '1-3,7'
    """
    if isinstance(value, Ordinals):
        return value
    label = f"{owner}({what}={value!r})" if owner else f"{what}={value!r}"
    if isinstance(value, str):
        return _from_text(value, what, label)
    if isinstance(value, bool):
        raise UsageError(
            f"{label} is not a set of ordinals; {_SYNTAX}", parameter=what, value=value
        )
    if isinstance(value, int):
        value = [value]
    if isinstance(value, range) and value.step == 1 and value and value.start >= 0:
        return Ordinals(((value.start, value.stop),))  # Any other range: as its numbers.
    try:
        numbers = list(value)
    except TypeError:
        raise UsageError(
            f"{label} is not a set of ordinals; {_SYNTAX}", parameter=what, value=value
        ) from None
    if not numbers:
        raise UsageError(f"{label} selects nothing; {_SYNTAX}", parameter=what, value=value)
    for number in numbers:
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise UsageError(
                f"{label}: {number!r} is not an ordinal (a whole number from 0)",
                parameter=what,
                value=value,
            )
    return Ordinals(_merged((number, number + 1) for number in numbers))
