"""What each fault does to the traffic of one direction: one entry per fault and transport.

A plan (``_plans.py``) keeps a :class:`Stage` per fault that applies and,
for each piece of traffic, asks the fault's effect what becomes of it. The
effects are looked up in two tables, :data:`STREAM_EFFECTS` and
:data:`DATAGRAM_EFFECTS`, keyed by the fault's class: adding a fault means its
spec (``_specs.py``), its effect here, and its docs row. A test checks that
every fault has an effect for every transport it claims.

Effects are pure: they read the stage's seeded generator and state, return
timed pieces, and record what they did through the plan (for the timeline and
the unfired-fault report). Times are seconds on the plan's clock.
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._specs import (
    Bandwidth,
    Corrupt,
    Down,
    Duplicate,
    Fault,
    GilbertElliott,
    Latency,
    LimitData,
    Loss,
    MarkovLoss,
    NoReply,
    Reorder,
    ResetPeer,
    Slicer,
    Slot,
    SlowClose,
    Stall,
    Timeout,
    TLSAbort,
    TLSStall,
    Truncate,
)
from ._timeline import Action, ActionKind

__all__ = [
    "DATAGRAM_EFFECTS",
    "STREAM_EFFECTS",
    "DatagramEffect",
    "Recorder",
    "SharedState",
    "Stage",
    "StreamEffect",
    "Timed",
    "effect_of",
    "origin",
]

#: Bandwidth spreads a chunk over pieces of at most this many seconds' worth of bytes.
_BANDWIDTH_QUANTUM = 0.01

#: Pieces of data and when each is delivered.
Timed = list[tuple[float, bytes]]


@dataclass
class Stage:
    """One fault applied to one direction of one connection: its generator and state."""

    fault: Fault
    position: int
    rng: random.Random
    fired: bool = False
    state: dict[str, Any] = field(default_factory=dict)


class SharedState:
    """State the plans of one proxy (or of one server's faults) share, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._states: dict[Any, dict[str, Any]] = {}

    def of(self, stage: Stage, direction: str) -> dict[str, Any]:
        """The state ``stage``'s fault shares with the same fault on the other connections."""
        return self._states.setdefault((stage.position, stage.fault, direction), {})


class Recorder(Protocol):
    """What an effect reports to: the plan, which marks the stage fired and logs it.

    ``started`` is when the connection (or flow) started, on the plan's clock;
    ``shared`` what the plans of its proxy (or server) share; ``direction``
    the plan's direction.
    """

    started: float
    shared: SharedState
    direction: str

    def record(self, stage: Stage, at: float, effect: str) -> None: ...


def origin(stage: Stage, started: float) -> float | None:
    """When a stage's time-triggered part starts counting: at the connection's start, or at
    its trigger (``after_bytes``) once that came (``None`` until then)."""
    if stage.fault.triggered:
        armed: float | None = stage.state.get("armed_at")
        return armed
    return started


def _ordered_delay(stage: Stage, at: float, delay: float) -> float:
    """``at + delay``, never earlier than what this stage delivered before (order is kept)."""
    out = max(at + delay, stage.state.get("last", 0.0))
    stage.state["last"] = out
    return out


_PARETO_SHAPE = 5.0
_PARETO_MEAN = _PARETO_SHAPE / (_PARETO_SHAPE - 1)  # 1.25
_PARETO_STD = math.sqrt(_PARETO_SHAPE / ((_PARETO_SHAPE - 1) ** 2 * (_PARETO_SHAPE - 2)))


def _noise(rng: random.Random, distribution: str) -> float:
    """One draw of standardized noise (mean 0, standard deviation 1)."""
    if distribution == "uniform":
        return rng.uniform(-1.0, 1.0) * math.sqrt(3.0)
    if distribution == "normal":
        return rng.gauss(0.0, 1.0)
    pareto = (rng.paretovariate(_PARETO_SHAPE) - _PARETO_MEAN) / _PARETO_STD
    if distribution == "pareto":
        return pareto
    # paretonormal: a quarter of the variance normal, three quarters Pareto.
    return 0.5 * rng.gauss(0.0, 1.0) + math.sqrt(0.75) * pareto


def _jitter(stage: Stage, fault: Latency) -> float:
    """The offset from ``delay`` for one piece: seeded, distributed, maybe correlated."""
    if not fault.jitter:
        return 0.0
    if fault.distribution == "uniform" and not fault.correlation:
        return stage.rng.uniform(-fault.jitter, fault.jitter)  # The draws it always made.
    fresh = _noise(stage.rng, fault.distribution)
    if fault.correlation:
        # AR(1): each offset leans on the one before, and the spread stays the same.
        before = stage.state.get("noise", fresh)
        fresh = fault.correlation * before + math.sqrt(1 - fault.correlation**2) * fresh
        stage.state["noise"] = fresh
    scale = 1 / math.sqrt(3.0) if fault.distribution == "uniform" else 1.0
    return fault.jitter * scale * fresh


def _latency(stage: Stage, fault: Latency, at: float) -> float:
    return _ordered_delay(stage, at, max(0.0, fault.delay + _jitter(stage, fault)))


def _slot_time(plan: Recorder, stage: Stage, fault: Slot, at: float) -> float:
    """When a piece sent at ``at`` goes: at the next slot boundary with room, in order."""
    index = max(math.ceil((at - plan.started) / fault.interval - 1e-9), stage.state.get("slot", 0))
    if index == stage.state.get("slot"):
        used = stage.state.get("used", 0)
        if fault.max_packets is not None and used >= fault.max_packets:
            index += 1
            used = 0
    else:
        used = 0
    stage.state["slot"] = index
    stage.state["used"] = used + 1
    return plan.started + index * fault.interval


# -- streams ------------------------------------------------------------------------------------


class StreamEffect:
    """What a fault does on a stream; by default, nothing (each fault overrides its part).

    - :meth:`data`: the pieces that pass (and actions such as a close);
    - :meth:`eof`: when the end of the stream passes on (``None``: held back);
    - :meth:`timer` and :meth:`due`: a time-triggered action (reset, close);
    - :meth:`holds`: whether, struck, it holds back everything for good (only
      a timer can end the wait), so a receive that waits on it is certain to
      time out.

    ``ends_flow``: once it strikes, nothing after passes unharmed (a reset, a
    stall, a limit), so a fault that strikes by message takes every later
    message too.
    """

    ends_flow = False

    def data(self, plan: Recorder, stage: Stage, items: Timed) -> tuple[Timed, list[Action]]:
        return items, []

    def eof(self, plan: Recorder, stage: Stage, at: float) -> float | None:
        return at

    def timer(self, plan: Recorder, stage: Stage, started: float) -> float | None:
        return None

    def due(self, plan: Recorder, stage: Stage, started: float, now: float) -> list[Action]:
        return []

    def holds(self, stage: Stage) -> bool:
        return False


class _StreamLatency(StreamEffect):
    def data(self, plan: Recorder, stage: Stage, items: Timed) -> tuple[Timed, list[Action]]:
        fault = stage.fault
        assert isinstance(fault, Latency)
        out = [(_latency(stage, fault, at), data) for at, data in items]
        for (before, data), (after, _) in zip(items, out, strict=True):
            plan.record(stage, before, f"delayed {len(data)} bytes by {after - before:.4f} s")
        return out, []

    def eof(self, plan: Recorder, stage: Stage, at: float) -> float | None:
        return max(at, stage.state.get("last", 0.0))


def _budget(plan: Recorder, stage: Stage) -> tuple[dict[str, Any], Any]:
    """Where a bandwidth keeps its clock: the stage's own, or the one all connections share."""
    fault = stage.fault
    if isinstance(fault, Bandwidth) and fault.shared:
        return plan.shared.of(stage, plan.direction), plan.shared.lock
    return stage.state, contextlib.nullcontext()


class _StreamBandwidth(StreamEffect):
    def data(self, plan: Recorder, stage: Stage, items: Timed) -> tuple[Timed, list[Action]]:
        fault = stage.fault
        assert isinstance(fault, Bandwidth)
        out = []
        quantum = max(1, int(fault.rate * _BANDWIDTH_QUANTUM))
        state, lock = _budget(plan, stage)
        with lock:
            for at, data in items:
                for offset in range(0, len(data), quantum):
                    piece = data[offset : offset + quantum]
                    start = max(at, state.get("free", 0.0), stage.state.get("last", 0.0))
                    state["free"] = start + len(piece) / fault.rate
                    stage.state["last"] = state["free"]  # This connection's order.
                    out.append((state["free"], piece))
        if out:
            paced = sum(len(d) for _, d in items)
            shared = " (shared)" if fault.shared else ""
            plan.record(stage, items[0][0], f"paced {paced} bytes at {fault.rate:g} B/s{shared}")
        return out, []

    def eof(self, plan: Recorder, stage: Stage, at: float) -> float | None:
        return max(at, stage.state.get("last", 0.0))


class _StreamSlicer(StreamEffect):
    def data(self, plan: Recorder, stage: Stage, items: Timed) -> tuple[Timed, list[Action]]:
        fault = stage.fault
        assert isinstance(fault, Slicer)
        out = []
        for at, data in items:
            cursor = max(at, stage.state.get("last", 0.0))
            offset = 0
            slices = 0
            while offset < len(data):
                size = fault.average_size + stage.rng.randint(
                    -fault.size_variation, fault.size_variation
                )
                size = max(1, size)
                out.append((cursor, data[offset : offset + size]))
                slices += 1
                offset += size
                cursor += fault.delay
            stage.state["last"] = cursor - fault.delay if slices else cursor
            plan.record(stage, at, f"sliced {len(data)} bytes into {slices} writes")
        return out, []

    def eof(self, plan: Recorder, stage: Stage, at: float) -> float | None:
        return max(at, stage.state.get("last", 0.0))


class _StreamSlowClose(StreamEffect):
    def eof(self, plan: Recorder, stage: Stage, at: float) -> float | None:
        fault = stage.fault
        assert isinstance(fault, SlowClose)
        later = at + fault.delay
        plan.record(stage, later, f"passed the close on {fault.delay:g} s late")
        return later


class _StreamTimeout(StreamEffect):
    ends_flow = True

    def data(self, plan: Recorder, stage: Stage, items: Timed) -> tuple[Timed, list[Action]]:
        dropped = sum(len(data) for _, data in items)
        plan.record(stage, items[0][0], f"held back {dropped} bytes (data stopped)")
        return [], []

    def eof(self, plan: Recorder, stage: Stage, at: float) -> float | None:
        return None  # Nothing flows any more, not even the end.

    def timer(self, plan: Recorder, stage: Stage, started: float) -> float | None:
        fault = stage.fault
        assert isinstance(fault, Timeout)
        start = origin(stage, started)
        if fault.after is None or stage.state.get("closed") or start is None:
            return None
        return start + fault.after

    def due(self, plan: Recorder, stage: Stage, started: float, now: float) -> list[Action]:
        fault = stage.fault
        assert isinstance(fault, Timeout)
        when = self.timer(plan, stage, started)
        if when is None or now < when:
            return []
        stage.state["closed"] = True
        plan.record(stage, now, f"closed the connection after {fault.after:g} s")
        return [Action(now, "close")]

    def holds(self, stage: Stage) -> bool:
        return not stage.state.get("closed")


def _reset_kind(fault: Fault) -> ActionKind:
    """A reset triggered by one direction's data resets both peers when the fault says both
    (a TLS abort always does)."""
    return "reset_both" if fault.direction == "both" or isinstance(fault, TLSAbort) else "reset"


def _reset_delay(fault: Fault) -> float:
    """How long after its start (or trigger) a resetting fault resets."""
    return fault.after if isinstance(fault, ResetPeer) else 0.0


class _StreamResetPeer(StreamEffect):
    """``ResetPeer``, and ``TLSAbort`` (a reset at once, at its handshake record)."""

    ends_flow = True

    def data(self, plan: Recorder, stage: Stage, items: Timed) -> tuple[Timed, list[Action]]:
        fault = stage.fault
        if not fault.triggered:
            return items, []  # Time alone decides (see due()); data flows until then.
        # Armed by its trigger: bytes that come once the reset is due are not
        # delivered; the reset goes in their place ("reset instead of the 3rd request").
        start = stage.state["armed_at"]
        when = start + _reset_delay(fault)
        kept = [(at, data) for at, data in items if at < when]
        if len(kept) == len(items) or stage.fired:
            return kept, []
        withheld = sum(len(data) for at, data in items if at >= when)
        plan.record(
            stage,
            when,
            f"reset the connection {fault.trigger} ({withheld} bytes not delivered)",
        )
        return kept, [Action(when, _reset_kind(fault))]

    def timer(self, plan: Recorder, stage: Stage, started: float) -> float | None:
        start = origin(stage, started)
        return None if stage.fired or start is None else start + _reset_delay(stage.fault)

    def due(self, plan: Recorder, stage: Stage, started: float, now: float) -> list[Action]:
        when = self.timer(plan, stage, started)
        if when is None or now < when:
            return []
        fault = stage.fault
        if fault.triggered:
            delay = _reset_delay(fault)
            plan.record(stage, now, f"reset the connection {delay:g} s {fault.trigger}")
            return [Action(now, _reset_kind(fault))]
        plan.record(stage, now, "reset the connection")
        return [Action(now, "reset")]


class _StreamSlot(StreamEffect):
    def data(self, plan: Recorder, stage: Stage, items: Timed) -> tuple[Timed, list[Action]]:
        fault = stage.fault
        assert isinstance(fault, Slot)
        out = []
        for at, data in items:
            when = _slot_time(plan, stage, fault, at)
            if when > at:
                plan.record(stage, at, f"held {len(data)} bytes for the slot {when - at:.4f} s on")
            out.append((when, data))
        return out, []

    def eof(self, plan: Recorder, stage: Stage, at: float) -> float | None:
        fault = stage.fault
        assert isinstance(fault, Slot)
        return max(at, plan.started + stage.state.get("slot", 0) * fault.interval)


class _StreamNoReply(StreamEffect):
    ends_flow = True

    def data(self, plan: Recorder, stage: Stage, items: Timed) -> tuple[Timed, list[Action]]:
        held = sum(len(data) for _, data in items)
        plan.record(stage, items[0][0], f"held back {held} bytes of reply")
        return [], []

    def eof(self, plan: Recorder, stage: Stage, at: float) -> float | None:
        plan.record(stage, at, "held back the server's close")
        return None

    def holds(self, stage: Stage) -> bool:
        return True


class _StreamStall(StreamEffect):
    ends_flow = True

    def _release(self, stage: Stage, at: float) -> float | None:
        if "release" not in stage.state:
            delay = stage.fault.delay  # type: ignore[attr-defined]
            stage.state["release"] = None if delay is None else at + delay
        release: float | None = stage.state["release"]
        return release

    def data(self, plan: Recorder, stage: Stage, items: Timed) -> tuple[Timed, list[Action]]:
        release = self._release(stage, items[0][0])
        if release is None:
            held = sum(len(data) for _, data in items)
            plan.record(stage, items[0][0], f"held back {held} bytes (stalled for good)")
            return [], []
        out = []
        for at, data in items:
            if at < release:
                plan.record(stage, at, f"stalled {len(data)} bytes until {release - at:.4f} s on")
                out.append((release, data))
            else:
                out.append((at, data))
        return out, []

    def eof(self, plan: Recorder, stage: Stage, at: float) -> float | None:
        release = self._release(stage, at)
        return None if release is None else max(at, release)

    def holds(self, stage: Stage) -> bool:
        return stage.fault.delay is None  # type: ignore[attr-defined]


class _StreamLimitData(StreamEffect):
    ends_flow = True

    def data(self, plan: Recorder, stage: Stage, items: Timed) -> tuple[Timed, list[Action]]:
        fault = stage.fault
        assert isinstance(fault, LimitData)
        if stage.state.get("closed"):
            return [], []
        passed = stage.state.get("passed", 0)
        out = []
        for at, data in items:
            room = fault.nbytes - passed
            if len(data) < room:
                out.append((at, data))
                passed += len(data)
                continue
            out.append((at, data[:room]))
            stage.state["passed"] = passed + room
            stage.state["closed"] = True
            plan.record(stage, at, f"closed the connection after {fault.nbytes} bytes")
            return out, [Action(at, "close")]
        stage.state["passed"] = passed
        return out, []


#: What each stream fault does (``Down`` concerns whole connections: only the proxy applies it).
STREAM_EFFECTS: dict[type[Fault], StreamEffect] = {
    Latency: _StreamLatency(),
    Bandwidth: _StreamBandwidth(),
    Slicer: _StreamSlicer(),
    SlowClose: _StreamSlowClose(),
    Timeout: _StreamTimeout(),
    ResetPeer: _StreamResetPeer(),
    LimitData: _StreamLimitData(),
    NoReply: _StreamNoReply(),
    Stall: _StreamStall(),
    Slot: _StreamSlot(),
    TLSStall: _StreamStall(),
    TLSAbort: _StreamResetPeer(),
}


# -- datagrams ----------------------------------------------------------------------------------

#: ``effect(plan, stage, at, datagram, index)``: the deliveries one datagram becomes.
DatagramEffect = Callable[[Recorder, Stage, float, bytes, int], Timed]


def _lose(plan: Recorder, stage: Stage, at: float, data: bytes, index: int) -> Timed:
    fault = stage.fault
    assert isinstance(fault, Loss)
    # Correlation: the chance a datagram shares the previous one's fate. (netem
    # blends the random draws instead, which lowers the loss rate as correlation
    # grows; this keeps the rate at `probability`.)
    if "lost" in stage.state and stage.rng.random() < fault.correlation:
        lost = stage.state["lost"]
    else:
        lost = stage.rng.random() < fault.probability
    stage.state["lost"] = lost
    if lost:
        plan.record(stage, at, f"lost datagram {index} ({len(data)} bytes)")
        return []
    return [(at, data)]


def _gilbert_elliott_loses(stage: Stage) -> str | None:
    """One step of the Gilbert-Elliott chain: why the piece is lost, or ``None``."""
    fault = stage.fault
    assert isinstance(fault, GilbertElliott)
    bad = stage.state.get("bad", False)
    lost = stage.rng.random() < (fault.loss_bad if bad else fault.loss_good)
    stage.state["bad"] = (stage.rng.random() >= fault.r) if bad else (stage.rng.random() < fault.p)
    return ("bad state" if bad else "good state") if lost else None


def _markov_loses(stage: Stage) -> str | None:
    """One step of the 4-state chain: why the piece is lost, or ``None``."""
    fault = stage.fault
    assert isinstance(fault, MarkovLoss)
    state = stage.state.get("state", 1)
    draw = stage.rng.random()
    if state == 1:
        state = 3 if draw < fault.p13 else 4 if draw < fault.p13 + fault.p14 else 1
    elif state == 3:
        state = 1 if draw < fault.p31 else 2 if draw < fault.p31 + fault.p32 else 3
    elif state == 2:
        state = 3 if draw < fault.p23 else 1
    else:
        state = 1
    stage.state["state"] = state
    if state in (3, 4):
        return "burst loss" if state == 3 else "isolated loss"
    return None


def _gilbert_elliott(plan: Recorder, stage: Stage, at: float, data: bytes, index: int) -> Timed:
    why = _gilbert_elliott_loses(stage)
    if why is not None:
        plan.record(stage, at, f"lost datagram {index} ({why}, {len(data)} bytes)")
        return []
    return [(at, data)]


def _markov_loss(plan: Recorder, stage: Stage, at: float, data: bytes, index: int) -> Timed:
    why = _markov_loses(stage)
    if why is not None:
        plan.record(stage, at, f"lost datagram {index} ({why})")
        return []
    return [(at, data)]


class _StreamLossStall(StreamEffect):
    """A loss model on a stream: each piece it would lose is held back ``stall`` seconds."""

    def __init__(self, loses: Callable[[Stage], str | None]) -> None:
        self.loses = loses

    def data(self, plan: Recorder, stage: Stage, items: Timed) -> tuple[Timed, list[Action]]:
        stall = stage.fault.stall  # type: ignore[attr-defined]
        out = []
        for at, data in items:
            why = self.loses(stage)
            delay = stall if why is not None else 0.0
            if why is not None:
                plan.record(stage, at, f"stalled {len(data)} bytes {stall:g} s ({why})")
            out.append((_ordered_delay(stage, at, delay), data))
        return out, []

    def eof(self, plan: Recorder, stage: Stage, at: float) -> float | None:
        return max(at, stage.state.get("last", 0.0))


def _slot(plan: Recorder, stage: Stage, at: float, data: bytes, index: int) -> Timed:
    fault = stage.fault
    assert isinstance(fault, Slot)
    when = _slot_time(plan, stage, fault, at)
    if when > at:
        plan.record(stage, at, f"held datagram {index} for the slot {when - at:.4f} s on")
    return [(when, data)]


def _duplicate(plan: Recorder, stage: Stage, at: float, data: bytes, index: int) -> Timed:
    fault = stage.fault
    assert isinstance(fault, Duplicate)
    if stage.rng.random() < fault.probability:
        plan.record(stage, at, f"duplicated datagram {index}")
        return [(at, data), (at, data)]
    return [(at, data)]


def _reorder(plan: Recorder, stage: Stage, at: float, data: bytes, index: int) -> Timed:
    fault = stage.fault
    assert isinstance(fault, Reorder)
    if stage.rng.random() < fault.probability:
        plan.record(stage, at, f"held datagram {index} back {fault.delay:g} s")
        return [(at + fault.delay, data)]
    return [(at, data)]


def _corrupt(plan: Recorder, stage: Stage, at: float, data: bytes, index: int) -> Timed:
    fault = stage.fault
    assert isinstance(fault, Corrupt)
    if not data or stage.rng.random() >= fault.probability:
        return [(at, data)]
    bit = stage.rng.randrange(len(data) * 8)
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    plan.record(stage, at, f"flipped bit {bit} of datagram {index}")
    return [(at, bytes(flipped))]


def _truncate(plan: Recorder, stage: Stage, at: float, data: bytes, index: int) -> Timed:
    fault = stage.fault
    assert isinstance(fault, Truncate)
    if len(data) > fault.max_size:
        plan.record(stage, at, f"cut datagram {index} from {len(data)} to {fault.max_size} bytes")
    return [(at, data[: fault.max_size])]


def _delay(plan: Recorder, stage: Stage, at: float, data: bytes, index: int) -> Timed:
    fault = stage.fault
    assert isinstance(fault, Latency)
    later = _latency(stage, fault, at)
    plan.record(stage, at, f"delayed datagram {index} by {later - at:.4f} s")
    return [(later, data)]


def _pace(plan: Recorder, stage: Stage, at: float, data: bytes, index: int) -> Timed:
    fault = stage.fault
    assert isinstance(fault, Bandwidth)
    state, lock = _budget(plan, stage)
    with lock:
        start = max(at, state.get("free", 0.0))
        state["free"] = free = start + len(data) / fault.rate
    if free > at:
        plan.record(stage, at, f"paced datagram {index} to {free - at:.4f} s")
    return [(free, data)]


def _drop(plan: Recorder, stage: Stage, at: float, data: bytes, index: int) -> Timed:
    return []


#: What each datagram fault does to one datagram.
DATAGRAM_EFFECTS: dict[type[Fault], DatagramEffect] = {
    Loss: _lose,
    GilbertElliott: _gilbert_elliott,
    MarkovLoss: _markov_loss,
    Slot: _slot,
    Duplicate: _duplicate,
    Reorder: _reorder,
    Corrupt: _corrupt,
    Truncate: _truncate,
    Latency: _delay,
    Bandwidth: _pace,
    Down: _drop,
}


# The loss models on a stream: stalls where a datagram would be lost (defined with them).
STREAM_EFFECTS[GilbertElliott] = _StreamLossStall(_gilbert_elliott_loses)
STREAM_EFFECTS[MarkovLoss] = _StreamLossStall(_markov_loses)


def effect_of(table: dict[type[Fault], Any], fault: Fault, own: str = "") -> Any:
    """The effect in ``table`` for ``fault``'s class, or for the nearest base that has one.

    A fault of a user's own that is in no table brings its effect along, as the
    class attribute ``own`` (``stream_effect`` or ``datagram_effect``).
    """
    for cls in type(fault).__mro__:
        if own and cls.__dict__.get(own) is not None:
            return cls.__dict__[own]
        if cls in table:
            return table[cls]
    return None
