"""ForkingMixIn: one child process per request, every child reaped.

Children are reaped by pid, one by one, so a server never collects a child
process that somebody else in the same program started (a blanket
``waitpid(-1)`` would). When ``max_children`` children are alive, the server
waits for one of its own to exit before it forks again, using a pidfd where
the platform has one and polling with a short back-off otherwise.

PYTEST_DONT_REWRITE: a drop-in for the stdlib module, left as written when
pytest loads the sockharness plugin.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import sys
import time
from collections.abc import Collection
from typing import Any

__all__ = ["ForkingMixIn"]

_POLL_BACKOFF_MIN = 0.001
_POLL_BACKOFF_MAX = 0.05


def _wait_until_one_exits(pids: Collection[int]) -> None:
    """Block until at least one of ``pids`` has exited (without reaping it)."""
    if not pids:
        return
    if hasattr(os, "pidfd_open") and _wait_with_pidfds(pids):
        return
    _wait_by_polling(pids)


def _wait_with_pidfds(pids: Collection[int]) -> bool:
    """Wait with pidfds; return False where pidfds are unavailable."""
    with contextlib.ExitStack() as stack, selectors.DefaultSelector() as selector:
        for pid in pids:
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                return True  # Already reaped by somebody: it has exited.
            except OSError:
                return False  # ENOSYS, EMFILE, ...: fall back to polling.
            stack.callback(os.close, pidfd)
            selector.register(pidfd, selectors.EVENT_READ)
        selector.select()
    return True


def _wait_by_polling(pids: Collection[int]) -> None:
    delay = _POLL_BACKOFF_MIN
    while True:
        for pid in pids:
            try:
                waited, _status = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)  # type: ignore[misc]
            except ChildProcessError:
                return
            except (AttributeError, OSError):
                return  # No waitid here: let the caller reap with waitpid.
            if waited is not None:
                return
        time.sleep(delay)
        delay = min(delay * 2, _POLL_BACKOFF_MAX)


def _flush_standard_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass


if hasattr(os, "fork"):

    class ForkingMixIn:
        """Mix-in that handles each request in a forked child process.

        Put it first in the bases: ``class Server(ForkingMixIn, TCPServer)``.
        At most ``max_children`` children run at once; exited children are
        reaped after every request and every ``poll_interval``;
        ``server_close()`` waits for all of them unless ``block_on_close`` is
        false. Only the server's own children are ever reaped.
        """

        #: ``handle_request()`` timeout; the server reaps children when it runs out.
        timeout: float | None = 300
        #: Pids of the live children (``None`` until the first fork).
        active_children: set[int] | None = None
        #: The most children alive at once.
        max_children: int = 40
        #: Make ``server_close()`` wait for every child.
        block_on_close: bool = True

        def collect_children(self, *, blocking: bool = False) -> None:
            """Reap children that have exited; with ``blocking``, wait for all of them.

            While ``max_children`` or more are alive, first waits for one to exit.
            """
            children = self.active_children
            if children is None:
                return
            while len(children) >= self.max_children:
                _wait_until_one_exits(children)
                before = len(children)
                self._reap(children, os.WNOHANG)
                if len(children) == before:
                    self._reap_one_blocking(children)
            self._reap(children, 0 if blocking else os.WNOHANG)

        @staticmethod
        def _reap(children: set[int], flags: int) -> None:
            for pid in list(children):
                try:
                    waited, _status = os.waitpid(pid, flags)
                except ChildProcessError:
                    children.discard(pid)  # Reaped elsewhere, or never ours.
                except OSError:
                    continue
                else:
                    if waited == pid:
                        children.discard(pid)

        @staticmethod
        def _reap_one_blocking(children: set[int]) -> None:
            pid = next(iter(children))
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            children.discard(pid)

        def handle_timeout(self) -> None:
            """Reap exited children when ``handle_request()`` timed out. May be extended."""
            self.collect_children()

        def service_actions(self) -> None:
            """Reap exited children; called by the ``serve_forever()`` loop."""
            self.collect_children()

        def process_request(self, request: Any, client_address: Any) -> None:
            """Fork a child that handles the request and exits.

            The child exits with status 0 when the handler succeeded and 1
            otherwise (after ``handle_error()`` for an ``Exception``); it never
            returns into the server's loop, whatever the handler raised.
            """
            self.collect_children()
            pid = os.fork()
            if pid:
                if self.active_children is None:
                    self.active_children = set()
                self.active_children.add(pid)
                self.close_request(request)  # type: ignore[attr-defined]
                return
            status = 1
            try:
                self.finish_request(request, client_address)  # type: ignore[attr-defined]
                status = 0
            except Exception:
                self.handle_error(request, client_address)  # type: ignore[attr-defined]
            finally:
                try:
                    self.shutdown_request(request)  # type: ignore[attr-defined]
                finally:
                    _flush_standard_streams()
                    os._exit(status)

        def server_close(self) -> None:
            """Close the server, then reap children (waiting for all if ``block_on_close``)."""
            super().server_close()  # type: ignore[misc]
            self.collect_children(blocking=self.block_on_close)
