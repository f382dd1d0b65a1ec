"""FaultProxy: a loopback relay in front of any address, with faults changed while traffic flows."""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, final

from sockharness._core import (
    Kind,
    ProxyError,
    ProxyTimeout,
    UsageError,
    keep_out_of_children,
    parse_kind,
    private_directory,
)

from ._datagram_relay import MAX_DATAGRAM, DatagramFlow, Outbox
from ._loop import EventLoop
from ._plans import (
    DOWNSTREAM,
    UPSTREAM,
    DatagramPlan,
    Event,
    StreamPlan,
    Timeline,
    summarize_unfired,
)
from ._specs import DATAGRAM, STREAM, Down, Fault
from ._stream_relay import StreamRelay, reset

__all__ = ["FaultProxy", "ProxyStats", "check_faults"]


def check_faults(faults: Iterable[Any], kind: Kind, *, proxy: bool) -> tuple[Fault, ...]:
    """Validate ``faults`` for ``kind``; a fault that means nothing there is a clear error."""
    checked = []
    transport = STREAM if kind.stream else DATAGRAM
    for fault in faults:
        if not isinstance(fault, Fault):
            raise UsageError(
                f"faults must be fault specs such as Latency(0.1) or Loss(0.2), got {fault!r}"
            )
        if transport not in fault.transports:
            kinds = " and ".join(sorted(fault.transports))
            raise UsageError(
                f"{fault!r} is a {kinds} fault; {kind.name} is a {transport} transport"
            )
        if fault.proxy_only and not proxy:
            raise UsageError(f"{fault!r} concerns whole connections: only a FaultProxy applies it")
        checked.append(fault)
    return tuple(checked)


#: How long the proxy's event loop may take to take new faults, or to close.
CHANGE_TIMEOUT = 5.0


@dataclass(frozen=True)
class ProxyStats:
    """Counters of a proxy: connections (streams) or flows (datagrams), bytes and datagrams."""

    connections: int
    active: int
    upstream_bytes: int
    downstream_bytes: int
    upstream_datagrams: int
    downstream_datagrams: int
    dropped_datagrams: int


@final
class FaultProxy:
    """A relay on loopback in front of ``upstream``, applying faults to what passes.

    It forwards any server, even one not written in Python: TCP, Unix stream,
    UDP and Unix datagram. Faults are applied in order, per connection (or per
    client address, for datagrams) and per direction, from generators seeded by
    ``seed`` and the connection's index, so the same seed and traffic give the
    same decisions. Change them while traffic flows with :meth:`add`,
    :meth:`remove`, :meth:`clear`, :meth:`disable` and :meth:`enable`. With
    no fault, it is a faithful relay: half-closes are passed on as half-closes
    and resets as resets.

    Example:
        >>> from sockharness import start_server, connect
        >>> from sockharness.faults import FaultProxy, Latency
        >>> from sockharness.handlers import LineEchoHandler
        >>> with start_server(LineEchoHandler) as server:
        ...     with FaultProxy(server.address, "tcp", [Latency(0.01)]) as proxy:
        ...         with connect(proxy.address) as client:
        ...             client.request(b"slowly\\n")
        b'slowly\\n'
    """

    def __init__(
        self,
        upstream: Any,
        kind: str | Kind = "tcp",
        faults: Sequence[Fault] = (),
        *,
        listen: Any = None,
        seed: int = 0,
    ) -> None:
        self.kind = parse_kind(kind)
        self.upstream = upstream if self.kind.unix else tuple(upstream[:2])
        self.seed = seed
        self._faults = check_faults(faults, self.kind, proxy=True)
        self._ever: dict[Fault, None] = dict.fromkeys(self._faults)
        self._enabled = True
        self._lock = threading.Lock()
        self.timeline = Timeline()
        self._born = time.monotonic()
        self._relays: list[Any] = []
        self._flows: dict[Any, DatagramFlow] = {}
        self._retired_plans: list[Any] = []
        self._counts = {
            "connections": 0,
            "upstream_bytes": 0,
            "downstream_bytes": 0,
            "upstream_datagrams": 0,
            "downstream_datagrams": 0,
            "dropped_datagrams": 0,
        }
        self._closed = False
        self._private_dir: str | None = None
        if self.kind.unix:
            self._private_dir = private_directory("shp-")
        self._listener = keep_out_of_children(
            socket.socket(self.kind.family, self.kind.socket_type)
        )
        try:
            if self.kind.stream and not self.kind.unix:
                self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if listen is None:
                listen = (
                    os.path.join(self._private_dir, "proxy.sock")
                    if self._private_dir is not None
                    else (self.kind.loopback, 0)
                )
            self._listener.bind(listen)
            if self.kind.stream:
                self._listener.listen(128)
            self._listener.setblocking(False)
            address = self._listener.getsockname()
            self.address = address if self.kind.unix else (address[0], address[1])
            self._loop = EventLoop(f"sockharness proxy {self.kind.name} -> {self.upstream}")
            if self.kind.stream:
                self._loop.watch(self._listener, selectors.EVENT_READ, self._on_listener)
            else:
                self._outbox = Outbox(self._loop, self._listener, self._on_listener)
                self._outbox.watch()
            self._loop.start()
        except BaseException:
            self._listener.close()
            if self._private_dir is not None:
                shutil.rmtree(self._private_dir, ignore_errors=True)
            raise

    def __repr__(self) -> str:
        return (
            f"<FaultProxy {self.kind.name} {self.address!r} -> {self.upstream!r} "
            f"faults={list(self.faults)}>"
        )

    # -- the faults, from any thread ----------------------------------------------------------

    @property
    def faults(self) -> tuple[Fault, ...]:
        """The faults now in force, in order (none while disabled)."""
        with self._lock:
            return self._faults if self._enabled else ()

    @property
    def enabled(self) -> bool:
        """Whether the faults are applied (see :meth:`disable`)."""
        return self._enabled

    def add(self, fault: Fault) -> Fault:
        """Apply ``fault`` too, after the others, from now on (live connections included)."""
        (checked,) = check_faults([fault], self.kind, proxy=True)
        with self._lock:
            self._faults = (*self._faults, checked)
            self._ever[checked] = None
        self._changed()
        return checked

    def remove(self, fault: Fault | type[Fault]) -> None:
        """Stop applying ``fault`` (equal specs) or every fault of a type."""
        with self._lock:
            if isinstance(fault, type):
                kept = tuple(f for f in self._faults if not isinstance(f, fault))
            else:
                kept = tuple(f for f in self._faults if f != fault)
            if len(kept) == len(self._faults):
                raise UsageError(f"{fault!r} is not among this proxy's faults {list(self._faults)}")
            self._faults = kept
        self._changed()

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults = ()
        self._changed()

    def disable(self) -> None:
        """Suspend the faults (traffic flows unharmed) until :meth:`enable`."""
        self._enabled = False
        self._changed()

    def enable(self) -> None:
        """Apply the faults again."""
        self._enabled = True
        self._changed()

    def _changed(self) -> None:
        """Have the event loop take the new faults, and wait until it has.

        When this returns, every byte the proxy reads next is subject to them.
        """
        applied = threading.Event()

        def apply() -> None:
            try:
                self._apply_faults()
            finally:
                applied.set()

        self._loop.call_soon(apply)
        if not self._loop.in_loop_thread() and not applied.wait(CHANGE_TIMEOUT):
            raise ProxyTimeout(
                f"{self!r}: its event loop did not take the new faults within "
                f"{CHANGE_TIMEOUT:g} s (it is stuck, or it failed: {self._loop.error!r})",
                timeout=CHANGE_TIMEOUT,
            )

    # -- counters and reports -----------------------------------------------------------------

    @property
    def stats(self) -> ProxyStats:
        """Connections and bytes (streams), datagrams (datagram kinds), per direction."""
        with self._lock:
            counts = dict(self._counts)
            active = len(self._relays) if self.kind.stream else len(self._flows)
        return ProxyStats(active=active, **counts)

    def unfired(self) -> list[str]:
        """The faults that never did anything to any connection, each with the reason.

        A fault in force for a while that never fired (a reset planned after more
        time than any connection lasted, a loss that lost nothing) means a chaos
        test did not test what it says: the fixtures report these at the end of
        the test.
        """
        with self._lock:
            plans = list(self._retired_plans)
            for holder in [*self._relays, *self._flows.values()]:
                plans.extend(holder.plans)
            ever = list(self._ever)
            connections = self._counts["connections"]
        usage = [entry for plan in plans for entry in plan.usage()]
        unit = "connection" if self.kind.stream else "peer"
        return summarize_unfired(ever, usage, connections, unit, fired=self.timeline.fired)

    # -- the event loop's side ------------------------------------------------------------------

    def _plans(self, index: int, plan_type: type) -> tuple[Any, Any]:
        now = self._loop.now()
        faults = self.faults
        return tuple(
            plan_type(
                faults,
                seed=self.seed,
                connection=index,
                direction=direction,
                started=now,
                timeline=self.timeline,
            )
            for direction in (UPSTREAM, DOWNSTREAM)
        )

    def _down(self) -> bool:
        return any(isinstance(fault, Down) for fault in self.faults)

    def _record_down(self, effect: str) -> None:
        """Put what ``Down`` did on the timeline (as connection -1: the proxy itself)."""
        down = next((fault for fault in self.faults if isinstance(fault, Down)), None)
        if down is not None:
            self.timeline.add(Event(time.monotonic() - self._born, -1, "both", repr(down), effect))

    def _apply_faults(self) -> None:
        faults = self.faults
        holders = [*self._relays, *self._flows.values()]
        for holder in holders:
            for plan in holder.plans:
                plan.update(faults)
            if isinstance(holder, StreamRelay):
                holder.arm_timers()
        if self._down():
            if self._relays:
                self._record_down(f"cut {len(self._relays)} live connection(s)")
            for relay in list(self._relays):
                relay.cut_client()

    def _on_listener(self, events: int) -> None:
        if self.kind.stream:
            self._accept()
        else:
            self._receive_datagram()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
            keep_out_of_children(client)
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        if self._down():
            reset(client)  # Down: as good as refused.
            self._record_down("refused a connection")
            return
        with self._lock:
            index = self._counts["connections"]
            self._counts["connections"] += 1
        relay = StreamRelay(
            loop=self._loop,
            client=client,
            upstream_address=self.upstream,
            family=self.kind.family,
            plans=self._plans(index, StreamPlan),
            on_bytes=self._count_bytes,
            on_closed=self._relay_closed,
        )
        if not relay.closed:
            with self._lock:
                self._relays.append(relay)

    def _count_bytes(self, direction: str, count: int) -> None:
        with self._lock:
            self._counts[f"{direction}_bytes"] += count

    def _relay_closed(self, relay: StreamRelay) -> None:
        with self._lock:
            if relay in self._relays:
                self._relays.remove(relay)
            self._retired_plans.extend(relay.plans)

    def _receive_datagram(self) -> None:
        try:
            data, peer = self._listener.recvfrom(MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if self._down():
            self._count_datagram(UPSTREAM, 0, False)
            self._record_down("dropped a datagram")
            return
        key = peer if peer else None
        flow = self._flows.get(key)
        if flow is None:
            with self._lock:
                index = self._counts["connections"]
                self._counts["connections"] += 1
            flow = DatagramFlow(
                loop=self._loop,
                listener=self._outbox,
                peer=peer,
                upstream_address=self.upstream,
                family=self.kind.family,
                plans=self._plans(index, DatagramPlan),
                on_datagram=self._count_datagram,
                private_dir=self._private_dir,
            )
            with self._lock:
                self._flows[key] = flow
        flow.from_client(data)

    def _count_datagram(self, direction: str, size: int, delivered: bool) -> None:
        with self._lock:
            if delivered:
                self._counts[f"{direction}_datagrams"] += 1
                self._counts[f"{direction}_bytes"] += size
            else:
                self._counts["dropped_datagrams"] += 1

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop relaying: close the listener and every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        done = threading.Event()

        def shut() -> None:
            try:
                self._loop.forget(self._listener)
                self._listener.close()
                for relay in list(self._relays):
                    relay.close()
                for flow in list(self._flows.values()):
                    flow.close()
                    self._retired_plans.extend(flow.plans)
                self._flows.clear()
            finally:
                done.set()

        self._loop.call_soon(shut)
        shut_down = done.wait(CHANGE_TIMEOUT)
        stopped = self._loop.stop(CHANGE_TIMEOUT)
        if stopped:
            self._loop.close()
        with contextlib.suppress(OSError):
            self._listener.close()
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
        if self._loop.error is not None:
            raise ProxyError(f"{self!r}'s event loop failed") from self._loop.error
        if not (shut_down and stopped):
            raise ProxyTimeout(
                f"{self!r} did not close its connections and stop within "
                f"{CHANGE_TIMEOUT:g} s: its event loop is stuck",
                timeout=CHANGE_TIMEOUT,
            )

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
