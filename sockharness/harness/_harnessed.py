"""The server class the harness runs: the user's class (or ours), with what the harness observes.

:func:`harnessed_class` composes a subclass of the chosen class from small
mix-ins, each with one job, put before the class in the MRO so that each
wraps the class's own method and passes the call on:

- :class:`_Reporting` (always): handler errors, children, handler threads
  and recordings go to the server's :class:`ServerEvents` instead of stderr;
  a ``handle_error()`` of the class's own still decides what is an error;
- ``FaultyConnections`` (with in-process faults, from ``_server_faults``):
  each accepted connection is wrapped in a faulty socket, and what its faults
  did comes back from forked children;
- :class:`_TrackedHandlerThreads` (threading classes): their handler
  threads are known, for the leak checks;
- :class:`_ReportsLoopReady` (ours and the stdlib's loops): tells :class:`LoopReadiness` when
  ``serve_forever()`` has set itself up and is about to wait.

A server without faults never imports :mod:`sockharness.faults` (about 60 ms
of a test session's first fixture, most of it building the fault classes).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any

from sockharness import server as _server
from sockharness._core import ByteCounter, count_bytes, handler_running

from ._events import ServerEvents
from ._tls import CountingSSLSocket

if TYPE_CHECKING:
    from ._server_faults import ServerFaults

__all__ = ["LoopReadiness", "harnessed_class"]


def _ours_and_the_stdlibs(name: str) -> set[Any]:
    """``BaseServer.<name>`` of ours, and of the stdlib's if it is loaded."""
    found = {getattr(_server.BaseServer, name)}
    stdlib = sys.modules.get("socketserver")
    if stdlib is not None and stdlib is not _server:
        found.add(getattr(stdlib.BaseServer, name))
    return found


def _counted(request: Any) -> Any:
    """An accepted connection, counting its bytes (a user's own kind of socket is left as is)."""
    if type(request) is socket.socket and request.type == socket.SOCK_STREAM:
        return count_bytes(request)
    if isinstance(request, CountingSSLSocket) and request.sockharness_bytes is None:
        request.sockharness_bytes = ByteCounter()
    return request


class _Reporting:
    """Reports what goes wrong in handlers, and what they record, to ``_sh_events``."""

    _sh_events: ServerEvents
    _sh_own_handle_error: bool

    def get_request(self) -> Any:
        request, client_address = super().get_request()  # type: ignore[misc]
        request = _counted(request)
        self._sh_events.note_request(request)
        return request, client_address

    def shutdown_request(self, request: Any) -> None:
        self._sh_events.note_done(request)
        super().shutdown_request(request)  # type: ignore[misc]

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self._sh_own_handle_error:
            super().handle_error(request, client_address)  # type: ignore[misc]
            return
        exc = sys.exc_info()[1]
        if exc is not None:
            self._sh_events.add_error(exc, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            with handler_running(self._sh_events.creations):
                super().finish_request(request, client_address)  # type: ignore[misc]
        except Exception:
            raise  # To handle_error(), as the server decides.
        except BaseException as exc:  # SystemExit, KeyboardInterrupt: not for handle_error().
            self._sh_events.add_error(exc, client_address)
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        self._sh_events.before_fork()
        super().process_request(request, client_address)  # type: ignore[misc]
        children = getattr(self, "active_children", None)
        if children:
            self._sh_events.note_children(children)

    def sockharness_record(
        self, client_address: Any, data: bytes, *, started: float | None = None
    ) -> None:
        """What :class:`~sockharness.handlers.RecordingHandler` received in one request."""
        self._sh_events.add_received(client_address, data, started)


class _TrackedHandlerThreads:
    """Knows its handler threads, and reports what ends one (ThreadingMixIn classes)."""

    _sh_events: ServerEvents

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        self._sh_events.note_handler_thread()
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        except BaseException as exc:  # Reported here; the thread ends either way.
            self._sh_events.add_error(exc, client_address)


class LoopReadiness:
    """Whether a server's ``serve_forever()`` is set up and about to wait for requests.

    Ours and the stdlib's set up what the loop needs (our wake-up socket pair,
    their selector) and then ask for the listening socket's ``fileno()`` to
    wait on it: that first call, on the serving thread, is the sign. A class
    with a loop of its own gives no such sign: it counts as ready once its
    ``serve_forever()`` is called. :attr:`ready` is also set when the loop
    ends, whatever ended it, so that nobody waits for a loop that died.
    """

    def __init__(self, cls: type) -> None:
        self.ready = threading.Event()
        #: Whether the class's loop gives the sign (then its ``fileno()`` is watched).
        self.asks_for_fileno = cls.serve_forever in _ours_and_the_stdlibs("serve_forever")  # type: ignore[attr-defined]
        self._serving_thread: int | None = None

    def loop_called(self) -> None:
        """Called on the serving thread as it calls ``serve_forever()``."""
        self._serving_thread = threading.get_ident()
        if not self.asks_for_fileno:
            self.ready.set()

    def fileno_asked(self) -> None:
        """Called whenever the server's ``fileno()`` is asked for."""
        if threading.get_ident() == self._serving_thread:
            self.ready.set()

    def loop_ended(self) -> None:
        """Called on the serving thread once ``serve_forever()`` returned or raised."""
        self.ready.set()


class _ReportsLoopReady:
    """Tells ``_sh_loop`` when its ``fileno()`` is asked for (see :class:`LoopReadiness`)."""

    _sh_loop: LoopReadiness

    def fileno(self) -> int:
        fd: int = super().fileno()  # type: ignore[misc]
        self._sh_loop.fileno_asked()
        return fd


def harnessed_class(
    cls: type,
    attributes: dict[str, Any],
    events: ServerEvents,
    faults: ServerFaults | None,
    loop: LoopReadiness,
) -> type[_server.BaseServer]:
    """A subclass of ``cls`` that reports to ``events`` and ``loop``, with ``attributes`` set on it.

    Named as ``cls`` is, so that reprs and messages name the user's class.
    """
    mixins: list[type] = [_Reporting]
    if loop.asks_for_fileno:
        mixins.insert(0, _ReportsLoopReady)
    if faults is not None:
        from ._server_faults import FaultyConnections

        mixins.insert(0, FaultyConnections)
    if hasattr(cls, "process_request_thread"):
        mixins.append(_TrackedHandlerThreads)
    namespace = {
        "_sh_events": events,
        "_sh_faults": faults,
        "_sh_loop": loop,
        "_sh_owner": os.getpid(),
        # A handle_error() of ours or the stdlib's only prints: the harness reports instead.
        "_sh_own_handle_error": cls.handle_error not in _ours_and_the_stdlibs("handle_error"),  # type: ignore[attr-defined]
        "__qualname__": cls.__qualname__,
        "__module__": cls.__module__,
        **attributes,
    }
    return type(cls.__name__, (*mixins, cls), namespace)
