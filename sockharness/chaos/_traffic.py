"""The load: client threads that send messages, check each reply, and time it.

A group's clients speak its ``protocol`` (``http``, ``lines``,
``length-prefixed``: see ``_protocols.py``) or run its ``workload``; by
default (``echo``) every message is one line, ``<client>:<seq>:<body>\\n``, so a reply can be
matched to the message it answers (datagrams may come late, twice or out of
order) and a changed byte shows. Each message ends as one of:

- ``ok``: the expected reply arrived (or, for ``reply = "none"``, the send went through);
- ``lost``: no reply within the client's ``timeout``;
- ``corrupt``: a reply arrived, with the wrong bytes;
- ``error``: the connection failed (refused, reset, closed early, ...).
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import itertools
import json
import random
import socket
import ssl
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from sockharness._core import ConnectionClosed, Outcome, ReceiveTimeout
from sockharness.faults import Fault, Timeline
from sockharness.harness import Client, Payloads, connect

from ._command import CommandRunner
from ._protocols import Workload, speak
from ._schema import ClientSpec

if TYPE_CHECKING:
    from ._client_processes import ClientProcess

__all__ = ["Message", "ProbeClient", "Route", "Traffic", "make_bodies"]

#: Bodies prepared per client group, cycled through by its messages.
_POOL = 32
#: After a failed connection, the client waits this long before trying again.
_BACKOFF = 0.02


class Message(NamedTuple):
    """One message: who sent it, when (seconds from the start), and how it ended.

    A named tuple: the clients make one per message, and it must cost little.
    """

    client: int
    seq: int
    sent: float
    done: float
    outcome: Outcome
    detail: str = ""

    @property
    def latency(self) -> float:
        """Seconds from the send to the reply (or to the failure)."""
        return self.done - self.sent


@dataclass(frozen=True)
class Route:
    """Where a client group's clients go and how: its service's address, as they reach it."""

    address: Any
    kind: str
    tls: ssl.SSLContext | None = None
    #: The client-side faults in force at a time (``time.monotonic()``).
    client_faults: Callable[[float], tuple[Fault, ...]] = lambda when: ()
    #: What a command workload finds in its environment (the addresses).
    command_environment: Mapping[str, str] = field(default_factory=dict)


def make_bodies(spec: ClientSpec, seed: int, group: int) -> list[bytes]:
    """The message bodies of one client group: no newline in any, each at most ``size``."""
    payloads = Payloads(seed * 1_000 + group)
    bodies = []
    for _ in range(_POOL):
        if spec.payload == "random":
            raw = payloads.bytes(spec.size)
        elif spec.payload == "json":
            raw = json.dumps(payloads.json_record()).encode()
        else:  # "text" and "line": faker prose
            raw = payloads.text(max(spec.size, 5)).encode()
        bodies.append(raw.replace(b"\n", b" ")[: spec.size])
    return bodies


class Traffic:
    """Every client of a scenario: :meth:`start`, then :meth:`stop` and collect.

    A client is a thread of the runner, or (for a group with ``processes``) a
    thread of one of the group's processes. Making it builds every message
    body and starts the group's processes (which wait for :meth:`start`); the
    clients share what is here (the seed, the clock, the timeline) and each
    group's :class:`Route` (where its service is, TLS, its fault windows), and
    read them as they go.
    """

    def __init__(
        self,
        groups: Sequence[ClientSpec],
        *,
        routes: Sequence[Route],
        seed: int,
        duration: float,
        timeline: Timeline,
        workloads: Sequence[Workload | None] = (),
    ) -> None:
        if len(routes) != len(groups):
            raise ValueError(f"{len(groups)} client groups and {len(routes)} routes")
        self.seed = seed
        self.duration = duration
        self.timeline = timeline
        self.started = 0.0
        self.boundaries: list[float] = []
        self.stopping = threading.Event()
        self._connections = itertools.count()
        self._clients: list[_Worker | ClientProcess] = []
        try:
            first = 0
            for group_index, group in enumerate(groups):
                bodies = make_bodies(group, seed, group_index)
                ids = range(first, first + group.count)
                first += group.count
                if group.processes:
                    self._add_processes(group, ids, bodies, routes[group_index])
                else:
                    workload = workloads[group_index] if group_index < len(workloads) else None
                    self.add_threads(group, ids, bodies, routes[group_index], workload)
            for client in self._clients:
                client.wait_ready()
        except BaseException:
            self.stop(timeout=5.0)
            raise

    def add_threads(
        self,
        group: ClientSpec,
        ids: Sequence[int],
        bodies: list[bytes],
        route: Route,
        workload: Workload | None = None,
    ) -> None:
        """Add the clients ``ids`` of ``group``, a thread each."""
        for client_id in ids:
            self._clients.append(
                _Worker(self, group, client_id, bodies, route=route, workload=workload)
            )

    def _add_processes(
        self, group: ClientSpec, ids: Sequence[int], bodies: list[bytes], route: Route
    ) -> None:
        from ._client_processes import ClientProcess, shares

        for share in shares(ids, group.processes):
            self._clients.append(ClientProcess(self, group, share, bodies, route=route))

    def next_connection(self) -> int:
        """A number for a new connection, unique in the run (seeds its faults)."""
        return next(self._connections)

    def start(self, started: float, boundaries: Sequence[float]) -> None:
        """Start every client, on the run's clock (``started``, from ``time.monotonic()``).

        ``boundaries`` are the times fault windows in the process open or close:
        a persistent client reconnects after each, so that its connection carries
        the faults then in force.
        """
        self.started = started
        self.boundaries = sorted(boundaries)
        for client in self._clients:
            client.start()

    def finished(self) -> bool:
        """Whether every client has ended by itself (commands that run once, say)."""
        return all(client.ended() for client in self._clients)

    def counts(self) -> tuple[int, int]:
        """(ok, failed) messages so far, for progress displays."""
        ok = failed = 0
        for client in self._clients:
            ok += client.ok
            failed += client.failed
        return ok, failed

    def stop(self, timeout: float) -> tuple[list[Message], list[str]]:
        """Stop sending, wait up to ``timeout`` for the clients, and return every message.

        Also returns a problem line for each client that did not end in time or
        ended on an error.
        """
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for client in self._clients:
            client.ask_to_stop(timeout)  # Processes stop side by side, not one after another.
        problems = []
        launched = [client for client in self._clients if client.launched]
        for client in launched:
            client.join(max(0.0, deadline - time.monotonic()))
        # The stuck ones are aborted together and given one second between them.
        stuck = [client for client in launched if client.is_alive()]
        for client in stuck:
            client.abort()
        grace = time.monotonic() + 1.0
        for client in stuck:
            client.join(max(0.0, grace - time.monotonic()))
            problems.append(f"{client.who} did not stop within {timeout:g} s")
        problems += [line for client in self._clients for line in client.problems()]
        messages = [message for client in self._clients for message in client.messages]
        messages.sort(key=lambda message: (message.sent, message.client, message.seq))
        return messages, problems


class ProbeClient:
    """One client of ``spec`` that makes an exchange when asked (the steady state's probe).

    It speaks as the load's clients do and is judged the same way, without
    a thread of its own and without client-side faults; its messages' times
    are ``time.monotonic()`` values.
    """

    def __init__(
        self, spec: ClientSpec, *, route: Route, seed: int, workload: Workload | None
    ) -> None:
        # No client-side faults on the probe: it judges the system, it does not strike it.
        route = dataclasses.replace(route, client_faults=lambda when: ())
        # One client, a thread of the runner: the probe may be a group's spec (of 4 apart, say).
        spec = dataclasses.replace(spec, count=1, processes=0)
        self._traffic = Traffic(
            [spec],
            routes=[route],
            seed=seed,
            duration=float("inf"),
            timeline=Timeline(),
            workloads=[workload],
        )
        [worker] = self._traffic._clients
        assert isinstance(worker, _Worker)
        self._worker = worker
        self._seq = 0

    def exchange(self) -> Message:
        """One exchange, now; what it was and how it ended."""
        self._worker.exchange(self._seq, time.monotonic())
        self._seq += 1
        return self._worker.messages[-1]

    def close(self) -> None:
        """Close the probe's connection, if it keeps one."""
        self._worker.disconnect()


class _Worker(threading.Thread):
    """One client: connects, sends at its rate, checks each reply, reconnects on failure."""

    def __init__(
        self,
        traffic: Traffic,
        spec: ClientSpec,
        client_id: int,
        bodies: list[bytes],
        *,
        route: Route,
        workload: Workload | None = None,
    ) -> None:
        super().__init__(name=f"sockharness chaos client {client_id}", daemon=True)
        self.traffic = traffic
        self.spec = spec
        self.route = route
        self.workload = workload
        #: Whether the group speaks a protocol of its own (or runs a workload), not echo.
        self.speaks = spec.own_client or spec.protocol != "echo"
        #: A command workload's runs (``None`` for other groups).
        self.command = (
            CommandRunner(
                spec.command,
                environment=route.command_environment,
                timeout=spec.timeout,
                client_id=client_id,
            )
            if spec.command is not None
            else None
        )
        self.client_id = client_id
        self.bodies = bodies
        self.random = random.Random(f"{traffic.seed}:{client_id}")
        self.messages: list[Message] = []
        self.ok = 0
        self.failed = 0
        self.crash: str | None = None
        self._client: Client | None = None
        self._reconnect_at = float("inf")  # The next window boundary after connecting.

    # -- the loop --------------------------------------------------------------------------

    # -- what Traffic asks of each client (a thread here, a process in _client_processes) ----

    @property
    def launched(self) -> bool:
        return self.ident is not None

    @property
    def who(self) -> str:
        return f"client {self.client_id}"

    def wait_ready(self) -> None:
        """Nothing to wait for: a thread is ready once made."""

    def ask_to_stop(self, timeout: float) -> None:
        """Nothing to do: the thread watches ``traffic.stopping``."""

    def ended(self) -> bool:
        return self.ident is not None and not self.is_alive()

    def problems(self) -> list[str]:
        return (
            []
            if self.crash is None
            else [f"client {self.client_id} stopped on an error:\n{self.crash}"]
        )

    def run(self) -> None:
        stop = self.traffic.stopping
        start = self.traffic.started
        end = start + self.traffic.duration
        first = start + self.spec.start
        if stop.wait(max(0.0, first - time.monotonic())):
            return
        interval = 1.0 / self.spec.rate if self.spec.rate > 0 else 0.0
        # Clients of one group start spread over one interval, not all at once.
        due = first + self.random.random() * interval
        try:
            self.loop(stop, end, interval, due)
        except Exception:  # A bug here must show in the verdict, not vanish with the thread.
            self.crash = traceback.format_exc()
        finally:
            self.disconnect()

    def loop(self, stop: threading.Event, end: float, interval: float, due: float) -> None:
        """Send a message whenever one is due, until the run ends or ``stop`` is set."""
        seq = 0
        while not stop.is_set():
            now = time.monotonic()
            if due > now:
                if stop.wait(due - now):
                    break
                now = time.monotonic()
            if now >= end:
                break
            outcome = self.exchange(seq, now)
            seq += 1
            if self.command is not None and not self.spec.repeat:
                break  # A command that runs once.
            if outcome == "ok":
                self.ok += 1
            else:
                self.failed += 1
                if outcome == "error" and stop.wait(_BACKOFF):
                    break
            due = max(due + interval, time.monotonic()) if interval else 0.0

    def abort(self) -> None:
        """Unblock a client stuck in a receive (used only when it does not stop in time)."""
        if self.command is not None:
            self.command.kill()
        client = self._client
        if client is not None:
            # On the TCP level: an SSLSocket's own shutdown() would tear down its TLS
            # state under the client thread's feet.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(client.sock, socket.SHUT_RDWR)

    # -- one message -----------------------------------------------------------------------

    @property
    def address(self) -> Any:
        """Where the clients connect: the service, or the proxy in front of it."""
        return self.route.address

    def body(self, seq: int) -> bytes:
        """The payload of message ``seq`` (seeded; no newline in it)."""
        return self.bodies[seq % len(self.bodies)]

    def exchange(self, seq: int, sent: float) -> Outcome:
        """Send message ``seq`` (at ``sent``), judge the reply, record it; returns the outcome."""
        header = b"%d:%d:" % (self.client_id, seq)
        body = self.body(seq)
        message = header + body[: max(0, self.spec.size - len(header) - 1)] + b"\n"
        outcome: Outcome
        try:
            if self.command is not None:
                outcome, detail = self.command.run(seq)
            elif self.speaks:
                outcome, detail = speak(self, seq)
            elif self.spec.pattern == "connect-per-request":
                outcome, detail = self.one_connection(message)
            elif self.spec.pattern == "datagram":
                outcome, detail = self.one_datagram(message, seq)
            else:
                outcome, detail = self.one_request(message)
        except TimeoutError as exc:  # ReceiveTimeout included: the reply did not come.
            outcome, detail = "lost", str(exc)
            if self.spec.pattern != "datagram":
                self.disconnect()  # A stream in an unknown state; a datagram socket is fine.
        except (OSError, EOFError, ValueError) as exc:  # Refused, reset, closed early, TLS.
            outcome, detail = "error", f"{type(exc).__name__}: {exc}"
            self.disconnect()
        if outcome == "corrupt" and self.spec.pattern == "persistent":
            self.disconnect()  # What is left unread would spoil the next replies too.
        started = self.traffic.started
        self.messages.append(
            Message(
                self.client_id, seq, sent - started, time.monotonic() - started, outcome, detail
            )
        )
        return outcome

    def connection(self) -> Client:
        """The persistent connection, made anew once a fault window opened or closed."""
        if self._client is not None and time.monotonic() >= self._reconnect_at:
            self.disconnect()
        if self._client is None:
            self._client = self.connect()
        return self._client

    def connect(self) -> Client:
        """A new connection, carrying the client-side faults in force now."""
        traffic, route = self.traffic, self.route
        now = time.monotonic()
        later = bisect.bisect_right(traffic.boundaries, now)
        self._reconnect_at = (
            traffic.boundaries[later] if later < len(traffic.boundaries) else float("inf")
        )
        try:
            return connect(
                route.address,
                route.kind,
                tls=route.tls,
                timeout=self.spec.timeout,
                faults=route.client_faults(now),
                seed=traffic.seed,
                connection=traffic.next_connection(),
                timeline=traffic.timeline,
            )
        except TimeoutError as exc:  # Not a lost reply: the connection failed.
            raise ConnectionError(f"connecting timed out: {exc}") from None

    def disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(OSError, ValueError):
                client.close()

    def expected(self, message: bytes) -> bytes | None:
        """The reply ``message`` must get (``None``: any reply, or none at all)."""
        reply = self.spec.reply
        if reply == "echo":
            return message
        return message.upper() if reply == "upper" else None

    @staticmethod
    def judge(reply: bytes, expected: bytes | None) -> tuple[Outcome, str]:
        """``ok``, ``corrupt`` (wrong bytes) or ``error`` (the stream ended before the reply)."""
        if expected is None or reply == expected:
            return "ok", ""
        if len(reply) < len(expected) and expected.startswith(reply):
            return "error", (
                f"the connection ended after {len(reply)} of the reply's {len(expected)} bytes"
            )
        return "corrupt", f"expected {expected[:60]!r}..., got {reply[:60]!r}..."

    def one_request(self, message: bytes) -> tuple[Outcome, str]:
        client = self.connection()
        client.send(message)
        if self.spec.reply == "none":
            return "ok", ""
        expected = self.expected(message)
        if expected is None:
            return ("ok", "") if client.recv_line() else ("corrupt", "an empty reply")
        return self.judge(self.read_exactly(client, len(expected)), expected)

    def read_exactly(self, client: Client, size: int) -> bytes:
        """``size`` bytes of the reply, within the client's timeout in all.

        Reads the socket directly: the first read uses the timeout the socket
        was made with, and only a reply that comes in pieces pays for setting
        a shorter one (each setting is a system call).
        """
        sock = client.sock
        deadline = time.monotonic() + self.spec.timeout
        data = sock.recv(size)
        if len(data) == size:
            return data
        pieces = [data]
        got = len(data)
        try:
            while data and got < size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ReceiveTimeout(f"the reply was not whole within {self.spec.timeout:g} s")
                sock.settimeout(remaining)
                data = sock.recv(size - got)
                pieces.append(data)
                got += len(data)
        finally:
            sock.settimeout(self.spec.timeout)
        if got < size:
            raise ConnectionClosed(f"the server closed the connection after {got} of {size} bytes")
        return b"".join(pieces)

    def one_connection(self, message: bytes) -> tuple[Outcome, str]:
        with self.connect() as client:
            self._client = client
            client.send(message)
            client.shutdown_write()
            reply = client.recv_all()
        self._client = None
        if self.spec.reply == "none":
            return "ok", ""
        if self.spec.reply == "any":
            return ("ok", "") if reply else ("error", "the connection ended with no reply")
        return self.judge(reply, self.expected(message))

    def one_datagram(self, message: bytes, seq: int) -> tuple[Outcome, str]:
        client = self.connection()
        client.send(message)
        if self.spec.reply == "none":
            return "ok", ""
        expected = self.expected(message)
        sock = client.sock
        deadline = time.monotonic() + self.spec.timeout
        shortened = False
        try:
            while True:
                reply = sock.recv(65536)
                if expected is None:
                    return ("ok", "") if reply else ("corrupt", "an empty reply")
                if not _is_stale(reply, self.client_id, seq):
                    return self.judge(reply, expected)
                # A late or duplicated reply to an earlier message: wait out what is left.
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ReceiveTimeout(f"no reply to message {seq} in time")
                sock.settimeout(remaining)
                shortened = True
        finally:
            if shortened:
                sock.settimeout(self.spec.timeout)


def _is_stale(reply: bytes, client_id: int, seq: int) -> bool:
    """Whether ``reply`` answers an earlier message of this client (late, or a duplicate)."""
    parts = reply.split(b":", 2)
    if len(parts) < 3:
        return False
    try:
        return int(parts[0]) == client_id and int(parts[1]) < seq
    except ValueError:
        return False
