"""Hypothesis strategies for sockharness: faults, fault lists and payloads.

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

from typing import Any

from hypothesis import strategies as st

from ._core import UsageError
from .faults import (
    Bandwidth,
    Corrupt,
    Duplicate,
    Fault,
    Latency,
    LimitData,
    Loss,
    Reorder,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeout,
    Truncate,
)

__all__ = [
    "client_schedules",
    "datagram_faults",
    "directions",
    "fault_lists",
    "handler_behaviours",
    "harmless_stream_faults",
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


def _common() -> dict[str, Any]:
    return {"direction": directions(), "toxicity": toxicities()}


def harmless_stream_faults(max_delay: float = 0.05) -> st.SearchStrategy[Fault]:
    """Stream faults that delay or reshape but never lose, cut or reset: data must get through."""
    return st.one_of(
        st.builds(Latency, _seconds(max_delay), jitter=_seconds(max_delay / 2), **_common()),
        st.builds(Bandwidth, st.floats(50_000.0, 10_000_000.0), **_common()),
        st.integers(1, 64).flatmap(
            lambda size: st.builds(
                Slicer,
                st.just(size),
                size_variation=st.integers(0, size - 1),
                delay=_seconds(max_delay / 10),
                **_common(),
            )
        ),
        st.builds(SlowClose, _seconds(max_delay), **_common()),
    )


def stream_faults(max_delay: float = 0.05) -> st.SearchStrategy[Fault]:
    """Any stream fault a socket or proxy can apply (``Down`` aside), with short times."""
    return st.one_of(
        harmless_stream_faults(max_delay),
        st.builds(Timeout, st.one_of(st.none(), _seconds(max_delay)), **_common()),
        st.builds(ResetPeer, _seconds(max_delay), **_common()),
        st.builds(LimitData, st.integers(0, 4096), **_common()),
    )


def datagram_faults(max_delay: float = 0.05) -> st.SearchStrategy[Fault]:
    """Any datagram fault, with short times."""
    probability = st.floats(0.0, 1.0)
    return st.one_of(
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
        st.builds(Latency, _seconds(max_delay), jitter=_seconds(max_delay / 2), **_common()),
        st.builds(Bandwidth, st.floats(50_000.0, 10_000_000.0), **_common()),
    )


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
