"""The overridable methods are called in the same order as the standard library calls them.

Each scenario is run twice, once against the stdlib's ``socketserver`` and once
against ours, with every overridable method traced; the traces must be equal.
Calls are told apart by thread (the main thread or another one), since calls in
different threads have no order of their own.
"""

from __future__ import annotations

import socket
import socketserver as stdlib
import threading
from collections.abc import Callable
from typing import Any

import pytest

import sockharness.server as ours
from tests.helpers import WAIT, connect_retrying

SERVER_METHODS = [
    "server_bind",
    "server_activate",
    "get_request",
    "verify_request",
    "process_request",
    "finish_request",
    "shutdown_request",
    "close_request",
    "handle_error",
    "handle_timeout",
    "server_close",
]
HANDLER_METHODS = ["setup", "handle", "finish"]


def traced(base: type, names: list[str], log: list[str], lock: threading.Lock) -> type:
    """A subclass of ``base`` that appends the name of each listed method to ``log``."""

    def wrap(name: str) -> Callable[..., Any]:
        original = getattr(base, name)

        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            role = "main" if threading.current_thread() is threading.main_thread() else "other"
            with lock:
                log.append(f"{role}:{name}")
            return original(self, *args, **kwargs)

        return method

    return type(f"Traced{base.__name__}", (base,), {n: wrap(n) for n in names if hasattr(base, n)})


def run_scenario(module: Any, scenario: Callable[..., None]) -> dict[str, list[str]]:
    """Run ``scenario`` against ``module``; return the calls made in each thread, in order."""
    log: list[str] = []
    lock = threading.Lock()
    scenario(module, log, lock)
    by_thread: dict[str, list[str]] = {}
    for entry in log:
        role, name = entry.split(":")
        by_thread.setdefault(role, []).append(name)
    return by_thread


def calls(trace: dict[str, list[str]]) -> list[str]:
    return [name for names in trace.values() for name in names]


def sync_good_request(module: Any, log: list[str], lock: threading.Lock) -> None:
    class Handler(module.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline())

    handler = traced(Handler, HANDLER_METHODS, log, lock)
    server_cls = traced(module.TCPServer, SERVER_METHODS, log, lock)
    with server_cls(("127.0.0.1", 0), handler) as server, socket.socket() as client:
        client.settimeout(WAIT)
        client.connect(server.server_address)
        client.sendall(b"ping\n")
        server.handle_request()
        assert client.recv(100) == b"ping\n"


def sync_failing_handler(module: Any, log: list[str], lock: threading.Lock) -> None:
    class Handler(module.BaseRequestHandler):
        def handle(self) -> None:
            raise ValueError("boom")

    handler = traced(Handler, HANDLER_METHODS, log, lock)
    base = traced(module.TCPServer, SERVER_METHODS, log, lock)

    class Quiet(base):  # type: ignore[misc, valid-type]
        def handle_error(self, request: Any, client_address: Any) -> None:
            with lock:
                log.append("main:handle_error")

    with Quiet(("127.0.0.1", 0), handler) as server, socket.socket() as client:
        client.connect(server.server_address)
        server.handle_request()


def sync_system_exit(module: Any, log: list[str], lock: threading.Lock) -> None:
    class Handler(module.BaseRequestHandler):
        def handle(self) -> None:
            raise SystemExit(3)

    handler = traced(Handler, HANDLER_METHODS, log, lock)
    server_cls = traced(module.TCPServer, SERVER_METHODS, log, lock)
    with server_cls(("127.0.0.1", 0), handler) as server, socket.socket() as client:
        client.connect(server.server_address)
        with pytest.raises(SystemExit):
            server.handle_request()


def sync_refused(module: Any, log: list[str], lock: threading.Lock) -> None:
    handler = traced(module.BaseRequestHandler, HANDLER_METHODS, log, lock)
    base = traced(module.TCPServer, SERVER_METHODS, log, lock)

    class Refusing(base):  # type: ignore[misc, valid-type]
        def verify_request(self, request: Any, client_address: Any) -> bool:
            super().verify_request(request, client_address)
            return False

    with Refusing(("127.0.0.1", 0), handler) as server, socket.socket() as client:
        client.settimeout(WAIT)
        client.connect(server.server_address)
        server.handle_request()
        assert client.recv(100) == b""


def sync_timeout(module: Any, log: list[str], lock: threading.Lock) -> None:
    server_cls = traced(module.TCPServer, SERVER_METHODS, log, lock)
    with server_cls(("127.0.0.1", 0), module.BaseRequestHandler) as server:
        server.timeout = 0.01
        server.handle_request()


def udp_request(module: Any, log: list[str], lock: threading.Lock) -> None:
    handler = traced(module.DatagramRequestHandler, HANDLER_METHODS, log, lock)
    server_cls = traced(module.UDPServer, SERVER_METHODS, log, lock)
    with (
        server_cls(("127.0.0.1", 0), handler) as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client,
    ):
        client.settimeout(WAIT)
        client.sendto(b"datagram", server.server_address)
        server.handle_request()
        assert client.recv(100) == b""  # Nothing was written to wfile: an empty reply.


def threading_request(module: Any, log: list[str], lock: threading.Lock) -> None:
    class Handler(module.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline())

    handler = traced(Handler, HANDLER_METHODS, log, lock)
    server_cls = traced(
        module.ThreadingTCPServer, [*SERVER_METHODS, "process_request_thread"], log, lock
    )
    with server_cls(("127.0.0.1", 0), handler) as server, socket.socket() as client:
        client.settimeout(WAIT)
        connect_retrying(client, server.server_address)
        client.sendall(b"ping\n")
        server.handle_request()
        assert client.recv(100) == b"ping\n"


def serve_forever_one_request(module: Any, log: list[str], lock: threading.Lock) -> None:
    class Handler(module.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline())

    handler = traced(Handler, HANDLER_METHODS, log, lock)
    server_cls = traced(module.TCPServer, SERVER_METHODS, log, lock)
    with server_cls(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
        thread.start()
        with socket.create_connection(server.server_address, timeout=WAIT) as client:
            client.sendall(b"ping\n")
            assert client.recv(100) == b"ping\n"
        server.shutdown()
        thread.join(WAIT)


SCENARIOS = [
    sync_good_request,
    sync_failing_handler,
    sync_system_exit,
    sync_refused,
    sync_timeout,
    udp_request,
    threading_request,
    serve_forever_one_request,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_same_calls_in_the_same_order_as_the_stdlib(scenario: Callable[..., None]) -> None:
    theirs = run_scenario(stdlib, scenario)
    mine = run_scenario(ours, scenario)
    assert mine == theirs
    assert "server_bind" in mine["main"]  # The tracing itself worked.


def test_the_traces_cover_the_interesting_paths() -> None:
    """Guard against a scenario that silently stopped exercising its path."""
    assert "handle_error" in calls(run_scenario(ours, sync_failing_handler))
    assert "handle_timeout" in calls(run_scenario(ours, sync_timeout))
    assert "process_request_thread" in run_scenario(ours, threading_request)["other"]
    refused = calls(run_scenario(ours, sync_refused))
    assert "shutdown_request" in refused
    assert "process_request" not in refused
    system_exit = calls(run_scenario(ours, sync_system_exit))
    assert "shutdown_request" in system_exit
    assert "handle_error" not in system_exit
