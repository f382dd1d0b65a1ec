"""Bounded-exhaustive exploration of one exchange: every split, coalescing, close and reset.

Sampling faults finds bugs by luck; for a short request and its reply, every
point where a network can break the exchange can be tried instead:
:func:`exchanges` runs the exchange once as it goes (the baseline), then once
per case:

- ``split:K``: the handler reads the request in two reads, cut after byte K;
- ``coalesce:J``: two requests back to back, the first read holding the first
  and J bytes of the second;
- ``client-close:K`` / ``client-reset:K``: the client ends its side (FIN) or
  resets (RST) after sending K bytes;
- ``server-close:K`` / ``server-reset:K``: the handler's connection is
  closed or reset after K bytes of its reply.

Each case is judged (the handler ends, raises nothing unexpected, gives the
same reply when only the read boundaries moved; your ``check`` on top), and
the report names the failing cases with a line that replays the first. From
the command line: ``sockharness explore package.module:Handler --request ...``;
from pytest, the ``explore_exchanges`` fixture.
"""

from sockharness._core import publish

from ._cases import POINTS, Case, Point, parse_case, parse_points
from ._cut import Cut
from ._explore import MAX_CASES, escape_request, exchanges
from ._report import Exploration, ExplorationFailed, Outcome

__all__ = [
    "MAX_CASES",
    "POINTS",
    "Case",
    "Cut",
    "Exploration",
    "ExplorationFailed",
    "Outcome",
    "Point",
    "escape_request",
    "exchanges",
    "parse_case",
    "parse_points",
]

publish(globals(), __all__, __name__)
