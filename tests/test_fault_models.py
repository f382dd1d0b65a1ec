"""The statistical models, checked with a fixed seed at n = 100 000: loss, duplicate and reorder
rates, Gilbert-Elliott and 4-state Markov loss, slots, and the latency distributions."""

from __future__ import annotations

import itertools
import math
import statistics
from typing import Any

import pytest

from sockharness import UsageError
from sockharness.faults import (
    Duplicate,
    GilbertElliott,
    Latency,
    Loss,
    MarkovLoss,
    Reorder,
    Slot,
    parse_fault,
)
from sockharness.faults._plans import DatagramPlan, StreamPlan
from sockharness.handlers import EchoHandler

N = 100_000
SPACING = 10.0  # Seconds between datagrams: far apart, so nothing waits for order.


def _deliveries(fault: Any, n: int = N, seed: int = 1) -> list[list[float]]:
    """For each of ``n`` datagrams, when its copies were delivered (none: lost)."""
    plan = DatagramPlan([fault], seed=seed, connection=0, direction="upstream", started=0.0)
    out = []
    for index in range(n):
        at = index * SPACING
        out.append([action.at - at for action in plan.datagram(at, b"x") if action.kind == "data"])
    return out


def _within(measured: float, expected: float, share: float) -> bool:
    return abs(measured - expected) <= share * expected


def _bursty_tolerance(fates: list[bool]) -> float:
    """The relative tolerance for the loss rate of a model whose losses come in runs.

    Runs, not datagrams, are the independent draws: with ``k`` runs of
    geometric length the rate's relative standard deviation is at most
    ``sqrt(2 / k)``; four of those.
    """
    runs = sum(1 for i, lost in enumerate(fates) if lost and (i == 0 or not fates[i - 1]))
    return 4 * math.sqrt(2 / runs)


@pytest.mark.parametrize("fault", [Loss(0.2), Loss(0.05)], ids=repr)
def test_loss_rate(fault: Loss) -> None:
    lost = sum(1 for copies in _deliveries(fault) if not copies) / N
    assert _within(lost, fault.probability, 0.02), lost


def test_correlated_loss_keeps_its_rate() -> None:
    fault = Loss(0.2, correlation=0.5)
    fates = [not copies for copies in _deliveries(fault)]
    assert _within(sum(fates) / N, 0.2, _bursty_tolerance(fates))


def test_loss_correlation_makes_runs_and_keeps_the_rate() -> None:
    fates = [not copies for copies in _deliveries(Loss(0.2, correlation=0.5))]
    runs = [len(run) for run in "".join("L" if f else "." for f in fates).split(".") if run]
    independent = [not copies for copies in _deliveries(Loss(0.2))]
    runs_independent = [
        len(run) for run in "".join("L" if f else "." for f in independent).split(".") if run
    ]
    assert statistics.mean(runs) > 1.5 * statistics.mean(runs_independent)


def test_duplicate_rate() -> None:
    doubled = sum(1 for copies in _deliveries(Duplicate(0.1)) if len(copies) == 2) / N
    assert _within(doubled, 0.1, 0.02), doubled


def test_reorder_rate() -> None:
    held = sum(1 for copies in _deliveries(Reorder(0.2, delay=1.0)) if copies[0] > 0) / N
    assert _within(held, 0.2, 0.02), held


@pytest.mark.parametrize(
    "fault",
    [GilbertElliott(0.05, r=0.3), GilbertElliott(0.01, r=0.5, loss_bad=0.8, loss_good=0.01)],
    ids=repr,
)
def test_gilbert_elliott_rate_and_bursts(fault: GilbertElliott) -> None:
    fates = [not copies for copies in _deliveries(fault)]
    tolerance = _bursty_tolerance(fates)
    assert _within(sum(fates) / N, fault.rate, tolerance), (sum(fates) / N, fault.rate)
    if fault.loss_bad == 1.0 and fault.loss_good == 0.0:
        text = "".join("L" if lost else "." for lost in fates)
        bursts = [len(run) for run in text.split(".") if run]
        assert _within(statistics.mean(bursts), 1 / fault.r, 0.05)


@pytest.mark.parametrize(
    "fault",
    [
        MarkovLoss(0.02, p31=0.4),
        MarkovLoss(0.02, p31=0.4, p32=0.2, p23=0.3, p14=0.01),
        MarkovLoss(0.1, p31=0.2, p32=0.5, p23=0.6, p14=0.05),
    ],
    ids=repr,
)
def test_markov_loss_rate(fault: MarkovLoss) -> None:
    fates = [not copies for copies in _deliveries(fault)]
    tolerance = _bursty_tolerance(fates)
    assert tolerance < 0.2  # Enough runs to judge by.
    assert _within(sum(fates) / N, fault.rate, tolerance), (sum(fates) / N, fault.rate)


def test_markov_loss_with_two_states_is_gilbert() -> None:
    # Without states 2 and 4 the chain is Gilbert's: rate p13 / (p13 + p31).
    assert math.isclose(MarkovLoss(0.02, p31=0.4).rate, 0.02 / 0.42, rel_tol=1e-9)


def test_slots_release_in_bursts_on_the_boundaries() -> None:
    fault = Slot(0.1, max_packets=2)
    plan = DatagramPlan([fault], seed=0, connection=0, direction="upstream", started=0.0)
    times = [plan.datagram(0.001 + 0.01 * i, b"x")[0].at for i in range(12)]
    assert times == pytest.approx([0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4, 0.4, 0.5, 0.5, 0.6, 0.6])
    stream = StreamPlan([Slot(0.05)], seed=0, connection=0, direction="upstream", started=0.0)
    (action,) = stream.data(0.07, b"abc")
    assert action.at == pytest.approx(0.1)


JITTER = 0.05


@pytest.mark.parametrize(
    ("distribution", "spread", "tolerance"),
    [
        ("uniform", JITTER / math.sqrt(3), 0.02),
        ("normal", JITTER, 0.02),
        ("pareto", JITTER, 0.05),  # A heavy tail: the spread settles slowly.
        ("paretonormal", JITTER, 0.03),
    ],
)
def test_latency_distributions(distribution: str, spread: float, tolerance: float) -> None:
    fault = Latency(1.0, jitter=JITTER, distribution=distribution)
    offsets = [copies[0] - 1.0 for copies in _deliveries(fault)]
    assert abs(statistics.fmean(offsets)) <= 0.02 * JITTER
    assert _within(statistics.pstdev(offsets), spread, tolerance)
    if distribution == "pareto":
        assert max(offsets) > 10 * JITTER  # The long right tail is there.
        assert min(offsets) >= -0.78 * JITTER  # And no left one: -0.77 at the least.


@pytest.mark.parametrize("correlation", [0.5, 0.9])
def test_correlated_jitter_keeps_its_spread(correlation: float) -> None:
    fault = Latency(1.0, jitter=JITTER, distribution="normal", correlation=correlation)
    offsets = [copies[0] - 1.0 for copies in _deliveries(fault)]
    assert _within(statistics.pstdev(offsets), JITTER, 0.05)
    mean = statistics.fmean(offsets)
    lag = sum((a - mean) * (b - mean) for a, b in itertools.pairwise(offsets))
    autocorrelation = lag / (len(offsets) - 1) / statistics.pvariance(offsets)
    assert abs(autocorrelation - correlation) <= 0.02


def test_uniform_jitter_draws_as_it_always_did() -> None:
    # Seeds recorded before distributions existed replay the same delays.
    plan = DatagramPlan([Latency(0.1, jitter=0.02)], seed=7, connection=0, direction="upstream",
                        started=0.0)  # fmt: skip
    delays = [round(plan.datagram(i * 10.0, b"x")[0].at - i * 10.0, 9) for i in range(3)]
    again = DatagramPlan([Latency(0.1, 0.02)], seed=7, connection=0, direction="upstream",
                         started=0.0)  # fmt: skip
    assert delays == [round(again.datagram(i * 10.0, b"x")[0].at - i * 10.0, 9) for i in range(3)]
    assert all(0.08 <= d <= 0.12 for d in delays)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("latency=0.1,distribution=cauchy", r"Latency\(distribution='cauchy'\): use one of"),
        ("latency=0.1,correlation=1", r"correlation=1\): below 1"),
        ("gilbert_elliott=0,r=0", r"the flow never changes state"),
        ("markov_loss=0.6,p14=0.6", r"add up to more than 1"),
        ("markov_loss=0.1,p31=0", r"a burst that starts never ends"),
        ("slot=0", r"Slot\(interval=0\) is out of range"),
        ("slot=0.1,max_packets=0", r"max_packets=0\) is out of range"),
    ],
)
def test_bad_models_are_clear(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_fault(text)


# -- network profiles ------------------------------------------------------------------------------


def test_every_profile_is_latency_and_rates_and_datagram_loss() -> None:
    from sockharness.faults import NETWORK_PROFILES, Bandwidth, network_profile

    assert set(NETWORK_PROFILES) == {"edge", "3g", "lte", "wifi", "lossy-wifi", "satellite"}
    for name, profile in NETWORK_PROFILES.items():
        stream = network_profile(name, "tcp")
        datagram = network_profile(name, "udp")
        latencies = [f for f in stream if isinstance(f, Latency)]
        assert sum(f.delay for f in latencies) == pytest.approx(profile.latency)
        rates = {f.direction: f.rate for f in stream if isinstance(f, Bandwidth)}
        assert rates == {"upstream": profile.up_rate, "downstream": profile.down_rate}
        assert not any(isinstance(f, Loss) for f in stream)  # TCP resends: no loss on streams.
        losses = [f.probability for f in datagram if isinstance(f, Loss)]
        assert losses == ([profile.loss] if profile.loss else [])
        assert profile.source
    with pytest.raises(UsageError, match="'5g' is not a network profile; use one of edge, 3g"):
        network_profile("5g")


def test_a_satellite_link_through_the_proxy(make_server: Any) -> None:
    import time

    from sockharness import connect
    from sockharness.faults import FaultProxy, network_profile
    from sockharness.handlers import LineEchoHandler

    server = make_server(LineEchoHandler)
    with FaultProxy(server.address, "tcp", network_profile("satellite"), seed=1) as proxy:
        with connect(proxy.address) as client:
            started = time.monotonic()
            assert client.request(b"far away\n") == b"far away\n"
            assert time.monotonic() - started >= 0.6  # The round trip the link adds.


def test_a_scenario_takes_a_network_profile(tmp_path: Any) -> None:
    from sockharness.chaos import ScenarioError, load_scenario

    path = tmp_path / "profile.toml"
    head = '[scenario]\nname = "x"\nduration = 1\n[server]\nkind = "udp"\nhandler = "echo"\n'
    path.write_text(head + '[[clients]]\ncount = 1\n[[faults]]\nprofile = "edge"\nat = 0.2\n')
    windows = load_scenario(path).faults
    assert [type(w.fault).__name__ for w in windows] == [
        "Latency", "Latency", "Bandwidth", "Bandwidth", "Loss"
    ]  # fmt: skip
    assert {w.at for w in windows} == {0.2}
    path.write_text(head + '[[clients]]\ncount = 1\n[[faults]]\nprofile = "5g"\n')
    with pytest.raises(ScenarioError, match=r"faults\[0\].profile: '5g' is not a network"):
        load_scenario(path)


# -- a shared bandwidth ---------------------------------------------------------------------------


@pytest.mark.parametrize(("shared", "last"), [(False, 0.25), (True, 0.5)])
def test_a_shared_bandwidth_is_one_budget_for_every_connection(shared: bool, last: float) -> None:
    from sockharness.faults import Bandwidth, SharedState

    fault = Bandwidth(200_000, shared=shared)
    state = SharedState()
    plans = [
        StreamPlan([fault], seed=0, connection=n, direction="upstream", started=0.0, shared=state)
        for n in range(2)
    ]
    ends = [max(action.at for action in plan.data(0.0, b"x" * 50_000)) for plan in plans]
    # 50 000 bytes each at 200 kB/s: 0.25 s on links of their own; one after the other
    # (0.5 s for the second) on one shared link.
    assert max(ends) == pytest.approx(last)


def test_a_shared_bandwidth_through_the_proxy(make_server: Any) -> None:
    import threading
    import time

    from sockharness import connect
    from sockharness.faults import Bandwidth, FaultProxy
    from sockharness.handlers import DiscardHandler

    server = make_server(DiscardHandler)
    fault = Bandwidth(200_000, shared=True, direction="upstream")
    size = 50_000
    with FaultProxy(server.address, "tcp", [fault]) as proxy:
        barrier = threading.Barrier(2)
        starts: list[float] = []
        ends: list[float] = []

        def send() -> None:
            with connect(proxy.address) as client:
                barrier.wait(5)
                # Timed by the senders themselves: a main thread scheduled late
                # under load started its clock late and saw 0.44 s.
                starts.append(time.monotonic())
                client.send(b"x" * size)
                client.shutdown_write()
                client.recv_all()
                ends.append(time.monotonic())

        threads = [threading.Thread(target=send) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(ends) == 2, "a sender did not finish"
        took = max(ends) - min(starts)
    assert took >= 0.5  # 100 000 bytes through one 200 kB/s link.
    assert proxy.stats.upstream_bytes == 2 * size


def test_a_shared_bandwidth_in_process(make_server: Any) -> None:
    from sockharness.faults import Bandwidth

    fault = Bandwidth(100_000, shared=True, direction="downstream")
    server = make_server(EchoHandler, "tcp", faults=[fault])
    first, second = server.connect(), server.connect()
    with first, second:
        first.send(b"a" * 20_000)
        second.send(b"b" * 20_000)
        assert first.recv_exactly(20_000) == b"a" * 20_000
        assert second.recv_exactly(20_000) == b"b" * 20_000
    effects = [e.effect for e in server.fault_timeline.events]
    assert effects
    assert all(effect.endswith("(shared)") for effect in effects)


def test_a_loss_model_on_a_stream_stalls_instead() -> None:
    fault = GilbertElliott(0.2, r=0.5, stall=0.2)
    plan = StreamPlan([fault], seed=3, connection=0, direction="upstream", started=0.0)
    delivered = []
    for n in range(2000):
        for action in plan.data(n * SPACING, b"%d," % n):
            delivered.append((action.at - n * SPACING, action.data))
    assert b"".join(data for _, data in delivered) == b"".join(b"%d," % n for n in range(2000))
    stalled = sum(1 for delay, _ in delivered if delay == pytest.approx(0.2))
    assert _within(stalled / 2000, fault.rate, 0.15)  # About 29 % of the pieces: 2000 is few.
    assert all(delay in (0.0, pytest.approx(0.2)) for delay, _ in delivered)


def test_markov_loss_on_a_stream_through_the_proxy(make_server: Any) -> None:
    from sockharness import connect
    from sockharness.faults import FaultProxy
    from sockharness.handlers import LineEchoHandler

    server = make_server(LineEchoHandler)
    fault = MarkovLoss(0.3, p31=0.5, stall=0.05, direction="upstream")
    with FaultProxy(server.address, "tcp", [fault], seed=2) as proxy:
        with connect(proxy.address) as client:
            for n in range(30):  # Enough that a 30 % loss model strikes whatever the seed.
                assert client.request(b"%d\n" % n) == b"%d\n" % n  # Late, never lost.
        assert proxy.unfired() == []
