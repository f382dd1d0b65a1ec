"""A downstream project's tests: no conftest, only sockharness installed."""

import socketserver

import pytest

from sockharness.handlers import CrashHandler, HandlerCrash, RecordingHandler


class Greeter(socketserver.StreamRequestHandler):
    """The code under test: a line protocol, written for the stdlib."""

    def handle(self):
        name = self.rfile.readline().strip()
        self.wfile.write(b"hello, " + name + b"\n")


def test_greeter(make_server):
    server = make_server(Greeter)  # threading TCP on 127.0.0.1, an ephemeral port
    with server.connect() as client:
        assert client.request(b"world\n") == b"hello, world\n"


@pytest.mark.sockharness(kinds=["tcp", "unix"], handler=Greeter)
def test_greeter_everywhere(any_server):
    # One test per kind and concurrency: tcp-sync, tcp-threading, tcp-forking, unix-...
    with any_server.connect() as client:
        assert client.request(b"you\n") == b"hello, you\n"


def test_greeter_over_tls(make_server):
    server = make_server(Greeter, tls=True)  # a certificate from the session's trustme CA
    with server.connect() as client:  # trusts that CA
        assert client.request(b"secret\n") == b"hello, secret\n"


def test_what_the_server_received(make_server, payloads):
    server = make_server(RecordingHandler, "udp")
    messages = [payloads.line() for _ in range(3)]  # seeded by --sockharness-seed
    with server.connect() as client:
        for message in messages:
            assert client.request(message) == message
    assert server.wait_received(3) == messages


def test_a_crash_is_expected_here(make_server):
    server = make_server(CrashHandler, concurrency="forking")
    # Without expect_errors(), the crash would fail the test.
    with server.expect_errors(HandlerCrash), server.connect() as client:
        client.send(b"boom")
