"""ThreadingMixIn: one thread per request, each accounted for until it ends.

PYTEST_DONT_REWRITE: a drop-in for the stdlib module, left as written when
pytest loads the sockharness plugin.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["ThreadingMixIn"]


class _HandlerThreads:
    """The live, non-daemon handler threads that ``server_close()`` waits for.

    A thread leaves the set itself as it ends, so a long-running server does
    not accumulate finished threads. It behaves enough like a list (``len``,
    iteration, ``append``) for code written against the classic attribute.
    """

    __slots__ = ("_lock", "_threads")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: dict[threading.Thread, None] = {}

    def append(self, thread: threading.Thread) -> None:
        """Track ``thread`` unless it is a daemon thread."""
        if thread.daemon:
            return
        with self._lock:
            self._threads[thread] = None

    def discard(self, thread: threading.Thread) -> None:
        """Stop tracking ``thread``."""
        with self._lock:
            self._threads.pop(thread, None)

    def reap(self) -> None:
        """Forget threads that have ended."""
        with self._lock:
            for thread in [t for t in self._threads if not t.is_alive()]:
                del self._threads[thread]

    def pop_all(self) -> list[threading.Thread]:
        """Stop tracking every thread and return them."""
        with self._lock:
            threads = list(self._threads)
            self._threads.clear()
        return threads

    def join(self) -> None:
        """Wait until every tracked thread, including ones added meanwhile, has ended."""
        while threads := self.pop_all():
            for thread in threads:
                try:
                    thread.join()
                except RuntimeError:
                    pass  # Never started (interrupted start), or the calling thread itself.

    def __len__(self) -> int:
        return len(self._threads)

    def __iter__(self) -> Iterator[threading.Thread]:
        with self._lock:
            return iter(list(self._threads))

    def __repr__(self) -> str:
        return f"<handler threads: {len(self)} live>"


class _UntrackedThreads:
    """Stand-in for :class:`_HandlerThreads` when ``block_on_close`` is false."""

    __slots__ = ()

    def append(self, thread: threading.Thread) -> None:
        """Do not track ``thread``."""

    def discard(self, thread: threading.Thread) -> None:
        """Nothing is tracked."""

    def join(self) -> None:
        """Nothing to wait for."""

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[threading.Thread]:
        return iter(())


class _HandlerThread(threading.Thread):
    """A handler thread, named as threading names it (``Thread-3 (process_request_thread)``).

    It leaves the server's bookkeeping when it ends.
    """

    def __init__(
        self,
        server: ThreadingMixIn,
        tracked: _HandlerThreads | _UntrackedThreads,
        request: Any,
        client_address: Any,
    ) -> None:
        super().__init__(target=server.process_request_thread, args=(request, client_address))
        self._tracked = tracked

    def run(self) -> None:
        try:
            super().run()
        finally:
            self._tracked.discard(self)


class ThreadingMixIn:
    """Mix-in that handles each request in a new thread.

    Put it first in the bases: ``class Server(ThreadingMixIn, TCPServer)``.
    ``server_close()`` waits for every non-daemon handler thread to end
    unless ``block_on_close`` is false. Threads leave the server's
    bookkeeping as they end, so nothing accumulates over a long run.
    """

    #: Make handler threads daemon threads: the interpreter does not wait for
    #: them at exit, and ``server_close()`` does not wait for them either.
    daemon_threads: bool = False
    #: Make ``server_close()`` wait for the (non-daemon) handler threads.
    block_on_close: bool = True
    _threads: _HandlerThreads | _UntrackedThreads = _UntrackedThreads()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Handle one request in its thread: finish it, report errors, shut it down."""
        try:
            self.finish_request(request, client_address)  # type: ignore[attr-defined]
        except Exception:
            self.handle_error(request, client_address)  # type: ignore[attr-defined]
        finally:
            self.shutdown_request(request)  # type: ignore[attr-defined]

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start a thread that handles the request."""
        if self.block_on_close:
            vars(self).setdefault("_threads", _HandlerThreads())
        tracked = self._threads
        thread = _HandlerThread(self, tracked, request, client_address)
        thread.daemon = self.daemon_threads
        tracked.append(thread)
        try:
            thread.start()
        except Exception:
            # The thread could not start (RuntimeError, MemoryError): it never runs.
            # An asynchronous exception (Ctrl-C) may instead arrive after the thread
            # started; it then stays tracked, so server_close() still waits for it.
            tracked.discard(thread)
            raise

    def server_close(self) -> None:
        """Close the server, then wait for the handler threads (see ``block_on_close``)."""
        super().server_close()  # type: ignore[misc]
        self._threads.join()
