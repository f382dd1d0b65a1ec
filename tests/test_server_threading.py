"""ThreadingMixIn: block_on_close, daemon_threads, and thread accounting."""

from __future__ import annotations

import re
import socket
import socketserver as stdlib_socketserver
import threading
from typing import Any

import pytest

import sockharness.server as ss
from tests.helpers import WAIT, serving, wait_for


class Gate:
    """Handlers block on the gate until the test opens it."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.threads: list[threading.Thread] = []

    def join_handlers(self) -> None:
        for thread in self.threads:
            thread.join(WAIT)
            assert not thread.is_alive()


def gated_server(gate: Gate, **attributes: Any) -> ss.ThreadingTCPServer:
    class Blocking(ss.BaseRequestHandler):
        def handle(self) -> None:
            gate.threads.append(threading.current_thread())
            gate.entered.release()
            gate.release.wait(WAIT)
            self.request.sendall(b"done")

    server = ss.ThreadingTCPServer(("127.0.0.1", 0), Blocking)
    for name, value in attributes.items():
        setattr(server, name, value)
    return server


def close_in_background(server: Any) -> tuple[threading.Thread, threading.Event]:
    closed = threading.Event()
    closer = threading.Thread(target=lambda: (server.server_close(), closed.set()))
    closer.start()
    return closer, closed


def start_blocked_request(server: Any, gate: Gate) -> socket.socket:
    client = socket.create_connection(server.server_address, timeout=WAIT)
    server.handle_request()
    assert gate.entered.acquire(timeout=WAIT)
    return client


def test_block_on_close_makes_server_close_wait_for_handlers() -> None:
    gate = Gate()
    server = gated_server(gate)
    with start_blocked_request(server, gate) as client:
        closer, closed = close_in_background(server)
        assert not closed.wait(0.2)  # A handler is still running.
        gate.release.set()
        assert closed.wait(WAIT)
        closer.join(WAIT)
        assert client.recv(10) == b"done"


def test_without_block_on_close_server_close_returns_at_once() -> None:
    gate = Gate()
    server = gated_server(gate, block_on_close=False)
    with start_blocked_request(server, gate) as client:
        closer, closed = close_in_background(server)
        assert closed.wait(WAIT)
        closer.join(WAIT)
        gate.release.set()  # The handler goes on after the close and still answers.
        assert client.recv(10) == b"done"
    gate.join_handlers()


def test_daemon_threads_are_daemons_and_not_waited_for() -> None:
    gate = Gate()
    server = gated_server(gate, daemon_threads=True)
    daemon_flags: list[bool] = []
    original = server.process_request_thread

    def spy(request: Any, client_address: Any) -> None:
        daemon_flags.append(threading.current_thread().daemon)
        original(request, client_address)

    server.process_request_thread = spy  # type: ignore[method-assign]
    with start_blocked_request(server, gate) as client:
        closer, closed = close_in_background(server)
        assert closed.wait(WAIT)
        closer.join(WAIT)
        gate.release.set()
        assert client.recv(10) == b"done"
    gate.join_handlers()
    assert daemon_flags == [True]


def test_finished_threads_are_not_accumulated() -> None:
    class Quick(ss.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline())

    server = ss.ThreadingTCPServer(("127.0.0.1", 0), Quick)
    with serving(server, poll_interval=0.05):
        for n in range(50):
            with socket.create_connection(server.server_address, timeout=WAIT) as client:
                client.sendall(b"%d\n" % n)
                assert client.recv(10) == b"%d\n" % n
        # Each thread forgets itself as it ends: none is left once all are answered.
        wait_for(lambda: len(server._threads) == 0, what="handler threads to be forgotten")


def test_a_thread_that_cannot_start_is_not_tracked(monkeypatch: pytest.MonkeyPatch) -> None:
    errors: list[str] = []

    class Server(ss.ThreadingTCPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            errors.append("handle_error")

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with (
        Server(("127.0.0.1", 0), ss.BaseRequestHandler) as server,
        socket.create_connection(server.server_address, timeout=WAIT) as client,
    ):
        monkeypatch.setattr(threading.Thread, "start", refuse)
        server.handle_request()
        monkeypatch.undo()
        assert errors == ["handle_error"]
        assert client.recv(10) == b""  # The request was shut down.
        assert len(server._threads) == 0


def test_a_thread_interrupted_after_it_started_stays_tracked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C landing in Thread.start() after the thread began: server_close() still waits."""
    gate = Gate()
    server = gated_server(gate)
    real_start = threading.Thread.start

    def start_then_interrupt(self: threading.Thread) -> None:
        real_start(self)
        raise KeyboardInterrupt

    with socket.create_connection(server.server_address, timeout=WAIT):
        monkeypatch.setattr(threading.Thread, "start", start_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            server.handle_request()
        monkeypatch.undo()
        assert gate.entered.acquire(timeout=WAIT)
        assert len(server._threads) == 1
        closer, closed = close_in_background(server)
        assert not closed.wait(0.2)  # The handler is still running: it is waited for.
        gate.release.set()
        assert closed.wait(WAIT)
        closer.join(WAIT)
    gate.join_handlers()


@pytest.mark.parametrize("module", [ss, stdlib_socketserver], ids=["ours", "stdlib"])
def test_handler_threads_are_named_as_threading_names_them(module: Any) -> None:
    """``%(threadName)s`` in logs: threading's default, unique per thread, as the stdlib has it."""
    names: list[str] = []

    class Naming(module.BaseRequestHandler):  # type: ignore[name-defined, misc]
        def handle(self) -> None:
            names.append(threading.current_thread().name)
            self.request.sendall(b"ok")

    with module.ThreadingTCPServer(("127.0.0.1", 0), Naming) as server, serving(server, 0.01):
        for _ in range(2):
            with socket.create_connection(server.server_address, timeout=WAIT) as client:
                assert client.recv(2) == b"ok"
    assert len(names) == 2
    assert names[0] != names[1]
    for name in names:
        assert re.fullmatch(r"Thread-\d+ \(process_request_thread\)", name), name
