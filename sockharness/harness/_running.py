"""RunningServer: a server run in the background, surely stopped, its errors and leaks checked.

``start_server()`` builds a subclass of the chosen server class (ours, the
stdlib's or a user's) that reports, instead of printing, what goes wrong in
handlers, wherever they run (see ``_events.py``); binds it to an ephemeral port
or a private 0700 directory; runs ``serve_forever()`` in a thread; and returns
once that loop is set up and waiting. ``RunningServer.stop()`` closes the clients it
handed out, shuts the server down and closes it within a deadline (a stuck
handler cannot hang a test run), then checks what was left behind.
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
import os
import shutil
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, final

from sockharness import server as _server
from sockharness._core import (
    LEAK_MODES,
    Address,
    Concurrency,
    HandlerErrors,
    IPv6Unavailable,
    Kind,
    LeakError,
    LeakMode,
    LeakWarning,
    ReceiveTimeout,
    ServerStopTimeout,
    UsageError,
    VirtualTime,
    check_virtual_time,
    concurrency_of_class,
    count_bytes,
    counter_of,
    install,
    kind_of_class,
    parse_concurrency,
    parse_kind,
    private_directory,
    server_class_for,
)
from sockharness.server.support import unix_path_limit

from ._clients import Client, connect, describe_address
from ._events import HandlerError, Received, ServerEvents
from ._harnessed import LoopReadiness, harnessed_class
from ._leaks import Leaks, find_leaks, open_descriptors, reap
from ._tls import counting_tls

if TYPE_CHECKING:
    # A server without faults never imports sockharness.faults (see _harnessed).
    from sockharness.faults import Fault, Timeline

    from ._server_faults import FaultSelector, ServerFaults

__all__ = [
    "RunningServer",
    "ServerStats",
    "format_handler_errors",
    "has_ipv6_loopback",
    "start_server",
]

#: ``serve_forever()``'s poll interval. Ours wakes at once on shutdown(); a
#: class that does not (the stdlib's) then stops within this many seconds.
POLL_INTERVAL = 0.05


@cache
def has_ipv6_loopback() -> bool:
    """Whether this host can bind ``::1``."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _check_server_class(server_class: Any) -> type:
    required = ("serve_forever", "shutdown", "server_close")
    if not isinstance(server_class, type) or not all(hasattr(server_class, m) for m in required):
        raise UsageError(
            f"server_class must be a socketserver-compatible server class (with "
            f"{', '.join(required)}), got {server_class!r}."
        )
    return server_class


def _check_attributes(cls: type, attributes: dict[str, Any]) -> None:
    if not attributes:
        return  # Nothing to check (and dir() of the class costs 20-40 us a server).
    known = {name for name in dir(cls) if not name.startswith("__")}
    for name in attributes:
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        if close:
            raise UsageError(
                f"{cls.__name__} has no attribute {name!r}; did you mean {close[0]!r}? "
                f"(Server attributes are set on the server before it starts.)"
            )


def start_server(
    handler: type,
    kind: str | None = None,
    *,
    concurrency: str | None = None,
    tls: bool | ssl.SSLContext = False,
    server_class: type | None = None,
    faults: Sequence[Fault] | None = None,
    select_faults: FaultSelector | None = None,
    seed: int = 0,
    leaks: LeakMode = "warn",
    client_tls: ssl.SSLContext | None = None,
    virtual_time: VirtualTime = "connect",
    **server_attrs: Any,
) -> RunningServer:
    """Start a server in the background on an ephemeral port or a private socket path.

    Args:
        handler: the request handler class (any ``BaseRequestHandler`` subclass,
            ours or the stdlib's).
        kind: ``"tcp"`` (the default), ``"tcp6"``, ``"udp"``, ``"udp6"``,
            ``"unix"`` or ``"unix_dgram"``; with ``server_class``, its own kind.
        concurrency: ``"sync"``, ``"threading"`` (the default) or ``"forking"``;
            with ``server_class``, its own.
        tls: ``True`` to serve TLS with a certificate from a fresh trustme CA,
            or a server-side ``ssl.SSLContext`` (stream kinds only).
        server_class: run this socketserver-compatible class instead of ours.
        faults: faults applied in this process to every accepted connection
            (or datagram): see :mod:`sockharness.faults`. ``Down`` needs a
            ``FaultProxy``; so do faults under TLS.
        select_faults: called as each connection is accepted, it returns which
            of ``faults`` that connection gets (say, those whose time window
            is open); without it every connection gets them all. Stream kinds.
        seed: seed of the faults' random choices.
        leaks: ``"fail"`` (raise), ``"warn"`` (a :class:`LeakWarning`, the
            default) or ``"off"``: what ``stop()`` does about leftovers.
        client_tls: the client context :meth:`RunningServer.connect` uses when
            ``tls`` is an ``ssl.SSLContext``.
        virtual_time: how the in-process faults' waits pass, for the server's
            connections and the clients of :meth:`RunningServer.connect`:
            ``"connect"`` (the default: a client's connect certain to time
            out does so at once), ``"timeouts"`` (a receive certain to time
            out too), ``"jump"`` (every fault wait skipped) or ``"off"``
            (real time); see :class:`~sockharness.faults.FaultClock`.
        **server_attrs: attributes set on the server before it binds
            (``timeout``, ``block_on_close``, ``daemon_threads``, ...).

    Example:
        >>> from sockharness import start_server
        >>> from sockharness.handlers import UpperHandler
        >>> with start_server(UpperHandler, "tcp") as server:
        ...     with server.connect() as client:
        ...         client.request(b"hello\\n")
        b'HELLO\\n'
    """
    if not isinstance(handler, type):
        raise UsageError(
            f"handler must be a request handler class (a BaseRequestHandler subclass), "
            f"got {handler!r}; pass the class itself, not an instance."
        )
    if leaks not in LEAK_MODES:
        raise UsageError(f"leaks={leaks!r} is not one of {', '.join(map(repr, LEAK_MODES))}.")
    virtual_time = check_virtual_time(virtual_time)
    if server_class is not None:
        cls = _check_server_class(server_class)
        own_kind = kind_of_class(cls)
        chosen = parse_kind(kind) if kind is not None else own_kind
        if chosen.family != own_kind.family or chosen.socket_type != own_kind.socket_type:
            raise UsageError(
                f"kind={kind!r} does not match server_class={cls.__name__}, which serves "
                f"{own_kind.name}; leave kind out or pass kind={own_kind.name!r}."
            )
        own_concurrency = concurrency_of_class(cls)
        if concurrency is not None and parse_concurrency(concurrency) != own_concurrency:
            raise UsageError(
                f"concurrency={concurrency!r} does not match server_class={cls.__name__}, "
                f"which is {own_concurrency}; leave concurrency out."
            )
        kind_obj, concurrency = own_kind, own_concurrency
    else:
        kind_obj = parse_kind(kind if kind is not None else "tcp")
        concurrency = parse_concurrency(concurrency if concurrency is not None else "threading")
        cls = server_class_for(kind_obj, concurrency)
    if kind_obj.family == socket.AF_INET6 and not has_ipv6_loopback():
        raise IPv6Unavailable(
            f"kind={kind_obj.name!r} needs an IPv6 loopback address (::1), which this host lacks."
        )
    server_context, client_context = _tls_contexts(tls, client_tls, kind_obj)
    _check_attributes(cls, server_attrs)
    server_faults = None
    if faults:
        from sockharness.faults import check_faults

        from ._server_faults import ServerFaults

        checked = check_faults(faults, kind_obj, proxy=False, side="server")
        if server_context is not None:
            raise UsageError(
                "faults in the process cannot reach the bytes under TLS (OpenSSL reads the "
                "socket itself); serve TLS behind a FaultProxy instead."
            )
        if select_faults is not None and not kind_obj.stream:
            raise UsageError(
                "select_faults chooses faults per accepted connection; a datagram server "
                "has one socket for every peer: use a FaultProxy to change faults over time"
            )
        server_faults = ServerFaults(checked, seed, select_faults, virtual_time=virtual_time)
    elif select_faults is not None:
        raise UsageError("select_faults chooses among faults=[...]; give the faults too")
    running = _bind(
        cls,
        handler,
        kind=kind_obj,
        concurrency=concurrency,
        attributes=server_attrs,
        server_context=server_context,
        client_context=client_context,
        leaks=leaks,
        faults=server_faults,
        seed=seed,
        virtual_time=virtual_time,
    )
    running._start()
    return running


def _bind(
    cls: type,
    handler: type,
    *,
    kind: Kind,
    concurrency: Concurrency,
    attributes: dict[str, Any],
    server_context: ssl.SSLContext | None,
    client_context: ssl.SSLContext | None,
    leaks: LeakMode,
    faults: ServerFaults | None,
    seed: int,
    virtual_time: VirtualTime,
) -> RunningServer:
    """The harnessed server, bound to an ephemeral port or a private path (not serving yet)."""
    descriptors_before = open_descriptors()
    install()  # Handlers' threads and sockets are told from the test's own.
    # A private directory holds the socket of a Unix server and the reports of
    # forked children; other servers need none (and save its cost).
    directory = private_directory("sh-") if kind.unix or concurrency == "forking" else None
    try:
        events = ServerEvents(directory)
        bind_to: Any = (kind.loopback, 0)
        if directory is not None and kind.unix:
            bind_to = os.path.join(directory, f"{kind.name}.sock")
            if len(os.fsencode(bind_to)) > unix_path_limit():
                raise UsageError(
                    f"the private socket path {bind_to!r} is longer than the platform's "
                    f"{unix_path_limit()}-byte limit; set TMPDIR to a shorter directory."
                )
        loop = LoopReadiness(cls)
        server = harnessed_class(cls, attributes, events, faults, loop)(bind_to, handler)
    except BaseException:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    try:
        if not kind.stream and type(server.socket) is socket.socket:
            server.socket = count_bytes(server.socket)  # Its sends are the replies.
            events.datagram_counter = counter_of(server.socket)
        if faults is not None and not kind.stream:
            # One socket serves every peer: its sends are the replies.
            server.socket = faults.wrap(server.socket)
        if server_context is not None:
            _serve_tls(server, kind, server_context)
    except BaseException:
        with contextlib.suppress(Exception):
            server.server_close()
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    return RunningServer(
        server=server,
        kind=kind,
        concurrency=concurrency,
        events=events,
        loop=loop,
        directory=directory,
        tls=server_context is not None,
        client_context=client_context,
        leaks=leaks,
        faults=faults,
        seed=seed,
        virtual_time=virtual_time,
        descriptors_before=descriptors_before,
    )


def _tls_contexts(
    tls: bool | ssl.SSLContext, client_tls: ssl.SSLContext | None, kind: Kind
) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    if tls is False or tls is None:
        return None, None
    if not kind.stream:
        raise UsageError(
            f"tls=True needs a stream kind (tcp, tcp6, unix); {kind.name!r} is a datagram "
            f"kind and TLS does not run over datagrams."
        )
    if isinstance(tls, ssl.SSLContext):
        return tls, client_tls
    if tls is True:
        from ._tls import TLSMaterial

        material = TLSMaterial()
        return material.server_context(), material.client_context()
    raise UsageError(f"tls must be True, False or an ssl.SSLContext, got {tls!r}")


def _serve_tls(server: Any, kind: Kind, context: ssl.SSLContext) -> None:
    """Make ``server``'s listening socket accept TLS connections."""
    if kind.family != getattr(socket, "AF_UNIX", None):
        # TLS writes a reply as several segments (records, session tickets):
        # with Nagle's algorithm the last waits for the client's delayed ACK,
        # 40 ms a reply. Accepted connections inherit this from the listener.
        server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    counting_tls(context)
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )


@dataclass(frozen=True)
class ServerStats:
    """Counters of a running server, to assert on.

    ``connections``: stream connections it accepted (a refused one counts: it
    was accepted, then closed), counted as ``get_request()`` returns;
    ``connections_done``: those it has shut down, its handler done with them
    (a forking server's once the child has reported);
    ``bytes_received`` / ``bytes_sent``: what its connections read from and
    sent to the clients, live connections included, a forking server's
    children once they are done with theirs; under TLS, the application's
    bytes (before encryption); with in-process faults, what crossed the
    socket (a byte a fault dropped was received, not delivered).
    ``datagrams``: datagrams it received, ``datagram_bytes_received`` the bytes
    in them, and ``datagram_bytes_sent`` the bytes of its replies.

    Connections of a socket class of the user's own (a ``get_request()`` that
    returns a ``socket.socket`` subclass, a TLS context with its own
    ``sslsocket_class``) are counted but their bytes are not.
    """

    connections: int
    connections_done: int
    bytes_received: int
    bytes_sent: int
    datagrams: int
    datagram_bytes_received: int
    datagram_bytes_sent: int


class ServerLike(Protocol):
    """What the harness needs of a server object: the socketserver API's lifecycle."""

    socket: Any
    server_address: Any

    def serve_forever(self, poll_interval: float = ...) -> None: ...
    def shutdown(self) -> None: ...
    def server_close(self) -> None: ...


@final
class RunningServer:
    """A server running in the background; stop it with :meth:`stop` (or a ``with`` block).

    Made by :func:`start_server` (and the ``make_server`` fixture), which
    validate what the constructor takes as given.

    Attributes:
        server: the server object.
        address: ``(host, port)`` for network kinds, the socket path for Unix kinds.
        kind: the kind's name (``"tcp"``, ``"unix_dgram"``, ...).
        concurrency: ``"sync"``, ``"threading"`` or ``"forking"``.
    """

    server: ServerLike
    address: Address

    def __init__(
        self,
        *,
        server: ServerLike,
        kind: Kind,
        concurrency: Concurrency,
        events: ServerEvents,
        loop: LoopReadiness,
        directory: str | None,
        tls: bool,
        client_context: ssl.SSLContext | None,
        leaks: LeakMode,
        faults: ServerFaults | None,
        seed: int,
        virtual_time: VirtualTime,
        descriptors_before: set[int],
    ) -> None:
        self.server = server
        self.kind = kind.name
        self.concurrency = concurrency
        self._kind = kind
        self._events = events
        self._directory = directory
        self._tls = tls
        self._client_context = client_context
        self._leak_mode = leaks
        # In-process faults: the server's own, or none (clients may still bring theirs).
        self._faults = faults
        self._seed = seed
        self._timeline: Timeline | None = faults.timeline if faults is not None else None
        self.virtual_time = virtual_time
        self._descriptors_before = descriptors_before
        address = server.server_address
        self.address = address if kind.unix else (address[0], address[1])
        self._socket_file = os.fsdecode(address) if kind.unix else None
        self._client_ordinals = itertools.count()
        self._clients: list[Client] = []
        self._client_faults: tuple[Fault, ...] = ()
        self._expected: list[type[BaseException]] = []
        self._reported: set[int] = set()
        self._stopped = False
        self._stop_problems: list[str] = []
        self._stopped_in_time: bool | None = None
        self.leaks: Leaks | None = None
        self._thread = threading.Thread(
            target=self._serve,
            name=f"sockharness {concurrency} {describe_address(kind, self.address)}",
            daemon=True,
        )
        self._loop = loop

    def _start(self) -> None:
        """Run ``serve_forever()`` in a thread; return once its loop is set up and waiting.

        Ours and the stdlib's ``serve_forever()`` say so by asking for the
        listening socket's descriptor after making what they wait with (our
        wake-up socket pair): whatever the loop opens is open when this
        returns. A loop of a class's own counts as set up once it is called.
        """
        try:
            self._thread.start()
            if not self._loop.ready.wait(10.0):  # pragma: no cover - a thread that never ran
                raise ServerStopTimeout("the serving loop was not set up within 10 s", timeout=10.0)
        except BaseException:
            with contextlib.suppress(Exception):
                self.server.server_close()
            self._remove_directory()
            raise

    def _serve(self) -> None:
        self._loop.loop_called()
        try:
            self.server.serve_forever(poll_interval=POLL_INTERVAL)
        except BaseException as exc:  # The loop died: report it as the handler's doing.
            self._events.add_error(exc, None, where="the serving thread (serve_forever died)")
        finally:
            self._loop.loop_ended()

    @property
    def stats(self) -> ServerStats:
        """What the server took and sent so far: connections and their bytes, datagrams."""
        return ServerStats(**self._events.counts())

    def wait_stats(self, until: Callable[[ServerStats], bool], timeout: float = 5.0) -> ServerStats:
        """Wait until ``until(stats)`` holds; return those :attr:`stats`.

        A handler adds to the counters after its call returns (a forking
        server's child, once it is done), so a client that has its reply may
        look a moment before they show it. Raises
        :class:`~sockharness.ReceiveTimeout`, naming the last counters, after
        ``timeout`` seconds.
        """
        __tracebackhide__ = True
        seen: list[ServerStats] = []

        def holds() -> bool:
            seen[:] = [self.stats]
            return until(seen[0])

        if not self._events.wait_until(holds, timeout):
            raise ReceiveTimeout(
                f"{self!r}: the counters did not get there within {timeout:g} s: {seen[0]}"
            )
        return seen[0]

    @property
    def client_tls_context(self) -> ssl.SSLContext | None:
        """The client context that trusts this server's certificate (``None``: not TLS)."""
        return self._client_context if self._tls else None

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "running"
        return (
            f"<RunningServer {type(self.server).__name__} "
            f"{describe_address(self._kind, self.address)} {self.concurrency} {state}>"
        )

    # -- clients ----------------------------------------------------------------------

    def connect(self, timeout: float = 5.0, *, faults: Sequence[Fault] = ()) -> Client:
        """A client connected to this server (trusting its certificate when it serves TLS).

        ``faults`` are applied in this process to what the client sends and
        receives, seeded like the server's. The client is closed when the
        server stops, if it is still open.
        """
        if self._stopped:
            raise UsageError(f"{self!r} has been stopped; start a new one to connect.")
        context = None
        if self._tls:
            if self._client_context is None:
                raise UsageError(
                    "this server serves TLS with a context you passed; pass client_tls= to "
                    "start_server() so connect() knows what to trust."
                )
            context = self._client_context
        client = connect(
            self.address,
            self._kind,
            tls=context,
            timeout=timeout,
            faults=faults,
            seed=self._seed,
            connection=next(self._client_ordinals),  # Attempts count, refused ones too.
            timeline=self._shared_timeline() if faults else self._timeline,
            virtual_time=self.virtual_time,
        )
        self._clients.append(client)
        if faults:
            self._client_faults = (*self._client_faults, *faults)
        return client

    @property
    def faults(self) -> tuple[Fault, ...]:
        """The in-process faults it was started with (``()``: none)."""
        return self._faults.faults if self._faults is not None else ()

    @property
    def fault_timeline(self) -> Timeline:
        """What the in-process faults did, on the server's connections and its clients'.

        Stream connections handled in forked children report theirs when they
        end; a forking datagram server's children keep theirs.
        """
        return self._shared_timeline().with_events(self._events.fault_events())

    def _shared_timeline(self) -> Timeline:
        """The timeline of the server's faults and its clients' (made when first needed)."""
        if self._timeline is None:
            from sockharness.faults import Timeline

            self._timeline = Timeline()
        return self._timeline

    def unfired_faults(self) -> list[str]:
        """In-process faults that never fired on any connection, server or client side."""
        usage = self._events.fault_usage()
        socket_usage = getattr(getattr(self.server, "socket", None), "fault_usage", None)
        if socket_usage is not None:
            usage += socket_usage()
        for client in self._clients:
            usage += client.fault_usage()
        faults = (*self.faults, *self._client_faults)
        if not faults:
            return []
        from sockharness.faults import summarize_unfired

        made = self._faults.wrapped if self._faults is not None else 0
        made += sum(1 for client in self._clients if client.faults)
        return summarize_unfired(faults, usage, made, "connection", fired=self.fault_timeline.fired)

    # -- errors -----------------------------------------------------------------------

    @property
    def errors(self) -> list[HandlerError]:
        """Every exception the server's handlers raised so far, with tracebacks."""
        return self._events.errors()

    @property
    def received(self) -> list[bytes]:
        """What :class:`~sockharness.handlers.RecordingHandler` received, one entry per request."""
        return [record.data for record in self._events.received()]

    def wait_received(self, count: int, timeout: float = 5.0) -> list[bytes]:
        """Wait until :attr:`received` holds ``count`` requests; return it.

        Raises :class:`~sockharness.ReceiveTimeout` after ``timeout`` seconds.
        """
        __tracebackhide__ = True
        if not self._events.wait_for_received(count, timeout):
            got = len(self._events.received())
            raise ReceiveTimeout(
                f"{self!r} recorded {got} request{'s' if got != 1 else ''}, not {count}, "
                f"within {timeout:g} s (is the handler a RecordingHandler, and did the "
                f"clients finish their requests?)"
            )
        return self.received

    @property
    def records(self) -> list[Received]:
        """Like :attr:`received`, with each request's client address."""
        return self._events.received()

    def expect_errors(self, *types: type[BaseException], timeout: float = 5.0) -> _ExpectedErrors:
        """Declare that handler errors of these types are expected (they fail no test).

        Used as a context manager, it also asserts that at least one such
        error happened by the end of the block, waiting up to ``timeout``
        seconds for it (a handler in another thread or process may still be
        on its way to raising).
        """
        for exc_type in types:
            if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
                raise UsageError(f"expect_errors() takes exception types, got {exc_type!r}")
        if not types:
            raise UsageError("expect_errors() needs at least one exception type, e.g. ValueError")
        self._expected.extend(types)
        return _ExpectedErrors(self, types, timeout)

    def undeclared_errors(self) -> list[HandlerError]:
        """The errors not covered by :meth:`expect_errors` and not reported before."""
        return [
            error
            for error in self.errors
            if not error.matches(self._expected) and id(error) not in self._reported
        ]

    def take_undeclared_errors(self) -> list[HandlerError]:
        """Like :meth:`undeclared_errors`, and mark them reported."""
        errors = self.undeclared_errors()
        self._reported.update(id(error) for error in errors)
        return errors

    def check_errors(self) -> None:
        """Raise :class:`~sockharness.HandlerErrors` if a handler raised an undeclared error."""
        __tracebackhide__ = True
        errors = self.take_undeclared_errors()
        if errors:
            raise HandlerErrors(format_handler_errors(self, errors))

    # -- stopping ---------------------------------------------------------------------

    def stop(self, timeout: float = 10.0, *, check: bool = True) -> None:
        """Shut the server down and close it; idempotent.

        Closes the clients it handed out, then ``shutdown()`` and
        ``server_close()``, within ``timeout`` seconds all told; checks for
        leaks. With ``check``, raises :class:`~sockharness.HandlerErrors` for
        undeclared handler errors and acts on leaks as the ``leaks`` mode says.
        """
        __tracebackhide__ = True
        if self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + timeout
        for client in self._clients:
            with contextlib.suppress(OSError):
                client.close()
        if self._faults is not None:
            self._faults.clock.cut_short()  # A handler asleep in a fault's delay goes on now.
        done = threading.Event()
        failure: list[BaseException] = []

        def shut_down_and_close() -> None:
            try:
                self.server.shutdown()
                self.server.server_close()
            except BaseException as exc:
                failure.append(exc)
            finally:
                done.set()

        stopper = threading.Thread(target=shut_down_and_close, name="sockharness stop", daemon=True)
        stopper.start()
        self._stopped_in_time = done.wait(max(0.0, deadline - time.monotonic()))
        if not self._stopped_in_time:
            self._stop_problems.append(
                f"the server did not stop within {timeout:g} s: a handler is still running "
                f"(shutdown() waits for the current request; server_close() for handler "
                f"threads and children when block_on_close is true)"
            )
            with contextlib.suppress(Exception):
                self.server.socket.close()
        if failure:
            self._events.add_error(failure[0], None, where="shutdown() or server_close()")
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._faults is not None:
            self._faults.let_go()  # Connections a fault held (NeverRead) end with the server.
        self.leaks = find_leaks(
            deadline=deadline,
            handler_threads=self._events.handler_threads,
            creations=self._events.creations,
            serving_thread=self._thread,
            descriptors_before=self._descriptors_before,
            server_address=self.server.server_address,
            children=self._events.children,
            socket_file=self._socket_file if self._owns_socket_file() else None,
        )
        if self.leaks.children:
            killed = reap(self._events.children)
            self.leaks.children = [
                f"{entry}, killed" if any(entry.startswith(f"pid {pid} ") for pid in killed)
                else entry
                for entry in self.leaks.children
            ]  # fmt: skip
        self._events.collect()
        if self._socket_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._socket_file)
        self._remove_directory()
        if check:
            self.check_errors()
            self.check_leaks()

    def _remove_directory(self) -> None:
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)

    def _owns_socket_file(self) -> bool:
        """Whether the server class promises to remove its socket file (ours do)."""
        ours = (_server.UnixStreamServer, _server.UnixDatagramServer)
        return any(base in ours for base in type(self.server).__mro__)

    @property
    def stopped_in_time(self) -> bool | None:
        """Whether :meth:`stop` shut the server down within its timeout (``None``: not stopped)."""
        return self._stopped_in_time

    def leak_report(self) -> str | None:
        """What the stopped server left behind, or ``None`` if nothing."""
        problems = list(self._stop_problems)
        if self.leaks:
            problems.append(self.leaks.describe())
        if not problems:
            return None
        return f"{self!r} left things behind:\n" + "\n".join(problems)

    def check_leaks(self, mode: str | None = None) -> None:
        """Act on :meth:`leak_report` as ``mode`` (default: the server's ``leaks``) says."""
        __tracebackhide__ = True
        mode = mode or self._leak_mode
        report = self.leak_report()
        if report is None or mode == "off":
            return
        if mode == "fail":
            raise LeakError(report)
        warnings.warn(LeakWarning(report), stacklevel=2)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        __tracebackhide__ = True
        self.stop(check=exc_type is None)


class _ExpectedErrors:
    """Returned by :meth:`RunningServer.expect_errors`; a context manager asserting one happened."""

    def __init__(
        self, server: RunningServer, types: tuple[type[BaseException], ...], timeout: float
    ) -> None:
        self._server = server
        self._types = types
        self._timeout = timeout

    def __enter__(self) -> _ExpectedErrors:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        __tracebackhide__ = True
        if exc_type is not None:
            return
        if not self._server._events.wait_for_error(self._types, timeout=self._timeout):
            names = " or ".join(t.__name__ for t in self._types)
            raise AssertionError(
                f"expected a handler to raise {names}; none did within {self._timeout:g} s"
            )


def format_handler_errors(server: RunningServer, errors: list[HandlerError]) -> str:
    """The failure message for undeclared handler errors, tracebacks included.

    Errors of one kind (the same type raised at the same place) are folded:
    ``11 x ConnectionResetError ...`` (a multiplication sign) with one traceback.
    """
    count = f"{len(errors)} handler error{'s' if len(errors) != 1 else ''}"
    lines = [
        f"{count} in {server!r} that the test did not expect "
        f"(declare expected ones with server.expect_errors(SomeError)):",
    ]
    folded: dict[Any, list[HandlerError]] = {}
    for error in errors:
        folded.setdefault(error.kind_of_failure, []).append(error)
    for same in folded.values():
        first = same[0]
        if len(same) == 1:
            lines += ["", str(first).rstrip()]
            continue
        clients = list(dict.fromkeys(error.client for error in same))
        shown = ", ".join(clients[:3]) + (
            f" and {len(clients) - 3} more" if len(clients) > 3 else ""
        )
        lines += [
            "",
            f"{len(same)} \u00d7 {first.type_name}: {first.message} (the first of them; from "
            f"{shown}, in {first.where})",
            first.traceback.rstrip(),
        ]
    return "\n".join(lines)
