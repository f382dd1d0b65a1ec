"""The request loop, shutdown, timeouts and the handler lifecycle of sockharness.server."""

from __future__ import annotations

import selectors
import socket
import socketserver as stdlib
import threading
import time
from typing import Any

import pytest

import sockharness.server as ss
from tests.helpers import WAIT, serving, wait_for


class Echo(ss.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


def connect(server: Any) -> socket.socket:
    return socket.create_connection(server.server_address, timeout=WAIT)


class Recorder:
    """Collects what handlers and servers report, across threads."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)

    def add(self, event: str) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def wait_for(self, predicate: Any) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self.events), WAIT), self.events


# -- the handler lifecycle ---------------------------------------------------------


def lifecycle_handler(recorder: Recorder, fail_with: type[BaseException] | None) -> type:
    class Handler(ss.BaseRequestHandler):
        def setup(self) -> None:
            recorder.add("setup")

        def handle(self) -> None:
            recorder.add("handle")
            if fail_with is not None:
                raise fail_with("from the handler")

        def finish(self) -> None:
            recorder.add("finish")

    return Handler


def recording_server(base: type, recorder: Recorder) -> type:
    class Server(base):  # type: ignore[misc, valid-type]
        def handle_error(self, request: Any, client_address: Any) -> None:
            recorder.add("handle_error")

        def shutdown_request(self, request: Any) -> None:
            super().shutdown_request(request)
            recorder.add("shutdown_request")

    return Server


@pytest.mark.parametrize("base", [ss.TCPServer, ss.ThreadingTCPServer], ids=["sync", "threading"])
def test_setup_handle_finish_run_once_each_in_order(base: type) -> None:
    recorder = Recorder()
    server_cls = recording_server(base, recorder)
    with server_cls(("127.0.0.1", 0), lifecycle_handler(recorder, None)) as server:
        with connect(server):
            server.handle_request()
        recorder.wait_for(lambda events: "shutdown_request" in events)
    assert recorder.events == ["setup", "handle", "finish", "shutdown_request"]


@pytest.mark.parametrize("base", [ss.TCPServer, ss.ThreadingTCPServer], ids=["sync", "threading"])
def test_a_failing_handle_still_finishes_and_goes_to_handle_error(base: type) -> None:
    recorder = Recorder()
    server_cls = recording_server(base, recorder)
    with server_cls(("127.0.0.1", 0), lifecycle_handler(recorder, ValueError)) as server:
        with connect(server):
            server.handle_request()
        recorder.wait_for(lambda events: "shutdown_request" in events)
    assert recorder.events == ["setup", "handle", "finish", "handle_error", "shutdown_request"]


@pytest.mark.parametrize("exit_exception", [SystemExit, KeyboardInterrupt])
def test_sync_exiting_exceptions_skip_handle_error_but_still_shut_the_request_down(
    exit_exception: type[BaseException],
) -> None:
    recorder = Recorder()
    server_cls = recording_server(ss.TCPServer, recorder)
    with server_cls(("127.0.0.1", 0), lifecycle_handler(recorder, exit_exception)) as server:
        with connect(server) as client:
            with pytest.raises(exit_exception):
                server.handle_request()
            assert client.recv(10) == b""  # The request was shut down: EOF.
    assert recorder.events == ["setup", "handle", "finish", "shutdown_request"]


@pytest.mark.parametrize("exit_exception", [SystemExit, KeyboardInterrupt])
def test_threading_exiting_exceptions_reach_the_thread_excepthook(
    exit_exception: type[BaseException], monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    seen: list[type[BaseException]] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_type))
    server_cls = recording_server(ss.ThreadingTCPServer, recorder)
    with server_cls(("127.0.0.1", 0), lifecycle_handler(recorder, exit_exception)) as server:
        with connect(server):
            server.handle_request()
        recorder.wait_for(lambda events: "shutdown_request" in events)
    # server_close() joined the thread, so its excepthook has run.
    assert recorder.events == ["setup", "handle", "finish", "shutdown_request"]
    assert seen == [exit_exception]


def test_handle_error_is_called_once_per_exception_and_the_server_keeps_serving() -> None:
    recorder = Recorder()

    class Flaky(ss.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline()
            if line.startswith(b"fail"):
                raise ValueError(line)
            self.wfile.write(line)

    server = recording_server(ss.TCPServer, recorder)(("127.0.0.1", 0), Flaky)
    with serving(server):
        for message in [b"fail 1\n", b"ok 1\n", b"fail 2\n", b"ok 2\n"]:
            with connect(server) as client:
                client.sendall(message)
                reply = client.recv(100)
                assert reply == (b"" if message.startswith(b"fail") else message)
        recorder.wait_for(lambda events: events.count("shutdown_request") == 4)
    assert recorder.events.count("handle_error") == 2


def test_the_default_handle_error_prints_the_traceback_and_client_address(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Broken(ss.BaseRequestHandler):
        def handle(self) -> None:
            raise ValueError("a very particular failure")

    with ss.TCPServer(("127.0.0.1", 0), Broken) as server, connect(server) as client:
        server.handle_request()
        address = client.getsockname()
    err = capsys.readouterr().err
    assert "Exception occurred during processing of request from" in err
    assert str(address) in err
    assert "ValueError: a very particular failure" in err


# -- verify_request ------------------------------------------------------------------


def test_refused_requests_never_reach_the_handler_and_are_closed() -> None:
    reached: list[Any] = []

    class Handler(ss.BaseRequestHandler):
        def handle(self) -> None:
            reached.append(self.client_address)

    class Refusing(ss.TCPServer):
        def verify_request(self, request: Any, client_address: Any) -> bool:
            return False

    with Refusing(("127.0.0.1", 0), Handler) as server, connect(server) as client:
        server.handle_request()
        assert client.recv(10) == b""
    assert reached == []


# -- handle_request and timeouts -----------------------------------------------------


class CountingTimeouts(ss.TCPServer):
    timeouts = 0

    def handle_timeout(self) -> None:
        self.timeouts += 1


def test_handle_request_times_out_once_after_self_timeout() -> None:
    with CountingTimeouts(("127.0.0.1", 0), Echo) as server:
        server.timeout = 0.05
        started = time.monotonic()
        server.handle_request()
        assert time.monotonic() - started >= 0.05
        assert server.timeouts == 1


def test_handle_request_honours_the_listening_sockets_own_timeout() -> None:
    with CountingTimeouts(("127.0.0.1", 0), Echo) as server:
        server.timeout = None
        server.socket.settimeout(0.05)
        server.handle_request()  # Would block forever if the socket timeout were ignored.
        assert server.timeouts == 1


def test_the_smaller_of_self_timeout_and_the_socket_timeout_wins() -> None:
    with CountingTimeouts(("127.0.0.1", 0), Echo) as server:
        server.timeout = 3600
        server.socket.settimeout(0.05)
        finished = threading.Event()
        thread = threading.Thread(target=lambda: (server.handle_request(), finished.set()))
        thread.start()
        assert finished.wait(WAIT)  # Not the hour of self.timeout.
        thread.join(WAIT)
        assert server.timeouts == 1


def test_a_client_before_the_timeout_is_handled_and_no_timeout_is_reported() -> None:
    with CountingTimeouts(("127.0.0.1", 0), Echo) as server, connect(server) as client:
        server.timeout = WAIT
        client.sendall(b"hi\n")
        server.handle_request()
        assert client.recv(10) == b"hi\n"
        assert server.timeouts == 0


def test_a_client_that_left_before_accept_is_ignored() -> None:
    class FailingAccept(ss.TCPServer):
        def get_request(self) -> Any:
            raise ConnectionAbortedError("the client left")

    with FailingAccept(("127.0.0.1", 0), Echo) as server, connect(server):
        server.handle_request()  # An OSError from get_request() is not an error.


# -- shutdown --------------------------------------------------------------------------


def test_shutdown_of_an_idle_loop_does_not_wait_out_poll_interval() -> None:
    with ss.TCPServer(("127.0.0.1", 0), Echo) as server:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 3600})
        thread.start()
        done = threading.Event()
        closer = threading.Thread(target=lambda: (server.shutdown(), done.set()))
        closer.start()
        # With a one-hour poll interval, only the wake-up can make this return.
        assert done.wait(WAIT)
        thread.join(WAIT)
        closer.join(WAIT)
        assert not thread.is_alive()


def test_shutdown_with_no_poll_interval_at_all_still_works() -> None:
    with ss.TCPServer(("127.0.0.1", 0), Echo) as server:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": None})
        thread.start()
        server.shutdown()
        thread.join(WAIT)
        assert not thread.is_alive()


def test_shutdown_waits_for_the_request_in_progress() -> None:
    entered, release = threading.Event(), threading.Event()

    class Busy(ss.BaseRequestHandler):
        def handle(self) -> None:
            entered.set()
            release.wait(WAIT)

    with ss.TCPServer(("127.0.0.1", 0), Busy) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        with connect(server):
            assert entered.wait(WAIT)
            returned = threading.Event()
            closer = threading.Thread(target=lambda: (server.shutdown(), returned.set()))
            closer.start()
            assert not returned.wait(0.2)  # Still busy: shutdown() must not return yet.
            release.set()
            assert returned.wait(WAIT)
        closer.join(WAIT)
        thread.join(WAIT)


def test_shutdown_before_serve_forever_starts_is_not_lost() -> None:
    with ss.TCPServer(("127.0.0.1", 0), Echo) as server:
        returned = threading.Event()
        closer = threading.Thread(target=lambda: (server.shutdown(), returned.set()))
        closer.start()
        server.serve_forever()  # Returns at once: the shutdown was already requested.
        assert returned.wait(WAIT)
        closer.join(WAIT)


def test_many_servers_each_shut_down_right_after_their_thread_starts() -> None:
    servers = [ss.TCPServer(("127.0.0.1", 0), Echo) for _ in range(20)]
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 3600}) for s in servers
    ]
    try:
        for thread, server in zip(threads, servers, strict=True):
            thread.start()
            server.shutdown()
        for thread in threads:
            thread.join(WAIT)
            assert not thread.is_alive()
    finally:
        for server in servers:
            server.server_close()


def test_shutdown_from_a_handler_on_the_serving_thread_stops_the_loop() -> None:
    class Stopper(ss.BaseRequestHandler):
        def handle(self) -> None:
            self.server.shutdown()  # The stdlib deadlocks here.

    with ss.TCPServer(("127.0.0.1", 0), Stopper) as server:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 3600})
        thread.start()
        with connect(server) as client:
            assert client.recv(10) == b""
        thread.join(WAIT)
        assert not thread.is_alive()


def test_the_server_serves_again_after_a_shutdown() -> None:
    with ss.TCPServer(("127.0.0.1", 0), Echo) as server:
        for round_ in range(3):
            thread = threading.Thread(target=server.serve_forever)
            thread.start()
            with connect(server) as client:
                client.sendall(b"round %d\n" % round_)
                assert client.recv(100) == b"round %d\n" % round_
            server.shutdown()
            thread.join(WAIT)
            assert not thread.is_alive()


def test_service_actions_runs_at_least_every_poll_interval() -> None:
    ran = threading.Semaphore(0)

    class Periodic(ss.TCPServer):
        def service_actions(self) -> None:
            ran.release()

    with Periodic(("127.0.0.1", 0), Echo) as server, serving(server, poll_interval=0.01):
        for _ in range(5):
            assert ran.acquire(timeout=WAIT)


def test_the_wake_up_pair_lives_only_while_serving() -> None:
    from tests.helpers import open_fds

    with ss.TCPServer(("127.0.0.1", 0), Echo) as server:
        before = open_fds()
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        wait_for(lambda: len(open_fds() - before) >= 2, what="the wake-up pair")
        server.shutdown()
        thread.join(WAIT)
        assert open_fds() <= before


# -- closing and selectors -----------------------------------------------------------


def test_server_close_twice_is_harmless() -> None:
    for cls in (ss.TCPServer, ss.UDPServer, ss.ThreadingTCPServer, ss.ForkingTCPServer):
        server = cls(("127.0.0.1", 0), Echo)
        server.server_close()
        server.server_close()
        assert server.socket.fileno() == -1


def test_the_context_manager_closes_the_server() -> None:
    with ss.TCPServer(("127.0.0.1", 0), Echo) as server:
        assert server.socket.fileno() >= 0
    assert server.socket.fileno() == -1


def test_fileno_lets_a_selector_drive_the_server() -> None:
    with ss.TCPServer(("127.0.0.1", 0), Echo) as server, selectors.DefaultSelector() as sel:
        sel.register(server, selectors.EVENT_READ)
        assert sel.select(0) == []
        with connect(server) as client:
            client.sendall(b"via selector\n")
            [(key, _)] = sel.select(WAIT)
            assert key.fileobj is server
            server.handle_request()
            assert client.recv(100) == b"via selector\n"


def test_bind_and_activate_false_leaves_binding_to_the_caller() -> None:
    server = ss.TCPServer(("127.0.0.1", 0), Echo, bind_and_activate=False)
    try:
        server.allow_reuse_address = True
        server.server_bind()
        server.server_activate()
        assert server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert server.server_address[1] != 0
    finally:
        server.server_close()


def test_allow_reuse_port_sets_so_reuseport() -> None:
    class Reusing(ss.TCPServer):
        allow_reuse_port = True

    with Reusing(("127.0.0.1", 0), Echo) as server:
        assert server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)


# -- bad input gets the stdlib's exceptions ------------------------------------------


BAD_ADDRESSES = [
    pytest.param(("127.0.0.1", -1), id="negative-port"),
    pytest.param(("127.0.0.1", 70000), id="port-too-large"),
    pytest.param(("127.0.0.1", "eighty"), id="port-not-an-int"),
    pytest.param("127.0.0.1:80", id="string-for-inet"),
    pytest.param(("127.0.0.1",), id="tuple-too-short"),
]


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_bad_addresses_raise_what_the_stdlib_raises(address: Any) -> None:
    with pytest.raises(Exception) as theirs:
        stdlib.TCPServer(address, stdlib.BaseRequestHandler)
    with pytest.raises(theirs.type):
        ss.TCPServer(address, ss.BaseRequestHandler)


def test_an_address_in_use_raises_what_the_stdlib_raises() -> None:
    with ss.TCPServer(("127.0.0.1", 0), Echo) as first:
        with pytest.raises(OSError) as theirs:
            stdlib.TCPServer(first.server_address, stdlib.BaseRequestHandler)
        with pytest.raises(OSError) as mine:
            ss.TCPServer(first.server_address, ss.BaseRequestHandler)
        assert mine.value.errno == theirs.value.errno


def test_an_address_family_the_platform_lacks_raises_what_the_stdlib_raises() -> None:
    class Theirs(stdlib.TCPServer):
        address_family = -12345

    class Mine(ss.TCPServer):
        address_family = -12345

    with pytest.raises(Exception) as theirs:
        Theirs(("127.0.0.1", 0), stdlib.BaseRequestHandler)
    with pytest.raises(theirs.type):
        Mine(("127.0.0.1", 0), ss.BaseRequestHandler)
