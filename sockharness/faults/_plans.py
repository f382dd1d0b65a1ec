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
from collections.abc import Sequence, Set
from typing import Any

from sockharness._core import Direction

from ._effects import DATAGRAM_EFFECTS, STREAM_EFFECTS, SharedState, Stage, Timed, effect_of
from ._specs import DATAGRAM, STREAM, Fault
from ._timeline import Action, ActionKind, Event, Timeline
from .framers import Framing, resolve_framer

__all__ = [
    "DOWNSTREAM",
    "UPSTREAM",
    "Action",
    "ActionKind",
    "DatagramPlan",
    "Event",
    "SharedState",
    "StreamPlan",
    "Timeline",
    "generator",
    "picks",
    "summarize_unfired",
]

UPSTREAM: Direction = "upstream"
DOWNSTREAM: Direction = "downstream"


def generator(seed: int, *keys: Any) -> random.Random:
    """A generator seeded by ``seed`` and ``keys``: the same keys, the same draws, everywhere."""
    digest = hashlib.sha256(repr((seed, *keys)).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def picks(seed: int, connection: int, position: int, fault: Fault) -> bool:
    """Whether ``fault`` (at ``position`` in the list) applies to this connection.

    Its ``connections`` selector first (exact, by ordinal), then its
    ``toxicity`` (a seeded draw per connection).
    """
    selected = fault.selected
    if selected is not None and connection not in selected:
        return False
    if fault.toxicity >= 1.0:
        return True
    if fault.toxicity <= 0.0:
        return False
    return generator(seed, "pick", connection, position, repr(fault)).random() < fault.toxicity


class _Plan:
    """The stages of the faults that apply to one direction of one connection (or flow)."""

    transport: str
    effects: dict[type[Fault], Any]
    own_effect: str

    def __init__(
        self,
        faults: Sequence[Fault],
        *,
        seed: int,
        connection: int,
        direction: Direction,
        started: float,
        timeline: Timeline | None = None,
        shared: SharedState | None = None,
    ) -> None:
        self.seed = seed
        self.connection = connection
        self.direction = direction
        self.started = started
        self.timeline = timeline
        #: State the plans of one proxy (or one server's faults) share: a shared bandwidth.
        self.shared = shared if shared is not None else SharedState()
        self.stages: list[Stage] = []
        self.update(faults)

    def update(self, faults: Sequence[Fault]) -> None:
        """Use this fault list from now on; stages of faults still listed keep their state."""
        previous = {(stage.position, stage.fault): stage for stage in self.stages}
        stages = []
        for position, fault in enumerate(faults):
            if fault.proxy_only or effect_of(self.effects, fault, self.own_effect) is None:
                continue  # Not a fault of this transport, or one only the proxy applies.
            if not (
                fault.applies_upstream()
                if self.direction == UPSTREAM
                else fault.applies_downstream()
            ):
                continue
            if not picks(self.seed, self.connection, position, fault):
                continue
            stage = previous.get((position, fault)) or Stage(
                fault,
                position,
                generator(self.seed, self.connection, self.direction, position, repr(fault)),
            )
            stages.append(stage)
        self.stages = stages

    def _effect(self, stage: Stage) -> Any:
        return effect_of(self.effects, stage.fault, self.own_effect)

    def record(self, stage: Stage, at: float, effect: str) -> None:
        """What ``stage``'s fault did at ``at``: it fired, and the timeline says so."""
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


class StreamPlan(_Plan):
    """The faults on one direction of one stream connection."""

    transport = STREAM
    effects = STREAM_EFFECTS
    own_effect = "stream_effect"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.passed = 0
        self.ended = False
        #: A stage's timer was armed by data (a trigger): the transport should wake for it.
        self.rearm = False
        # The latest time any byte was scheduled for: later bytes never go before
        # it, even when the fault that delayed the earlier ones is removed.
        self.horizon = 0.0

    def timers(self) -> list[float]:
        """The times at which :meth:`due` has something to do."""
        times = []
        for stage in self.stages:
            when = self._effect(stage).timer(self, stage, self.started)
            if when is not None:
                times.append(when)
        return times

    def _holding(self) -> list[Stage]:
        return [
            stage
            for stage in self.stages
            if (not stage.fault.triggered or "armed_at" in stage.state)
            and self._effect(stage).holds(stage)
        ]

    def held_for_good(self) -> bool:
        """Whether a fault in force holds back everything that comes from now on (a
        ``Timeout``, ``NoReply``, ``Stall(None)`` that struck): nothing reaches the
        receiver but what a timer does."""
        return bool(self._holding())

    def held_to_timeout(self, at: float) -> None:
        """A receive timed out at ``at`` because the faults hold everything: they fired."""
        for stage in self._holding():
            self.record(stage, at, "held back everything until the receive timed out")

    def due(self, now: float) -> list[Action]:
        """Time-driven actions whose time has come (a reset, a timeout's close)."""
        actions = []
        for stage in self.stages:
            actions += self._effect(stage).due(self, stage, self.started, now)
        return actions

    def data(self, now: float, data: bytes) -> list[Action]:
        """What becomes of ``data``, written at ``now``."""
        items = [(now, data)]
        extras: list[Action] = []
        for stage in self.stages:
            fault = stage.fault
            if fault.after_bytes is not None and "armed_at" not in stage.state:
                items, extra = self._gated(stage, items)
            elif fault.framer is not None and not stage.state.get("latched"):
                items, extra = self._framed(stage, items)
            else:
                items, extra = self._effect(stage).data(self, stage, items)
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

    def _gated(self, stage: Stage, items: Timed) -> tuple[Timed, list[Action]]:
        """``items`` through a stage that waits for its trigger (``after_bytes``).

        The bytes before the trigger pass untouched; from the trigger on, the
        stage is armed (its time-triggered part counts from then) and its
        effect takes everything.
        """
        limit = stage.fault.after_bytes
        assert limit is not None
        out: Timed = []
        extras: list[Action] = []
        for index, (at, data) in enumerate(items):
            seen = stage.state.get("seen", 0)
            if seen + len(data) <= limit:
                stage.state["seen"] = seen + len(data)
                out.append((at, data))
                continue
            head, tail = data[: limit - seen], data[limit - seen :]
            stage.state["seen"] = limit
            stage.state["armed_at"] = at
            self.rearm = True  # Its timers (if any) count from now: wake for them.
            if head:
                out.append((at, head))
            more, extras = self._effect(stage).data(self, stage, [(at, tail), *items[index + 1 :]])
            return out + more, extras
        return out, extras

    def passes(self, data: bytes) -> bool:
        """Whether ``data`` passes every stage untouched, no trigger reached (then its bytes
        are counted, and the transport may send it on as it is).

        The fast way for faults that wait for a byte offset or a message that has
        not come: the transport skips the plan's timed machinery. When it says no,
        :meth:`data` takes the same bytes and finds the framing already done.
        """
        framed = []
        for stage in self.stages:
            fault = stage.fault
            if fault.after_bytes is not None and "armed_at" not in stage.state:
                if stage.state.get("seen", 0) + len(data) > fault.after_bytes:
                    return False
            elif fault.framer is not None and not stage.state.get("latched"):
                framed.append(stage)
            else:
                return False  # A fault that acts on every byte.
        for stage in framed:
            pieces = self._split(stage, data)
            stage.state["presplit"] = (data, pieces)
            if any(self._struck(stage, index) for index, _ in pieces):
                return False
        for stage in self.stages:
            stage.state.pop("presplit", None)
            if stage.fault.after_bytes is not None:
                stage.state["seen"] = stage.state.get("seen", 0) + len(data)
        self.passed += len(data)
        return True

    def _split(self, stage: Stage, data: bytes) -> list[tuple[int, bytes]]:
        framing = stage.state.get("framing")
        if framing is None:
            framing = stage.state["framing"] = Framing(resolve_framer(stage.fault.framer))
        presplit = stage.state.pop("presplit", None)
        if presplit is not None and presplit[0] is data:
            pieces: list[tuple[int, bytes]] = presplit[1]
            return pieces  # Split already, by passes().
        return framing.split(data)

    def _struck(self, stage: Stage, index: int) -> bool:
        fault = stage.fault
        if stage.state.get("latched"):
            return True
        if fault.after_messages is not None:
            return index >= fault.after_messages
        chosen = fault.selected_messages
        return chosen is not None and index in chosen

    def _framed(self, stage: Stage, items: Timed) -> tuple[Timed, list[Action]]:
        """``items`` through a stage that strikes by message (``messages``, ``after_messages``).

        A framer cuts the direction's bytes into messages; the pieces of the
        messages the fault strikes go through its effect, the others pass
        untouched. A fault that ends the flow (a reset, a timeout, a limit)
        takes everything from its first message on; ``after_messages`` too.
        """
        fault = stage.fault
        effect = self._effect(stage)
        out: Timed = []
        extras: list[Action] = []
        for at, data in items:
            for index, piece in self._split(stage, data):
                if not self._struck(stage, index):
                    out.append((at, piece))
                    continue
                if "armed_at" not in stage.state:
                    stage.state["armed_at"] = at
                    self.rearm = True  # Its timers (if any) count from now.
                if fault.after_messages is not None or effect.ends_flow:
                    stage.state["latched"] = True
                more, extra = effect.data(self, stage, [(at, piece)])
                out += more
                extras += extra
            framing = stage.state["framing"]
            if framing.failed is not None and not stage.state.get("framing_reported"):
                stage.state["framing_reported"] = True
                self.note(at, fault, f"{framing.failed}; the rest of the stream is one message")
        return out, extras

    def note(self, at: float, fault: Fault, text: str) -> None:
        """Put something about ``fault`` on the timeline that is not the fault firing."""
        if self.timeline is not None:
            self.timeline.add(
                Event(at - self.started, self.connection, self.direction, repr(fault), text),
                fired=False,
            )

    def eof(self, now: float) -> list[Action]:
        """When the end of the stream, written at ``now``, reaches the receiver."""
        at: float | None = max(now, self.horizon)
        for stage in self.stages:
            assert at is not None
            if stage.fault.triggered and "armed_at" not in stage.state:
                continue  # Never triggered: the end passes it untouched.
            at = self._effect(stage).eof(self, stage, at)
            if at is None:
                return []  # Held back (Timeout): nothing flows any more, not even the end.
        assert at is not None
        self.ended = True
        return [Action(at, "eof")]


class DatagramPlan(_Plan):
    """The faults on one direction of one datagram flow (one peer)."""

    transport = DATAGRAM
    effects = DATAGRAM_EFFECTS
    own_effect = "datagram_effect"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.index = 0

    def datagram(self, now: float, data: bytes) -> list[Action]:
        """What becomes of one datagram sent at ``now``: zero, one or more deliveries."""
        index = self.index
        self.index += 1
        items = [(now, data)]
        for stage in self.stages:
            effect = self._effect(stage)
            items = [out for at, piece in items for out in effect(self, stage, at, piece, index)]
            if not items:
                return [Action(now, "drop")]
        return sorted((Action(at, "data", piece) for at, piece in items), key=lambda a: a.at)


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
        elif fault.selected is not None and units <= fault.selected.first:
            reason = (
                f"{name} never fired: connections={fault.selected} starts at {unit} "
                f"{fault.selected.first} (ordinals count from 0), and only {units} {unit}"
                f"{'s were' if units != 1 else ' was'} made"
            )
            reports.append(reason)
            continue
        else:
            chosen_by = "direction, toxicity" + (", connections" if fault.selected else "")
            reason = (
                f"{name} never fired: it applied to none of the {units} {unit}"
                f"{'s' if units != 1 else ''} ({chosen_by})"
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
