"""BaseServer: the request loop, its shutdown, and one request's path through the server.

Theory of operation
===================

A server has two ways of taking requests. ``handle_request()`` waits (up to a
timeout) for one request and handles it. ``serve_forever()`` loops: it waits
for the listening descriptor to become readable, handles one request, calls
``service_actions()``, and goes round again until asked to stop.

Stopping the loop
-----------------

``shutdown()`` is called from another thread. It sets a stop flag and then
waits on the *shut-down event*, which ``serve_forever()`` sets as it returns.
The classic implementation only looks at the flag when its ``select()`` times
out, so a shutdown waits out up to ``poll_interval`` (half a second by
default). Here the serving loop also watches a *wake-up pair* (a connected
socket pair, see ``_wakeup.py``) and ``shutdown()`` writes one byte into it, so
the loop sees the flag at once. ``poll_interval`` keeps its documented meaning:
``service_actions()`` still runs at least that often.

The wake-up pair belongs to one run of ``serve_forever()``: it is created when
the loop starts and closed when it returns. A pair created in ``__init__`` would
leak wherever a subclass's ``server_close()`` does not call ours, or code only
closes ``server.socket``; a pair tied to the loop cannot.

Three races are closed by one lock (``__state``) that guards the flag, the
current wake-up pair and the identity of the serving thread:

* ``shutdown()`` before the loop starts. The flag is set with no pair to
  write to; the loop checks the flag before its first ``select()``, returns at
  once and sets the event, so the shutdown is not lost and does not hang.
* ``shutdown()`` while the loop returns. The loop clears the pair under the
  lock before closing it, so ``shutdown()`` never writes to a closed socket.
* ``shutdown()`` from inside a handler running on the serving thread (a sync
  server). Waiting there would wait for ourselves; the classic implementation
  deadlocks. Here the flag is set and ``shutdown()`` returns; the loop stops as
  soon as the handler returns.

When the loop returns the flag is cleared, so the same server can serve again.

One request
-----------

``_handle_request_noblock()`` is the path every request takes, from both
loops: ``get_request()`` (an ``OSError`` here means the client went away and
is ignored), ``verify_request()``, then ``process_request()``. An
``Exception`` from processing goes to ``handle_error()``; any other exception
(``SystemExit``, ``KeyboardInterrupt``) propagates. In every case the request
is shut down exactly once with ``shutdown_request()``: by ``process_request()``
on success, or here on refusal and on error.

PYTEST_DONT_REWRITE: a drop-in for the stdlib module, left as written when
pytest loads the sockharness plugin.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any, TypeVar

from ._readiness import ReadWaiter, to_milliseconds
from ._wakeup import WakeUpPair

__all__ = ["BaseServer"]

_Server = TypeVar("_Server", bound="BaseServer")


class BaseServer:
    """Base class of every server: the request loop and its lifecycle.

    Subclasses provide the socket: ``fileno()``, ``get_request()``,
    ``server_close()`` and friends (see :class:`TCPServer`). A server is
    created with the address to serve and the request handler class that is
    instantiated once per request.

    Methods meant to be called: ``serve_forever()``, ``shutdown()``,
    ``handle_request()``, ``fileno()`` and ``server_close()``. Methods meant
    to be overridden: ``server_bind()``, ``server_activate()``,
    ``get_request()``, ``verify_request()``, ``process_request()``,
    ``finish_request()``, ``shutdown_request()``, ``close_request()``,
    ``handle_error()``, ``handle_timeout()`` and ``service_actions()``.

    Example:
        >>> import threading
        >>> from sockharness.server import TCPServer, StreamRequestHandler
        >>> class Echo(StreamRequestHandler):
        ...     def handle(self):
        ...         self.wfile.write(self.rfile.readline())
        >>> with TCPServer(("127.0.0.1", 0), Echo) as server:
        ...     thread = threading.Thread(target=server.serve_forever)
        ...     thread.start()
        ...     server.shutdown()  # returns at once, not after poll_interval
        ...     thread.join()
    """

    #: Seconds ``handle_request()`` waits for a request before calling
    #: ``handle_timeout()``; ``None`` waits forever. ``serve_forever()``
    #: ignores it.
    timeout: float | None = None

    def __init__(self, server_address: Any, RequestHandlerClass: Any) -> None:
        """Remember the address and handler class. May be extended, do not override."""
        self.server_address = server_address
        self.RequestHandlerClass = RequestHandlerClass
        self.__is_shut_down = threading.Event()
        self.__shutdown_request = False
        self.__state = threading.Lock()
        self.__wake_up: WakeUpPair | None = None
        self.__serving_thread: int | None = None

    # -- lifecycle -----------------------------------------------------------

    def server_activate(self) -> None:
        """Called by the constructor to activate the server. May be overridden."""

    def serve_forever(self, poll_interval: float | None = 0.5) -> None:
        """Handle one request at a time until :meth:`shutdown` is called.

        ``service_actions()`` runs after every request and at least every
        ``poll_interval`` seconds (never, between requests, if it is
        ``None``). ``self.timeout`` is ignored. A shutdown is seen at once,
        whatever ``poll_interval`` is.
        """
        self.__is_shut_down.clear()
        wake_up: WakeUpPair | None = None
        try:
            wake_up = WakeUpPair()
            with self.__state:
                self.__wake_up = wake_up
                self.__serving_thread = threading.get_ident()
            server_fd = self.fileno()
            waiter = ReadWaiter(server_fd, wake_up.fileno())
            timeout_ms = to_milliseconds(poll_interval)
            while not self.__shutdown_request:
                ready = waiter.wait(timeout_ms)
                if self.__shutdown_request:
                    break
                for fd, _events in ready:
                    if fd == server_fd:
                        self._handle_request_noblock()
                    else:
                        wake_up.drain()
                self.service_actions()
        finally:
            with self.__state:
                self.__wake_up = None
                self.__serving_thread = None
                self.__shutdown_request = False
            if wake_up is not None:
                wake_up.close()
            self.__is_shut_down.set()

    def shutdown(self) -> None:
        """Stop the :meth:`serve_forever` loop and wait until it has returned.

        Returns as soon as the request being handled (if any) is done; an idle
        loop stops at once. A shutdown requested before the loop starts makes
        the next ``serve_forever()`` return immediately. Called from a handler
        on the serving thread itself, it requests the stop and returns without
        waiting (the loop ends when that handler returns).
        """
        with self.__state:
            self.__shutdown_request = True
            if self.__wake_up is not None:
                self.__wake_up.wake()
            on_serving_thread = self.__serving_thread == threading.get_ident()
        if not on_serving_thread:
            self.__is_shut_down.wait()

    def service_actions(self) -> None:
        """Called by the :meth:`serve_forever` loop after every wake-up. May be overridden."""

    def handle_request(self) -> None:
        """Wait for one request and handle it.

        Waits at most the smaller of ``self.timeout`` and the listening
        socket's own timeout (``None`` in both means forever); when that runs
        out, calls ``handle_timeout()`` instead.
        """
        timeout = self.socket.gettimeout()
        if timeout is None:
            timeout = self.timeout
        elif self.timeout is not None:
            timeout = min(timeout, self.timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        waiter = ReadWaiter(self.fileno())
        while True:
            if waiter.wait(to_milliseconds(timeout)):
                return self._handle_request_noblock()
            if deadline is not None:
                timeout = deadline - time.monotonic()
                if timeout < 0:
                    return self.handle_timeout()

    def _handle_request_noblock(self) -> None:
        """Take one request that is known to be waiting, and process it."""
        try:
            request, client_address = self.get_request()
        except OSError:
            return
        if not self.verify_request(request, client_address):
            self.shutdown_request(request)
            return
        try:
            self.process_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
            self.shutdown_request(request)
        except BaseException:
            self.shutdown_request(request)
            raise

    def handle_timeout(self) -> None:
        """Called when ``handle_request()`` saw no request within the timeout."""

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Return whether to process this request; a refused one is shut down. May be overridden."""
        return True

    def process_request(self, request: Any, client_address: Any) -> None:
        """Handle the request, then shut it down. Overridden by the mix-ins."""
        self.finish_request(request, client_address)
        self.shutdown_request(request)

    def server_close(self) -> None:
        """Release the server's resources. May be overridden."""

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Handle one request by instantiating ``RequestHandlerClass``."""
        self.RequestHandlerClass(request, client_address, self)

    def shutdown_request(self, request: Any) -> None:
        """Shut down and close one request."""
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Clean up one request."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Report an exception raised while processing a request. May be overridden.

        The default prints the traceback to ``sys.stderr``, framed as the
        standard library frames it, and lets the server go on serving.
        """
        print("-" * 40, file=sys.stderr)
        print(
            "Exception occurred during processing of request from",
            client_address,
            file=sys.stderr,
        )
        traceback.print_exc()
        print("-" * 40, file=sys.stderr)

    def __enter__(self: _Server) -> _Server:
        return self

    def __exit__(self, *args: object) -> None:
        self.server_close()

    if TYPE_CHECKING:
        # Provided by subclasses (see TCPServer); declared for the type checker only,
        # so the class keeps exactly the standard library's attributes at run time.
        socket: Any

        def fileno(self) -> int: ...

        def get_request(self) -> tuple[Any, Any]: ...
