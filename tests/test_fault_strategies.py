"""The public hypothesis strategies, and properties of faults checked with them."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sockharness import connect, start_server
from sockharness.faults import Fault, FaultProxy
from sockharness.faults import _specs as specs
from sockharness.faults._plans import DatagramPlan, StreamPlan
from sockharness.handlers import EchoHandler
from sockharness.strategies import (
    datagram_faults,
    fault_lists,
    harmless_stream_faults,
    payloads,
    stream_faults,
)
from tests.helpers import WAIT

NAMESPACE = {name: getattr(specs, name) for name in specs.__all__}


@settings(max_examples=200)
@given(st.one_of(stream_faults(), datagram_faults()))
def test_generated_faults_are_valid_and_read_like_their_call(fault: Fault) -> None:
    assert eval(repr(fault), NAMESPACE) == fault


@settings(max_examples=100)
@given(fault_lists("stream"), st.integers(0, 2**32), st.lists(st.binary(max_size=500), max_size=5))
def test_a_stream_plan_never_invents_or_reorders_bytes(
    faults: list[Fault], seed: int, writes: list[bytes]
) -> None:
    plan = StreamPlan(faults, seed=seed, connection=0, direction="upstream", started=0.0)
    delivered = b""
    for n, data in enumerate(writes):
        for action in plan.data(float(n), data):
            if action.kind == "data":
                delivered += action.data
    assert b"".join(writes).startswith(delivered)


@settings(max_examples=100)
@given(
    fault_lists("datagram"), st.integers(0, 2**32), st.lists(st.binary(max_size=100), max_size=10)
)
def test_datagram_plans_are_the_same_for_the_same_seed(
    faults: list[Fault], seed: int, datagrams: list[bytes]
) -> None:
    def run() -> list[Any]:
        plan = DatagramPlan(faults, seed=seed, connection=0, direction="upstream", started=0.0)
        return [plan.datagram(float(n), data) for n, data in enumerate(datagrams)]

    assert run() == run()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(harmless_stream_faults(max_delay=0.01), max_size=3), payloads(max_size=20_000))
def test_harmless_faults_deliver_every_byte_through_the_proxy(
    faults: list[Fault], payload: bytes
) -> None:
    with start_server(EchoHandler, leaks="fail") as server:
        with FaultProxy(server.address, "tcp", faults, seed=1) as proxy:
            with connect(proxy.address, timeout=WAIT) as client:
                client.send(payload)
                client.shutdown_write()
                assert client.recv_all() == payload
