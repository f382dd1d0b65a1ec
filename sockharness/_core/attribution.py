"""What a server's handlers create: the threads they start and the sockets they open.

A leak check must blame a server for what *its handlers* left behind, never
for the test's own threads and sockets, which come and go beside it. So the
harness marks the thread that runs a handler (``finish_request()``, in a
handler thread or in the serving thread of a sync server) for the time the
handler runs, and two small hooks, installed once per process, note what is
made meanwhile:

- ``threading.Thread.start``: a thread started by a marked thread is the
  handler's, and so is every thread *it* starts later, at any depth;
- ``socket.socket.__init__``: a socket made by a marked thread, or by one of
  the handler's threads, is the handler's (``accept()``, ``socketpair()``,
  ``create_connection()`` and TLS sockets all pass through it).

The hooks only record; they change nothing of what they wrap. What forked
children make ends with them and is not followed. Threads the harness starts
for itself inside a handler (the delivery thread of in-process datagram
faults) are started under :func:`not_attributed`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import weakref
from collections.abc import Iterator
from typing import Any

__all__ = ["Creations", "handler_running", "install", "not_attributed"]

#: Threads or sockets kept per server before the ended or closed ones are forgotten.
_PRUNE_AT = 64


class Creations:
    """The threads and sockets one server's handlers made."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # Strong references: a socket a handler dropped without closing must
        # still be seen here (and closed by the harness), not left to the GC.
        self._sockets: list[socket.socket] = []

    def add_thread(self, thread: threading.Thread) -> None:
        with self._lock:
            if len(self._threads) >= _PRUNE_AT:
                self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)

    def add_socket(self, sock: socket.socket) -> None:
        with self._lock:
            if len(self._sockets) >= _PRUNE_AT:
                self._sockets = [s for s in self._sockets if s.fileno() != -1]
            self._sockets.append(sock)

    @property
    def threads(self) -> list[threading.Thread]:
        """The threads handlers started (some ended ones may be forgotten)."""
        with self._lock:
            return list(self._threads)

    def open_sockets(self) -> list[socket.socket]:
        """The sockets handlers made that are still open."""
        with self._lock:
            self._sockets = [s for s in self._sockets if s.fileno() != -1]
            return list(self._sockets)


_local = threading.local()
_thread_owners: weakref.WeakKeyDictionary[threading.Thread, Creations] = weakref.WeakKeyDictionary()
_install_lock = threading.Lock()
_installed = False


def _current() -> Creations | None:
    marked = getattr(_local, "creations", None)
    if marked is not None:
        return marked if marked is not _NOBODY else None
    return _thread_owners.get(threading.current_thread())


_NOBODY = Creations()  # The marker of not_attributed().


@contextlib.contextmanager
def handler_running(creations: Creations) -> Iterator[None]:
    """Within this block, what the calling thread starts and opens is ``creations``'."""
    previous = getattr(_local, "creations", None)
    _local.creations = creations
    try:
        yield
    finally:
        _local.creations = previous


@contextlib.contextmanager
def not_attributed() -> Iterator[None]:
    """Within this block, nothing the calling thread makes is a handler's (harness internals)."""
    previous = getattr(_local, "creations", None)
    _local.creations = _NOBODY
    try:
        yield
    finally:
        _local.creations = previous


def install() -> None:
    """Install the two recording hooks (once per process; later calls do nothing)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True
        original_start = threading.Thread.start
        original_init = socket.socket.__init__

        def start(self: threading.Thread) -> None:
            owner = _current()
            if owner is not None:
                _thread_owners[self] = owner
                owner.add_thread(self)
            original_start(self)

        def init(self: socket.socket, *args: Any, **kwargs: Any) -> None:
            original_init(self, *args, **kwargs)
            owner = _current()
            if owner is not None:
                owner.add_socket(self)

        start.__wrapped__ = original_start  # type: ignore[attr-defined]
        init.__wrapped__ = original_init  # type: ignore[attr-defined]
        threading.Thread.start = start  # type: ignore[method-assign]
        socket.socket.__init__ = init  # type: ignore[method-assign]
