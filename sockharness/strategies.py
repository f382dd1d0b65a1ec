"""Hypothesis strategies for sockharness: faults, selectors, fault lists and payloads.

Example:
    >>> from hypothesis import given, settings
    >>> from sockharness.strategies import fault_lists
    >>> @settings(max_examples=5)
    ... @given(fault_lists("datagram"))
    ... def test_any_faults(faults):
    ...     assert all("datagram" in fault.transports for fault in faults)
    >>> test_any_faults()
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from ._core import UsageError, parse_kind
from .faults import (
    DISTRIBUTIONS,
    FRAMERS,
    SOCKET_ERRORS,
    TLS_POINTS,
    AcceptDelay,
    AcceptThenClose,
    AcceptThenReset,
    Bandwidth,
    Corrupt,
    Duplicate,
    Fault,
    GilbertElliott,
    Latency,
    LimitData,
    Loss,
    MarkovLoss,
    NeverRead,
    NoReply,
    Ordinals,
    Refuse,
    Reorder,
    ResetPeer,
    ShortSend,
    Slicer,
    Slot,
    SlowClose,
    SmallRecv,
    SocketError,
    Stall,
    Timeout,
    TLSAbort,
    TLSStall,
    Truncate,
    fault_class,
    ordinals,
)

__all__ = [
    "call_faults",
    "client_schedules",
    "connection_faults",
    "datagram_faults",
    "directions",
    "fault_lists",
    "fault_plans",
    "handler_behaviours",
    "harmless_stream_faults",
    "message_triggers",
    "ordinal_sets",
    "payloads",
    "stream_faults",
    "toxicities",
]


def directions() -> st.SearchStrategy[str]:
    """``"upstream"``, ``"downstream"`` or ``"both"``."""
    return st.sampled_from(["upstream", "downstream", "both"])


def toxicities() -> st.SearchStrategy[float]:
    """Shares of connections, from 0 to 1, with the ends likelier."""
    return st.one_of(st.just(1.0), st.just(0.0), st.floats(0.0, 1.0))


def _seconds(max_delay: float) -> st.SearchStrategy[float]:
    return st.floats(0.0, max_delay, allow_nan=False, allow_infinity=False)


def ordinal_sets(max_ordinal: int = 8) -> st.SearchStrategy[Ordinals]:
    """Sets of connection ordinals, as a fault's ``connections=`` takes: one (``3``), a
    range (``0-1``), an open range (``2-``) or every n-th (``every 3``), up to
    ``max_ordinal``. Shrinks towards ``0`` (the first connection)."""
    single = st.integers(0, max_ordinal).map(ordinals)
    span = st.tuples(st.integers(0, max_ordinal), st.integers(0, max_ordinal)).map(
        lambda pair: ordinals(f"{min(pair)}-{max(pair)}")
    )
    open_end = st.integers(0, max_ordinal).map(lambda n: ordinals(f"{n}-"))
    every = st.integers(1, max(1, max_ordinal // 2)).map(lambda n: ordinals(f"every {n}"))
    return st.one_of(single, span, open_end, every)


def _common() -> dict[str, Any]:
    return {
        "direction": directions(),
        "toxicity": toxicities(),
        "connections": st.one_of(st.none(), ordinal_sets()),
    }


def _stream_common() -> dict[str, Any]:
    return {**_common(), "after_bytes": st.one_of(st.none(), st.integers(0, 4096))}


def harmless_stream_faults(max_delay: float = 0.05) -> st.SearchStrategy[Fault]:
    """Stream faults that delay or reshape but never lose, cut or reset: data must get through."""
    return st.one_of(
        _latencies(max_delay, _stream_common()),
        _slots(max_delay / 10, _stream_common()),
        st.builds(Bandwidth, st.floats(50_000.0, 10_000_000.0), **_stream_common()),
        st.integers(1, 64).flatmap(
            lambda size: st.builds(
                Slicer,
                st.just(size),
                size_variation=st.integers(0, size - 1),
                delay=_seconds(max_delay / 10),
                **_stream_common(),
            )
        ),
        st.builds(SlowClose, _seconds(max_delay), **_stream_common()),
    )


def message_triggers() -> st.SearchStrategy[dict[str, Any]]:
    """Where a stream fault strikes by message: ``{"framer": ..., "messages": ...}`` or
    ``{"framer": ..., "after_messages": N}``, with a built-in framer. Shrinks towards
    the first message."""
    framer = st.sampled_from(sorted(FRAMERS))
    return st.one_of(
        st.fixed_dictionaries({"framer": framer, "messages": ordinal_sets(6)}),
        st.fixed_dictionaries({"framer": framer, "after_messages": st.integers(0, 6)}),
    )


def _by_message(faults: st.SearchStrategy[Fault]) -> st.SearchStrategy[Fault]:
    """``faults``, some of them striking by message instead of by byte offset."""

    def strike(fault: Fault, trigger: dict[str, Any]) -> Fault:
        return dataclasses.replace(fault, after_bytes=None, **trigger)

    return st.one_of(faults, st.builds(strike, faults, message_triggers()))


def stream_faults(max_delay: float = 0.05) -> st.SearchStrategy[Fault]:
    """Any stream fault a socket or proxy can apply (``Down`` aside), with short times."""
    return st.one_of(
        _by_message(harmless_stream_faults(max_delay)),
        _by_message(
            st.one_of(
                st.builds(Timeout, st.one_of(st.none(), _seconds(max_delay)), **_stream_common()),
                st.builds(ResetPeer, _seconds(max_delay), **_stream_common()),
                st.builds(LimitData, st.integers(0, 4096), **_stream_common()),
            )
        ),
        st.builds(NoReply, **{**_stream_common(), "direction": st.just("downstream")}),
        st.builds(Stall, st.one_of(st.none(), _seconds(max_delay)), **_stream_common()),
        st.builds(
            TLSStall,
            st.sampled_from(TLS_POINTS),
            delay=st.one_of(st.none(), _seconds(max_delay)),
            connections=st.one_of(st.none(), ordinal_sets()),
            toxicity=toxicities(),
        ),
        st.builds(
            TLSAbort,
            st.sampled_from(TLS_POINTS),
            connections=st.one_of(st.none(), ordinal_sets()),
            toxicity=toxicities(),
        ),
    )


def _latencies(max_delay: float, common: dict[str, Any]) -> st.SearchStrategy[Fault]:
    return st.builds(
        Latency,
        _seconds(max_delay),
        jitter=_seconds(max_delay / 2),
        distribution=st.sampled_from(DISTRIBUTIONS),
        correlation=st.floats(0.0, 0.95),
        **common,
    )


def _slots(max_delay: float, common: dict[str, Any]) -> st.SearchStrategy[Fault]:
    return st.builds(
        Slot,
        st.floats(0.001, max(0.001, max_delay)),
        max_packets=st.one_of(st.none(), st.integers(1, 8)),
        **common,
    )


def _markov_losses(common: dict[str, Any]) -> st.SearchStrategy[Fault]:
    def build(values: dict[str, Any], p: dict[str, float]) -> Fault:
        # Keep the probabilities out of each state at most 1.
        return MarkovLoss(
            p["p13"],
            p["p31"],
            min(p["p32"], 1 - p["p31"]),
            p["p23"],
            min(p["p14"], 1 - p["p13"]),
            **values,
        )

    chances = st.fixed_dictionaries(
        {
            "p13": st.floats(0.0, 0.5),
            "p14": st.floats(0.0, 0.5),
            "p31": st.floats(0.05, 1.0),
            "p32": st.floats(0.0, 1.0),
            "p23": st.floats(0.0, 1.0),
        }
    )
    return st.builds(build, st.fixed_dictionaries(common), chances)


def datagram_faults(max_delay: float = 0.05) -> st.SearchStrategy[Fault]:
    """Any datagram fault, with short times."""
    probability = st.floats(0.0, 1.0)
    return st.one_of(
        st.builds(
            GilbertElliott,
            st.floats(0.001, 1.0),
            r=st.floats(0.001, 1.0),
            loss_bad=probability,
            loss_good=probability,
            **_common(),
        ),
        _markov_losses(_common()),
        _slots(max_delay, _common()),
        _latencies(max_delay, _common()),
        st.builds(Loss, probability, correlation=st.floats(0.0, 1.0), **_common()),
        st.builds(Duplicate, probability, **_common()),
        st.builds(
            Reorder,
            probability,
            delay=st.floats(0.001, max(0.001, max_delay)),
            **_common(),
        ),
        st.builds(Corrupt, probability, **_common()),
        st.builds(Truncate, st.integers(0, 2048), **_common()),
        st.builds(Bandwidth, st.floats(50_000.0, 10_000_000.0), **_common()),
    )


def connection_faults(max_delay: float = 0.05) -> st.SearchStrategy[Fault]:
    """The faults of the connection phase (a proxy's): refuse, accept late, close, reset,
    never read; ``Blackhole`` aside (it takes the whole proxy, and a client's timeout)."""
    selectors = {"connections": st.one_of(st.none(), ordinal_sets()), "toxicity": toxicities()}
    return st.one_of(
        st.builds(Refuse, **selectors),
        st.builds(AcceptDelay, _seconds(max_delay), **selectors),
        st.builds(AcceptThenClose, **selectors),
        st.builds(AcceptThenReset, **selectors),
        st.builds(NeverRead, **selectors),
    )


def call_faults() -> st.SearchStrategy[Fault]:
    """The faults on a socket's own calls (in the process only): short sends, small
    receives, an error at chosen calls."""
    common = {"direction": directions(), "connections": st.one_of(st.none(), ordinal_sets())}
    return st.one_of(
        st.builds(ShortSend, st.integers(1, 64), **common),
        st.builds(SmallRecv, st.integers(1, 64), **common),
        st.builds(
            SocketError,
            st.sampled_from(sorted(SOCKET_ERRORS)),
            method=st.sampled_from(["recv", "send"]),
            calls=ordinal_sets(4),
            **common,
        ),
    )


def _stream_builders(max_delay: float) -> dict[type[Fault], st.SearchStrategy[Fault]]:
    """Each stream fault's own strategy, simplest first (plans shrink towards the first)."""
    return {
        ResetPeer: _by_message(st.builds(ResetPeer, _seconds(max_delay), **_stream_common())),
        LimitData: _by_message(st.builds(LimitData, st.integers(0, 4096), **_stream_common())),
        Timeout: _by_message(
            st.builds(Timeout, st.one_of(st.none(), _seconds(max_delay)), **_stream_common())
        ),
        Latency: _by_message(_latencies(max_delay, _stream_common())),
        Slicer: _by_message(
            st.integers(1, 64).flatmap(
                lambda size: st.builds(
                    Slicer,
                    st.just(size),
                    size_variation=st.integers(0, size - 1),
                    delay=_seconds(max_delay / 10),
                    **_stream_common(),
                )
            )
        ),
        Bandwidth: st.builds(Bandwidth, st.floats(50_000.0, 10_000_000.0), **_stream_common()),
        SlowClose: st.builds(SlowClose, _seconds(max_delay), **_stream_common()),
        Slot: _slots(max_delay / 10, _stream_common()),
        Stall: st.builds(Stall, st.one_of(st.none(), _seconds(max_delay)), **_stream_common()),
        NoReply: st.builds(NoReply, **{**_stream_common(), "direction": st.just("downstream")}),
    }


def _datagram_builders(max_delay: float) -> dict[type[Fault], st.SearchStrategy[Fault]]:
    probability = st.floats(0.0, 1.0)
    return {
        Loss: st.builds(Loss, probability, correlation=st.floats(0.0, 1.0), **_common()),
        Latency: _latencies(max_delay, _common()),
        Duplicate: st.builds(Duplicate, probability, **_common()),
        Reorder: st.builds(
            Reorder, probability, delay=st.floats(0.001, max(0.001, max_delay)), **_common()
        ),
        Corrupt: st.builds(Corrupt, probability, **_common()),
        Truncate: st.builds(Truncate, st.integers(0, 2048), **_common()),
        Bandwidth: st.builds(Bandwidth, st.floats(50_000.0, 10_000_000.0), **_common()),
        Slot: _slots(max_delay, _common()),
    }


def fault_plans(
    kind: str = "tcp",
    *,
    faults: Sequence[type[Fault] | str] | None = None,
    max_faults: int = 5,
    max_delay: float = 0.05,
) -> st.SearchStrategy[list[Fault]]:
    """Plans of up to ``max_faults`` faults for ``kind``, with parameters, selectors and
    triggers, that shrink to the smallest plan that still fails.

    ``faults`` limits the plan to those fault classes (or names: ``"reset_peer"``).
    Shrinking removes faults first, then makes each one simpler: a fault of the
    first class listed, smaller delays and sizes, no selector or the first
    connection (``connections`` towards ``'0'``), no trigger, ``toxicity`` 1,
    ``direction`` ``"upstream"`` before ``"downstream"`` before ``"both"``.

    Example:
        >>> from hypothesis import given, settings
        >>> from sockharness.strategies import fault_plans
        >>> @settings(max_examples=5)
        ... @given(fault_plans("udp", faults=["loss", "latency"], max_faults=3))
        ... def test_plans(plan):
        ...     assert len(plan) <= 3
        >>> test_plans()
    """
    kind_obj = parse_kind(kind)
    builders = _stream_builders(max_delay) if kind_obj.stream else _datagram_builders(max_delay)
    if isinstance(max_faults, bool) or not isinstance(max_faults, int) or max_faults < 0:
        raise UsageError(
            f"max_faults={max_faults!r}: a whole number from 0",
            parameter="max_faults",
            value=max_faults,
        )
    if faults is None:
        chosen = list(builders.values())
    else:
        chosen = []
        for wanted in faults:
            cls = fault_class(wanted) if isinstance(wanted, str) else wanted
            if cls not in builders:
                raise UsageError(
                    f"fault_plans(faults=...): {getattr(cls, '__name__', cls)!r} is not a "
                    f"{'stream' if kind_obj.stream else 'datagram'} fault fault_plans draws; "
                    f"it draws {', '.join(c.__name__ for c in builders)}",
                    parameter="faults",
                    value=wanted,
                )
            chosen.append(builders[cls])
        if not chosen:
            raise UsageError("fault_plans(faults=[]): give at least one fault class")
    return st.lists(st.one_of(chosen), max_size=max_faults)


def fault_lists(
    transport: str = "stream", *, min_size: int = 0, max_size: int = 3, max_delay: float = 0.05
) -> st.SearchStrategy[list[Fault]]:
    """Lists of faults for ``transport`` (``"stream"`` or ``"datagram"``), applied in order."""
    if transport == "stream":
        element = stream_faults(max_delay)
    elif transport == "datagram":
        element = datagram_faults(max_delay)
    else:
        raise UsageError(
            f"transport must be 'stream' or 'datagram', got {transport!r}",
            parameter="transport",
            value=transport,
        )
    return st.lists(element, min_size=min_size, max_size=max_size)


def payloads(min_size: int = 0, max_size: int = 65536) -> st.SearchStrategy[bytes]:
    """Byte strings to send: small and large, text-like and binary."""
    return st.one_of(
        st.binary(min_size=min_size, max_size=max_size),
        st.text(min_size=min_size, max_size=max(min_size, max_size // 4))
        .map(str.encode)
        .filter(lambda data: min_size <= len(data) <= max_size),
    )


def handler_behaviours(max_size: int = 4) -> st.SearchStrategy[list[str]]:
    """What successive handlers do: ``"ok"``, ``"raise"`` (Exception) or ``"exit"`` (SystemExit)."""
    return st.lists(st.sampled_from(["ok", "raise", "exit"]), min_size=1, max_size=max_size)


def client_schedules(
    max_clients: int = 4, max_delay: float = 0.05
) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Clients for a server: when each connects, how long its handler takes, whether it fails.

    Each client is ``{"start": seconds, "handler_time": seconds, "behaviour": ...}``.
    """
    client = st.fixed_dictionaries(
        {
            "start": _seconds(max_delay),
            "handler_time": _seconds(max_delay),
            "behaviour": st.sampled_from(["ok", "raise", "idle"]),
        }
    )
    return st.lists(client, min_size=0, max_size=max_clients)
