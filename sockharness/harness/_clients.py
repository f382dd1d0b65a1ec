"""Fake clients for every transport, TLS included, where every wait has a deadline."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import ssl
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, final

from sockharness._core import (
    ConnectionClosed,
    Kind,
    ReceiveTimeout,
    UsageError,
    end_sending,
    keep_out_of_children,
    parse_kind,
    private_directory,
    socket_out_of_children,
)

if TYPE_CHECKING:
    from sockharness.faults import Fault, FaultClock, Timeline, VirtualTime

__all__ = ["Client", "connect", "describe_address"]

_CHUNK = 65536


def describe_address(kind: Kind, address: Any) -> str:
    """``tcp 127.0.0.1:8080``, ``tcp6 [::1]:8080`` or ``unix /path``: for messages."""
    if kind.unix:
        return f"{kind.name} {os.fsdecode(address) if address else '(unnamed)'}"
    host, port = address[0], address[1]
    return f"{kind.name} [{host}]:{port}" if ":" in str(host) else f"{kind.name} {host}:{port}"


def _connect_stream(sock: socket.socket, address: Any, deadline: float, what: str) -> None:
    # A Unix listener with a full backlog answers EAGAIN to a socket in
    # timeout mode, where TCP would queue the connection: retry until the deadline.
    delay = 0.0005
    while True:
        try:
            sock.connect(address)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise ReceiveTimeout(
                    f"could not connect to {what}: its backlog stayed full"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        except TimeoutError:
            raise ReceiveTimeout(f"could not connect to {what} within the timeout") from None


def _client_faults(
    faults: Sequence[Fault], kind: Kind, tls: ssl.SSLContext | None
) -> Sequence[Fault]:
    from sockharness.faults import check_faults

    checked = check_faults(faults, kind, proxy=False, side="client")
    if tls is not None:
        raise UsageError(
            "faults in the process cannot reach the bytes under TLS (OpenSSL reads the "
            "socket itself); put a FaultProxy between the TLS client and the server instead."
        )
    return checked


def _connect_with_fate(
    faults: Sequence[Fault],
    *,
    seed: int,
    what: str,
    timeout: float,
    connection: int,
    timeline: Timeline | None,
    clock: FaultClock,
) -> None:
    """What a connection-phase fault does to a client's connect(), if one applies: refuse
    it, never let it complete (until the client's timeout), or make it late.

    In virtual time a connect() certain to time out (a blackhole, a delay past
    the timeout) does so at once, and the timeline records the time it stood for:
    all of ``timeout``, since the connect has not begun (the harness's own work
    before it, a garbage collection say, is not the network's time).
    """
    from sockharness.faults import AcceptDelay, Blackhole, Event, Refuse, connection_fate

    fault = connection_fate(faults, seed, connection)
    if fault is None:
        return
    remaining = timeout

    def record(effect: str, after: float) -> None:
        if timeline is not None:
            timeline.add(Event(after, connection, "both", repr(fault), effect))

    def wait(delay: float) -> str:
        if (clock.skips_connects and delay >= remaining) or clock.jumps:
            return f" (at once, in virtual time: {delay:.4g} s skipped)"
        clock.sleep(delay)
        return ""

    if isinstance(fault, Refuse):
        record("refused the connect()", 0.0)
        raise ConnectionRefusedError(errno.ECONNREFUSED, f"{what} refused (a Refuse fault)")
    if isinstance(fault, Blackhole):
        how = wait(remaining)
        record(f"the connect() never completed (blackhole){how}", remaining)
        raise ReceiveTimeout(f"could not connect to {what} within the timeout (a Blackhole fault)")
    if isinstance(fault, AcceptDelay):
        late = fault.delay >= remaining
        how = wait(min(fault.delay, remaining))
        if late:
            record(f"the connect() did not complete within the timeout{how}", remaining)
            raise ReceiveTimeout(f"could not connect to {what} within the timeout")
        record(f"the connect() completed {fault.delay:g} s late{how}", fault.delay)


def connect(
    address: Any,
    kind: str | Kind = "tcp",
    *,
    tls: ssl.SSLContext | None = None,
    timeout: float = 5.0,
    server_hostname: str | None = None,
    faults: Sequence[Fault] = (),
    seed: int = 0,
    connection: int = 0,
    timeline: Timeline | None = None,
    virtual_time: VirtualTime = "connect",
) -> Client:
    """Connect a :class:`Client` to ``address`` over ``kind``.

    Args:
        address: ``(host, port)`` for network kinds, a path for Unix kinds.
        kind: ``"tcp"``, ``"tcp6"``, ``"udp"``, ``"udp6"``, ``"unix"`` or ``"unix_dgram"``.
        tls: an ``ssl.SSLContext`` to wrap a stream connection with.
        timeout: seconds every connect and receive may take.
        server_hostname: the name to check the certificate against (default:
            the host of ``address``).
        faults: faults applied in this process to what the client sends
            (``direction="upstream"``) and receives (``"downstream"``); see
            :mod:`sockharness.faults`. Not with ``tls`` (use a ``FaultProxy``).
        seed, connection, timeline: seed the faults' random choices, number
            this connection among others, and collect what the faults did.
        virtual_time: how the faults' waits pass: ``"connect"`` (the
            default: a connect certain to time out does so at once),
            ``"timeouts"`` (a receive certain to time out too), ``"jump"``
            (every fault wait skipped) or ``"off"``; see
            :class:`~sockharness.faults.FaultClock`.

    Example:
        >>> from sockharness import connect, start_server
        >>> from sockharness.handlers import EchoHandler
        >>> with start_server(EchoHandler) as server, connect(server.address) as client:
        ...     client.request(b"ping\\n")
        b'ping\\n'
    """
    kind = parse_kind(kind)
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise UsageError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if tls is not None and not kind.stream:
        raise UsageError(
            f"tls is for stream kinds (tcp, tcp6, unix); {kind.name} is a datagram kind."
        )
    if tls is not None and not isinstance(tls, ssl.SSLContext):
        raise UsageError(f"tls must be an ssl.SSLContext, got {type(tls).__name__}")
    clock = None
    if faults:
        from sockharness.faults import FaultClock

        faults = _client_faults(faults, kind, tls)
        clock = FaultClock(virtual_time)
    what = describe_address(kind, address)
    # Kept out of a forking server's children from the first: a child's copy would
    # keep the connection open after the client's close or reset.
    sock = socket_out_of_children(kind.family, kind.socket_type)
    private_dir: str | None = None
    try:
        sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        if kind.stream:
            if clock is not None:
                _connect_with_fate(
                    faults,
                    seed=seed,
                    what=what,
                    timeout=timeout,
                    connection=connection,
                    timeline=timeline,
                    clock=clock,
                )
            _connect_stream(sock, address if kind.unix else tuple(address[:2]), deadline, what)
            if tls is not None:
                host = server_hostname or ("localhost" if kind.unix else str(address[0]))
                sock = tls.wrap_socket(sock, server_hostname=host)
        elif kind.unix:
            private_dir = private_directory("shc-")
            sock.bind(os.path.join(private_dir, "client.sock"))
            sock.connect(address)
        else:
            sock.connect(tuple(address[:2]))
        if clock is not None:
            from sockharness.faults import wrap_socket

            sock = wrap_socket(
                sock,
                faults,
                side="client",
                seed=seed,
                connection=connection,
                timeline=timeline,
                clock=clock,
            )
    except BaseException:
        sock.close()
        if private_dir is not None:
            shutil.rmtree(private_dir, ignore_errors=True)
        raise
    keep_out_of_children(sock)  # The TLS or fault wrapper, on the same descriptor.
    return Client(sock, kind=kind, address=address, timeout=timeout, private_dir=private_dir)


@final
class Client:
    """A client connection (or a connected datagram socket) with bounded waits.

    Every receive waits at most ``timeout`` seconds and then raises
    :class:`~sockharness.ReceiveTimeout` naming the peer and what was awaited.
    Closing a stream client first sends FIN (``shutdown(SHUT_WR)``), so the
    handler sees end-of-file even where forked children hold copies of the
    socket. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        kind: Kind,
        address: Any,
        timeout: float,
        private_dir: str | None = None,
    ) -> None:
        self.sock = sock
        self.kind = kind.name
        self._kind = kind
        self.address = address
        self.timeout = timeout
        self._private_dir = private_dir
        self._buffer = bytearray()
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Client {describe_address(self._kind, self.address)} {state}>"

    @property
    def local_address(self) -> Any:
        """This end's address."""
        return self.sock.getsockname()

    # -- sending ---------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send all of ``data`` (one datagram on datagram kinds)."""
        if self._kind.stream:
            self.sock.sendall(data)
        else:
            self.sock.send(data)

    def shutdown_write(self) -> None:
        """Send FIN: the server sees end-of-file; this client can still receive.

        A server that already reset the connection (it answered and closed
        first) leaves nothing to end: no error, and what it sent before the
        reset can still be received.
        """
        if not self._kind.stream:
            raise UsageError(f"shutdown_write() is for stream kinds; this client is {self.kind}.")
        end_sending(self.sock)

    # -- receiving -------------------------------------------------------------------

    def recv(self, max: int = _CHUNK) -> bytes:
        """Up to ``max`` bytes as they arrive (one datagram on datagram kinds).

        ``b""`` means the server closed a stream connection.
        """
        if self._buffer:
            data = bytes(self._buffer[:max])
            del self._buffer[:max]
            return data
        return self._receive(max, time.monotonic() + self.timeout, f"up to {max} bytes")

    def recv_exactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; raises :class:`~sockharness.ConnectionClosed` on an early EOF."""
        deadline = time.monotonic() + self.timeout
        what = f"{n} bytes"
        while len(self._buffer) < n:
            chunk = self._receive(_CHUNK, deadline, what)
            if not chunk:
                raise ConnectionClosed(self._closed_early(what))
            self._buffer += chunk
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def recv_until(self, sep: bytes = b"\n") -> bytes:
        """Everything up to and including the first ``sep``."""
        if not sep:
            raise UsageError("recv_until() needs a non-empty separator")
        deadline = time.monotonic() + self.timeout
        what = f"data ending in {sep!r}"
        searched = 0
        while (index := self._buffer.find(sep, searched)) < 0:
            searched = max(0, len(self._buffer) - len(sep) + 1)
            chunk = self._receive(_CHUNK, deadline, what)
            if not chunk:
                raise ConnectionClosed(self._closed_early(what))
            self._buffer += chunk
        end = index + len(sep)
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return data

    def recv_line(self) -> bytes:
        """One line, with its ``\\n``."""
        return self.recv_until(b"\n")

    def request(self, data: bytes) -> bytes:
        """Send ``data`` and return the reply: one datagram, or one line on streams."""
        self.send(data)
        if self._kind.stream:
            return self.recv_line()
        return self.recv()

    def recv_all(self) -> bytes:
        """Everything until the server closes a stream connection."""
        deadline = time.monotonic() + self.timeout
        while chunk := self._receive(_CHUNK, deadline, "the end of the stream"):
            self._buffer += chunk
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def _receive(self, size: int, deadline: float, what: str) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ReceiveTimeout(self._timed_out(what), received=bytes(self._buffer))
        self.sock.settimeout(remaining)
        try:
            return self.sock.recv(size)
        except TimeoutError:
            raise ReceiveTimeout(self._timed_out(what), received=bytes(self._buffer)) from None

    def _timed_out(self, what: str) -> str:
        got = f" (received so far: {bytes(self._buffer)[:200]!r})" if self._buffer else ""
        return (
            f"waited {self.timeout:g} s for {what} from "
            f"{describe_address(self._kind, self.address)}, in vain{got}"
        )

    def _closed_early(self, what: str) -> str:
        return (
            f"{describe_address(self._kind, self.address)} closed the connection before "
            f"{what} arrived; received: {bytes(self._buffer)[:200]!r}"
        )

    # -- closing ---------------------------------------------------------------------

    def close(self) -> None:
        """Send FIN (streams), close, and remove this client's own socket file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._kind.stream:
            with contextlib.suppress(OSError):
                end_sending(self.sock)
        self.sock.close()
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)

    @property
    def faults(self) -> tuple[Any, ...]:
        """The faults applied in process to this client (empty without faults)."""
        return tuple(getattr(self.sock, "faults", ()))

    @property
    def fault_timeline(self) -> Timeline | None:
        """What the in-process faults did on this client (``None`` without faults)."""
        return getattr(self.sock, "fault_timeline", None)

    def fault_usage(self) -> list[tuple[str, bool]]:
        """``(fault, fired)`` for the faults on this client (empty without faults)."""
        usage = getattr(self.sock, "fault_usage", None)
        return usage() if usage is not None else []

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
