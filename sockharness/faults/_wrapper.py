"""Faulty sockets: faults applied inside the process, to a real socket's sends and receives.

No proxy, no extra hop: the socket object itself is a :class:`socket.socket`
subclass that passes what it sends through the plan of its outgoing direction
and what it receives through the plan of its incoming direction, sleeping in
the caller's thread until each piece is due. Everything that reads and writes
through the socket (``makefile()``, ``sendall()``, ``StreamRequestHandler``)
sees the faults.

Datagrams that must arrive later than the send call returns (``Latency``,
``Reorder``, ``Bandwidth``) are handed to a small delivery thread, so later
datagrams can overtake a held-back one, as on a network.

Time-triggered faults (``ResetPeer(after)``, ``Timeout(after)``) strike when
the application next sends or receives, or while it waits to receive; only the
proxy strikes on time with an idle application.

Every wait a fault imposes goes through the socket's :class:`FaultClock`: a
stop cuts it short (the connection then ends, as when a proxy stops), and in
virtual time a receive certain to time out raises ``TimeoutError`` at once
(see :mod:`._clock`). A receive never waits past its socket's timeout for
data a fault holds back.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import math
import os
import select
import socket
import struct
import threading
import time
import warnings
from collections.abc import Sequence
from typing import Any, Literal, NoReturn

from sockharness._core import (
    ByteCounter,
    CountingSocket,
    HeldDatagramsWarning,
    UsageError,
    counter_of,
    not_attributed,
    wait_until_sent,
)

from ._clock import DEFAULT_CLOCK, FaultClock
from ._plans import (
    DOWNSTREAM,
    UPSTREAM,
    Action,
    ActionKind,
    DatagramPlan,
    Event,
    SharedState,
    StreamPlan,
    Timeline,
    generator,
    picks,
)
from ._specs import DATAGRAM, STREAM, CallFault, Fault, ResetPeer, SocketError, Timeout

__all__ = ["FaultyDatagramSocket", "FaultyStreamSocket", "wrap_socket"]

#: A faulty stream socket's connection: open, closed gracefully by a fault, or reset.
_State = Literal["open", "closed", "reset"]


def _directions(side: str) -> tuple[str, str]:
    """(outgoing, incoming) directions of a socket on ``side`` ("client" or "server")."""
    if side == "client":
        return UPSTREAM, DOWNSTREAM
    if side == "server":
        return DOWNSTREAM, UPSTREAM
    raise UsageError(f"side must be 'client' or 'server', got {side!r}")


class _Faulty:
    """What both faulty socket kinds carry: their faults, timeline and clock."""

    _sh_out: Any
    _sh_in: Any
    _sh_timeline: Timeline
    _sh_connection: int = 0
    _sh_faults: tuple[Fault, ...] = ()
    _sh_clock: FaultClock = DEFAULT_CLOCK
    #: Seconds of fault waits skipped in virtual time: this socket's clock is so far ahead.
    _sh_skipped: float = 0.0
    _sh_started: float = 0.0
    #: Whether nobody counts this socket's bytes (it was not counting before it was
    #: made faulty): then its plain calls are the socket's own, with no counting frame.
    _sh_uncounted: bool = False

    def _sh_now(self) -> float:
        """Now on this socket's clock (the wall clock plus the time it skipped)."""
        return time.monotonic() + self._sh_skipped

    @property
    def fault_clock(self) -> FaultClock:
        """The clock its faults wait on (its virtual-time policy, its stop)."""
        return self._sh_clock

    @property
    def virtual_time_skipped(self) -> float:
        """Seconds of fault waits this socket skipped in virtual time, all told."""
        return self._sh_skipped

    def _sh_note(self, text: str) -> None:
        """Put something the clock did on the timeline (not a fault firing)."""
        self._sh_timeline.add(
            Event(self._sh_now() - self._sh_started, self._sh_connection, "both", "clock", text),
            fired=False,
        )

    def _sh_timed_out(self, deadline: float, why: str) -> NoReturn:
        """The receive's deadline is certain to pass with nothing for it: time out, at once
        in virtual time (the clock jumps to the deadline and the timeline says so)."""
        if self.gettimeout() == 0:  # type: ignore[attr-defined]
            raise BlockingIOError(errno.EAGAIN, "no data yet: a fault holds it back")
        skipped = deadline - self._sh_now()
        if skipped > 0:
            self._sh_skipped += skipped
            self._sh_note(
                f"receive timed out at once in virtual time ({skipped:.4g} s skipped): {why}"
            )
        raise TimeoutError("timed out")

    @property
    def faults(self) -> tuple[Fault, ...]:
        """The faults this socket applies."""
        return self._sh_faults

    def fault_usage(self) -> list[tuple[str, bool]]:
        """``(fault, fired)`` for every fault planned on this socket."""
        calls = getattr(self, "_sh_calls", None)
        extra = calls.usage() if calls is not None else []
        return self._sh_out.usage() + self._sh_in.usage() + extra

    @property
    def fault_timeline(self) -> Timeline:
        """What the faults did on this socket."""
        return self._sh_timeline

    @property
    def fault_connection(self) -> int:
        """This connection's number among those of its side (seeds its faults' draws)."""
        return self._sh_connection


class _CallFaults:
    """The faults on one socket's own calls (:class:`CallFault`): short sends, small
    receives, errors at chosen calls; each decision seeded and on the timeline."""

    def __init__(
        self,
        faults: Sequence[Fault],
        *,
        seed: int,
        connection: int,
        directions: dict[str, str],
        timeline: Timeline,
        started: float,
    ) -> None:
        self.connection = connection
        self.directions = directions
        self.timeline = timeline
        self.started = started
        self.fired: dict[Fault, bool] = {}
        chosen: dict[str, list[CallFault]] = {"send": [], "recv": []}
        for position, fault in enumerate(faults):
            if not isinstance(fault, CallFault):
                continue
            method = fault.strikes()
            direction = directions[method]
            applies = (
                fault.applies_upstream() if direction == UPSTREAM else fault.applies_downstream()
            )
            if applies and picks(seed, connection, position, fault):
                chosen[method].append(fault)
                self.fired[fault] = False
        self.send = chosen["send"]
        self.recv = chosen["recv"]
        self.counts = {"send": 0, "recv": 0}
        self.rng = generator(seed, connection, "calls")
        #: The other faults leave this way alone: a call goes straight to the socket.
        self.plain_send = False
        self.plain_recv = False

    def usage(self) -> list[tuple[str, bool]]:
        return [(repr(fault), fired) for fault, fired in self.fired.items()]

    def _record(self, fault: Fault, method: str, effect: str) -> None:
        self.fired[fault] = True
        self.timeline.add(
            Event(
                time.monotonic() - self.started,
                self.connection,
                self.directions[method],
                repr(fault),
                effect,
            )
        )

    def call(self, method: str, size: int | None, nonblocking: bool) -> int:
        """One call of ``method`` asking for ``size`` bytes: raise, or say how many to take."""
        index = self.counts[method]
        self.counts[method] += 1
        for fault in self.send if method == "send" else self.recv:
            if isinstance(fault, SocketError):
                if index not in fault.calls:  # type: ignore[operator]
                    continue
                if fault.error == "EAGAIN" and not nonblocking:
                    continue  # Only a non-blocking socket can say "try again".
                self._record(fault, method, f"{method}() call {index} raised {fault.error}")
                raise fault.exception()
            if size is None or size <= 1:
                continue
            taken = min(size, self.rng.randint(1, fault.max_size))  # type: ignore[attr-defined]
            if taken < size:
                verb = "took" if method == "send" else "returned at most"
                self._record(fault, method, f"{method}() {verb} {taken} of {size} bytes")
                size = taken
        return size if size is not None else 0


class FaultyStreamSocket(CountingSocket, _Faulty):
    """A connected stream socket whose sends and receives go through fault plans.

    What each side sees matches the proxy's: a fault that closes the connection
    (``LimitData``, ``Timeout(after)``) ends it gracefully (the peer gets FIN;
    this socket's application reads the end of the stream and what it sends is
    discarded, as behind a proxy that drains the connection); ``ResetPeer``
    resets the side that receives its direction's data: the peer gets an RST
    (outgoing direction), this socket's application a ``ConnectionResetError``
    (incoming direction), or both.
    """

    def _sh_setup(
        self,
        faults: Sequence[Fault],
        *,
        seed: int,
        connection: int,
        side: str,
        timeline: Timeline,
        shared: SharedState | None = None,
        clock: FaultClock | None = None,
    ) -> None:
        self._sh_clock = clock if clock is not None else DEFAULT_CLOCK
        now = self._sh_started = self._sh_now()
        outgoing, incoming = _directions(side)
        self._sh_faults = tuple(faults)
        self._sh_timeline = timeline
        self._sh_connection = connection
        common = {
            "seed": seed,
            "connection": connection,
            "started": now,
            "timeline": timeline,
            "shared": shared,
        }
        self._sh_out = StreamPlan(faults, direction=outgoing, **common)
        self._sh_in = StreamPlan(faults, direction=incoming, **common)
        self._sh_pending: list[tuple[float, bytes]] = []  # Received, not yet due.
        self._sh_eof_at: float | None = None
        self._sh_state: _State = "open"
        self._sh_cut = False  # The clock was cut short: the connection ended there.
        #: A close or reset the incoming faults decided, and when: after the data before it.
        self._sh_end_at: tuple[float, ActionKind] | None = None
        self._sh_raw_eof = False  # The peer's end came, and the faults hold it back.
        self._sh_lock = threading.Lock()
        self._sh_calls = _CallFaults(
            faults,
            seed=seed,
            connection=connection,
            directions={"send": outgoing, "recv": incoming},
            timeline=timeline,
            started=now,
        )
        self._sh_decide_fast_paths()

    # -- time-triggered faults ---------------------------------------------------------------

    def _sh_timers(self) -> None:
        now = self._sh_now()
        outgoing = [action.kind for action in self._sh_out.due(now)]
        incoming = [action.kind for action in self._sh_in.due(now)]
        if "reset_both" in outgoing or "reset_both" in incoming:
            self._sh_reset(peer=True, here=True)
        if "reset" in outgoing or "reset" in incoming:
            self._sh_reset(peer="reset" in outgoing, here="reset" in incoming)
        if "close" in outgoing or "close" in incoming:
            self._sh_close()

    def _sh_next_timer(self) -> float | None:
        times = self._sh_out.timers() + self._sh_in.timers()
        return min(times) if times else None

    def _sh_end(self, kind: ActionKind, *, incoming: bool) -> None:
        """Carry out an action that ends the connection, from the plan of one direction."""
        if kind == "reset":
            self._sh_reset(peer=not incoming, here=incoming)
        elif kind == "reset_both":
            self._sh_reset(peer=True, here=True)
        elif kind == "close":
            self._sh_close()
        else:
            raise AssertionError(f"not an action that ends a connection: {kind!r}")

    def _sh_reset(self, *, peer: bool, here: bool) -> None:
        """Reset the peer (an RST), this socket's application (``ConnectionResetError``), or both.

        The side not reset sees a graceful close, as through the proxy.
        """
        if self._sh_state != "open":
            return
        self._sh_state = "reset" if here else "closed"
        if peer:
            wait_until_sent(self)  # The bytes sent before the reset reach the peer first.
            with contextlib.suppress(OSError):
                self.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # The connection is closed now (the RST goes out at once), and this
            # descriptor then stands for an unconnected socket, so that the
            # application's own calls (settimeout, fileno, close) still work.
            with contextlib.suppress(OSError), socket.socket(self.family, self.type) as stand_in:
                os.dup2(stand_in.fileno(), self.fileno(), inheritable=False)
        else:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self, socket.SHUT_RDWR)

    def _sh_close(self) -> None:
        """End the connection gracefully: FIN to the peer, the end of the stream here."""
        if self._sh_state != "open":
            return
        self._sh_state = "closed"
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self, socket.SHUT_RDWR)

    def _sh_check(self) -> None:
        if self._sh_state == "reset":
            raise ConnectionResetError(104, "Connection reset by a ResetPeer fault")

    def _sh_wait(self, when: float | None) -> None:
        """Wait until ``when`` on this socket's clock (``None``: until a stop), as a fault
        says: in real time, skipped (``"jump"``), or cut short by a stop, which ends the
        connection as a stopping proxy would (what is held back is not delivered)."""
        if when is not None:
            delay = when - self._sh_now()
            if delay <= 0:
                return
            if self._sh_clock.jumps:
                self._sh_skipped += delay
                return
        if not self._sh_clock.sleep(math.inf if when is None else delay):
            self._sh_cut_short()

    def _sh_cut_short(self) -> None:
        if self._sh_cut:
            return
        self._sh_cut = True
        if self._sh_state == "open":
            self._sh_note("a fault's wait was cut short (its clock stopped): the connection ends")
            self._sh_close()

    def _sh_wait_for(self, when: float | None, deadline: float | None, why: str) -> None:
        """Inside a receive, wait until ``when`` (``None``: for good) or the next fault
        timer, whichever is first, then return for the caller to look again; if neither
        comes before ``deadline``, the receive times out (at once in virtual time)."""
        wake = self._sh_next_timer()
        limits = [t for t in (when, wake) if t is not None]
        target = min(limits) if limits else None
        if deadline is not None and (target is None or target > deadline):
            if self._sh_clock.skips_timeouts or self.gettimeout() == 0:
                self._sh_timed_out(deadline, why)
            self._sh_wait(deadline)
            if not self._sh_cut:
                raise TimeoutError("timed out")
            return
        self._sh_wait(target)

    # -- sending -------------------------------------------------------------------------------

    def _sh_send(self, data: Any) -> int:
        self._sh_timers()
        self._sh_check()
        view = bytes(data)
        if self._sh_state == "closed":
            return len(view)  # The connection was closed by a fault: discarded, as by a proxy.
        for action in self._sh_out.data(self._sh_now(), view):
            self._sh_wait(action.at)
            self._sh_timers()
            self._sh_check()
            if self._sh_state == "closed":
                break
            if action.kind == "data":
                CountingSocket.sendall(self, action.data)
            elif action.kind in ("close", "reset", "reset_both"):
                self._sh_end(action.kind, incoming=False)
                self._sh_check()
        return len(view)

    def _sh_decide_fast_paths(self) -> None:
        """A direction with no fault (and no timer anywhere) takes plain socket calls.

        The faults of a wrapped socket never change, so this is decided once.
        """
        no_timers = not any(
            isinstance(stage.fault, (ResetPeer, Timeout))
            for plan in (self._sh_out, self._sh_in)
            for stage in plan.stages
        )
        self._sh_calls.plain_send = no_timers and not self._sh_out.stages
        self._sh_calls.plain_recv = no_timers and not self._sh_in.stages
        self._sh_fast_send = self._sh_calls.plain_send and not self._sh_calls.send
        self._sh_fast_recv = self._sh_calls.plain_recv and not self._sh_calls.recv
        # Bind the plain (counting) methods on the instance: no fault machinery
        # between the caller and the system call, so a fault that applies to
        # nothing costs next to nothing.
        # (Explicit close() ends the reference cycle this makes, as for any socket.)
        plain = socket.socket if self._sh_uncounted else CountingSocket
        if self._sh_fast_send:
            self.send = plain.send.__get__(self)  # type: ignore[method-assign]
            self.sendall = plain.sendall.__get__(self)  # type: ignore[method-assign]
        if self._sh_fast_recv:
            self.recv = plain.recv.__get__(self)  # type: ignore[method-assign]
            self.recv_into = plain.recv_into.__get__(self)  # type: ignore[method-assign]

    def send(self, data: Any, flags: int = 0) -> int:
        if self._sh_fast_send:
            return CountingSocket.send(self, data, flags)
        view = memoryview(data).cast("B")
        size = self._sh_calls.call("send", len(view), self.gettimeout() == 0)
        if self._sh_calls.plain_send:
            return CountingSocket.send(self, view[:size], flags)
        return self._sh_send(view[:size])

    def sendall(self, data: Any, flags: int = 0) -> None:
        if self._sh_fast_send:
            CountingSocket.sendall(self, data, flags)
            return
        self._sh_calls.call("send", None, self.gettimeout() == 0)  # Errors; never short.
        if self._sh_calls.plain_send:
            CountingSocket.sendall(self, data, flags)
            return
        self._sh_send(data)

    def shutdown(self, how: int) -> None:
        self._sh_check()
        if how in (socket.SHUT_WR, socket.SHUT_RDWR) and self._sh_state == "open":
            for action in self._sh_out.eof(self._sh_now()):
                self._sh_wait(action.at)
        with contextlib.suppress(OSError) if self._sh_state != "open" else contextlib.nullcontext():
            socket.socket.shutdown(self, how)

    # -- receiving -----------------------------------------------------------------------------

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self._sh_fast_recv:
            return CountingSocket.recv(self, bufsize, flags)
        bufsize = self._sh_calls.call("recv", bufsize, self.gettimeout() == 0)
        if self._sh_calls.plain_recv:
            return CountingSocket.recv(self, bufsize, flags)
        return self._sh_recv(bufsize)

    def _sh_recv(self, bufsize: int) -> bytes:
        # One deadline for the whole call, however many raw reads the faults swallow.
        timeout = self.gettimeout()
        deadline = None if timeout is None else self._sh_now() + timeout
        while True:
            self._sh_timers()
            self._sh_check()
            if self._sh_cut:
                return b""  # A stop ended the connection: what is held back stays so.
            now = self._sh_now()
            end = self._sh_end_at
            if end is not None and (not self._sh_pending or self._sh_pending[0][0] > end[0]):
                if end[0] > now:
                    why = f"the connection's end is {end[0] - now:.4g} s away"
                    self._sh_wait_for(end[0], deadline, why)
                    continue
                self._sh_end_at = None
                self._sh_end(end[1], incoming=True)
                continue
            if self._sh_pending:
                at, data = self._sh_pending[0]
                if at > now:
                    why = f"the next {len(data)} bytes are held back {at - now:.4g} s more"
                    self._sh_wait_for(at, deadline, why)
                    continue
                piece, rest = data[:bufsize], data[bufsize:]
                if rest:
                    self._sh_pending[0] = (at, rest)
                else:
                    self._sh_pending.pop(0)
                return piece
            if self._sh_eof_at is not None or self._sh_state == "closed":
                if self._sh_eof_at is not None and self._sh_eof_at > now:
                    why = f"the end of the stream is held back {self._sh_eof_at - now:.4g} s more"
                    self._sh_wait_for(self._sh_eof_at, deadline, why)
                    continue
                return b""
            if self._sh_raw_eof or self._sh_in.held_for_good():
                self._sh_wait_held(max(bufsize, 65536), deadline)
                continue
            raw = self._sh_receive_raw(max(bufsize, 65536), deadline)
            if raw is not None:
                self._sh_take(raw)

    def _sh_wait_held(self, size: int, deadline: float | None) -> None:
        """Wait while the incoming faults hold everything (until a timer, or the timeout)."""
        self._sh_swallow(size)
        try:
            self._sh_wait_for(None, deadline, "the faults hold back everything")
        except TimeoutError:
            # The timeout is the holding faults' doing, whether or not bytes came.
            self._sh_in.held_to_timeout(self._sh_now())
            raise

    def _sh_take(self, raw: bytes) -> None:
        """Feed what the kernel gave (``b""``: the peer's end) to the incoming plan."""
        now = self._sh_now()
        if not raw:
            self._sh_raw_eof = True
        for action in self._sh_in.data(now, raw) if raw else self._sh_in.eof(now):
            if action.kind == "data":
                self._sh_pending.append((action.at, action.data))
            elif action.kind == "eof":
                self._sh_eof_at = action.at
            elif action.kind in ("close", "reset", "reset_both") and self._sh_end_at is None:
                self._sh_end_at = (action.at, action.kind)

    def _sh_swallow(self, size: int) -> None:
        """Feed what the kernel holds now to the incoming plan, without waiting: a fault
        holds everything, and the timeline says what it held."""
        while not self._sh_raw_eof and self._sh_state == "open":
            # (select first: a socket with a timeout waits in recv() even with MSG_DONTWAIT.)
            readable, _, _ = select.select([self], [], [], 0)
            if not readable:
                return
            self._sh_take(CountingSocket.recv(self, size, socket.MSG_DONTWAIT))

    def _sh_receive_raw(self, size: int, deadline: float | None) -> bytes | None:
        """One real recv(), waiting no longer than ``deadline`` or the next fault timer
        (``None``: a timer fell due or the connection ended; look again)."""
        wake = self._sh_next_timer()
        limits = [t for t in (deadline, wake) if t is not None]
        wait = None if not limits else max(0.0, min(limits) - self._sh_now())
        readable, _, _ = select.select([self], [], [], wait)
        if readable:
            return CountingSocket.recv(self, size, socket.MSG_DONTWAIT)
        self._sh_timers()
        self._sh_check()
        if self._sh_state == "closed" or (wake is not None and self._sh_now() >= wake):
            return None
        if deadline is not None and self._sh_now() >= deadline:
            if self.gettimeout() == 0:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            raise TimeoutError("timed out")
        return None

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        if self._sh_fast_recv:
            return CountingSocket.recv_into(self, buffer, nbytes, flags)
        view = memoryview(buffer).cast("B")
        size = self._sh_calls.call("recv", nbytes or len(view), self.gettimeout() == 0)
        data = CountingSocket.recv(self, size) if self._sh_calls.plain_recv else self._sh_recv(size)
        view[: len(data)] = data
        return len(data)


class _Deliverer:
    """One thread that sends datagrams when they fall due, in time order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, object, Any]] = []
        self._counter = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def at(self, when: float, send: Any, owner: object) -> None:
        with self._changed:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="sockharness datagrams", daemon=True
                )
                with not_attributed():  # The harness's, even when a handler's send starts it.
                    self._thread.start()
            heapq.heappush(self._heap, (when, next(self._counter), owner, send))
            self._changed.notify()

    def cancel(self, owner: object) -> int:
        """Forget the datagrams ``owner`` still has waiting; how many there were."""
        with self._changed:
            kept = [entry for entry in self._heap if entry[2] is not owner]
            dropped = len(self._heap) - len(kept)
            heapq.heapify(kept)
            self._heap = kept
            self._changed.notify()  # The thread ends if nothing is left.
        return dropped

    def _run(self) -> None:
        while True:
            with self._changed:
                if not self._heap:
                    self._thread = None  # Nothing left: end; the next datagram starts another.
                    return
                when, _, _, send = self._heap[0]
                delay = when - time.monotonic()
                if delay > 0:
                    self._changed.wait(delay)
                    continue
                heapq.heappop(self._heap)
            with contextlib.suppress(OSError):
                send()


_DELIVERER = _Deliverer()
#: How long closing a faulty datagram socket waits for the datagrams still held back.
HELD_DATAGRAMS_WAIT = 10.0


class FaultyDatagramSocket(CountingSocket, _Faulty):
    """A datagram socket whose sends (and receives) go through fault plans, per peer."""

    def _sh_setup(
        self,
        faults: Sequence[Fault],
        *,
        seed: int,
        connection: int,
        side: str,
        timeline: Timeline,
        shared: SharedState | None = None,
        clock: FaultClock | None = None,
    ) -> None:
        self._sh_clock = clock if clock is not None else DEFAULT_CLOCK
        self._sh_started = self._sh_now()
        self._sh_faults = tuple(faults)
        self._sh_seed = seed
        self._sh_base = connection
        self._sh_connection = connection
        self._sh_side = side
        self._sh_timeline = timeline
        self._sh_shared = shared
        self._sh_plans: dict[Any, tuple[DatagramPlan, DatagramPlan]] = {}
        self._sh_plan_lock = threading.Lock()
        self._sh_in_flight = 0
        #: Datagrams received whose faults deliver them after the receive that got them
        #: timed out: (when, datagram, peer), for the next receive.
        self._sh_held: list[tuple[float, bytes, Any]] = []

    def _sh_plans_for(self, peer: Any) -> tuple[DatagramPlan, DatagramPlan]:
        key = peer if peer else None
        with self._sh_plan_lock:
            plans = self._sh_plans.get(key)
            if plans is None:
                outgoing, incoming = _directions(self._sh_side)
                common = {
                    "seed": self._sh_seed,
                    "connection": self._sh_base + len(self._sh_plans),
                    "started": self._sh_now(),
                    "timeline": self._sh_timeline,
                    "shared": self._sh_shared,
                }
                plans = (
                    DatagramPlan(self._sh_faults, direction=outgoing, **common),
                    DatagramPlan(self._sh_faults, direction=incoming, **common),
                )
                self._sh_plans[key] = plans
            return plans

    def fault_usage(self) -> list[tuple[str, bool]]:
        with self._sh_plan_lock:
            plans = [plan for pair in self._sh_plans.values() for plan in pair]
        return [entry for plan in plans for entry in plan.usage()]

    def _sh_deliver(self, actions: list[Action], send: Any) -> None:
        now = self._sh_now()
        for action in actions:
            if action.kind != "data":
                continue
            if action.at <= now:
                send(action.data)
            else:
                with self._sh_plan_lock:
                    self._sh_in_flight += 1

                def deliver(data: bytes = action.data) -> None:
                    try:
                        send(data)
                    finally:
                        with self._sh_plan_lock:
                            self._sh_in_flight -= 1

                if self._sh_clock.jumps:
                    self._sh_skipped += action.at - now
                    deliver()
                else:  # The deliverer counts on the wall clock.
                    _DELIVERER.at(action.at - self._sh_skipped, deliver, self)

    def close(self) -> None:
        """Close, once the datagrams held back by faults have gone out (as the kernel would).

        Waits at most ``HELD_DATAGRAMS_WAIT`` seconds; what is still held back
        then is dropped, with a :class:`~sockharness.HeldDatagramsWarning`.
        """
        deadline = time.monotonic() + HELD_DATAGRAMS_WAIT
        while True:
            with self._sh_plan_lock:
                held = self._sh_in_flight
            if held <= 0 or time.monotonic() >= deadline:
                break
            time.sleep(0.001)
        if held > 0:
            held = _DELIVERER.cancel(self)
        super().close()
        if held > 0:
            warnings.warn(
                HeldDatagramsWarning(
                    f"closed a faulty datagram socket with {held} datagram(s) its faults still "
                    f"held back after {HELD_DATAGRAMS_WAIT:g} s; they are dropped"
                ),
                stacklevel=2,
            )

    def sendto(self, data: Any, *args: Any) -> int:
        address = args[-1]
        flags = args[0] if len(args) == 2 else 0
        payload = bytes(data)
        out_plan, _ = self._sh_plans_for(address)
        self._sh_deliver(
            out_plan.datagram(self._sh_now(), payload),
            lambda piece: CountingSocket.sendto(self, piece, flags, address),
        )
        return len(payload)

    def send(self, data: Any, flags: int = 0) -> int:
        payload = bytes(data)
        out_plan, _ = self._sh_plans_for(self.getpeername())
        self._sh_deliver(
            out_plan.datagram(self._sh_now(), payload),
            lambda piece: CountingSocket.send(self, piece, flags),
        )
        return len(payload)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        timeout = self.gettimeout()
        deadline = None if timeout is None else self._sh_now() + timeout
        while True:
            if self._sh_held:
                return self._sh_held_datagram(bufsize, deadline)
            if deadline is not None:
                CountingSocket.settimeout(self, max(0.0, deadline - self._sh_now()))
            try:
                data, peer = CountingSocket.recvfrom(self, bufsize, flags)
            finally:
                if deadline is not None:
                    CountingSocket.settimeout(self, timeout)
            _, in_plan = self._sh_plans_for(peer)
            for action in in_plan.datagram(self._sh_now(), data):
                if action.kind == "data":
                    self._sh_held.append((action.at, action.data, peer))
                    self._sh_held.sort(key=lambda held: held[0])
            if self._sh_held:
                continue
            if self._sh_side == "server":
                # A server's loop reads one datagram per wake-up: tell it there was
                # nothing (it ignores an OSError from get_request()) rather than block.
                raise BlockingIOError(11, "the datagram was lost to a fault")
            # A client waits for the next one, as the application would.

    def _sh_held_datagram(self, bufsize: int, deadline: float | None) -> tuple[bytes, Any]:
        """The first datagram a fault held back, once it is due, within ``deadline``."""
        at, data, peer = self._sh_held[0]
        if deadline is not None and at > deadline:
            certain = self._sh_clock.skips_timeouts and self._sh_side == "client"
            if certain or self.gettimeout() == 0:
                # (Later datagrams could only come sooner by overtaking, as a Reorder does.)
                self._sh_timed_out(deadline, "the next datagram is held back past the timeout")
            if not self._sh_clock.sleep(deadline - self._sh_now()):
                raise TimeoutError("timed out (the faults' clock was stopped)")
            raise TimeoutError("timed out")
        delay = at - self._sh_now()
        if delay > 0 and self._sh_clock.jumps:
            self._sh_skipped += delay
        elif delay > 0 and not self._sh_clock.sleep(delay):
            raise TimeoutError("timed out (the faults' clock was stopped)")
        self._sh_held.pop(0)
        return data[:bufsize], peer

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return self.recvfrom(bufsize, flags)[0]


def wrap_socket(
    sock: socket.socket,
    faults: Sequence[Fault],
    *,
    side: str,
    seed: int = 0,
    connection: int = 0,
    timeline: Timeline | None = None,
    shared: SharedState | None = None,
    clock: FaultClock | None = None,
) -> socket.socket:
    """Turn ``sock`` into a faulty socket (taking over its descriptor; ``sock`` is detached).

    ``side`` is ``"client"`` (sends go upstream) or ``"server"`` (sends go
    downstream). Faults that need a proxy (``Down``) or mean nothing on the
    socket's transport are refused. Sockets given the same ``shared`` share a
    ``Bandwidth(shared=True)``'s budget. ``clock`` (a :class:`FaultClock`)
    says how the faults' waits pass: by default in real time but for a
    stop, which cuts them short (see :class:`FaultClock` for virtual time).
    """
    transport = STREAM if sock.type == socket.SOCK_STREAM else DATAGRAM
    for fault in faults:
        if fault.proxy_only:
            raise UsageError(f"{fault!r} concerns whole connections: use a FaultProxy for it")
        if transport not in fault.transports:
            raise UsageError(f"{fault!r} is not a {transport} fault")
    cls = FaultyStreamSocket if transport == STREAM else FaultyDatagramSocket
    timeout = sock.gettimeout()
    counter = counter_of(sock)
    wrapped = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
    wrapped.settimeout(timeout)
    # Counting on from where ``sock`` was; a socket nobody counted gets a counter of its own
    # for the fault machinery's calls, and its plain calls go uncounted.
    wrapped.sockharness_bytes = counter if counter is not None else ByteCounter()
    wrapped._sh_uncounted = counter is None
    wrapped._sh_setup(
        faults,
        seed=seed,
        connection=connection,
        side=side,
        timeline=timeline if timeline is not None else Timeline(),
        shared=shared,
        clock=clock,
    )
    return wrapped
