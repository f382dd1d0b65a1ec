"""The built-in handlers behave the same over stream and datagram servers."""

from __future__ import annotations

import socket
import threading

import pytest

from sockharness import handlers
from sockharness._core.kinds import server_class_for
from tests.helpers import WAIT, Client, address_for, serving

CASES = [
    pytest.param(handlers.EchoHandler, b"Hello\n", b"Hello\n", id="echo"),
    pytest.param(handlers.UpperHandler, b"Hello\n", b"HELLO\n", id="upper"),
    pytest.param(handlers.LineEchoHandler, b"one\ntwo\n", b"one\ntwo\n", id="line-echo"),
    pytest.param(handlers.SlowHandler.with_delay(0.01), b"slow\n", b"slow\n", id="slow"),
]


@pytest.mark.parametrize("kind", ["tcp", "unix", "udp", "unix_dgram"])
@pytest.mark.parametrize(("handler", "message", "reply"), CASES)
def test_replies(kind: str, handler: type, message: bytes, reply: bytes, sock_dir: str) -> None:
    server = server_class_for(kind, "threading")(address_for(kind, sock_dir), handler)
    with serving(server), Client(kind, server.server_address, sock_dir) as client:
        assert client.request(message) == reply


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_discard_reads_everything_and_answers_nothing(kind: str, sock_dir: str) -> None:
    server = server_class_for(kind, "threading")(
        address_for(kind, sock_dir), handlers.DiscardHandler
    )
    with serving(server), Client(kind, server.server_address, sock_dir) as client:
        assert client.request(b"x" * 200_000) == b""


def test_discard_sends_no_datagram_back(sock_dir: str) -> None:
    server = server_class_for("udp", "sync")(("127.0.0.1", 0), handlers.DiscardHandler)
    with serving(server), Client("udp", server.server_address, sock_dir) as client:
        client.sock.settimeout(0.2)
        client.sock.sendto(b"into the void", server.server_address)
        with pytest.raises(TimeoutError):
            client.sock.recv(100)


def test_line_echo_answers_each_line_before_the_client_is_done() -> None:
    server = server_class_for("tcp", "threading")(("127.0.0.1", 0), handlers.LineEchoHandler)
    with serving(server), socket.create_connection(server.server_address, timeout=WAIT) as c:
        with c.makefile("rb") as replies:
            for n in range(3):
                c.sendall(b"line %d\n" % n)
                assert replies.readline() == b"line %d\n" % n


@pytest.mark.parametrize("kind", ["tcp", "udp"])
def test_crash_handler_raises_handler_crash(kind: str, sock_dir: str) -> None:
    crashed: list[BaseException] = []
    done = threading.Event()
    base = server_class_for(kind, "sync")

    class Server(base):  # type: ignore[misc, valid-type]
        def handle_error(self, request: object, client_address: object) -> None:
            import sys

            crashed.append(sys.exc_info()[1])  # type: ignore[arg-type]
            done.set()

    server = Server(address_for(kind, sock_dir), handlers.CrashHandler)
    with serving(server), Client(kind, server.server_address, sock_dir) as client:
        if kind == "tcp":
            assert client.request(b"boom") == b""
        else:
            client.sock.sendto(b"boom", server.server_address)
        assert done.wait(WAIT)
    assert isinstance(crashed[0], handlers.HandlerCrash)
    assert "on purpose" in str(crashed[0])


@pytest.mark.parametrize("delay", [-1, "soon", None])
def test_slow_handler_rejects_a_bad_delay(delay: object) -> None:
    with pytest.raises(ValueError, match="delay must be a number of seconds"):
        handlers.SlowHandler.with_delay(delay)  # type: ignore[arg-type]
