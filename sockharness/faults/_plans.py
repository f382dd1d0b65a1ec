"""Fault plans: what the faults do to one direction of one connection, decided from a seed.

Theory of operation
===================

A plan turns what a sender wrote into what the receiver gets, and when. It is
pure: it never touches a socket or a clock. A transport (the fault proxy, or a
faulty socket wrapper) feeds it ``(now, data)`` and end-of-stream, asks it for
timer events, and carries out the :class:`Action` s it returns (deliver these
bytes at this time, end the stream, close or reset the connection). Because
the plan is pure and every random draw comes from a generator seeded by
``(seed, connection index, direction, fault position, fault)``, the same seed
and the same traffic give the same decisions, byte for byte, whichever
transport carries them.

Faults compose in order: each stage takes timed chunks and gives timed chunks
to the next. A stage keeps the order of what passes through it (Latency with
jitter never lets a chunk overtake an earlier one); only ``Reorder`` reorders
datagrams, on purpose.

Every decision a stage takes is written to the :class:`Timeline`, and each
stage remembers whether it ever did anything: a fault that was planned but
never fired (a reset after more bytes than were ever sent) is reported, so a
chaos test cannot pass vacuously.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, Literal

from ._specs import (
    DATAGRAM,
    STREAM,
    Bandwidth,
    Corrupt,
    Down,
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
    "Action",
    "ActionKind",
    "DatagramPlan",
    "Event",
    "StreamPlan",
    "Timeline",
    "generator",
    "picks",
    "summarize_unfired",
]

UPSTREAM = "upstream"
DOWNSTREAM = "downstream"

#: Bandwidth spreads a chunk over pieces of at most this many seconds' worth of bytes.
_BANDWIDTH_QUANTUM = 0.01


def generator(seed: int, *keys: Any) -> random.Random:
    """A generator seeded by ``seed`` and ``keys``: the same keys, the same draws, everywhere."""
    digest = hashlib.sha256(repr((seed, *keys)).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def picks(seed: int, connection: int, position: int, fault: Fault) -> bool:
    """Whether ``fault`` (at ``position`` in the list) applies to this connection (toxicity)."""
    if fault.toxicity >= 1.0:
        return True
    if fault.toxicity <= 0.0:
        return False
    return generator(seed, "pick", connection, position, repr(fault)).random() < fault.toxicity


@dataclass(frozen=True)
class Event:
    """One thing a fault did: when, on which connection and direction, and what."""

    at: float
    connection: int
    direction: str
    fault: str
    effect: str

    def __str__(self) -> str:
        return (
            f"{self.at:9.4f}s  conn {self.connection:<3} {self.direction:<10} "
            f"{self.fault}: {self.effect}"
        )


class Timeline:
    """Every fault decision, in order; thread-safe, bounded in size."""

    def __init__(self, limit: int = 10_000) -> None:
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._limit = limit
        self.dropped = 0
        self._fired: set[str] = set()

    @property
    def fired(self) -> set[str]:
        """Every fault (its repr) that did something, events past the limit included."""
        with self._lock:
            return set(self._fired)

    def add(self, event: Event) -> None:
        with self._lock:
            self._fired.add(event.fault)
            if len(self._events) < self._limit:
                self._events.append(event)
            else:
                self.dropped += 1

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def with_events(self, events: Iterable[Event]) -> Timeline:
        """A new timeline: this one's events and ``events`` (reported from elsewhere) after them."""
        combined = Timeline(self._limit)
        with self._lock:
            combined._events = list(self._events)
            combined._fired = set(self._fired)
            combined.dropped = self.dropped
        for event in events:
            combined.add(event)
        return combined

    def format(self, last: int = 50) -> str:
        """The last ``last`` events, one per line."""
        events = self.events
        lines = [str(event) for event in events[-last:]]
        if len(events) > last:
            lines.insert(0, f"... {len(events) - last} earlier events")
        if self.dropped:
            lines.append(f"... and {self.dropped} events past the timeline's limit")
        return "\n".join(lines)


#: What a transport does: send data, end one direction, close or reset the connection,
#: or nothing (a datagram dropped; for counters).
ActionKind = Literal["data", "eof", "close", "reset", "drop"]


@dataclass(frozen=True)
class Action:
    """What a transport must do, at ``at`` (seconds on the plan's clock).

    ``kind`` is ``"data"`` (send ``data``), ``"eof"`` (end this direction:
    ``shutdown(SHUT_WR)``), ``"close"`` (close the whole connection),
    ``"reset"`` (reset it: the peer on ``direction``'s receiving side sees
    ``ConnectionResetError``) or ``"drop"`` (nothing to deliver; for counters).
    """

    at: float
    kind: ActionKind
    data: bytes = b""


@dataclass
class _Stage:
    fault: Fault
    position: int
    rng: random.Random
    fired: bool = False
    state: dict[str, Any] = field(default_factory=dict)


class _Plan:
    transport: str

    def __init__(
        self,
        faults: Sequence[Fault],
        *,
        seed: int,
        connection: int,
        direction: str,
        started: float,
        timeline: Timeline | None = None,
    ) -> None:
        self.seed = seed
        self.connection = connection
        self.direction = direction
        self.started = started
        self.timeline = timeline
        self.stages: list[_Stage] = []
        self.update(faults)

    def update(self, faults: Sequence[Fault]) -> None:
        """Use this fault list from now on; stages of faults still listed keep their state."""
        previous = {(stage.position, stage.fault): stage for stage in self.stages}
        stages = []
        for position, fault in enumerate(faults):
            if self.transport not in fault.transports or fault.proxy_only:
                continue
            if not (
                fault.applies_upstream()
                if self.direction == UPSTREAM
                else fault.applies_downstream()
            ):
                continue
            if not picks(self.seed, self.connection, position, fault):
                continue
            stage = previous.get((position, fault)) or _Stage(
                fault,
                position,
                generator(self.seed, self.connection, self.direction, position, repr(fault)),
            )
            stages.append(stage)
        self.stages = stages

    def _record(self, stage: _Stage, at: float, effect: str) -> None:
        stage.fired = True
        if self.timeline is not None:
            self.timeline.add(
                Event(at - self.started, self.connection, self.direction, repr(stage.fault), effect)
            )

    def usage(self) -> list[tuple[str, bool]]:
        """``(fault, fired)`` for every fault planned here."""
        return [(repr(stage.fault), stage.fired) for stage in self.stages]

    def unfired(self) -> list[str]:
        """The faults of this plan that never did anything, described."""
        return [
            f"{stage.fault!r} on connection {self.connection} {self.direction}"
            for stage in self.stages
            if not stage.fired
        ]


def _ordered_delay(stage: _Stage, at: float, delay: float) -> float:
    out = max(at + delay, stage.state.get("last", 0.0))
    stage.state["last"] = out
    return out


def _latency(stage: _Stage, fault: Latency, at: float) -> float:
    jitter = stage.rng.uniform(-fault.jitter, fault.jitter) if fault.jitter else 0.0
    return _ordered_delay(stage, at, max(0.0, fault.delay + jitter))


def _bandwidth(
    stage: _Stage, fault: Bandwidth, items: list[tuple[float, bytes]]
) -> list[tuple[float, bytes]]:
    out = []
    quantum = max(1, int(fault.rate * _BANDWIDTH_QUANTUM))
    for at, data in items:
        for offset in range(0, len(data), quantum):
            piece = data[offset : offset + quantum]
            start = max(at, stage.state.get("free", 0.0))
            stage.state["free"] = start + len(piece) / fault.rate
            out.append((stage.state["free"], piece))
    return out


class StreamPlan(_Plan):
    """The faults on one direction of one stream connection."""

    transport = STREAM

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.passed = 0
        self.ended = False
        # The latest time any byte was scheduled for: later bytes never go before
        # it, even when the fault that delayed the earlier ones is removed.
        self.horizon = 0.0

    def timers(self) -> list[float]:
        """The times at which :meth:`due` has something to do."""
        times = []
        for stage in self.stages:
            fault = stage.fault
            if isinstance(fault, ResetPeer) and not stage.fired:
                times.append(self.started + fault.after)
            closing_at = fault.after if isinstance(fault, Timeout) else None
            if closing_at is not None and not stage.state.get("closed"):
                times.append(self.started + closing_at)
        return times

    def due(self, now: float) -> list[Action]:
        """Time-driven actions whose time has come (a reset, a timeout's close)."""
        actions = []
        for stage in self.stages:
            fault = stage.fault
            if (
                isinstance(fault, ResetPeer)
                and not stage.fired
                and now >= self.started + fault.after
            ):
                self._record(stage, now, "reset the connection")
                actions.append(Action(now, "reset"))
            elif (
                isinstance(fault, Timeout)
                and fault.after is not None
                and not stage.state.get("closed")
                and now >= self.started + fault.after
            ):
                stage.state["closed"] = True
                self._record(stage, now, f"closed the connection after {fault.after:g} s")
                actions.append(Action(now, "close"))
        return actions

    def data(self, now: float, data: bytes) -> list[Action]:
        """What becomes of ``data``, written at ``now``."""
        items = [(now, data)]
        extras: list[Action] = []
        for stage in self.stages:
            items, extra = self._through(stage, items)
            extras += extra
            if not items:
                break
        actions = []
        for at, piece in items:
            self.passed += len(piece)
            self.horizon = max(at, self.horizon)
            actions.append(Action(self.horizon, "data", piece))
        # A close decided by an earlier stage comes after the bytes it let through,
        # however much later stages delay them; at equal times data goes first.
        last = max((action.at for action in actions), default=now)
        extras = [Action(max(extra.at, last), extra.kind, extra.data) for extra in extras]
        return sorted(actions + extras, key=lambda action: action.at)

    def eof(self, now: float) -> list[Action]:
        """When the end of the stream, written at ``now``, reaches the receiver."""
        at = max(now, self.horizon)
        for stage in self.stages:
            fault = stage.fault
            if isinstance(fault, Timeout):
                return []  # Nothing flows any more, not even the end.
            if isinstance(fault, (Latency, Bandwidth, Slicer)):
                at = max(at, stage.state.get("last", 0.0), stage.state.get("free", 0.0))
            elif isinstance(fault, SlowClose):
                at += fault.delay
                self._record(stage, at, f"passed the close on {fault.delay:g} s late")
        self.ended = True
        return [Action(at, "eof")]

    def _through(
        self, stage: _Stage, items: list[tuple[float, bytes]]
    ) -> tuple[list[tuple[float, bytes]], list[Action]]:
        fault = stage.fault
        if isinstance(fault, Latency):
            out = [(_latency(stage, fault, at), data) for at, data in items]
            for (before, data), (after, _) in zip(items, out, strict=True):
                self._record(stage, before, f"delayed {len(data)} bytes by {after - before:.4f} s")
            return out, []
        if isinstance(fault, Bandwidth):
            out = _bandwidth(stage, fault, items)
            if out:
                self._record(
                    stage,
                    items[0][0],
                    f"paced {sum(len(d) for _, d in items)} bytes at {fault.rate:g} B/s",
                )
            return out, []
        if isinstance(fault, Slicer):
            return self._slice(stage, fault, items), []
        if isinstance(fault, LimitData):
            return self._limit(stage, fault, items)
        if isinstance(fault, Timeout):
            dropped = sum(len(data) for _, data in items)
            self._record(stage, items[0][0], f"held back {dropped} bytes (data stopped)")
            return [], []
        return items, []  # SlowClose and ResetPeer act on the end and on timers.

    def _slice(
        self, stage: _Stage, fault: Slicer, items: list[tuple[float, bytes]]
    ) -> list[tuple[float, bytes]]:
        out = []
        for at, data in items:
            cursor = max(at, stage.state.get("last", 0.0))
            offset = 0
            sizes = []
            while offset < len(data):
                size = fault.average_size + stage.rng.randint(
                    -fault.size_variation, fault.size_variation
                )
                size = max(1, size)
                out.append((cursor, data[offset : offset + size]))
                sizes.append(min(size, len(data) - offset))
                offset += size
                cursor += fault.delay
            stage.state["last"] = cursor - fault.delay if sizes else cursor
            self._record(stage, at, f"sliced {len(data)} bytes into {len(sizes)} writes")
        return out

    def _limit(
        self, stage: _Stage, fault: LimitData, items: list[tuple[float, bytes]]
    ) -> tuple[list[tuple[float, bytes]], list[Action]]:
        passed = stage.state.get("passed", 0)
        if stage.state.get("closed"):
            return [], []
        out = []
        for at, data in items:
            room = fault.nbytes - passed
            if len(data) < room:
                out.append((at, data))
                passed += len(data)
                continue
            out.append((at, data[:room]))
            passed += room
            stage.state["closed"] = True
            self._record(stage, at, f"closed the connection after {fault.nbytes} bytes")
            stage.state["passed"] = passed
            return out, [Action(at, "close")]
        stage.state["passed"] = passed
        return out, []


class DatagramPlan(_Plan):
    """The faults on one direction of one datagram flow (one peer)."""

    transport = DATAGRAM

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.index = 0

    def datagram(self, now: float, data: bytes) -> list[Action]:
        """What becomes of one datagram sent at ``now``: zero, one or more deliveries."""
        index = self.index
        self.index += 1
        items = [(now, data)]
        for stage in self.stages:
            items = self._through(stage, items, index)
            if not items:
                return [Action(now, "drop")]
        return sorted((Action(at, "data", piece) for at, piece in items), key=lambda a: a.at)

    def _through(
        self, stage: _Stage, items: list[tuple[float, bytes]], index: int
    ) -> list[tuple[float, bytes]]:
        effect = _DATAGRAM_EFFECTS.get(type(stage.fault))
        if effect is None:
            return items
        out: list[tuple[float, bytes]] = []
        for at, data in items:
            out += effect(self, stage, at, data, index)
        return out


_Timed = list[tuple[float, bytes]]


def _lose(plan: _Plan, stage: _Stage, at: float, data: bytes, index: int) -> _Timed:
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
        plan._record(stage, at, f"lost datagram {index} ({len(data)} bytes)")
        return []
    return [(at, data)]


def _duplicate(plan: _Plan, stage: _Stage, at: float, data: bytes, index: int) -> _Timed:
    fault = stage.fault
    assert isinstance(fault, Duplicate)
    if stage.rng.random() < fault.probability:
        plan._record(stage, at, f"duplicated datagram {index}")
        return [(at, data), (at, data)]
    return [(at, data)]


def _reorder(plan: _Plan, stage: _Stage, at: float, data: bytes, index: int) -> _Timed:
    fault = stage.fault
    assert isinstance(fault, Reorder)
    if stage.rng.random() < fault.probability:
        plan._record(stage, at, f"held datagram {index} back {fault.delay:g} s")
        return [(at + fault.delay, data)]
    return [(at, data)]


def _corrupt(plan: _Plan, stage: _Stage, at: float, data: bytes, index: int) -> _Timed:
    fault = stage.fault
    assert isinstance(fault, Corrupt)
    if not data or stage.rng.random() >= fault.probability:
        return [(at, data)]
    bit = stage.rng.randrange(len(data) * 8)
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    plan._record(stage, at, f"flipped bit {bit} of datagram {index}")
    return [(at, bytes(flipped))]


def _truncate(plan: _Plan, stage: _Stage, at: float, data: bytes, index: int) -> _Timed:
    fault = stage.fault
    assert isinstance(fault, Truncate)
    if len(data) > fault.max_size:
        plan._record(stage, at, f"cut datagram {index} from {len(data)} to {fault.max_size} bytes")
    return [(at, data[: fault.max_size])]


def _delay(plan: _Plan, stage: _Stage, at: float, data: bytes, index: int) -> _Timed:
    fault = stage.fault
    assert isinstance(fault, Latency)
    later = _latency(stage, fault, at)
    plan._record(stage, at, f"delayed datagram {index} by {later - at:.4f} s")
    return [(later, data)]


def _pace(plan: _Plan, stage: _Stage, at: float, data: bytes, index: int) -> _Timed:
    fault = stage.fault
    assert isinstance(fault, Bandwidth)
    start = max(at, stage.state.get("free", 0.0))
    stage.state["free"] = free = start + len(data) / fault.rate
    if free > at:
        plan._record(stage, at, f"paced datagram {index} to {free - at:.4f} s")
    return [(free, data)]


def _drop(plan: _Plan, stage: _Stage, at: float, data: bytes, index: int) -> _Timed:
    return []


_DATAGRAM_EFFECTS: dict[type[Fault], Any] = {
    Loss: _lose,
    Duplicate: _duplicate,
    Reorder: _reorder,
    Corrupt: _corrupt,
    Truncate: _truncate,
    Latency: _delay,
    Bandwidth: _pace,
    Down: _drop,
}


def summarize_unfired(
    faults: Sequence[Fault],
    usage: Sequence[tuple[str, bool]],
    units: int,
    unit: str,
    *,
    fired: Set[str] = frozenset(),
) -> list[str]:
    """The faults in ``faults`` that never fired, with why.

    A fault fired when it did something: it is in ``fired`` (a timeline's
    :attr:`Timeline.fired`, which also holds what no plan does, such as
    ``Down`` refusing connections) or a plan's ``usage`` says so. ``units`` is
    how many connections (or peers, or sockets) there were, named ``unit``.
    """
    planned: dict[str, int] = {}
    did_fire: set[str] = set(fired)
    for name, did in usage:
        planned[name] = planned.get(name, 0) + 1
        if did:
            did_fire.add(name)
    reports = []
    for fault in dict.fromkeys(faults):
        name = repr(fault)
        if name in did_fire:
            continue
        if name in planned:
            count = planned[name]
            reports.append(
                f"{name} never fired (planned on {count} {unit} "
                f"direction{'s' if count != 1 else ''})"
            )
        elif units == 0:
            reports.append(f"{name} never fired: no {unit} was made")
        else:
            reason = (
                f"{name} never fired: it applied to none of the {units} {unit}"
                f"{'s' if units != 1 else ''} (direction, toxicity)"
            )
            if 0.0 < fault.toxicity < 1.0:
                reason += (
                    f"; toxicity picks whole {unit}s, not bytes or messages, so "
                    f"toxicity={fault.toxicity:g} over {units} {unit}"
                    f"{'s' if units != 1 else ''} may pick none: use more {unit}s (e.g. "
                    f"connect-per-request clients) or a higher toxicity"
                )
            reports.append(reason)
    return reports
