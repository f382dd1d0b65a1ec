"""What a running server's handlers report back: errors and recorded data.

Handlers run in the test's process (sync and threading servers) or in forked
children. In the test's process a report is appended under a lock; a child
writes it as a small JSON file into the server's private directory (written,
then renamed into place, so a reader never sees half a file), and the parent
collects those files when it next looks.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import itertools
import json
import os
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sockharness._core import ByteCounter, Creations, counter_of, unreachable

__all__ = ["HandlerError", "Received", "ServerEvents", "describe_client", "exception_path"]

#: What a forked child reports to the parent.
ReportKind = Literal["error", "received", "usage", "timeline", "bytes"]

_RECORDED = "__sockharness_recorded__"


def exception_path(exc_type: type[BaseException]) -> tuple[str, ...]:
    """``module.qualname`` of the type and of every base, most specific first."""
    return tuple(f"{t.__module__}.{t.__qualname__}" for t in exc_type.__mro__)


@dataclass(frozen=True)
class HandlerError:
    """An exception raised while the server handled a request.

    ``exception`` is the exception object itself when it was raised in the
    test's process, and ``None`` when it came from a forked child (whose
    traceback is still here, as text).
    """

    type_name: str
    type_path: tuple[str, ...]
    message: str
    traceback: str
    client_address: Any
    where: str
    exception: BaseException | None = field(default=None, compare=False, repr=False)
    at: float = field(default=0.0, compare=False, repr=False)

    def matches(self, types: Iterable[type[BaseException]]) -> bool:
        """Whether the exception is an instance of any of ``types``."""
        if self.exception is not None:
            return isinstance(self.exception, tuple(types))
        return any(f"{t.__module__}.{t.__qualname__}" in self.type_path for t in types)

    @property
    def client(self) -> str:
        """The client for a reader: ``127.0.0.1:5000``, a socket path, or ``a Unix client``."""
        return describe_client(self.client_address)

    @property
    def kind_of_failure(self) -> tuple[tuple[str, ...], str]:
        """What makes two errors the same: their type and where they were raised.

        (The traceback without its last line, which holds the message: addresses
        and numbers in it differ from one request to the next.)
        """
        return self.type_path, self.traceback.rstrip().rsplit("\n", 1)[0]

    def __str__(self) -> str:
        context = (
            f"handling a request from {self.client}, in {self.where}"
            if self.client_address is not None
            else f"in {self.where}"
        )
        return f"{self.type_name}: {self.message} ({context})\n{self.traceback}"


def describe_client(address: Any) -> str:
    """A client address for people: ``host:port``, ``[v6]:port``, a path or ``a Unix client``."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    if isinstance(address, (str, bytes)) and address:
        return os.fsdecode(address)
    if address in ("", b""):
        return "a Unix client (unnamed)"
    return repr(address)


@dataclass(frozen=True)
class Received:
    """The bytes a recording handler received in one request."""

    client_address: Any
    data: bytes
    at: float = field(default=0.0, compare=False, repr=False)


def _jsonable_address(address: Any) -> Any:
    if isinstance(address, bytes):
        return {"bytes": base64.b64encode(address).decode()}
    if isinstance(address, tuple):
        return list(address)
    return address


def _address_from_json(value: Any) -> Any:
    if isinstance(value, dict):
        return base64.b64decode(value["bytes"])
    if isinstance(value, list):
        return tuple(value)
    return value


def _where() -> str:
    thread = threading.current_thread()
    if thread is threading.main_thread():
        return f"the main thread of process {os.getpid()}"
    return f"thread {thread.name!r}"


class ServerEvents:
    """The reports of one server's handlers, wherever the handlers ran."""

    def __init__(self, directory: str | None) -> None:
        """``directory``: where forked children report; ``None`` when no child will run."""
        self._owner = os.getpid()
        self._directory: str | None = None
        if directory is not None:
            self._directory = os.path.join(directory, "events")
            os.mkdir(self._directory, 0o700)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._errors: list[HandlerError] = []
        self._received: list[Received] = []
        self._counter = itertools.count()
        self.handler_threads: list[threading.Thread] = []
        self._threads_kept = 64  # When to forget the handler threads that have ended.
        self.children: set[int] = set()
        #: The threads and sockets handler code made (see ``_attribution.py``).
        self.creations = Creations()
        # Counted, not listed: a long-lived server with faults sees many connections.
        self._fault_usage: collections.Counter[tuple[str, bool]] = collections.Counter()
        self._fault_events: list[Any] = []
        self._accepted = 0
        self._datagrams = 0
        self._datagram_bytes = 0
        # Stream bytes: of connections done (and of forked children's), and of those live.
        self._stream_bytes = [0, 0]  # received, sent
        self._done = 0  # Connections shut down (a forked child's once it reported).
        self._live: weakref.WeakSet[ByteCounter] = weakref.WeakSet()
        #: The counter of a datagram server's socket (its replies), once it has one.
        self.datagram_counter: ByteCounter | None = None
        self._datagram_sent_by_children = 0
        self._datagram_sent_at_fork = 0

    # -- reporting (any thread or process) --------------------------------------------

    def note_request(self, request: Any) -> None:
        """The server took a request: an accepted connection, or a datagram and its socket."""
        with self._lock:
            if isinstance(request, tuple):
                self._datagrams += 1
                self._datagram_bytes += len(request[0])
            else:
                self._accepted += 1
                counter = counter_of(request)
                if counter is not None:
                    self._live.add(counter)

    def before_fork(self) -> None:
        """The server may fork a child for a request now: remember where its replies start."""
        if self.datagram_counter is not None:
            self._datagram_sent_at_fork = self.datagram_counter.sent

    def note_done(self, request: Any) -> None:
        """The server is shutting ``request`` down: its bytes are final."""
        in_child = os.getpid() != self._owner
        if isinstance(request, tuple):
            if in_child and self.datagram_counter is not None:
                sent = self.datagram_counter.sent - self._datagram_sent_at_fork
                self._datagram_sent_at_fork = self.datagram_counter.sent
                self._write_from_child("bytes", {"datagram_sent": sent, "client_address": None})
            return
        counter = counter_of(request) or ByteCounter()  # Uncounted: no bytes to add.
        if in_child:
            fields = {
                "received": counter.received,
                "sent": counter.sent,
                "done": 1,
                "client_address": None,
            }
            self._write_from_child("bytes", fields)
            return
        with self._changed:
            self._done += 1
            if counter in self._live:
                self._live.discard(counter)
                self._stream_bytes[0] += counter.received
                self._stream_bytes[1] += counter.sent
            self._changed.notify_all()

    def counts(self) -> dict[str, int]:
        """The server's counters (taking in the children's reports): see ``ServerStats``."""
        self.collect()
        with self._lock:
            received, sent = self._stream_bytes
            for counter in list(self._live):
                received += counter.received
                sent += counter.sent
            datagram_sent = self._datagram_sent_by_children
            if self.datagram_counter is not None:
                datagram_sent += self.datagram_counter.sent
            return {
                "connections": self._accepted,
                "connections_done": self._done,
                "bytes_received": received,
                "bytes_sent": sent,
                "datagrams": self._datagrams,
                "datagram_bytes_received": self._datagram_bytes,
                "datagram_bytes_sent": datagram_sent,
            }

    def add_error(self, exc: BaseException, client_address: Any, where: str | None = None) -> None:
        """Report ``exc``, once, however many layers see it go by."""
        if getattr(exc, _RECORDED, False):
            return
        with contextlib.suppress(Exception):
            setattr(exc, _RECORDED, True)
        in_child = os.getpid() != self._owner
        error = HandlerError(
            type_name=type(exc).__qualname__,
            type_path=exception_path(type(exc)),
            message=str(exc),
            traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
            client_address=client_address,
            where=where or (f"child process {os.getpid()}" if in_child else _where()),
            exception=None if in_child else exc,
            at=time.monotonic(),
        )
        if in_child:
            self._write_from_child("error", error.__dict__ | {"exception": None})
        else:
            with self._changed:
                self._errors.append(error)
                self._changed.notify_all()

    def add_received(self, client_address: Any, data: bytes, started: float | None = None) -> None:
        """Report the bytes a recording handler received in one request that began at ``started``.

        ``time.monotonic()`` is system-wide on the platforms sockharness runs
        on, so a forked child's timestamps order with the parent's.
        """
        record = Received(client_address, bytes(data), started or time.monotonic())
        if os.getpid() != self._owner:
            self._write_from_child("received", record.__dict__)
        else:
            with self._changed:
                self._received.append(record)
                self._changed.notify_all()

    def add_fault_usage(self, usage: list[tuple[str, bool]]) -> None:
        """Report which faults fired on one connection (``(fault, fired)`` pairs)."""
        if not usage:
            return
        if os.getpid() != self._owner:
            entries = [list(entry) for entry in usage]
            self._write_from_child("usage", {"usage": entries, "client_address": None})
        else:
            with self._lock:
                self._fault_usage.update(usage)

    def add_fault_events(self, events: list[Any]) -> None:
        """Report timeline events of faults that acted in a forked child."""
        if not events:
            return
        if os.getpid() != self._owner:
            rows = [[e.at, e.connection, e.direction, e.fault, e.effect] for e in events]
            self._write_from_child("timeline", {"events": rows, "client_address": None})
        else:
            with self._lock:
                self._fault_events.extend(events)

    def fault_events(self) -> list[Any]:
        """The fault events forked children reported so far (taking in their reports)."""
        self.collect()
        with self._lock:
            return list(self._fault_events)

    def fault_usage(self) -> list[tuple[str, bool]]:
        """Every ``(fault, fired)`` pair reported so far (taking in the children's reports)."""
        self.collect()
        with self._lock:
            return list(self._fault_usage.elements())

    def note_handler_thread(self) -> None:
        """Remember the calling thread as one of this server's handler threads.

        Threads that have ended are forgotten as the list doubles, so a server
        that runs for a long time keeps only about twice its live threads.
        """
        with self._lock:
            if len(self.handler_threads) >= self._threads_kept:
                self.handler_threads = [t for t in self.handler_threads if t.is_alive()]
                self._threads_kept = max(64, 2 * len(self.handler_threads))
            self.handler_threads.append(threading.current_thread())

    def note_children(self, pids: Iterable[int]) -> None:
        """Remember child processes the server forked."""
        with self._lock:
            self.children.update(pids)

    def _write_from_child(self, kind: ReportKind, fields: dict[str, Any]) -> None:
        if self._directory is None:
            # A server that forks without ForkingMixIn: nowhere to report but stderr.
            print(f"sockharness: {kind} in child {os.getpid()}: {fields}", file=sys.stderr)
            return
        payload = dict(fields)
        payload["client_address"] = _jsonable_address(payload["client_address"])
        if "data" in payload:
            payload["data"] = base64.b64encode(payload["data"]).decode()
        if "type_path" in payload:
            payload["type_path"] = list(payload["type_path"])
        name = f"{os.getpid()}-{next(self._counter)}"
        temporary = os.path.join(self._directory, f".{name}.tmp")
        with open(temporary, "w") as f:
            json.dump({"kind": kind, "fields": payload}, f)
        os.rename(temporary, os.path.join(self._directory, f"{name}.json"))

    # -- reading (the test's process) -------------------------------------------------

    def collect(self) -> None:
        """Take in what forked children have reported so far."""
        if self._directory is None:
            return
        try:
            names = sorted(n for n in os.listdir(self._directory) if n.endswith(".json"))
        except FileNotFoundError:
            return
        for name in names:
            path = os.path.join(self._directory, name)
            try:
                with open(path) as f:
                    entry = json.load(f)
                os.unlink(path)
            except (OSError, ValueError):
                continue
            fields = entry["fields"]
            fields["client_address"] = _address_from_json(fields["client_address"])
            with self._changed:
                self._take(entry["kind"], fields)
                self._changed.notify_all()

    def _take(self, kind: ReportKind, fields: dict[str, Any]) -> None:
        """One report of a child, into memory (caller holds the lock)."""
        if kind == "usage":
            self._fault_usage.update((name, fired) for name, fired in fields["usage"])
        elif kind == "timeline":
            from sockharness.faults import Event  # Only servers with faults report these.

            self._fault_events.extend(Event(*row) for row in fields["events"])
        elif kind == "error":
            fields["type_path"] = tuple(fields["type_path"])
            self._errors.append(HandlerError(**fields))
        elif kind == "received":
            fields["data"] = base64.b64decode(fields["data"])
            self._received.append(Received(**fields))
        elif kind == "bytes":
            self._stream_bytes[0] += fields.get("received", 0)
            self._stream_bytes[1] += fields.get("sent", 0)
            self._done += fields.get("done", 0)
            self._datagram_sent_by_children += fields.get("datagram_sent", 0)
        else:
            unreachable(kind)

    def errors(self) -> list[HandlerError]:
        """Every error reported so far, in the order they happened (taking in the children's)."""
        self.collect()
        with self._lock:
            return sorted(self._errors, key=lambda e: e.at)

    def received(self) -> list[Received]:
        """Every recording reported so far, in order (taking in the children's)."""
        self.collect()
        with self._lock:
            return sorted(self._received, key=lambda r: r.at)

    def wait_for_error(self, types: tuple[type[BaseException], ...], timeout: float) -> bool:
        """Wait until an error of one of ``types`` was reported; return whether one was."""
        return self._wait(lambda: any(error.matches(types) for error in self.errors()), timeout)

    def wait_for_received(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` recordings were reported; return whether they were."""
        return self._wait(lambda: len(self.received()) >= count, timeout)

    def wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``done()``, as reports come in; return whether it came within ``timeout``.

        Forked children's reports are polled for every 2 ms at most: a caller
        waiting on counters waits for each connection, and should not wait long.
        """
        return self._wait(done, timeout, longest_poll=0.002)

    def _wait(self, done: Callable[[], bool], timeout: float, longest_poll: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while True:
            if done():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                # Children report through files, which wake nobody: poll them too.
                self._changed.wait(min(remaining, delay))
            delay = min(delay * 2, longest_poll)
