"""Faults on a socket's own calls, in the process: short sends, small receives, errors at the
k-th call. Each catches the bug it is for, and leaves correct code alone."""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest

from sockharness import UsageError, start_server
from sockharness.faults import (
    FaultProxy,
    ShortSend,
    SmallRecv,
    SocketError,
    parse_fault,
)
from sockharness.handlers import LineEchoHandler
from sockharness.server import BaseRequestHandler

REPLY = b"x" * 1000 + b"\n"


class IgnoresWhatSendReturns(BaseRequestHandler):
    """A bug: one send() for the whole reply."""

    def handle(self) -> None:
        self.request.recv(100)
        self.request.send(REPLY)


class LoopsOverSend(BaseRequestHandler):
    def handle(self) -> None:
        self.request.recv(100)
        view = memoryview(REPLY)
        while view:
            view = view[self.request.send(view) :]


class SendsAll(BaseRequestHandler):
    def handle(self) -> None:
        self.request.recv(100)
        self.request.sendall(REPLY)


class OneRecvIsOneMessage(BaseRequestHandler):
    """A bug: takes one recv() for one request line."""

    def handle(self) -> None:
        line = self.request.recv(1024)
        self.request.sendall(b"got " + line)


class ReadsUntilTheEndOfTheLine(BaseRequestHandler):
    def handle(self) -> None:
        line = b""
        while not line.endswith(b"\n"):
            piece = self.request.recv(1024)
            if not piece:
                break
            line += piece
        self.request.sendall(b"got " + line)


class RetriesInterruptedReads(BaseRequestHandler):
    def handle(self) -> None:
        while True:
            try:
                data = self.request.recv(1024)
                break
            except InterruptedError:
                continue
        self.request.sendall(data)


def _exchange(server: Any, request: bytes) -> bytes:
    """What the server answers to ``request``, up to its close.

    A buggy handler may close with part of the request unread, which resets the
    connection: what arrived before the reset is the answer.
    """
    received = b""
    with server.connect() as client:
        client.send(request)
        try:
            client.shutdown_write()
            while piece := client.recv():
                received += piece
        except OSError as exc:  # Reset, or no longer connected (shutdown after the reset).
            if not isinstance(exc, ConnectionResetError) and exc.errno != errno.ENOTCONN:
                raise
    return received


def test_a_short_send_catches_code_that_ignores_what_send_returns(make_server: Any) -> None:
    fault = ShortSend(100, direction="downstream")
    buggy = make_server(IgnoresWhatSendReturns, "tcp", faults=[fault])
    assert len(_exchange(buggy, b"go")) < len(REPLY)
    correct = make_server(LoopsOverSend, "tcp", faults=[fault])
    assert _exchange(correct, b"go") == REPLY
    effects = [event.effect for event in buggy.fault_timeline.events]
    assert len(effects) == 1
    assert effects[0].startswith("send() took ")
    assert effects[0].endswith(f" of {len(REPLY)} bytes")


def test_a_small_recv_catches_code_that_takes_one_recv_for_one_message(make_server: Any) -> None:
    fault = SmallRecv(3, direction="upstream")
    buggy = make_server(OneRecvIsOneMessage, "tcp", faults=[fault])
    assert _exchange(buggy, b"hello world\n") != b"got hello world\n"
    correct = make_server(ReadsUntilTheEndOfTheLine, "tcp", faults=[fault])
    assert _exchange(correct, b"hello world\n") == b"got hello world\n"


def test_small_recv_through_a_stdlib_stream_handler(make_server: Any) -> None:
    server = make_server(LineEchoHandler, "tcp", faults=[SmallRecv(1, direction="upstream")])
    with server.connect() as client:
        assert client.request(b"one byte at a time\n") == b"one byte at a time\n"


def test_an_error_at_the_kth_call(make_server: Any) -> None:
    fault = SocketError("EINTR", calls="0", direction="upstream")
    correct = make_server(RetriesInterruptedReads, "tcp", faults=[fault])
    assert _exchange(correct, b"again") == b"again"
    buggy = make_server(SendsAll, "tcp", faults=[fault])
    buggy.expect_errors(InterruptedError)
    assert _exchange(buggy, b"go") == b""
    (error,) = buggy.errors
    assert "InterruptedError" in str(error)
    assert [e.effect for e in correct.fault_timeline.events] == ["recv() call 0 raised EINTR"]


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        ("ETIMEDOUT", TimeoutError),
        ("ECONNRESET", ConnectionResetError),
        ("EPIPE", BrokenPipeError),
        ("EINTR", InterruptedError),
    ],
)
def test_each_error_is_its_oserror_subclass_on_a_client(
    make_server: Any, error: str, raised: type[OSError]
) -> None:
    server = make_server(LineEchoHandler, "tcp")
    fault = SocketError(error, method="send", calls="1", direction="upstream")
    with server.connect(faults=[fault]) as client:
        client.sock.sendall(b"first\n")  # Call 0.
        with pytest.raises(raised) as caught:
            client.sock.sendall(b"second\n")  # Call 1.
        assert caught.value.errno == getattr(__import__("errno"), error)
        client.sock.sendall(b"third\n")  # Unharmed after.
        assert client.recv_exactly(len(b"first\nthird\n")) == b"first\nthird\n"


def test_eagain_only_where_a_socket_can_say_it(make_server: Any) -> None:
    fault = SocketError("EAGAIN", calls="0", direction="downstream")
    # Outside the fixtures: a fault that never fires would fail the test (rightly).
    with start_server(LineEchoHandler) as plain, plain.connect(faults=[fault]) as client:
        client.send(b"hi\n")
        assert client.sock.recv(100) == b"hi\n"  # A blocking socket: not struck.
        assert client.sock.fault_usage() == [(repr(fault), False)]
    server = make_server(LineEchoHandler, "tcp")
    with server.connect(faults=[fault]) as client:
        client.sock.settimeout(0)
        with pytest.raises(BlockingIOError):
            client.sock.recv(100)
        assert client.sock.fault_usage() == [(repr(fault), True)]


def test_call_faults_are_seeded(make_server: Any) -> None:
    taken = []
    for _ in range(2):
        server = make_server(LineEchoHandler, "tcp")
        with server.connect(faults=[ShortSend(50, direction="upstream")]) as client:
            taken.append([client.sock.send(b"y" * 100) for _ in range(5)])
            client.sock.sendall(b"\n")
    assert taken[0] == taken[1]
    assert all(1 <= n <= 50 for n in taken[0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("socket_error=EWHAT", r"SocketError\(error='EWHAT'\): use one of EINTR, EAGAIN"),
        ("socket_error=EINTR,method=accept", r"method='accept'.*'recv'.*'send'"),
        ("short_send=0", r"ShortSend\(max_size=0\) is out of range"),
        ("small_recv,after_bytes=3", "strikes socket calls, not bytes"),
        ("socket_error,calls=x", r"SocketError\(calls='x'\)"),
    ],
)
def test_bad_call_faults_are_clear(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_fault(text)


def test_the_proxy_cannot_make_them(make_server: Any) -> None:
    server = make_server(LineEchoHandler, "tcp")
    with pytest.raises(UsageError, match="only a faulty socket in the process applies it"):
        FaultProxy(server.address, "tcp", [ShortSend()])


def test_a_scenario_puts_them_on_the_server(tmp_path: Any) -> None:
    """The built-in echo handler reads what comes: seven bytes at a time does not break it."""
    from sockharness.chaos import load_scenario, run_scenario

    path = tmp_path / "small.toml"
    path.write_text(
        """
[scenario]
name = "small receives"
duration = 0.5

[server]
handler = "echo"

[[clients]]
count = 1
rate = 20

[[faults]]
fault = "small_recv"
max_size = 7
side = "server"
direction = "upstream"

[expect]
max_error_rate = 0.0
"""
    )
    result = run_scenario(load_scenario(path), seed=2)
    assert result.result == "held", result.failure_message()
    assert result.fired == [True]


def test_a_scenario_will_not_put_them_on_the_proxy(tmp_path: Any) -> None:
    from sockharness.chaos import ScenarioError, load_scenario

    path = tmp_path / "proxy.toml"
    path.write_text(
        '[scenario]\nname = "x"\nduration = 1\n[server]\nhandler = "echo"\n'
        '[[clients]]\ncount = 1\n[[faults]]\nfault = "short_send"\n'
    )
    with pytest.raises(ScenarioError, match=r"faults\[0\].side: ShortSend strikes a socket"):
        load_scenario(path)


def test_unwrapped_sockets_are_untouched() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"plain")
        assert b.recv(100) == b"plain"
