"""A server's in-process faults: what each accepted connection gets, and the accept phase.

Loaded only for a server started with faults (see ``_harnessed``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

from sockharness.faults import (
    AcceptDelay,
    AcceptThenClose,
    AcceptThenReset,
    Event,
    Fault,
    FaultClock,
    NeverRead,
    Refuse,
    SharedState,
    Timeline,
    VirtualTime,
    connection_fate,
    wrap_socket,
)

from ._events import ServerEvents

__all__ = ["FaultSelector", "FaultyConnections", "ServerFaults"]

#: Chooses, when a connection is accepted, which of the server's faults it gets.
FaultSelector = Callable[[], Sequence[Fault]]


class _ConnectionPhase:
    """What a connection-phase fault does as a server accepts (in the process)."""

    timeline: Timeline
    held: list[socket.socket]
    clock: FaultClock
    born: float

    def _record(self, fault: Fault, connection: int, effect: str) -> None:
        """What ``fault`` did as ``connection`` was accepted, timed from the server's start."""
        at = time.monotonic() - self.born
        self.timeline.add(Event(at, connection, "both", repr(fault), effect))

    def _accept_with(self, fault: Fault, sock: socket.socket, connection: int) -> bool:
        """Carry out ``fault`` on an accepted ``sock``; whether the server still gets it."""
        if isinstance(fault, AcceptDelay):
            self._record(fault, connection, f"accepted the connection {fault.delay:g} s late")
            # The server's accept loop is late, as a busy server is (until the server stops).
            if self.clock.sleep(fault.delay):
                return True
            sock.close()
            return False
        if isinstance(fault, (Refuse, AcceptThenReset)):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            effect = "refused" if isinstance(fault, Refuse) else "reset"
            self._record(fault, connection, f"{effect} the connection as it was accepted")
            return False
        if isinstance(fault, AcceptThenClose):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            self.held.append(sock)  # Closed with the server (closing now could send an RST).
            self._record(fault, connection, "closed the connection as it was accepted")
            return False
        if isinstance(fault, NeverRead):
            self.held.append(sock)
            self._record(fault, connection, "accepted the connection and never read from it")
            return False
        raise AssertionError(f"not a fault of a server's accept: {fault!r}")

    def let_go(self) -> None:
        """Close the connections the faults held, and the clock."""
        self.clock.close()
        for sock in self.held:
            with contextlib.suppress(OSError):
                sock.close()
        self.held.clear()


class ServerFaults(_ConnectionPhase):
    """The in-process faults of one server: what, seeded how, and a counter of connections.

    ``select`` (the chaos runner's time windows) chooses which faults each
    accepted connection gets; without it every connection gets them all.
    Their waits pass on one stoppable :class:`FaultClock`, cut short as the
    server stops.
    """

    def __init__(
        self,
        faults: tuple[Fault, ...],
        seed: int,
        select: FaultSelector | None = None,
        *,
        virtual_time: VirtualTime = "connect",
    ) -> None:
        self.faults = faults
        self.seed = seed
        self.select = select
        self.virtual_time = virtual_time
        # Only a server with faults waits on them (and holds the clock's socket pair).
        self.clock = FaultClock(virtual_time, stoppable=bool(faults))
        self.born = time.monotonic()
        self.timeline = Timeline()
        self.shared = SharedState()  # What a Bandwidth(shared=True) shares: this server's link.
        self.held: list[socket.socket] = []
        self._count = itertools.count()
        self.wrapped = 0

    def wrap(self, sock: socket.socket) -> socket.socket | None:
        """``sock`` as a faulty socket (or as it is, when no fault applies to it); ``None``
        when a connection-phase fault took it (refused, closed, held)."""
        faults = self.faults if self.select is None else tuple(self.select())
        connection = next(self._count)
        if not faults:
            return sock
        fate = connection_fate(faults, self.seed, connection)
        if fate is not None and not self._accept_with(fate, sock, connection):
            return None
        self.wrapped += 1
        return wrap_socket(
            sock, faults, side="server", seed=self.seed, connection=connection,
            timeline=self.timeline, shared=self.shared, clock=self.clock,
        )  # fmt: skip


class FaultyConnections:
    """Wraps each accepted connection in a faulty socket; brings its fault reports home."""

    _sh_events: ServerEvents
    _sh_faults: ServerFaults
    _sh_owner: int

    def get_request(self) -> Any:
        request, client_address = super().get_request()  # type: ignore[misc]
        if isinstance(request, socket.socket):
            request = self._sh_faults.wrap(request)
            if request is None:
                # Taken by a connection-phase fault: no request (the loop goes on).
                raise ConnectionAbortedError("the connection was taken by a fault")
        return request, client_address

    def shutdown_request(self, request: Any) -> None:
        sock = request[1] if isinstance(request, tuple) else request
        usage = getattr(sock, "fault_usage", None)
        in_child = os.getpid() != self._sh_owner
        if usage is not None and (isinstance(request, socket.socket) or in_child):
            # A connection's faults (in a child, a datagram socket's copy too).
            self._sh_events.add_fault_usage(usage())
            if in_child and isinstance(request, socket.socket):
                # What the faults did in a forked child: back to the parent's timeline.
                connection = sock.fault_connection
                self._sh_events.add_fault_events(
                    [e for e in sock.fault_timeline.events if e.connection == connection]
                )
        super().shutdown_request(request)  # type: ignore[misc]
