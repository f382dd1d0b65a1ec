"""Fault specs are validated values; plans are pure and deterministic by seed."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from sockharness.faults import (
    Bandwidth,
    Corrupt,
    Down,
    Duplicate,
    Latency,
    LimitData,
    Loss,
    Reorder,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeline,
    Timeout,
    Truncate,
)
from sockharness.faults._plans import DatagramPlan, StreamPlan, generator, picks

# -- specs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: Latency(-0.1),
            r"Latency\(delay=-0.1\) is out of range: delay must be a finite number >= 0",
        ),
        (lambda: Latency(0.1, jitter=float("inf")), r"Latency\(jitter=inf\) is out of range"),
        (lambda: Latency("soon"), r"Latency\(delay=\.\.\.\) must be a number, got 'soon'"),
        (
            lambda: Bandwidth(0),
            r"Bandwidth\(rate=0\) is out of range: rate must be a finite number > 0",
        ),
        (lambda: Slicer(0), r"Slicer\(average_size=0\) is out of range"),
        (lambda: Slicer(4, size_variation=4), r"must be smaller than average_size \(4\)"),
        (lambda: Slicer(4.5), r"must be a whole number of bytes, got 4.5"),
        (lambda: SlowClose(-1), r"SlowClose\(delay=-1\) is out of range"),
        (lambda: Timeout(after=-2), r"Timeout\(after=-2\) is out of range"),
        (lambda: ResetPeer(after=float("nan")), r"ResetPeer\(after=\.\.\.\) must be a number"),
        (lambda: LimitData(-1), r"LimitData\(nbytes=-1\) is out of range"),
        (
            lambda: Loss(1.5),
            r"Loss\(probability=1.5\) is out of range: probability is a probability from 0 to 1",
        ),
        (lambda: Loss(0.1, correlation=-0.1), r"Loss\(correlation=-0.1\) is out of range"),
        (lambda: Duplicate(2), r"Duplicate\(probability=2\) is out of range"),
        (
            lambda: Reorder(0.1, delay=0),
            r"Reorder\(delay=0\) is out of range: delay must be a finite number > 0",
        ),
        (lambda: Corrupt(True), r"Corrupt\(probability=\.\.\.\) must be a number, got True"),
        (lambda: Truncate(-5), r"Truncate\(max_size=-5\) is out of range"),
        (
            lambda: Latency(0.1, direction="sideways"),
            r"Latency\(direction='sideways'\) is not a direction",
        ),
        (lambda: Down(toxicity=1.2), r"Down\(toxicity=1.2\) is out of range"),
    ],
)
def test_a_bad_parameter_names_the_fault_the_parameter_and_the_range(
    build: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_specs_are_frozen_hashable_and_read_like_their_call() -> None:
    fault = Latency(0.1, jitter=0.01, direction="upstream")
    assert repr(fault) == "Latency(delay=0.1, jitter=0.01, direction='upstream')"
    assert repr(Loss(0.3, toxicity=0.5)) == "Loss(probability=0.3, toxicity=0.5)"
    assert repr(Timeout()) == "Timeout()"
    assert eval(repr(fault)) == fault
    assert {fault, Latency(0.1, jitter=0.01, direction="upstream")} == {fault}
    with pytest.raises(dataclasses.FrozenInstanceError):
        fault.delay = 1.0  # type: ignore[misc]


def test_transports() -> None:
    assert Latency(0.1).transports == {"stream", "datagram"}
    assert Slicer(4).transports == {"stream"}
    assert Loss(0.1).transports == {"datagram"}
    assert Down().proxy_only


# -- seeds ----------------------------------------------------------------------------------------


def test_generators_depend_on_the_seed_and_the_keys_only() -> None:
    assert generator(1, "a", 2).random() == generator(1, "a", 2).random()
    assert generator(1, "a", 2).random() != generator(2, "a", 2).random()
    assert generator(1, "a", 2).random() != generator(1, "a", 3).random()


def test_toxicity_picks_the_same_connections_for_the_same_seed_at_the_expected_rate() -> None:
    fault = ResetPeer(toxicity=0.3)
    chosen = [picks(7, connection, 0, fault) for connection in range(2000)]
    assert chosen == [picks(7, connection, 0, fault) for connection in range(2000)]
    assert chosen != [picks(8, connection, 0, fault) for connection in range(2000)]
    # 2000 draws at p=0.3: mean 600, sd about 20.5; five sd either side.
    assert 497 < sum(chosen) < 703
    assert all(picks(1, c, 0, Latency(0.1)) for c in range(50))
    assert not any(picks(1, c, 0, Latency(0.1, toxicity=0.0)) for c in range(50))


# -- stream plans ---------------------------------------------------------------------------------


def stream_plan(*faults: Any, direction: str = "upstream", seed: int = 1) -> StreamPlan:
    return StreamPlan(
        faults, seed=seed, connection=0, direction=direction, started=100.0, timeline=Timeline()
    )


def test_latency_delays_and_keeps_order_even_with_jitter() -> None:
    plan = stream_plan(Latency(0.1, jitter=0.09))
    times = []
    for n in range(200):
        [action] = plan.data(100.0 + n * 0.001, b"x")
        times.append(action.at)
    assert times == sorted(times)
    assert all(t >= 100.0 + 0.01 for t in times)


def test_direction_decides_which_plan_a_fault_joins() -> None:
    assert stream_plan(Latency(0.1, direction="downstream")).data(0.0, b"x")[0].at == 0.0
    assert stream_plan(Latency(0.1, direction="downstream"), direction="downstream").data(
        0.0, b"x"
    )[0].at == pytest.approx(0.1)


def test_bandwidth_paces_bytes() -> None:
    actions = stream_plan(Bandwidth(1000)).data(0.0, b"x" * 500)
    assert sum(len(a.data) for a in actions) == 500
    assert actions[-1].at == pytest.approx(0.5)


def test_slicer_cuts_within_the_sizes_and_spaces_the_writes() -> None:
    actions = stream_plan(Slicer(10, size_variation=3, delay=0.01)).data(0.0, bytes(range(200)))
    sizes = [len(a.data) for a in actions]
    assert b"".join(a.data for a in actions) == bytes(range(200))
    assert all(size <= 13 for size in sizes)
    assert all(size >= 7 for size in sizes[:-1])
    gaps = [b.at - a.at for a, b in itertools.pairwise(actions)]
    assert all(gap == pytest.approx(0.01) for gap in gaps)


def test_limit_data_passes_exactly_n_bytes_then_closes() -> None:
    plan = stream_plan(LimitData(10))
    first = plan.data(0.0, b"123456")
    second = plan.data(0.1, b"789abcdef")
    assert [a.data for a in first] == [b"123456"]
    assert [(a.kind, a.data) for a in second] == [("data", b"789a"), ("close", b"")]
    assert plan.data(0.2, b"more") == []


def test_timeout_stops_data_and_closes_on_time_or_never() -> None:
    plan = stream_plan(Timeout(after=0.5))
    assert plan.data(100.1, b"lost") == []
    assert plan.timers() == [100.5]
    assert plan.due(100.4) == []
    assert [a.kind for a in plan.due(100.5)] == ["close"]
    forever = stream_plan(Timeout())
    assert forever.timers() == []
    assert forever.eof(101.0) == []  # Not even the end passes.


def test_reset_peer_fires_on_time_and_only_once() -> None:
    plan = stream_plan(ResetPeer(after=0.2))
    assert plan.due(100.1) == []
    assert [a.kind for a in plan.due(100.2)] == ["reset"]
    assert plan.due(100.3) == []
    assert plan.unfired() == []


def test_slow_close_delays_the_end() -> None:
    [action] = stream_plan(SlowClose(0.3)).eof(100.0)
    assert action.kind == "eof"
    assert action.at == pytest.approx(100.3)


def test_the_end_follows_delayed_data() -> None:
    plan = stream_plan(Latency(0.2))
    plan.data(100.0, b"late")
    [end] = plan.eof(100.01)
    assert end.at >= 100.2


def test_a_fault_that_never_fired_is_reported() -> None:
    plan = stream_plan(LimitData(1000), ResetPeer(after=5))
    plan.data(0.0, b"x" * 10)
    assert plan.unfired() == [
        "LimitData(nbytes=1000) on connection 0 upstream",
        "ResetPeer(after=5) on connection 0 upstream",
    ]


def test_updating_the_faults_keeps_the_state_of_faults_that_stay() -> None:
    plan = stream_plan(LimitData(10))
    plan.data(0.0, b"x" * 6)
    plan.update([LimitData(10), Latency(0.1)])
    actions = plan.data(1.0, b"y" * 6)
    assert [a.kind for a in actions] == ["data", "close"]
    assert len(actions[0].data) == 4


# -- datagram plans -------------------------------------------------------------------------------


def datagram_plan(*faults: Any, seed: int = 1) -> DatagramPlan:
    return DatagramPlan(
        faults, seed=seed, connection=0, direction="upstream", started=0.0, timeline=Timeline()
    )


def lost_indices(plan: DatagramPlan, count: int) -> list[int]:
    return [n for n in range(count) if plan.datagram(0.0, b"%d" % n)[0].kind == "drop"]


def test_loss_is_the_same_for_the_same_seed_and_within_binomial_bounds() -> None:
    lost = lost_indices(datagram_plan(Loss(0.3)), 1000)
    assert lost == lost_indices(datagram_plan(Loss(0.3)), 1000)
    assert lost != lost_indices(datagram_plan(Loss(0.3), seed=2), 1000)
    # 1000 draws at p=0.3: mean 300, sd 14.5; five sd either side.
    assert 227 < len(lost) < 373


def test_correlated_loss_comes_in_runs() -> None:
    plain = lost_indices(datagram_plan(Loss(0.3)), 5000)
    bursty = lost_indices(datagram_plan(Loss(0.3, correlation=0.9)), 5000)

    def runs(indices: list[int]) -> int:
        return sum(1 for a, b in itertools.pairwise(indices) if b == a + 1)

    assert runs(bursty) / len(bursty) > runs(plain) / len(plain) + 0.3
    assert 0.25 < len(bursty) / 5000 < 0.35  # The loss rate stays the probability.


def test_duplicate_reorder_corrupt_truncate() -> None:
    duplicated = [len(datagram_plan(Duplicate(0.5)).datagram(0.0, b"d")) for _ in range(1)]
    assert duplicated[0] in (1, 2)
    plan = datagram_plan(Duplicate(1.0))
    assert [a.data for a in plan.datagram(0.0, b"twice")] == [b"twice", b"twice"]
    [held] = datagram_plan(Reorder(1.0, delay=0.05)).datagram(1.0, b"r")
    assert held.at == pytest.approx(1.05)
    [corrupted] = datagram_plan(Corrupt(1.0)).datagram(0.0, b"\x00" * 8)
    assert bin(int.from_bytes(corrupted.data, "big")).count("1") == 1
    [cut] = datagram_plan(Truncate(3)).datagram(0.0, b"abcdef")
    assert cut.data == b"abc"


def test_plans_write_the_timeline() -> None:
    timeline = Timeline()
    plan = DatagramPlan(
        [Loss(1.0)], seed=0, connection=4, direction="upstream", started=0.0, timeline=timeline
    )
    plan.datagram(0.5, b"gone")
    [event] = timeline.events
    assert (event.at, event.connection, event.direction, event.fault) == (
        0.5,
        4,
        "upstream",
        "Loss(probability=1.0)",
    )
    assert event.effect == "lost datagram 0 (4 bytes)"
    assert "conn 4" in timeline.format()


def test_removing_a_fault_never_lets_later_bytes_overtake_delayed_ones() -> None:
    from sockharness.faults import Slicer
    from sockharness.faults._plans import UPSTREAM, StreamPlan

    plan = StreamPlan([Slicer(4, delay=0.5)], seed=1, connection=0, direction=UPSTREAM, started=0.0)
    sliced = plan.data(10.0, b"0123456789abcdef")
    assert len(sliced) == 4
    assert sliced[-1].at == pytest.approx(11.5)
    plan.update([])  # The fault is removed while its slices are still due.
    later = plan.data(10.1, b"after")
    assert later[0].at >= sliced[-1].at
    assert plan.eof(10.2)[0].at >= sliced[-1].at


def test_a_timeline_remembers_every_fault_that_fired_past_its_limit() -> None:
    from sockharness.faults._plans import Event, Timeline

    timeline = Timeline(limit=2)
    for index in range(3):
        timeline.add(Event(0.0, 0, "upstream", "Latency(delay=0.1)", f"delayed {index}"))
    timeline.add(Event(0.0, 0, "upstream", "Loss(probability=0.5)", "lost a datagram"))
    assert len(timeline.events) == 2
    assert timeline.dropped == 2
    assert timeline.fired == {"Latency(delay=0.1)", "Loss(probability=0.5)"}
