"""The world of one conformance example: a server under test, its clients, and what happened.

The server class under test is subclassed only to observe it: every method
the lab looks at is called through (``verify_request``, ``handle_timeout``,
``handle_error``, ``process_request``), so the class behaves as in production.
Requests carry their behaviour in their first line (or datagram) — ``id=3
sleep=0.02 raise=1 gate=g1`` — so one handler class serves every property, and
so it works alike in threads and forked children. Handlers write what they do
(``3 setup``, ``3 handle``, ``3 finish``) to an append-only log file in the
example's private directory: the one record that forked children and threads
share with the test.

Every wait is bounded twice: by its own bound (``WAIT`` for what should
happen) and by the property's :class:`Budget`; a spent budget ends the
property at once with a verdict. A wait that expires is a :class:`Failure`
that names what was awaited and the root cause it points to.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from sockharness._core import (
    ReceiveTimeout,
    SockharnessError,
    child_state,
    private_directory,
    socket_descriptors,
)
from sockharness.handlers import HandlerCrash
from sockharness.harness import Client, connect
from sockharness.server import BaseRequestHandler

from ._target import ServerUnderTest

__all__ = [
    "Budget",
    "BudgetSpent",
    "Failure",
    "Lab",
    "LabHandler",
    "Timed",
    "budget",
    "budgeted",
    "child_state",
    "socket_fds",
]

socket_fds = socket_descriptors

WAIT = 3.0  # The bound on every wait for something that should happen.
SLACK_FOR_CLEANUP = 1.0
CLEANUP = 2 * WAIT  # The bound on cleaning up one example, whatever the server does.
#: How long a handler waits for a client's first bytes. A request is sent at once
#: after connecting, but a loaded machine (or a collection) can stall the lab's
#: thread in between: a handler that gave up sooner would close, the request would
#: meet a closed socket, and a healthy class would be judged on the reset.
FIRST_BYTES_TIMEOUT = WAIT
#: How long an idle client (one that sent :data:`IDLE_MARK`) holds a handler.
HANDLER_READ_TIMEOUT = 0.3
#: What an idle client sends on connecting: bytes with no end of line, so no request.
IDLE_MARK = b"idle"


class BudgetSpent(BaseException):
    """The property's time budget ran out (a ``BaseException``: hypothesis must not catch it)."""


class Budget:
    """The time one property may take, on one class, all examples and shrinking included."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def bound(self, wait: float) -> float:
        """``wait``, cut to what is left of the budget; raises :class:`BudgetSpent` if none is."""
        remaining = self.remaining()
        if remaining <= 0:
            raise BudgetSpent(f"the budget of {self.seconds:g} s is spent")
        return min(wait, remaining)


_NO_BUDGET = Budget(float("inf"))
_budget = _NO_BUDGET  # One property is checked at a time; its helper threads share it.


def budget() -> Budget:
    """The budget of the property being checked (unbounded outside a check)."""
    return _budget


@contextlib.contextmanager
def budgeted(limit: Budget) -> Iterator[Budget]:
    """Check a property within ``limit``: every wait of the lab is cut to what is left."""
    global _budget
    previous, _budget = _budget, limit
    try:
        yield limit
    finally:
        _budget = previous


def _bound(wait: float) -> float:
    return _budget.bound(wait)


class Failure(SockharnessError, AssertionError):
    """A property does not hold: ``str()`` says what happened, ``cause`` the root cause.

    ``cause`` is a short sentence that does not depend on the example (no
    ids, sizes or addresses), so that failures of several properties with one
    cause are reported once, together.
    """

    def __init__(self, message: str, *, cause: str | None = None) -> None:
        super().__init__(message)
        self.cause = cause or message


#: Root causes the lab recognises.
NO_REPLY = "requests get no reply"
NEVER_HANDLED = "requests never reach a handler"
WRONG_PEER = "replies do not reach the client that asked"
NOT_CLOSED = "connections are not closed once their handler is done"
REFUSED_LEFT_OPEN = "refused connections are left open"
WRONG_REPLY = "requests get a wrong reply"
SHUTDOWN_HANGS = "shutdown() does not return"


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
        handler_threads = getattr(self.server, "lab_handler_threads", None)
        if handler_threads is not None and os.getpid() == self.server.lab_pid:
            handler_threads.append(weakref.ref(threading.current_thread()))
        self.datagram = isinstance(self.request, tuple)
        if self.datagram:
            self.line = self.request[0]
        else:
            self.line = self._read_line()
        self.fields = _parse(self.line)
        self.request_id = self.fields.get("id", "?")
        self._log(self.request_id, "setup")

    def _read_line(self) -> bytes:
        """The request's line; ``b""`` for a client that ended or idled without one.

        The first bytes may be long in coming (see :data:`FIRST_BYTES_TIMEOUT`);
        once a client has sent some, an unfinished line is an idle client's,
        which holds the handler only :data:`HANDLER_READ_TIMEOUT` more.
        """
        data = b""
        self.request.settimeout(FIRST_BYTES_TIMEOUT)
        try:
            while b"\n" not in data:
                chunk = self.request.recv(4096)
                if not chunk:
                    break
                data += chunk
                self.request.settimeout(HANDLER_READ_TIMEOUT)
        except (TimeoutError, OSError):
            pass
        line, newline, _ = data.partition(b"\n")
        return line if newline else b""

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
            raise HandlerCrash(f"request {self.request_id} raised on purpose")
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

    def wait(self, timeout: float, *, budgeted: bool = True) -> bool:
        """Whether the call ended within ``timeout`` (cut to the property's budget).

        Raises :class:`BudgetSpent` when the budget, not ``timeout``, ran out.
        """
        if not budgeted:
            return self.done.wait(timeout)
        bound = _bound(timeout)
        if self.done.wait(bound):
            return True
        if bound < timeout:
            raise BudgetSpent(f"the budget ran out waiting for {self.thread.name}")
        return False


class Lab:
    """Servers, clients and a log for one example; :meth:`close` releases everything."""

    def __init__(self, sut: ServerUnderTest) -> None:
        self.sut = sut
        self.directory = private_directory("shl-")
        self.log = os.path.join(self.directory, "events.log")
        self.servers: list[Any] = []
        self.threads: list[threading.Thread] = []
        self.clients: list[Client] = []
        self.background: list[threading.Thread] = []
        self.background_failures: list[Failure] = []
        #: Every connection the server accepted (in this process).
        self.requests: list[socket.socket] = []
        self.counter = 0
        self.decisions: deque[bool] = deque()
        self.timeouts = 0
        self.children_seen: set[int] = set()
        #: Weak references to the threads handlers ran in (a strong one would keep them).
        self.handler_threads: list[weakref.ref[threading.Thread]] = []
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
            lab_handler_threads = lab.handler_threads
            lab_pid = os.getpid()

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
                super().handle_error(request, client_address)  # Observed, never replaced.

            def get_request(self) -> Any:
                request, client_address = super().get_request()
                if isinstance(request, socket.socket):
                    lab.requests.append(request)  # Closed at the end if the class forgets.
                return request, client_address

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

    def build(self, cls: type) -> Any:
        """A server of ``cls`` (an observed subclass) on a new address, built as the target says."""
        return self.sut.build(cls, self.address(), LabHandler)

    def make_server(self, **attributes: Any) -> Any:
        server = self.build(self.server_class(**attributes))
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
        entered.wait(_bound(WAIT))
        self.threads.append(thread)
        return thread

    # -- clients -------------------------------------------------------------------------------

    def client(self, server: Any, timeout: float = WAIT) -> Client:
        client = connect(server.server_address, self.sut.kind, timeout=_bound(timeout))
        self.clients.append(client)
        return client

    def idle_client(self, server: Any) -> Client:
        """A stream client that connects, says it is idle, and sends no request.

        Its handler gives up :data:`HANDLER_READ_TIMEOUT` after the mark
        arrives, so a sync server is held that long, and no longer.
        """
        client = self.client(server)
        client.send(IDLE_MARK)
        return client

    def request(
        self, server: Any, fields: str, *, timeout: float = WAIT, reply: bool = True
    ) -> bytes:
        """Send one request; return the reply (``b""`` when the stream ended with none).

        A datagram request that expects no ``reply`` is only sent. A reply that
        does not come, or a stream that does not end, within ``timeout`` is a
        :class:`Failure` naming its cause.
        """
        bound = _bound(timeout)
        with self.client(server, bound) as client:
            client.send(fields.encode() + (b"\n" if self.sut.stream else b""))
            try:
                if self.sut.stream:
                    client.shutdown_write()
                    return client.recv_all()
                return client.recv() if reply else b""
            except ReceiveTimeout as exc:
                if bound < timeout:
                    raise BudgetSpent("the budget ran out waiting for a reply") from None
                raise self.no_reply(fields, exc, timeout) from None

    def receive(self, client: Client, fields: str, *, timeout: float = WAIT) -> bytes:
        """The next datagram for ``client``, which sent ``fields``; a :class:`Failure` if none."""
        bound = _bound(timeout)
        client.timeout = bound
        try:
            return client.recv()
        except ReceiveTimeout as exc:
            if bound < timeout:
                raise BudgetSpent("the budget ran out waiting for a reply") from None
            raise self.no_reply(fields, exc, timeout) from None

    def no_reply(self, fields: str, exc: ReceiveTimeout, timeout: float) -> Failure:
        """The failure for a request that got no reply (or no end) in time, with its cause.

        The handlers' log tells a request that never reached a handler from
        one whose handler ran and answered, in vain.
        """
        request_id = _parse(fields.encode()).get("id", "?")
        steps = [event for rid, event, _ in self.events() if rid == request_id]
        if not self.sut.stream:
            if "finish" in steps:
                return Failure(
                    f"the datagram {fields!r} was handled, but no reply reached its client "
                    f"within {timeout:g} s (it went to another address?)",
                    cause=WRONG_PEER,
                )
            return Failure(
                f"the datagram {fields!r} never reached a handler ({timeout:g} s): it was dropped",
                cause=NEVER_HANDLED,
            )
        if exc.received or "finish" in steps:
            return Failure(
                f"request {fields!r} was handled (reply {exc.received[:60]!r}), but its "
                f"connection was still open {timeout:g} s later",
                cause=NOT_CLOSED,
            )
        ran = f"its handler ran {', '.join(steps)}" if steps else "no handler ran"
        return Failure(
            f"request {fields!r} got no reply, and its connection did not end, within "
            f"{timeout:g} s ({ran})",
            cause=NO_REPLY,
        )

    def refused(self, server: Any, fields: str, *, timeout: float = WAIT) -> bytes:
        """Send a request the server is to refuse; return what came before the connection ended.

        The client keeps its side open: the server must close (or reset) the
        connection by itself, within ``timeout``.
        """
        bound = _bound(timeout)
        try:
            client = self.client(server, bound)
        except OSError:
            return b""  # Closed before the request was even sent: as refused as can be.
        with client:
            try:
                client.send(fields.encode() + b"\n")
                return client.recv_all()
            except ReceiveTimeout as exc:
                if bound < timeout:
                    raise BudgetSpent("the budget ran out waiting for a refusal") from None
                raise Failure(
                    f"the connection of refused request {fields!r} was still open after "
                    f"{timeout:g} s (received {exc.received[:60]!r}): verify_request() said "
                    f"no, and the server must close the connection",
                    cause=REFUSED_LEFT_OPEN,
                ) from None
            except OSError:
                return b""  # Reset: refused.

    def in_background(self, call: Callable[[], Any]) -> threading.Thread:
        """Run ``call`` in a thread; a :class:`Failure` it raises is kept for :meth:`reraise`."""

        def run() -> None:
            try:
                call()
            except Failure as failure:
                self.background_failures.append(failure)
            except (Exception, BudgetSpent):
                pass

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.background.append(thread)
        return thread

    def reraise(self) -> None:
        """Raise the first :class:`Failure` a background call met, if any did."""
        if self.background_failures:
            raise self.background_failures[0]

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

    def wait_until(
        self, condition: Callable[[], bool], timeout: float = WAIT, *, budgeted: bool = True
    ) -> bool:
        """Whether ``condition`` became true within ``timeout`` (cut to the budget).

        Raises :class:`BudgetSpent` when the budget, not ``timeout``, ran out.
        """
        bound = _bound(timeout) if budgeted else timeout
        deadline = time.monotonic() + bound
        delay = 0.001
        while not condition():
            if time.monotonic() > deadline:
                if bound < timeout:
                    raise BudgetSpent("the budget ran out waiting for a condition")
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
        """Open every gate, stop and close every server, remove the directory.

        Bounded in all by ``CLEANUP`` seconds, whatever the server does, and
        never cut short by the budget (the example must be cleaned up).
        """
        deadline = time.monotonic() + CLEANUP

        def left(wait: float) -> float:
            return max(0.0, min(wait, deadline - time.monotonic()))

        for name in ("g", "g1", "g2", "g3"):
            self.open_gate(name)
        for client in self.clients:
            with contextlib.suppress(OSError):
                client.close()
        for server, thread in zip(self.servers, self.threads, strict=False):
            if thread.is_alive():
                _stop(server, broken_shutdown=self.hung, deadline=deadline)
        for server in self.servers:
            closing = Timed(server.server_close, "cleanup server_close")
            if not closing.wait(left(WAIT), budgeted=False):
                with contextlib.suppress(Exception):
                    server.socket.close()
        for thread in self.background:
            thread.join(left(WAIT))
        for request in self.requests:  # A class that never closes a connection: the lab does.
            with contextlib.suppress(OSError):
                request.close()
        # Handlers the server did not wait for (block_on_close false) end here; a
        # broken server's may never: the example is over either way.
        self.wait_until(
            lambda: self.count("setup") <= self.count("finish"),
            left(self.drain_timeout),
            budgeted=False,
        )
        for pid in self.children_seen:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        shutil.rmtree(self.directory, ignore_errors=True)


#: shutdown() methods seen to hang: cleanups do not wait for them again.
_HANGING: set[Any] = set()


def _stop(server: Any, *, broken_shutdown: bool, deadline: float | None = None) -> None:
    """Stop a serving loop; past a ``shutdown()`` that hangs, use an ancestor's.

    (Whether ``shutdown()`` itself is prompt is the ``shutdown`` property's
    business; here it only has to end the example.) Never waits past ``deadline``.
    """
    deadline = deadline if deadline is not None else time.monotonic() + CLEANUP

    def left(wait: float) -> float:
        return max(0.0, min(wait, deadline - time.monotonic()))

    own = type(server).shutdown
    suspect = broken_shutdown or own in _HANGING
    if not suspect:
        stopping = Timed(server.shutdown, "cleanup shutdown")
        if stopping.wait(left(2 * SLACK_FOR_CLEANUP), budgeted=False):
            return
        _HANGING.add(own)  # Later examples go straight past it.
    for cls in type(server).__mro__[1:]:
        method = cls.__dict__.get("shutdown")
        if method is None or method is own:
            continue
        stopping = Timed(functools.partial(method, server), "cleanup shutdown")
        if stopping.wait(left(WAIT), budgeted=False):
            return


def _quietly(call: Callable[[], Any]) -> None:
    with contextlib.suppress(Exception, BudgetSpent):
        call()
