"""The record of what faults did: events on a timeline, and the actions transports carry out."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Action", "ActionKind", "Event", "Timeline"]


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
        self._watchers: list[Callable[[Event], None]] = []

    def watch(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback`` with each event as it is recorded (from the recording thread)."""
        with self._lock:
            self._watchers.append(callback)

    @property
    def fired(self) -> set[str]:
        """Every fault (its repr) that did something, events past the limit included."""
        with self._lock:
            return set(self._fired)

    def add(self, event: Event, *, fired: bool = True) -> None:
        """Record ``event``; ``fired=False`` for a note that is not the fault doing something."""
        with self._lock:
            if fired:
                self._fired.add(event.fault)
            if len(self._events) < self._limit:
                self._events.append(event)
            else:
                self.dropped += 1
            watchers = list(self._watchers)
        for callback in watchers:
            callback(event)

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
ActionKind = Literal["data", "eof", "close", "reset", "reset_both", "drop"]


@dataclass(frozen=True)
class Action:
    """What a transport must do, at ``at`` (seconds on the plan's clock).

    ``kind`` is ``"data"`` (send ``data``), ``"eof"`` (end this direction:
    ``shutdown(SHUT_WR)``), ``"close"`` (close the whole connection),
    ``"reset"`` (reset it: the peer on ``direction``'s receiving side sees
    ``ConnectionResetError``), ``"reset_both"`` (reset both peers) or
    ``"drop"`` (nothing to deliver; for counters).
    """

    at: float
    kind: ActionKind
    data: bytes = b""
