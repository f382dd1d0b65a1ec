"""The cases of one exchange: where the request is cut, coalesced, closed or reset.

A case is one point of the exchange between a client and a handler:

- ``split:K``: the handler reads the request in two reads, the first ending
  after byte ``K`` (1 to n-1);
- ``coalesce:J``: the client sends the request twice, back to back, and the
  handler's first read holds the first and ``J`` bytes of the second (1 to n:
  at n, both in one read);
- ``client-close:K``: the client sends the first ``K`` bytes (0 to n-1), then
  ends its side (a FIN) and reads what comes back;
- ``client-reset:K``: the client sends the first ``K`` bytes, then resets the
  connection (an RST);
- ``server-close:K``: the handler's connection is closed (a FIN) after ``K``
  bytes of its reply (0 to m-1);
- ``server-reset:K``: it is reset after ``K`` bytes of the reply.

``baseline`` is the exchange with none of these, the one every case is
measured against.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from sockharness._core import UsageError

__all__ = ["POINTS", "Case", "Point", "enumerate_cases", "parse_case", "parse_points"]

Point = Literal["split", "coalesce", "client-close", "client-reset", "server-close", "server-reset"]
#: Every kind of case, in the order they are explored.
POINTS: tuple[Point, ...] = get_args(Point)
#: The cases the client makes itself (they need the built-in client).
CLIENT_POINTS: frozenset[Point] = frozenset({"coalesce", "client-close", "client-reset"})


@dataclass(frozen=True, order=True)
class Case:
    """One point of the exchange (see the module's docstring); ``point`` ``None``: the baseline."""

    point: Point | None
    offset: int = 0

    def __str__(self) -> str:
        return "baseline" if self.point is None else f"{self.point}:{self.offset}"


BASELINE = Case(None)


def _sizes(point: Point, request: int, reply: int) -> range:
    """The offsets of ``point`` for a request and a reply of these sizes."""
    if point == "split":
        return range(1, request)
    if point == "coalesce":
        return range(1, request + 1)
    if point in ("client-close", "client-reset"):
        return range(request)
    return range(reply)


def enumerate_cases(points: Iterable[Point], request: int, reply: int) -> Iterator[Case]:
    """Every case of ``points`` for a request of ``request`` bytes and a reply of ``reply``."""
    for point in points:
        for offset in _sizes(point, request, reply):
            yield Case(point, offset)


def parse_points(value: str | Sequence[str] | None) -> tuple[Point, ...]:
    """Points from ``"split,client-reset"`` or a sequence of names; all of them for ``None``."""
    if value is None:
        return POINTS
    names = value.split(",") if isinstance(value, str) else list(value)
    points: list[Point] = []
    for given in names:
        name = given.strip().replace("_", "-")
        if name not in POINTS:
            raise UsageError(
                f"{name!r} is not a point of an exchange; the points are {', '.join(POINTS)}",
                parameter="points",
                value=value,
            )
        if name not in points:
            points.append(name)
    if not points:
        raise UsageError("points names none; give one or more of " + ", ".join(POINTS))
    return tuple(points)


def parse_case(text: str) -> Case:
    """A case from its name: ``"split:17"``, ``"server-reset:0"``, ``"baseline"``."""
    text = text.strip()
    if text == "baseline":
        return BASELINE
    point, colon, offset = text.partition(":")
    point = point.replace("_", "-")
    if not colon or point not in POINTS or not offset.isdigit():
        raise UsageError(
            f"{text!r} is not a case; write POINT:OFFSET, e.g. 'split:17', with POINT one of "
            f"{', '.join(POINTS)} (or 'baseline')",
            parameter="case",
            value=text,
        )
    return Case(point, int(offset))


def check_case(case: Case, request: int, reply: int) -> None:
    """Refuse a case that does not exist for these sizes, saying which offsets do."""
    if case.point is None or case.offset in _sizes(case.point, request, reply):
        return
    offsets = _sizes(case.point, request, reply)
    span = f"{offsets.start} to {offsets.stop - 1}" if offsets else "none"
    raise UsageError(
        f"case {case} does not exist for a {request}-byte request and a {reply}-byte reply "
        f"(offsets of {case.point}: {span})",
        parameter="case",
        value=str(case),
    )
