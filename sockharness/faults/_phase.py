"""The connection phase: which fault (if any) decides a connection's fate as it is made."""

from __future__ import annotations

from collections.abc import Sequence

from ._plans import picks
from ._specs import ConnectionFault, Down, Fault

__all__ = ["connection_fate"]


def connection_fate(
    faults: Sequence[Fault],
    seed: int,
    connection: int,
    *,
    kinds: tuple[type[Fault], ...] = (ConnectionFault,),
    skip: tuple[type[Fault], ...] = (),
) -> Fault | None:
    """The first of ``faults`` of ``kinds`` (not of ``skip``) that applies to connection
    number ``connection``, by its ``connections`` selector and seeded ``toxicity``.

    Example:
        >>> from sockharness.faults import Refuse, connection_fate
        >>> faults = [Refuse(connections="0-1")]
        >>> [connection_fate(faults, 0, n) for n in range(3)]
        [Refuse(connections='0-1'), Refuse(connections='0-1'), None]
    """
    for position, fault in enumerate(faults):
        chosen = isinstance(fault, kinds) and not isinstance(fault, skip)
        if chosen and picks(seed, connection, position, fault):
            return fault
    return None


#: What the proxy decides as it accepts: the connection-phase faults and ``Down``.
PROXY_FATES: tuple[type[Fault], ...] = (ConnectionFault, Down)
