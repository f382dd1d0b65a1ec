"""``sockharness serve``: run one server in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

from sockharness._core import (
    Kind,
    UsageError,
    parse_concurrency,
    parse_kind,
    private_directory,
    server_class_for,
)
from sockharness.handlers import BUILTIN_HANDLERS


def format_address(kind: Kind, address: Any) -> str:
    """``host:port`` (``[host]:port`` for IPv6) or the socket path."""
    if kind.unix:
        return os.fsdecode(address)
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@contextlib.contextmanager
def _bind_address(kind: Kind, host: str | None, port: int, path: str | None) -> Iterator[Any]:
    if kind.unix:
        if host is not None:
            raise UsageError(f"--host is for network kinds; a {kind.name} server takes --path.")
        if path is not None:
            yield path
            return
        directory = private_directory("sockharness-")
        try:
            yield os.path.join(directory, f"{kind.name}.sock")
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    if path is not None:
        raise UsageError(f"--path is for unix kinds; a {kind.name} server takes --host and --port.")
    yield (host or kind.loopback, port)


class _HangsUpOnStop:
    """Mix-in: a stop requested by a signal ends the loop and hangs up every connection.

    Ctrl-C must not wait for clients that are still connected, yet every
    handler should end normally rather than be killed mid-call at interpreter
    exit. The signal handler only asks the loop to stop and hangs up the open
    connections, so each handler sees EOF and returns; no exception is raised
    inside the loop. ``shutdown()`` runs in a thread of its own: called in the
    signal handler it would wait forever for a loop that the same thread has
    not started yet, when the signal comes that early.
    ``server_close()`` then joins the threads and reaps the children as usual.
    """

    _connections: set[socket.socket]
    _connections_lock: threading.Lock
    _stopping = False

    def process_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.add(request)
        super().process_request(request, client_address)  # type: ignore[misc]

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)  # type: ignore[misc]

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not self._stopping:  # Connections torn down by the stop are not errors.
            super().handle_error(request, client_address)  # type: ignore[misc]

    def request_stop(self) -> None:
        """Stop serving and hang up every connection; never blocks (signal handler safe)."""
        self._stopping = True
        threading.Thread(target=self.shutdown, name="sockharness stop", daemon=True).start()  # type: ignore[attr-defined]
        self.hang_up()

    def hang_up(self) -> None:
        """Hang up every open connection and stop the children of a forking server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for pid in list(getattr(self, "active_children", None) or ()):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)


def serve(
    kind_name: str,
    concurrency: str,
    handler_name: str,
    *,
    host: str | None = None,
    port: int = 0,
    path: str | None = None,
    out: TextIO | None = None,
) -> int:
    """Serve until SIGINT or SIGTERM; return the exit status.

    The first signal stops gracefully; a second Ctrl-C interrupts at once.
    """
    out = sys.stdout if out is None else out
    kind = parse_kind(kind_name)
    parse_concurrency(concurrency)
    handler = BUILTIN_HANDLERS[handler_name].handler
    base = server_class_for(kind, concurrency)
    server_class = type(f"Serve{base.__name__}", (_HangsUpOnStop, base), {})
    with _bind_address(kind, host, port, path) as address:
        server = server_class(address, handler)
        server._connections = set()
        server._connections_lock = threading.Lock()

        def on_signal(signum: int, frame: Any) -> None:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            server.request_stop()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            print(
                f"sockharness: serving {handler_name} over {kind.name} ({concurrency}) "
                f"at {format_address(kind, server.server_address)}; Ctrl-C stops",
                file=out,
                flush=True,
            )
            server.serve_forever()
            server.hang_up()  # What is left, should the loop have ended otherwise.
            server.server_close()  # Joins the handler threads, reaps the children.
            print("sockharness: stopped", file=out, flush=True)
        except KeyboardInterrupt:
            print("sockharness: interrupted", file=out, flush=True)
            return 130
        finally:
            for sig, handler_before in previous.items():
                signal.signal(sig, handler_before)
            server.server_close()
    return 0
