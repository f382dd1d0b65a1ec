"""FaultProxy: a loopback relay in front of any address, with faults changed while traffic flows."""

from __future__ import annotations

import collections
import contextlib
import os
import selectors
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, final

from sockharness._core import (
    Kind,
    ProxyError,
    ProxyTimeout,
    UsageError,
    accept_out_of_children,
    parse_kind,
    private_directory,
    socket_out_of_children,
)

from ._datagram_relay import MAX_DATAGRAM, DatagramFlow, Outbox
from ._effects import DATAGRAM_EFFECTS, STREAM_EFFECTS, effect_of
from ._loop import EventLoop
from ._phase import PROXY_FATES, connection_fate
from ._plans import (
    DOWNSTREAM,
    UPSTREAM,
    DatagramPlan,
    Event,
    SharedState,
    StreamPlan,
    Timeline,
    picks,
    summarize_unfired,
)
from ._specs import (
    DATAGRAM,
    STREAM,
    AcceptDelay,
    AcceptThenClose,
    AcceptThenReset,
    Blackhole,
    ConnectionFault,
    Down,
    Fault,
    NeverRead,
    Refuse,
)
from ._stream_relay import DRAIN_TIMEOUT, StreamRelay, reset

__all__ = ["FaultProxy", "FaultsInForce", "ProxyStats", "check_faults"]


#: Where each side's faults strike, and how a user puts a fault there.
_SIDE_PLACES = {
    "proxy": "through a proxy",
    "server": "a server's accepted connections in the process",
    "client": "a client's own connection in the process",
}
_SIDE_USES = {
    "proxy": "on a FaultProxy",
    "server": "in a server's faults= (make_server, start_server)",
    "client": "in a client's faults= (connect, server.connect)",
}


def check_faults(
    faults: Iterable[Any], kind: Kind, *, proxy: bool, side: str = "server"
) -> tuple[Fault, ...]:
    """Validate ``faults`` for ``kind``; a fault that means nothing there is a clear error.

    ``proxy``: a :class:`FaultProxy` applies them; else a faulty socket on
    ``side`` (``"server"``: the server's accepted connections; ``"client"``: a
    client's own connection).
    """
    where = "proxy" if proxy else side
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
        own = "stream_effect" if transport == STREAM else "datagram_effect"
        table = STREAM_EFFECTS if transport == STREAM else DATAGRAM_EFFECTS
        if fault.process_only and proxy:
            raise UsageError(
                f"{fault!r} strikes a socket's own calls: only a faulty socket in the "
                f"process applies it (faults= on the server or the client), not a proxy"
            )
        phase = isinstance(fault, ConnectionFault)
        bytes_fault = not (fault.proxy_only or fault.process_only or phase)
        if bytes_fault and effect_of(table, fault, own) is None:
            raise UsageError(
                f"{fault!r} says it works on {transport}s but has no {own}: give its class "
                f"one (see 'Your own fault' in docs/faults.md)"
            )
        if fault.proxy_only and not proxy:
            raise UsageError(f"{fault!r} concerns whole connections: only a FaultProxy applies it")
        if where not in fault.sides:
            others = " or ".join(_SIDE_USES[other] for other in sorted(fault.sides))
            raise UsageError(f"{fault!r} cannot strike {_SIDE_PLACES[where]}: use it {others}")
        if fault.triggered and transport == DATAGRAM:
            raise UsageError(
                f"{fault!r}: after_bytes, framer and messages cut a stream; {kind.name} "
                f"carries datagrams (pick peers with connections=)"
            )
        checked.append(fault)
    return tuple(checked)


#: How long the proxy's event loop may take to take new faults, or to close.
CHANGE_TIMEOUT = 5.0


class FaultsInForce(tuple[Fault, ...]):
    """The faults a proxy applies now (a tuple), and a way to apply more for a while.

    ``proxy.faults`` is this tuple; calling it, ``with proxy.faults(Latency(0.2)):``,
    adds the faults on entry and removes them on exit, even when the block fails.
    """

    _proxy: FaultProxy | None

    def __new__(
        cls, faults: Iterable[Fault] = (), proxy: FaultProxy | None = None
    ) -> FaultsInForce:
        made = super().__new__(cls, faults)
        made._proxy = proxy
        return made

    def __reduce__(self) -> tuple[Any, ...]:
        return (tuple, (tuple(self),))  # Copied or pickled: the faults, not the proxy.

    def __call__(self, *faults: Fault) -> contextlib.AbstractContextManager[tuple[Fault, ...]]:
        if self._proxy is None:
            raise UsageError("these faults belong to no proxy: call proxy.faults(...) on one")
        return self._proxy.applying(*faults)


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
        self._shared = SharedState()  # A shared bandwidth's budget, for every connection.
        self._born = time.monotonic()
        self._relays: list[Any] = []
        self._flows: dict[Any, DatagramFlow] = {}
        # What the plans of ended connections did, counted (a long-lived proxy must not
        # keep every connection's plans: 2.5 KB each with one fault, found by the soak).
        self._retired_usage: collections.Counter[tuple[str, bool]] = collections.Counter()
        self._counts = {
            "connections": 0,
            "upstream_bytes": 0,
            "downstream_bytes": 0,
            "upstream_datagrams": 0,
            "downstream_datagrams": 0,
            "dropped_datagrams": 0,
        }
        self._closed = False
        self._watchers: list[Callable[[str], None]] = []
        self._init_connection_phase()
        self._private_dir: str | None = None
        if self.kind.unix:
            self._private_dir = private_directory("shp-")
        self._listener = socket_out_of_children(self.kind.family, self.kind.socket_type)
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
        if any(isinstance(fault, Blackhole) for fault in self._faults):
            try:
                self._changed()  # In force from the start: fill the backlog before any client.
            except BaseException:
                self.close()
                raise

    def _init_connection_phase(self) -> None:
        #: Accepted connections no relay carries (yet): held by a connection-phase fault.
        self._held: dict[socket.socket, None] = {}
        #: While a Blackhole is in force: the connection of our own that fills the backlog.
        self._filler: socket.socket | None = None
        self._blackholed = False
        self._filler_name: Any = None

    def __repr__(self) -> str:
        return (
            f"<FaultProxy {self.kind.name} {self.address!r} -> {self.upstream!r} "
            f"faults={list(self.faults)}>"
        )

    # -- the faults, from any thread ----------------------------------------------------------

    @property
    def faults(self) -> FaultsInForce:
        """The faults now in force, in order (none while disabled).

        A tuple; call it to apply more for the length of a ``with`` block:
        ``with proxy.faults(Latency(0.2)): ...`` (see :meth:`applying`).
        """
        with self._lock:
            return FaultsInForce(self._faults if self._enabled else (), self)

    @contextlib.contextmanager
    def applying(self, *faults: Fault) -> Iterator[tuple[Fault, ...]]:
        """Apply ``faults`` on entry and remove them on exit, even on error.

        Example:
            >>> from sockharness import start_server, connect
            >>> from sockharness.faults import FaultProxy, LimitData
            >>> from sockharness.handlers import EchoHandler
            >>> with start_server(EchoHandler) as server, FaultProxy(server.address) as proxy:
            ...     with proxy.faults(LimitData(2)):
            ...         with connect(proxy.address) as client:
            ...             client.send(b"hello")
            ...             client.recv_all()
            ...     proxy.faults
            b'he'
            ()
        """
        added = [self.add(fault) for fault in faults]
        try:
            yield tuple(added)
        finally:
            with self._lock:
                kept = list(self._faults)
                for fault in added:
                    if fault in kept:
                        kept.remove(fault)
                self._faults = tuple(kept)
            self._changed()

    def down(self) -> contextlib.AbstractContextManager[tuple[Fault, ...]]:
        """The proxy is down for the length of a ``with`` block: ``with proxy.down(): ...``.

        New connections are refused and live ones cut (:class:`Down`); on exit
        it is up again, even when the block fails.
        """
        return self.applying(Down())

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

    def replace(self, old: Fault, new: Fault) -> Fault:
        """Apply ``new`` in the place of ``old`` (same position in the order), from now on."""
        (checked,) = check_faults([new], self.kind, proxy=True)
        with self._lock:
            faults = list(self._faults)
            if old not in faults:
                raise UsageError(f"{old!r} is not among this proxy's faults {faults}")
            faults[faults.index(old)] = checked
            self._faults = tuple(faults)
            self._ever[checked] = None
        self._changed()
        return checked

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
            usage = list(self._retired_usage.elements())
            for holder in [*self._relays, *self._flows.values()]:
                usage += [entry for plan in holder.plans for entry in plan.usage()]
            ever = list(self._ever)
            connections = self._counts["connections"]
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
                shared=self._shared,
            )
            for direction in (UPSTREAM, DOWNSTREAM)
        )

    def _fate(self, index: int) -> Fault | None:
        """The connection-phase fault (or ``Down``) that decides connection ``index``, if any."""
        return connection_fate(self.faults, self.seed, index, kinds=PROXY_FATES, skip=(Blackhole,))

    def _record(self, fault: Fault, connection: int, effect: str) -> None:
        """Put what a fault of the proxy itself did on the timeline (-1: no one connection)."""
        self.timeline.add(
            Event(time.monotonic() - self._born, connection, "both", repr(fault), effect)
        )

    def _apply_faults(self) -> None:
        faults = self.faults
        holders = [*self._relays, *self._flows.values()]
        for holder in holders:
            for plan in holder.plans:
                plan.update(faults)
            if isinstance(holder, StreamRelay):
                holder.arm_timers()
        for position, fault in enumerate(faults):
            if not isinstance(fault, Down):
                continue
            cut = [
                relay
                for relay in self._relays
                if picks(self.seed, relay.plans[0].connection, position, fault)
            ]
            for relay in cut:
                relay.cut_client()
            if cut:
                self._record(fault, -1, f"cut {len(cut)} live connection(s)")
        if self.kind.stream:
            blackhole = next((f for f in faults if isinstance(f, Blackhole)), None)
            if blackhole is not None and not self._blackholed:
                self._start_blackhole(blackhole)
            elif blackhole is None and self._blackholed:
                self._end_blackhole()

    # -- the connection phase -------------------------------------------------------------------

    def _start_blackhole(self, fault: Blackhole) -> None:
        """Fill the listener's backlog so the kernel drops every new SYN (no root needed)."""
        self._loop.forget(self._listener)
        self._listener.listen(0)
        self._blackholed = True
        if self._filler is not None:
            # The last blackhole's filler was not taken out yet: it fills the queue again.
            self._record(fault, -1, "blackholed new connections (the listener's backlog is full)")
            return
        filler = socket_out_of_children(self.kind.family, socket.SOCK_STREAM)
        try:
            if self.kind.unix:
                assert self._private_dir is not None
                name = os.path.join(self._private_dir, "blackhole.sock")
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)
                filler.bind(name)
            filler.setblocking(False)
            filler.connect_ex(self.address)
            self._filler_name = filler.getsockname()
        except OSError:
            filler.close()
            self._blackholed = False
            self._listener.listen(128)
            self._loop.watch(self._listener, selectors.EVENT_READ, self._on_listener)
            raise
        self._filler = filler
        self._record(fault, -1, "blackholed new connections (the listener's backlog is full)")

    def _end_blackhole(self) -> None:
        self._blackholed = False
        self._listener.listen(128)
        self._loop.watch(self._listener, selectors.EVENT_READ, self._on_listener)
        # The filler's connection is accepted (and recognized) like any other, then dropped.

    def _hold(self, client: socket.socket) -> None:
        self._held[client] = None

    def _let_go(self, client: socket.socket) -> None:
        self._loop.forget(client)
        self._held.pop(client, None)
        client.close()

    def _close_gracefully(self, client: socket.socket) -> None:
        """FIN the client at once; read and discard until it closes too (bounded)."""
        self._hold(client)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)

        def drain(events: int) -> None:
            try:
                data = client.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._let_go(client)

        client.setblocking(False)
        self._loop.watch(client, selectors.EVENT_READ, drain)
        self._loop.at(
            self._loop.now() + DRAIN_TIMEOUT,
            lambda: self._let_go(client) if client in self._held else None,
        )

    def _take_up_late(self, client: socket.socket, index: int) -> None:
        """After an ``AcceptDelay``: relay the connection, if the proxy still runs."""
        if client not in self._held:
            return  # Closed meanwhile.
        del self._held[client]
        self._relay(client, index)

    def _on_fate(self, fault: Fault, client: socket.socket, index: int) -> None:
        if isinstance(fault, (Down, Refuse, AcceptThenReset)):
            reset(client)
            self._record(
                fault,
                index,
                "reset the connection as it was accepted"
                if isinstance(fault, AcceptThenReset)
                else "refused a connection",
            )
        elif isinstance(fault, AcceptThenClose):
            self._close_gracefully(client)
            self._record(fault, index, "closed the connection as it was accepted")
        elif isinstance(fault, NeverRead):
            self._hold(client)
            self._record(fault, index, "accepted the connection and never read from it")
        elif isinstance(fault, AcceptDelay):
            self._hold(client)
            self._loop.at(self._loop.now() + fault.delay, lambda: self._take_up_late(client, index))
            self._record(fault, index, f"took the connection up {fault.delay:g} s late")
        else:
            raise AssertionError(f"not a connection-phase fault: {fault!r}")

    def _on_listener(self, events: int) -> None:
        if self.kind.stream:
            self._accept()
        else:
            self._receive_datagram()

    def _accept(self) -> None:
        try:
            client, peer = accept_out_of_children(self._listener)
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        if self._filler is not None and peer == self._filler_name and peer not in ("", None):
            # The blackhole's own connection, after the blackhole ended: not a client's.
            client.close()
            self._filler.close()
            self._filler = self._filler_name = None
            return
        with self._lock:
            index = self._counts["connections"]
            self._counts["connections"] += 1
        fate = self._fate(index)
        if fate is not None:
            self._on_fate(fate, client, index)
            return
        self._relay(client, index)

    def watch(self, callback: Callable[[str], None]) -> None:
        """Call ``callback`` with a line for each connection opened and closed and each fault
        decision, as it happens (``sockharness proxy -v``). It runs on the proxy's event
        loop: it must be quick, and it must not raise."""
        self._watchers.append(callback)
        self.timeline.watch(lambda event: callback(_decision_line(event)))

    def _tell(self, line: str) -> None:
        for callback in self._watchers:
            callback(line)

    def _relay(self, client: socket.socket, index: int) -> None:
        if self._watchers:
            self._tell(f"connection {index} opened from {_peer_of(client)}")
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
            self._retire(relay.plans)
        if self._watchers:
            self._tell(f"connection {relay.plans[0].connection} closed")

    def _retire(self, plans: Any) -> None:
        """Keep what an ended connection's plans did, not the plans (caller holds the lock)."""
        self._retired_usage.update(entry for plan in plans for entry in plan.usage())

    def _receive_datagram(self) -> None:
        try:
            data, peer = self._listener.recvfrom(MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        key = peer if peer else None
        flow = self._flows.get(key)
        index = flow.plans[0].connection if flow is not None else self._counts["connections"]
        down = self._fate(index)
        if down is not None:
            self._count_datagram(UPSTREAM, 0, False)
            self._record(down, index, "dropped a datagram")
            return
        if flow is None:
            with self._lock:
                index = self._counts["connections"]
                self._counts["connections"] += 1
            if self._watchers:
                self._tell(f"flow {index} opened from {peer!r}")
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
                flows = list(self._flows.values())
                for flow in flows:
                    flow.close()
                with self._lock:
                    for flow in flows:
                        self._retire(flow.plans)
                    self._flows.clear()
                for client in list(self._held):
                    self._let_go(client)
                if self._filler is not None:
                    self._filler.close()
                    self._filler = None
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


def _decision_line(event: Any) -> str:
    """A fault decision as ``sockharness proxy -v`` prints it."""
    where = f"connection {event.connection}" if event.connection >= 0 else "the proxy"
    return f"{where} {event.direction}: {event.fault}: {event.effect}"


def _peer_of(client: socket.socket) -> str:
    try:
        peer = client.getpeername()
    except OSError:
        return "?"
    if isinstance(peer, tuple):
        return f"[{peer[0]}]:{peer[1]}" if ":" in str(peer[0]) else f"{peer[0]}:{peer[1]}"
    return str(peer) or "an unnamed socket"
