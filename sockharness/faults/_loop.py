"""A small single-threaded event loop: readiness callbacks and timers, woken from other threads."""

from __future__ import annotations

import heapq
import itertools
import selectors
import threading
import time
from collections.abc import Callable
from typing import Any

from sockharness.server.support import WakeUpPair

__all__ = ["EventLoop"]

#: After a wait that ended in events, how long the loop polls before it waits again.
#: A relayed exchange's answer comes back within tens of microseconds, and on a
#: virtual machine a thread that blocked takes about as long again to be woken:
#: polling through that gap cut the proxy's added round trip by 13-24 us (to
#: socat's, which blocks in poll). The thread gives the GIL up in each poll, and
#: an idle proxy still blocks.
POLL_AFTER_WAKE = 0.0001


class EventLoop:
    """Runs callbacks when sockets are ready or when timers are due, in one thread.

    Other threads talk to it only through :meth:`call_soon`, which wakes it.
    """

    def __init__(self, name: str) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake = WakeUpPair()
        self._selector.register(self._wake.fileno(), selectors.EVENT_READ, None)
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._pending: list[Callable[[], None]] = []
        self._pending_lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    @staticmethod
    def now() -> float:
        return time.monotonic()

    # -- called from the loop's thread ---------------------------------------------------

    def watch(self, sock: Any, events: int, callback: Callable[[int], None]) -> None:
        """Call ``callback(events)`` when ``sock`` is ready for ``events`` (0: stop watching)."""
        try:
            key = self._selector.get_key(sock)
        except (KeyError, ValueError):
            key = None
        if events == 0:
            if key is not None:
                self._selector.unregister(sock)
            return
        if key is None:
            self._selector.register(sock, events, callback)
        elif key.events != events or key.data is not callback:
            self._selector.modify(sock, events, callback)

    def forget(self, sock: Any) -> None:
        """Stop watching ``sock`` (before closing it)."""
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass

    def at(self, when: float, callback: Callable[[], None]) -> None:
        """Call ``callback()`` at ``when`` (``time.monotonic()`` clock)."""
        heapq.heappush(self._timers, (when, next(self._counter), callback))

    # -- called from any thread ----------------------------------------------------------

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback()`` on the loop's thread, soon."""
        with self._pending_lock:
            self._pending.append(callback)
        self._wake.wake()

    def in_loop_thread(self) -> bool:
        """Whether the caller is the loop's own thread."""
        return threading.current_thread() is self._thread

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the loop and wait for its thread; whether it ended within ``timeout``."""
        self._stopping = True
        self._wake.wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive() or self._thread is threading.current_thread()

    def close(self) -> None:
        self._selector.close()
        self._wake.close()

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        polling_until = 0.0
        try:
            while not self._stopping:
                if time.monotonic() < polling_until:
                    ready = self._selector.select(0)
                else:
                    timeout = None
                    if self._timers:
                        timeout = max(0.0, self._timers[0][0] - time.monotonic())
                    ready = self._selector.select(timeout)
                    polling_until = time.monotonic() + POLL_AFTER_WAKE if ready else 0.0
                for key, events in ready:
                    if key.data is None:
                        self._wake.drain()
                    else:
                        key.data(events)
                self._run_pending()
                self._run_timers()
        except BaseException as exc:  # Kept for the owner to report.
            self.error = exc

    def _run_pending(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, []
        for callback in pending:
            callback()

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, callback = heapq.heappop(self._timers)
            callback()
