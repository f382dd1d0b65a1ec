"""The world of one conformance example: a server under test, its clients, and what happened.

The server class under test is subclassed only to observe it (calls are
counted and passed on). Requests carry their behaviour in their first line
(or datagram) — ``id=3 sleep=0.02 raise=1 gate=g1`` — so one handler class
serves every property, and so it works alike in threads and forked children.
Handlers write what they do (``3 setup``, ``3 handle``, ``3 finish``) to an
append-only log file in the example's private directory: the one record that
forked children and threads share with the test.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sockharness._clients import Client, connect
from sockharness._procfs import child_state, socket_descriptors
from sockharness.server import BaseRequestHandler

from ._target import ServerUnderTest

__all__ = ["Lab", "LabHandler", "Timed", "child_state", "socket_fds"]

socket_fds = socket_descriptors

WAIT = 5.0  # The bound on every wait for something that should happen.
SLACK_FOR_CLEANUP = 1.0
HANDLER_READ_TIMEOUT = 0.3  # An idle client cannot hold a handler longer than this.


def _parse(text: bytes) -> dict[str, str]:
    fields = {}
    for item in text.decode(errors="replace").split():
        key, _, value = item.partition("=")
        fields[key] = value
    return fields


class LabHandler(BaseRequestHandler):
    """Acts out the behaviour its request asks for, and logs each step."""

    def _log(self, request_id: str, event: str) -> None:
        line = f"{request_id} {event} {os.getpid()}\n".encode()
        try:
            fd = os.open(self.server.lab_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except FileNotFoundError:
            return  # The example is over and its directory gone.
        try:
            os.write(fd, line)  # One write of a short line: atomic with O_APPEND.
        finally:
            os.close(fd)

    def setup(self) -> None:
        self.datagram = isinstance(self.request, tuple)
        if self.datagram:
            self.line = self.request[0]
        else:
            self.request.settimeout(HANDLER_READ_TIMEOUT)
            self.line = self._read_line()
        self.fields = _parse(self.line)
        self.request_id = self.fields.get("id", "?")
        self._log(self.request_id, "setup")

    def _read_line(self) -> bytes:
        data = b""
        try:
            while b"\n" not in data:
                chunk = self.request.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, OSError):
            pass
        return data.split(b"\n", 1)[0]

    def handle(self) -> None:
        self._log(self.request_id, "handle")
        fields = self.fields
        if "gate" in fields:
            path = os.path.join(os.path.dirname(self.server.lab_log), fields["gate"])
            deadline = time.monotonic() + 30
            while not os.path.exists(path) and time.monotonic() < deadline:
                time.sleep(0.002)
        if "sleep" in fields:
            time.sleep(float(fields["sleep"]))
        if "raise" in fields:
            raise RuntimeError(f"request {self.request_id} raised on purpose")
        if "exit" in fields:
            raise SystemExit(f"request {self.request_id} exited on purpose")
        if self.fields:  # An empty request (an idle client) gets no reply.
            reply = f"ok {self.request_id} {len(self.line)}\n".encode()
            if self.datagram:
                self.request[1].sendto(reply, self.client_address)
            else:
                with contextlib.suppress(OSError):
                    self.request.sendall(reply)

    def finish(self) -> None:
        self._log(self.request_id, "finish")


class Timed:
    """Runs a call in a helper thread, so a call that hangs cannot hang the check."""

    def __init__(self, call: Callable[[], Any], name: str) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.took: float | None = None

        def run() -> None:
            try:
                call()
            except BaseException as exc:  # Reported by the check that waits.
                self.error = exc
            finally:
                self.took = time.monotonic() - self.started
                self.done.set()

        self.thread = threading.Thread(target=run, name=f"conformance {name}", daemon=True)
        self.thread.start()

    def wait(self, timeout: float) -> bool:
        return self.done.wait(timeout)


class Lab:
    """Servers, clients and a log for one example; :meth:`close` releases everything."""

    def __init__(self, sut: ServerUnderTest) -> None:
        self.sut = sut
        self.directory = tempfile.mkdtemp(
            prefix="shc-", dir="/tmp" if os.path.isdir("/tmp") else None
        )
        self.log = os.path.join(self.directory, "events.log")
        self.servers: list[Any] = []
        self.threads: list[threading.Thread] = []
        self.clients: list[Client] = []
        self.background: list[threading.Thread] = []
        self.counter = 0
        self.decisions: deque[bool] = deque()
        self.timeouts = 0
        self.children_seen: set[int] = set()
        self.most_children = 0
        self.hung = False
        #: How long close() waits for handlers the server itself did not wait for.
        self.drain_timeout = 1.0

    # -- servers -------------------------------------------------------------------------------

    def address(self) -> Any:
        if self.sut.kind.unix:
            self.counter += 1
            return os.path.join(self.directory, f"s{self.counter}.sock")
        return (self.sut.kind.loopback, 0)

    def server_class(self, **attributes: Any) -> type:
        lab = self
        base = self.sut.cls

        class Observed(base):  # type: ignore[misc, valid-type]
            lab_log = lab.log

            def verify_request(self, request: Any, client_address: Any) -> bool:
                verdict = super().verify_request(request, client_address)
                if lab.decisions:
                    return bool(verdict) and lab.decisions.popleft()
                return bool(verdict)

            def handle_timeout(self) -> None:
                lab.timeouts += 1
                super().handle_timeout()

            def handle_error(self, request: Any, client_address: Any) -> None:
                with contextlib.suppress(FileNotFoundError), open(lab.log, "a") as f:
                    f.write(f"- error {os.getpid()}\n")

            def process_request(self, request: Any, client_address: Any) -> None:
                super().process_request(request, client_address)
                children = getattr(self, "active_children", None)
                if children:
                    lab.children_seen.update(children)
                    lab.most_children = max(lab.most_children, len(children))

        for name, value in attributes.items():
            setattr(Observed, name, value)
        Observed.__name__ = base.__name__
        Observed.__qualname__ = base.__qualname__
        return Observed

    def make_server(self, **attributes: Any) -> Any:
        server = self.server_class(**attributes)(self.address(), LabHandler)
        self.servers.append(server)
        return server

    def serve(self, server: Any, poll_interval: float = 0.05) -> threading.Thread:
        entered = threading.Event()

        def run() -> None:
            entered.set()
            with contextlib.suppress(BaseException):
                server.serve_forever(poll_interval=poll_interval)

        thread = threading.Thread(target=run, name="conformance serve_forever", daemon=True)
        thread.start()
        entered.wait(WAIT)
        self.threads.append(thread)
        return thread

    # -- clients -------------------------------------------------------------------------------

    def client(self, server: Any, timeout: float = WAIT) -> Client:
        client = connect(server.server_address, self.sut.kind, timeout=timeout)
        self.clients.append(client)
        return client

    def request(
        self, server: Any, fields: str, *, timeout: float = WAIT, reply: bool = True
    ) -> bytes:
        """Send one request; return the reply ("" when there was none before the end).

        A datagram request that expects no ``reply`` is only sent.
        """
        with self.client(server, timeout) as client:
            client.send(fields.encode() + (b"\n" if self.sut.stream else b""))
            if self.sut.stream:
                client.shutdown_write()
                return client.recv_all()
            return client.recv() if reply else b""

    def in_background(self, call: Callable[[], Any]) -> threading.Thread:
        thread = threading.Thread(target=lambda: _quietly(call), daemon=True)
        thread.start()
        self.background.append(thread)
        return thread

    # -- what happened ----------------------------------------------------------------------------

    def events(self) -> list[tuple[str, str, int]]:
        try:
            with open(self.log) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        parsed = []
        for line in lines:
            request_id, event, pid = line.split()
            parsed.append((request_id, event, int(pid)))
        return parsed

    def wait_until(self, condition: Callable[[], bool], timeout: float = WAIT) -> bool:
        deadline = time.monotonic() + timeout
        delay = 0.001
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        return True

    def count(self, event: str) -> int:
        return sum(1 for _, name, _ in self.events() if name == event)

    def stop_serving(self, server: Any) -> None:
        """End ``server``'s loop, however broken its ``shutdown()`` is."""
        _stop(server, broken_shutdown=self.hung)

    def open_gate(self, name: str) -> None:
        with open(os.path.join(self.directory, name), "w"):
            pass

    # -- cleaning up ------------------------------------------------------------------------------

    def close(self) -> None:
        """Open every gate, stop and close every server (bounded), remove the directory."""
        for name in ("g", "g1", "g2", "g3"):
            self.open_gate(name)
        for client in self.clients:
            with contextlib.suppress(OSError):
                client.close()
        for server, thread in zip(self.servers, self.threads, strict=False):
            if thread.is_alive():
                _stop(server, broken_shutdown=self.hung)
        for server in self.servers:
            closing = Timed(server.server_close, "cleanup server_close")
            if not closing.wait(WAIT):
                with contextlib.suppress(Exception):
                    server.socket.close()
        for thread in self.background:
            thread.join(WAIT)
        # Handlers the server did not wait for (block_on_close false) end here; a
        # broken server's may never: the example is over either way.
        self.wait_until(lambda: self.count("setup") <= self.count("finish"), self.drain_timeout)
        for pid in self.children_seen:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        shutil.rmtree(self.directory, ignore_errors=True)


#: shutdown() methods seen to hang: cleanups do not wait for them again.
_HANGING: set[Any] = set()


def _stop(server: Any, *, broken_shutdown: bool) -> None:
    """Stop a serving loop; past a ``shutdown()`` that hangs, use an ancestor's.

    (Whether ``shutdown()`` itself is prompt is the ``shutdown`` property's
    business; here it only has to end the example.)
    """
    own = type(server).shutdown
    suspect = broken_shutdown or own in _HANGING
    if not suspect:
        if Timed(server.shutdown, "cleanup shutdown").wait(2 * SLACK_FOR_CLEANUP):
            return
        _HANGING.add(own)  # Later examples go straight past it.
    for cls in type(server).__mro__[1:]:
        method = cls.__dict__.get("shutdown")
        if method is None or method is own:
            continue
        if Timed(functools.partial(method, server), "cleanup shutdown").wait(WAIT):
            return


def _quietly(call: Callable[[], Any]) -> None:
    with contextlib.suppress(Exception):
        call()
