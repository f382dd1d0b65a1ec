"""How in-process faults spend the time they take: real sleeps a stop cuts short, or virtual time.

A faulty socket waits in its caller's thread while a fault holds data back.
Two things can shorten that wait:

- a **stop**: :meth:`FaultClock.cut_short` ends every wait of the sockets that
  share the clock at once, in this process and in every child forked from it
  (a server's clock is cut short as the server stops, so a handler asleep in a
  30 s latency does not hold the server's shutdown);
- **virtual time** (:data:`VirtualTime`): a socket keeps its own clock, which
  may run ahead of the wall clock by the time it skipped. Four levels, each
  skipping more than the one before:

  ``"off"``: real time throughout, for tests that measure wall time.

  ``"connect"`` (the default): a ``connect()`` of the harness's client that a
  fault makes certain to time out (``Blackhole``, an ``AcceptDelay`` past the
  client's timeout) raises at once. No connection exists and nothing reaches
  the server, so no other party can tell; only the caller's clock differs.

  ``"timeouts"``: also a receive certain to time out: the socket has a
  timeout, the faults hold back everything that could arrive until after it
  (data due later, a direction held for good by ``Timeout``, ``NoReply`` or
  ``Stall(None)``) and no fault timer falls due before it. The call raises
  :class:`TimeoutError` at once instead of after the timeout, and the
  timeline records the virtual time it stood for. The call's own outcome is
  the real-time one, but the application goes on sooner, so its peer sees
  what it does next sooner (a server that closes after its read timeout
  closes at once): opt-in, for tests whose peers do not race that timeout.

  ``"jump"``: also every other wait a fault imposes (a latency shorter than
  the timeout, a stall's release, a delayed close, a time-triggered reset):
  the socket's clock jumps to the moment the wait would end, and the peer
  gets the data sooner than the fault says, by the wall clock. Opt-in, for
  tests whose peers do not measure time.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading

from sockharness._core import (
    VIRTUAL_TIMES,
    VirtualTime,
    check_virtual_time,
    forks_held,
    keep_out_of_children,
)

__all__ = ["VIRTUAL_TIMES", "FaultClock", "VirtualTime", "check_virtual_time"]


class FaultClock:
    """The time policy of the faulty sockets that share it.

    ``virtual_time`` is ``"connect"`` (the default: a connect certain to time
    out does so at once), ``"timeouts"`` (every certain timeout at once),
    ``"jump"`` (every fault wait skipped) or ``"off"``. ``stoppable=True`` makes its
    waits interruptible by :meth:`cut_short`, in forked children too (it
    holds a socket pair until :meth:`close`).

    Example:
        >>> clock = FaultClock("connect", stoppable=True)
        >>> clock.sleep(0.0)
        True
        >>> clock.cut_short()
        >>> clock.sleep(30.0)  # At once: the clock was cut short.
        False
        >>> clock.close()
    """

    def __init__(self, virtual_time: VirtualTime = "connect", *, stoppable: bool = False) -> None:
        self.virtual_time: VirtualTime = check_virtual_time(virtual_time)
        self._stopped = threading.Event()
        self._pair: tuple[socket.socket, socket.socket] | None = None
        if stoppable:
            with forks_held():  # A child's copy of signalling would keep the waits going.
                waiting, signalling = socket.socketpair()
                keep_out_of_children(signalling)
            self._pair = (waiting, signalling)

    def __repr__(self) -> str:
        state = " cut short" if self.stopped else ""
        return f"<FaultClock virtual_time={self.virtual_time!r}{state}>"

    @property
    def stopped(self) -> bool:
        """Whether :meth:`cut_short` was called (in this process)."""
        return self._stopped.is_set()

    @property
    def skips_connects(self) -> bool:
        """Whether a connect certain to time out does so at once."""
        return self.virtual_time != "off"

    @property
    def skips_timeouts(self) -> bool:
        """Whether a receive certain to end in a timeout ends at once."""
        return self.virtual_time in ("timeouts", "jump")

    @property
    def jumps(self) -> bool:
        """Whether every fault wait is skipped."""
        return self.virtual_time == "jump"

    def sleep(self, delay: float) -> bool:
        """Sleep ``delay`` seconds of real time; ``False`` if cut short (or already)."""
        if self._stopped.is_set():
            return False
        if delay <= 0:
            return True
        if self._pair is None:
            return not self._stopped.wait(delay)
        with contextlib.suppress(OSError, ValueError):
            # Readable once the signalling end is closed: here or in the parent of a fork.
            readable, _, _ = select.select([self._pair[0]], [], [], delay)
            return not readable
        return False  # The clock was closed under the wait: a stop.

    def cut_short(self) -> None:
        """End every wait of this clock's sockets now, and every later one at once."""
        self._stopped.set()
        if self._pair is not None:
            self._pair[1].close()

    def close(self) -> None:
        """Cut short, and free the socket pair of a stoppable clock. Idempotent."""
        self.cut_short()
        if self._pair is not None:
            self._pair[0].close()


#: The clock of faulty sockets given none: never stopped, the default virtual time.
DEFAULT_CLOCK = FaultClock()
