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
  threads are known, for the leak checks.

A server without faults never imports :mod:`sockharness.faults` (about 60 ms
of a test session's first fixture, most of it building the fault classes).
"""

from __future__ import annotations

import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from sockharness import server as _server
from sockharness._core import ByteCounter, count_bytes, handler_running

from ._events import ServerEvents
from ._tls import CountingSSLSocket

if TYPE_CHECKING:
    from ._server_faults import ServerFaults

__all__ = ["harnessed_class"]


def _default_handle_errors() -> set[Any]:
    """The ``handle_error()`` methods that only print (ours and the stdlib's)."""
    defaults = {_server.BaseServer.handle_error}
    stdlib = sys.modules.get("socketserver")
    if stdlib is not None and stdlib is not _server:
        defaults.add(stdlib.BaseServer.handle_error)
    return defaults


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


def harnessed_class(
    cls: type, attributes: dict[str, Any], events: ServerEvents, faults: ServerFaults | None
) -> type[_server.BaseServer]:
    """A subclass of ``cls`` that reports to ``events``, with ``attributes`` set on it.

    Named as ``cls`` is, so that reprs and messages name the user's class.
    """
    mixins: list[type] = [_Reporting]
    if faults is not None:
        from ._server_faults import FaultyConnections

        mixins.insert(0, FaultyConnections)
    if hasattr(cls, "process_request_thread"):
        mixins.append(_TrackedHandlerThreads)
    namespace = {
        "_sh_events": events,
        "_sh_faults": faults,
        "_sh_owner": os.getpid(),
        "_sh_own_handle_error": cls.handle_error not in _default_handle_errors(),  # type: ignore[attr-defined]
        "__qualname__": cls.__qualname__,
        "__module__": cls.__module__,
        **attributes,
    }
    return type(cls.__name__, (*mixins, cls), namespace)
