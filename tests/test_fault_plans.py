"""Fault plans as hypothesis strategies: a planted bug is found and shrunk to its one fault."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sockharness import SockharnessError, UsageError, connect, start_server
from sockharness.faults import Fault, Latency, LimitData, ResetPeer, Slicer, check_faults
from sockharness.handlers import LineEchoHandler
from sockharness.strategies import fault_plans

#: Times of 0: a reset strikes at the client's first call, not after its reply came.
PLANS = fault_plans(
    "tcp", faults=[ResetPeer, Latency, LimitData, Slicer], max_faults=20, max_delay=0.0
)


def test_a_planted_bug_shrinks_to_one_reset_on_the_second_connection() -> None:
    """A client that breaks only when its 2nd connection is reset (it survives any other
    fault, and a reset of any other connection): found among plans of up to 20 faults,
    shrunk to a single fault."""
    failing: list[list[Fault]] = []
    with start_server(LineEchoHandler) as server:
        server.expect_errors(ConnectionResetError, BrokenPipeError)  # The plans reset it.

        @settings(
            max_examples=300,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(plan=PLANS)
        def client_survives(plan: list[Fault]) -> None:
            for n in range(3):
                try:
                    with connect(server.address, faults=plan, connection=n, timeout=0.5) as c:
                        c.request(b"hello\n")
                except ConnectionResetError:
                    if n == 1:  # The planted bug.
                        failing.append(plan)
                        raise AssertionError(
                            "the client breaks on a reset of its 2nd connection"
                        ) from None
                except (OSError, EOFError, SockharnessError):
                    pass  # Anything else, it survives.

        with pytest.raises(AssertionError, match="its 2nd connection"):
            client_survives()
    smallest = failing[-1]  # Hypothesis replays the shrunk plan last.
    assert len(smallest) == 1, smallest
    (fault,) = smallest
    assert isinstance(fault, ResetPeer)
    assert fault.direction in ("downstream", "both")
    assert fault.selected is None or 1 in fault.selected
    assert fault.after == 0.0
    assert fault.toxicity == 1.0


@settings(max_examples=50, deadline=None)
@given(plan=fault_plans("udp", max_faults=4))
def test_datagram_plans_are_valid_for_their_kind(plan: list[Fault]) -> None:
    assert len(plan) <= 4
    assert check_faults(plan, _kind("udp"), proxy=True) == tuple(plan)


@settings(max_examples=50, deadline=None)
@given(plan=fault_plans("unix", faults=["reset_peer", "latency"], max_faults=3))
def test_plans_keep_to_the_faults_asked_for(plan: list[Fault]) -> None:
    assert all(isinstance(fault, (ResetPeer, Latency)) for fault in plan)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"kind": "tcp", "faults": ["loss"]}, "'Loss' is not a stream fault fault_plans draws"),
        ({"kind": "tcp", "faults": []}, "give at least one fault class"),
        ({"kind": "tcp", "max_faults": -1}, r"max_faults=-1: a whole number from 0"),
        ({"kind": "tcpx"}, "tcpx"),
    ],
)
def test_bad_plans_are_clear(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        fault_plans(**arguments)


def _kind(name: str) -> Any:
    from sockharness._core import parse_kind

    return parse_kind(name)


def test_empty_plans_are_drawn_too() -> None:
    seen: set[int] = set()

    @settings(max_examples=100, deadline=None, database=None)
    @given(plan=fault_plans("tcp", max_faults=2))
    def sizes(plan: list[Fault]) -> None:
        seen.add(len(plan))

    sizes()
    assert seen == {0, 1, 2}
    assert st  # The strategies module is what users import beside it.
