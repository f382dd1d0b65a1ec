"""The fault catalogue: immutable, validated descriptions of what goes wrong.

A fault spec says *what* happens; the schedules in ``_plans.py`` decide *when*
and *to which bytes*, from a seeded generator. Every spec takes two common
keyword arguments:

- ``direction``: ``"upstream"`` (client to server), ``"downstream"`` (server to
  client) or ``"both"``;
- ``toxicity``: the share of connections (streams) or of peers (datagrams) the
  fault applies to, from 0 to 1, decided per connection from the seed.

Times are in seconds (floats), sizes in bytes. A bad parameter raises
``ValueError`` naming the fault, the parameter, the allowed range and the value.
"""

from __future__ import annotations

import errno
import math
import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, get_args

from sockharness._core import Direction, UsageError

from ._select import Ordinals, OrdinalsLike, ordinals
from .framers import FramerLike, framer_name, resolve_framer

__all__ = [
    "DATAGRAM",
    "DIRECTIONS",
    "DISTRIBUTIONS",
    "FAULTS",
    "SOCKET_ERRORS",
    "STREAM",
    "TLS_POINTS",
    "AcceptDelay",
    "AcceptThenClose",
    "AcceptThenReset",
    "Bandwidth",
    "Blackhole",
    "CallFault",
    "ConnectionFault",
    "Corrupt",
    "Down",
    "Duplicate",
    "Fault",
    "GilbertElliott",
    "Latency",
    "LimitData",
    "Loss",
    "MarkovLoss",
    "NeverRead",
    "NoReply",
    "Refuse",
    "Reorder",
    "ResetPeer",
    "ShortSend",
    "Slicer",
    "Slot",
    "SlowClose",
    "SmallRecv",
    "SocketError",
    "Stall",
    "TLSAbort",
    "TLSStall",
    "Timeout",
    "Truncate",
]

DIRECTIONS: tuple[Direction, ...] = get_args(Direction)
STREAM = "stream"
DATAGRAM = "datagram"


def _number(fault: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise UsageError(
            f"{fault}({name}=...) must be a number, got {value!r}", parameter=name, value=value
        )
    return float(value)


def _at_least(fault: str, name: str, value: Any, low: float, unit: str = "") -> None:
    number = _number(fault, name, value)
    if number < low or math.isinf(number):
        raise UsageError(
            f"{fault}({name}={value!r}) is out of range: {name} must be a finite number "
            f">= {low:g}{unit}",
            parameter=name,
            value=value,
        )


def _above(fault: str, name: str, value: Any, low: float, unit: str = "") -> None:
    number = _number(fault, name, value)
    if number <= low or math.isinf(number):
        raise UsageError(
            f"{fault}({name}={value!r}) is out of range: {name} must be a finite number "
            f"> {low:g}{unit}",
            parameter=name,
            value=value,
        )


def _share(fault: str, name: str, value: Any) -> None:
    number = _number(fault, name, value)
    if not 0.0 <= number <= 1.0:
        raise UsageError(
            f"{fault}({name}={value!r}) is out of range: {name} is a probability from 0 to 1",
            parameter=name,
            value=value,
        )


def _whole(fault: str, name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(
            f"{fault}({name}=...) must be a whole number of bytes, got {value!r}",
            parameter=name,
            value=value,
        )
    if value < low:
        raise UsageError(
            f"{fault}({name}={value!r}) is out of range: {name} must be >= {low}",
            parameter=name,
            value=value,
        )


#: Every fault by the name files and command lines give it, in the order defined.
FAULTS: dict[str, type[Fault]] = {}


@dataclass(frozen=True, kw_only=True)
class Fault:
    """Base of every fault: the ``direction`` it strikes and the ``toxicity`` (share) it has.

    A fault class names itself where it is defined (``class Latency(Fault,
    name="latency", example="latency=0.1")``) and is then known by that name
    everywhere: on the command line, in scenario files, in the docs' lists.
    """

    direction: Direction = "both"
    toxicity: float = 1.0
    #: Which connections (datagrams: peers) by ordinal; ``None``: any (see :mod:`._select`).
    connections: OrdinalsLike | None = None
    #: Streams: strike only once this many bytes of the direction have passed.
    after_bytes: int | None = None
    #: Streams: how the bytes are cut into messages (for ``messages``, ``after_messages``).
    framer: FramerLike | None = None
    #: Streams, with a framer: strike these messages of the direction, by ordinal.
    messages: OrdinalsLike | None = None
    #: Streams, with a framer: strike from the message after the first ``after_messages``.
    after_messages: int | None = None

    #: The transports the fault means something on.
    transports: ClassVar[frozenset[str]] = frozenset({STREAM, DATAGRAM})
    #: Only the proxy can apply it (it concerns connections, not bytes).
    proxy_only: ClassVar[bool] = False
    #: Only a faulty socket in the process can apply it (it concerns the socket's calls).
    process_only: ClassVar[bool] = False
    #: Where it can strike: through a proxy, on a server's accepted connections (in
    #: the process), on a client's own connection (in the process).
    sides: ClassVar[frozenset[str]] = frozenset({"proxy", "server", "client"})
    #: Its name in files and on the command line (``None``: not registered).
    name: ClassVar[str | None] = None
    #: How it is written on the command line, for help texts.
    example: ClassVar[str] = ""
    #: Fields the fault sets itself from its own parameters, left out of its repr.
    implied: ClassVar[frozenset[str]] = frozenset()
    #: A fault of your own: what it does to a stream (a ``StreamEffect``), if not built in.
    stream_effect: ClassVar[Any] = None
    #: A fault of your own: what it does to one datagram (a ``DatagramEffect``), if not built in.
    datagram_effect: ClassVar[Any] = None

    def __init_subclass__(
        cls, *, name: str | None = None, example: str = "", **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if name is None:
            return
        known = FAULTS.get(name)
        if known is not None and (known.__module__, known.__qualname__) != (
            cls.__module__,
            cls.__qualname__,
        ):  # The same class imported again (a reloaded module) takes its name back.
            raise UsageError(
                f"a fault named {name!r} exists already ({FAULTS[name].__qualname__}); "
                f"give {cls.__qualname__} another name"
            )
        cls.name = name
        cls.example = example or name
        FAULTS[name] = cls

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.direction not in DIRECTIONS:
            raise UsageError(
                f"{name}(direction={self.direction!r}) is not a direction; use "
                f"'upstream' (client to server), 'downstream' (server to client) or 'both'",
                parameter="direction",
                value=self.direction,
            )
        _share(name, "toxicity", self.toxicity)
        if self.connections is not None:
            object.__setattr__(self, "connections", ordinals(self.connections, "connections", name))
        if self.after_bytes is not None:
            _whole(name, "after_bytes", self.after_bytes, 0)
        self._check_messages(name)
        self.validate()

    def _no_triggers(self, why: str) -> None:
        """Refuse every trigger (``after_bytes``, a framer, messages): ``why`` it takes none."""
        name = type(self).__name__
        for key in ("after_bytes", "framer", "messages", "after_messages"):
            if getattr(self, key) is not None:
                raise UsageError(
                    f"{name}({key}=...): {name} {why}; leave {key} out",
                    parameter=key,
                    value=getattr(self, key),
                )

    def _check_messages(self, name: str) -> None:
        if self.messages is not None:
            object.__setattr__(self, "messages", ordinals(self.messages, "messages", name))
        if self.after_messages is not None:
            _whole(name, "after_messages", self.after_messages, 0)
        by_message = self.messages is not None or self.after_messages is not None
        if self.framer is not None:
            # A name that is no framer fails here, clearly; a name and the framer it
            # names make equal faults (the repr prints the name either way).
            object.__setattr__(self, "framer", resolve_framer(self.framer))
            if not by_message:
                raise UsageError(
                    f"{name}(framer={framer_name(self.framer)!r}): a framer cuts the stream "
                    f"into messages for messages= or after_messages=; give one of them",
                    parameter="framer",
                    value=self.framer,
                )
        elif by_message:
            which = "messages" if self.messages is not None else "after_messages"
            raise UsageError(
                f"{name}({which}=...): messages need a framer to tell where they end; add "
                f"framer='lines' (or 'length-prefix', 'http', 'tls-records', your own)",
                parameter=which,
                value=getattr(self, which),
            )
        triggers = [
            key
            for key in ("after_bytes", "messages", "after_messages")
            if getattr(self, key) is not None
        ]
        if len(triggers) > 1:
            raise UsageError(
                f"{name}: {' and '.join(triggers)} both say where it strikes; keep one",
                parameter=triggers[1],
                value=getattr(self, triggers[1]),
            )

    @property
    def selected(self) -> Ordinals | None:
        """The connections (peers) it is limited to, as :class:`Ordinals` (``None``: any)."""
        return None if self.connections is None else ordinals(self.connections)

    @property
    def triggered(self) -> bool:
        """Whether it waits for a trigger (``after_bytes``, a message) before it strikes."""
        return self.after_bytes is not None or self.framer is not None

    @property
    def trigger(self) -> str:
        """Where it starts, in words, for the timeline: "after 6 bytes", "at message 2"."""
        if isinstance(self, _TLSHandshakeFault):
            return f"after the {'ClientHello' if self.after == 'client_hello' else 'ServerHello'}"
        if self.after_bytes is not None:
            return f"after {self.after_bytes} bytes"
        if self.after_messages is not None:
            return f"after {self.after_messages} messages"
        if self.messages is not None:
            return f"at message {self.messages}"
        return "at the start"

    @property
    def selected_messages(self) -> Ordinals | None:
        """The messages it strikes, as :class:`Ordinals` (``None``: not by message ordinal)."""
        return None if self.messages is None else ordinals(self.messages, "messages")

    def validate(self) -> None:
        """Check the fault's own parameters."""

    def applies_upstream(self) -> bool:
        """Whether the fault strikes client-to-server traffic."""
        return self.direction in ("upstream", "both")

    def applies_downstream(self) -> bool:
        """Whether the fault strikes server-to-client traffic."""
        return self.direction in ("downstream", "both")

    def __repr__(self) -> str:
        parts = []
        # The fault's own parameters first, then direction and toxicity.
        for item in sorted(fields(self), key=lambda f: f.kw_only is True):
            value = getattr(self, item.name)
            if item.name in self.implied:
                continue  # Set by the fault itself: its own parameters say it.
            default = item.default
            if isinstance(value, Ordinals) and isinstance(default, (str, int)):
                default = ordinals(default)
            if default is not MISSING and value == default:
                continue  # Read like the call that built it: defaults left out.
            if item.name == "framer":
                value = framer_name(value)  # Stable across runs: it seeds the draws.
            parts.append(f"{item.name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


# -- stream and datagram --------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Latency(Fault, name="latency", example="latency=0.1,jitter=0.01"):
    """Every chunk (or datagram) is delayed by ``delay`` ± ``jitter`` seconds; order is kept.

    ``distribution`` shapes the jitter: ``"uniform"`` (within ± ``jitter``),
    ``"normal"`` (``jitter`` is the standard deviation), ``"pareto"`` (a
    heavy right tail) or ``"paretonormal"`` (a quarter of the variance
    normal, three quarters Pareto); every one has a mean offset of 0, and all
    but uniform a standard deviation of ``jitter``. ``correlation`` (0 to 1)
    makes each delay lean on the one before (the offsets form an AR(1) series
    that keeps the spread), as netem's jitter correlation does.
    """

    delay: float
    jitter: float = 0.0
    distribution: str = "uniform"
    correlation: float = 0.0

    def validate(self) -> None:
        _at_least("Latency", "delay", self.delay, 0.0, " seconds")
        _at_least("Latency", "jitter", self.jitter, 0.0, " seconds")
        if self.distribution not in DISTRIBUTIONS:
            raise UsageError(
                f"Latency(distribution={self.distribution!r}): use one of "
                f"{', '.join(DISTRIBUTIONS)}",
                parameter="distribution",
                value=self.distribution,
            )
        _share("Latency", "correlation", self.correlation)
        if self.correlation >= 1.0:
            raise UsageError(
                f"Latency(correlation={self.correlation!r}): below 1, or every delay would "
                f"be the first one's",
                parameter="correlation",
                value=self.correlation,
            )


#: How a Latency's jitter is distributed.
DISTRIBUTIONS = ("uniform", "normal", "pareto", "paretonormal")


@dataclass(frozen=True, repr=False)
class Bandwidth(Fault, name="bandwidth", example="bandwidth=50000"):
    """At most ``rate`` bytes per second get through, per connection and direction.

    ``shared=True``: one budget for all the connections (datagrams: peers) of
    the proxy, or of the server's in-process faults, per direction, as one
    link shared by everyone (Toxiproxy's bandwidth is per connection).
    """

    rate: float
    shared: bool = False

    def validate(self) -> None:
        _above("Bandwidth", "rate", self.rate, 0.0, " bytes per second")
        if not isinstance(self.shared, bool):
            raise UsageError(
                f"Bandwidth(shared={self.shared!r}): true or false",
                parameter="shared",
                value=self.shared,
            )


# -- stream -----------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Slicer(Fault, name="slicer", example="slicer=8,delay=0.01"):
    """Data is split into writes of ``average_size`` ± ``size_variation`` bytes, ``delay`` apart."""

    average_size: int
    size_variation: int = 0
    delay: float = 0.0
    transports: ClassVar[frozenset[str]] = frozenset({STREAM})

    def validate(self) -> None:
        _whole("Slicer", "average_size", self.average_size, 1)
        _whole("Slicer", "size_variation", self.size_variation, 0)
        if self.size_variation >= self.average_size:
            raise UsageError(
                f"Slicer(size_variation={self.size_variation}) is out of range: it must be "
                f"smaller than average_size ({self.average_size}), so every slice has a byte",
                parameter="size_variation",
                value=self.size_variation,
            )
        _at_least("Slicer", "delay", self.delay, 0.0, " seconds")


@dataclass(frozen=True, repr=False)
class SlowClose(Fault, name="slow_close", example="slow_close=1"):
    """A close (FIN) is passed on ``delay`` seconds late."""

    delay: float
    transports: ClassVar[frozenset[str]] = frozenset({STREAM})

    def validate(self) -> None:
        _at_least("SlowClose", "delay", self.delay, 0.0, " seconds")


@dataclass(frozen=True, repr=False)
class Timeout(Fault, name="timeout", example="timeout=none"):
    """Data stops flowing; the connection is closed ``after`` seconds, or never (``None``)."""

    after: float | None = None
    transports: ClassVar[frozenset[str]] = frozenset({STREAM})

    def validate(self) -> None:
        if self.after is not None:
            _at_least("Timeout", "after", self.after, 0.0, " seconds (or None: never)")


@dataclass(frozen=True, repr=False)
class ResetPeer(Fault, name="reset_peer", example="reset_peer=2"):
    """The connection is reset (RST: the peer sees ConnectionResetError) ``after`` seconds."""

    after: float = 0.0
    transports: ClassVar[frozenset[str]] = frozenset({STREAM})

    def validate(self) -> None:
        _at_least("ResetPeer", "after", self.after, 0.0, " seconds")


@dataclass(frozen=True, repr=False)
class LimitData(Fault, name="limit_data", example="limit_data=1000"):
    """The connection is closed once ``nbytes`` have passed."""

    nbytes: int
    transports: ClassVar[frozenset[str]] = frozenset({STREAM})

    def validate(self) -> None:
        _whole("LimitData", "nbytes", self.nbytes, 0)


@dataclass(frozen=True, repr=False)
class Down(Fault, name="down", example="down"):
    """Connections are refused, or closed at once (proxy only)."""

    transports: ClassVar[frozenset[str]] = frozenset({STREAM, DATAGRAM})
    proxy_only: ClassVar[bool] = True
    sides: ClassVar[frozenset[str]] = frozenset({"proxy"})


@dataclass(frozen=True, repr=False)
class NoReply(Fault, name="no_reply", example="no_reply"):
    """Requests reach the server; nothing comes back, not even the close (a hung upstream).

    The server's replies (the downstream direction) are held back for good;
    the client waits until its own timeout.
    """

    direction: Direction = field(default="downstream", kw_only=True)
    transports: ClassVar[frozenset[str]] = frozenset({STREAM})

    def validate(self) -> None:
        if self.direction != "downstream":
            raise UsageError(
                f"NoReply(direction={self.direction!r}): no_reply holds back the server's "
                f"replies, so its direction is 'downstream'; for requests that never arrive "
                f"use Timeout(direction='upstream')",
                parameter="direction",
                value=self.direction,
            )


@dataclass(frozen=True, repr=False)
class Stall(Fault, name="stall", example="stall=1"):
    """Data stops flowing for ``delay`` seconds, then flows again (``None``: for good).

    It stops at the connection's start, or at its trigger (``after_bytes``, a
    message): what comes before the release is delivered at the release, in
    order; what comes after passes at once.
    """

    delay: float | None = None
    transports: ClassVar[frozenset[str]] = frozenset({STREAM})

    def validate(self) -> None:
        if self.delay is not None:
            _at_least("Stall", "delay", self.delay, 0.0, " seconds (or None: for good)")


#: Where a TLS handshake fault strikes: after the client's first record, or the server's.
TLS_POINTS = ("client_hello", "server_hello")


@dataclass(frozen=True, repr=False)
class _TLSHandshakeFault(Fault):
    """A fault in a TLS handshake, on the server's records (the ``tls-records`` framer):
    after the ClientHello reached the server (``"client_hello"``: none of the server's
    records gets through) or after the server's first record, its ServerHello
    (``"server_hello"``)."""

    after: str = "client_hello"
    transports: ClassVar[frozenset[str]] = frozenset({STREAM})
    #: Fields the fault sets itself, left out of its repr.
    implied: ClassVar[frozenset[str]] = frozenset({"direction", "framer", "after_messages"})

    def __post_init__(self) -> None:
        name = type(self).__name__
        self._no_triggers("knows where it strikes (after=)")
        if self.direction != "both":
            raise UsageError(
                f"{name}(direction={self.direction!r}): it strikes the server's handshake "
                f"records; leave direction out",
                parameter="direction",
                value=self.direction,
            )
        if self.after not in TLS_POINTS:
            raise UsageError(
                f"{name}(after={self.after!r}): use 'client_hello' or 'server_hello'",
                parameter="after",
                value=self.after,
            )
        object.__setattr__(self, "direction", "downstream")
        object.__setattr__(self, "framer", "tls-records")
        object.__setattr__(self, "after_messages", TLS_POINTS.index(self.after))
        super().__post_init__()


@dataclass(frozen=True, repr=False)
class TLSStall(_TLSHandshakeFault, name="tls_stall", example="tls_stall=server_hello,delay=1"):
    """The TLS handshake stops ``after`` the ClientHello or the ServerHello, for ``delay``
    seconds (``None``: for good); the client waits (its handshake times out)."""

    delay: float | None = None

    def validate(self) -> None:
        if self.delay is not None:
            _at_least("TLSStall", "delay", self.delay, 0.0, " seconds (or None: for good)")


@dataclass(frozen=True, repr=False)
class TLSAbort(_TLSHandshakeFault, name="tls_abort", example="tls_abort=server_hello"):
    """The connection is reset mid-handshake, ``after`` the ClientHello or the ServerHello:
    both peers see a reset (the client's handshake fails)."""


# -- in the process only: what one socket call does -----------------------------------------------

#: The errors :class:`SocketError` raises, each as the ``OSError`` subclass Python raises for it.
SOCKET_ERRORS: dict[str, tuple[int, type[OSError]]] = {
    "EINTR": (errno.EINTR, InterruptedError),
    "EAGAIN": (errno.EAGAIN, BlockingIOError),
    "ETIMEDOUT": (errno.ETIMEDOUT, TimeoutError),
    "ECONNRESET": (errno.ECONNRESET, ConnectionResetError),
    "EPIPE": (errno.EPIPE, BrokenPipeError),
}


@dataclass(frozen=True, repr=False)
class CallFault(Fault):
    """Base of the faults on a faulty socket's own calls: no proxy can make them.

    ``direction`` picks the socket: a send fault strikes the sender of that
    direction (``"upstream"``: the client's ``send()``), a receive fault its
    receiver (``"upstream"``: the server's ``recv()``).
    """

    transports: ClassVar[frozenset[str]] = frozenset({STREAM})
    process_only: ClassVar[bool] = True
    sides: ClassVar[frozenset[str]] = frozenset({"server", "client"})

    def strikes(self) -> str:
        """Which calls it strikes: ``"send"`` (``send``, ``sendall``) or ``"recv"``
        (``recv``, ``recv_into``)."""
        return "send"

    def __post_init__(self) -> None:
        self._no_triggers("strikes socket calls, not bytes of the stream")
        super().__post_init__()


@dataclass(frozen=True, repr=False)
class ShortSend(CallFault, name="short_send", example="short_send=1"):
    """``send()`` takes at most ``max_size`` bytes a call (a seeded size from 1 to it).

    ``sendall()`` still sends everything, so code that ignores what ``send()``
    returns loses data, and code that loops does not.
    """

    max_size: int = 1

    def validate(self) -> None:
        _whole("ShortSend", "max_size", self.max_size, 1)


@dataclass(frozen=True, repr=False)
class SmallRecv(CallFault, name="small_recv", example="small_recv=1"):
    """``recv()`` returns at most ``max_size`` bytes a call (a seeded size from 1 to it).

    Code that takes one ``recv()`` for one message breaks; code that reads
    until it has the whole message does not.
    """

    max_size: int = 1

    def strikes(self) -> str:
        return "recv"

    def validate(self) -> None:
        _whole("SmallRecv", "max_size", self.max_size, 1)


@dataclass(frozen=True, repr=False)
class SocketError(CallFault, name="socket_error", example="socket_error=ECONNRESET,calls=2"):
    """The ``calls``-th call(s) of ``method`` (counting from 0) raise ``error`` instead.

    ``error`` is one of ``EINTR``, ``EAGAIN``, ``ETIMEDOUT``, ``ECONNRESET``,
    ``EPIPE``, raised as the matching ``OSError`` subclass
    (``InterruptedError``, ``BlockingIOError``, ``TimeoutError``,
    ``ConnectionResetError``, ``BrokenPipeError``); ``EAGAIN`` only on a
    non-blocking socket (``settimeout(0)``), where it can happen. ``method``
    is ``"recv"`` (``recv``, ``recv_into``) or ``"send"`` (``send``,
    ``sendall``). The socket itself is unharmed: the next call works.
    """

    error: str = "ECONNRESET"
    method: str = "recv"
    calls: OrdinalsLike = "0"

    def validate(self) -> None:
        if self.error not in SOCKET_ERRORS:
            raise UsageError(
                f"SocketError(error={self.error!r}): use one of {', '.join(SOCKET_ERRORS)}",
                parameter="error",
                value=self.error,
            )
        if self.method not in ("recv", "send"):
            raise UsageError(
                f"SocketError(method={self.method!r}): use 'recv' (recv, recv_into) or "
                f"'send' (send, sendall)",
                parameter="method",
                value=self.method,
            )
        object.__setattr__(self, "calls", ordinals(self.calls, "calls", "SocketError"))

    def strikes(self) -> str:
        return self.method

    def exception(self) -> OSError:
        """The exception one struck call raises."""
        code, cls = SOCKET_ERRORS[self.error]
        return cls(code, f"{os.strerror(code)} (a SocketError fault)")


# -- the connection phase (proxy only) ----------------------------------------------------------


@dataclass(frozen=True, repr=False)
class ConnectionFault(Fault):
    """Base of the faults of the connection phase: what happens to a connection as it is made.

    The proxy (or, in the process, a server as it accepts, a client as it
    connects) decides each connection's fate from its ordinal
    (``connections``) and ``toxicity``; the first of these faults that
    applies decides. ``direction`` and ``after_bytes`` do not apply.
    """

    transports: ClassVar[frozenset[str]] = frozenset({STREAM})

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.direction != "both":
            raise UsageError(
                f"{name}(direction={self.direction!r}): {name} strikes a connection as it "
                f"is made, before any byte flows either way; leave direction out",
                parameter="direction",
                value=self.direction,
            )
        self._no_triggers("strikes before any byte flows")
        super().__post_init__()


@dataclass(frozen=True, repr=False)
class Refuse(ConnectionFault, name="refuse", example="refuse,connections=0-1"):
    """The connection is refused: reset (RST) at once, before any byte, as a closed port.

    TCP completes the handshake in the kernel before any program sees the
    connection, so the client's ``connect()`` succeeds and its first ``send()``
    or ``recv()`` raises ``ConnectionResetError`` (a Unix stream client sees
    the end of the stream or a ``BrokenPipeError``).
    """

    sides: ClassVar[frozenset[str]] = frozenset({"proxy", "server", "client"})


@dataclass(frozen=True, repr=False)
class AcceptDelay(ConnectionFault, name="accept_delay", example="accept_delay=0.5"):
    """The connection is taken up ``delay`` seconds late: nothing is read or relayed until then."""

    sides: ClassVar[frozenset[str]] = frozenset({"proxy", "server", "client"})

    delay: float

    def validate(self) -> None:
        _at_least("AcceptDelay", "delay", self.delay, 0.0, " seconds")


@dataclass(frozen=True, repr=False)
class AcceptThenClose(ConnectionFault, name="accept_then_close", example="accept_then_close"):
    """The connection is accepted and closed (FIN) before any byte: the client reads the end."""

    sides: ClassVar[frozenset[str]] = frozenset({"proxy", "server"})


@dataclass(frozen=True, repr=False)
class AcceptThenReset(ConnectionFault, name="accept_then_reset", example="accept_then_reset"):
    """The connection is accepted and reset (RST) before any byte is read or sent."""

    sides: ClassVar[frozenset[str]] = frozenset({"proxy", "server"})


@dataclass(frozen=True, repr=False)
class NeverRead(ConnectionFault, name="never_read", example="never_read"):
    """The connection is accepted and nothing is ever read from it, nor sent to it.

    What the client sends fills the socket buffers, and then its ``sendall()``
    blocks; it reads nothing, until its own timeout. The proxy closes such
    connections when it closes.
    """

    sides: ClassVar[frozenset[str]] = frozenset({"proxy", "server"})


@dataclass(frozen=True, repr=False)
class Blackhole(ConnectionFault, name="blackhole", example="blackhole"):
    """Connecting never completes: the client's ``connect()`` waits out its own timeout.

    For the whole proxy while it is in force (not per connection: the proxy
    never sees these connections). How, without root: the proxy shrinks its
    listening socket's backlog to nothing and fills it with one connection of
    its own; Linux then drops every SYN (a full accept queue), so clients
    retransmit until they give up. Connections made before stay as they are.
    When the fault is removed, connecting works again (a client still
    retrying its SYN gets through at its next retransmission, after 1, 3, 7 s).
    """

    sides: ClassVar[frozenset[str]] = frozenset({"proxy", "client"})

    def validate(self) -> None:
        if self.connections is not None or self.toxicity != 1.0:
            raise UsageError(
                "Blackhole concerns the whole proxy (the proxy never sees the connections it "
                "drops), so it takes no connections= and no toxicity=",
                parameter="connections" if self.connections is not None else "toxicity",
                value=self.connections if self.connections is not None else self.toxicity,
            )


# -- datagram ---------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Loss(Fault, name="loss", example="loss=0.2,correlation=0.5"):
    """Each datagram is lost with ``probability``; ``correlation`` makes losses come in runs.

    ``correlation`` is the chance that a datagram shares the fate of the one
    before it, so losses cluster while the loss rate stays ``probability``.
    """

    probability: float
    correlation: float = 0.0
    transports: ClassVar[frozenset[str]] = frozenset({DATAGRAM})

    def validate(self) -> None:
        _share("Loss", "probability", self.probability)
        _share("Loss", "correlation", self.correlation)


@dataclass(frozen=True, repr=False)
class GilbertElliott(Fault, name="gilbert_elliott", example="gilbert_elliott=0.01,r=0.3"):
    """Losses in bursts: a good and a bad state, as netem's ``loss gemodel``.

    Each datagram moves the flow from good to bad with probability ``p`` and
    from bad to good with ``r``; in the bad state a datagram is lost with
    ``loss_bad`` (default 1), in the good state with ``loss_good`` (default
    0). The long-run loss rate is ``(p * loss_bad + r * loss_good) / (p + r)``
    and bursts last ``1 / r`` datagrams on average.

    On a stream, which loses no bytes, a piece the model would lose is held
    back ``stall`` seconds instead (default 0.2 s, Linux's shortest
    retransmission timeout), as TCP resending it would: bursts of stalls.
    """

    p: float
    r: float = 1.0
    loss_bad: float = 1.0
    loss_good: float = 0.0
    stall: float = 0.2

    def validate(self) -> None:
        _at_least("GilbertElliott", "stall", self.stall, 0.0, " seconds")
        for key in ("p", "r", "loss_bad", "loss_good"):
            _share("GilbertElliott", key, getattr(self, key))
        if self.p + self.r == 0:
            raise UsageError(
                "GilbertElliott(p=0, r=0): the flow never changes state; give p or r",
                parameter="p",
                value=self.p,
            )

    @property
    def rate(self) -> float:
        """The long-run share of datagrams lost."""
        return (self.p * self.loss_bad + self.r * self.loss_good) / (self.p + self.r)


@dataclass(frozen=True, repr=False)
class MarkovLoss(Fault, name="markov_loss", example="markov_loss=0.05,p31=0.3"):
    """Losses from netem's 4-state Markov model (``loss state p13 p31 p32 p23 p14``).

    States: 1 good reception, 2 a good reception within a burst, 3 burst
    loss, 4 isolated loss. From 1 the flow goes to 3 with ``p13`` or to 4
    with ``p14`` (else it stays in 1); from 3 to 1 with ``p31`` or to 2 with
    ``p32`` (else it stays in 3); from 2 back to 3 with ``p23``, else to 1;
    from 4 always back to 1. Each datagram makes one transition, and the
    datagrams that land in 3 or 4 are lost. :attr:`rate` is the long-run
    loss rate of this chain. On a stream, a piece it would lose is held back
    ``stall`` seconds instead, as for :class:`GilbertElliott`.
    """

    p13: float
    p31: float = 1.0
    p32: float = 0.0
    p23: float = 0.0
    p14: float = 0.0
    stall: float = 0.2

    def validate(self) -> None:
        _at_least("MarkovLoss", "stall", self.stall, 0.0, " seconds")
        for key in ("p13", "p31", "p32", "p23", "p14"):
            _share("MarkovLoss", key, getattr(self, key))
        if self.p13 + self.p14 > 1 or self.p31 + self.p32 > 1:
            raise UsageError(
                "MarkovLoss: the probabilities out of one state add up to more than 1 "
                "(p13 + p14, p31 + p32)",
                parameter="p13" if self.p13 + self.p14 > 1 else "p31",
                value=self.p13 if self.p13 + self.p14 > 1 else self.p31,
            )
        if self.p13 > 0 and self.p31 == 0 and self.p32 == 0:
            raise UsageError(
                "MarkovLoss(p31=0, p32=0): a burst that starts never ends; give p31 or p32",
                parameter="p31",
                value=self.p31,
            )

    @property
    def rate(self) -> float:
        """The long-run share of datagrams lost (states 3 and 4)."""
        # Stationary distribution of the chain, solved by power iteration: the
        # matrix is small and every state is reached from 1.
        state = [1.0, 0.0, 0.0, 0.0]
        for _ in range(20_000):
            one, two, three, four = state
            state = [
                one * (1 - self.p13 - self.p14) + two * (1 - self.p23) + three * self.p31 + four,
                three * self.p32,
                one * self.p13 + two * self.p23 + three * (1 - self.p31 - self.p32),
                one * self.p14,
            ]
        return state[2] + state[3]


@dataclass(frozen=True, repr=False)
class Slot(Fault, name="slot", example="slot=0.02,max_packets=4"):
    """Traffic is released in bursts, at slot boundaries ``interval`` apart (netem's ``slot``).

    Each datagram (or piece of a stream) waits for the next boundary; at most
    ``max_packets`` go in one slot (``None``: no limit), the rest wait for the
    next ones. Order is kept.
    """

    interval: float
    max_packets: int | None = None

    def validate(self) -> None:
        _above("Slot", "interval", self.interval, 0.0, " seconds")
        if self.max_packets is not None:
            _whole("Slot", "max_packets", self.max_packets, 1)


@dataclass(frozen=True, repr=False)
class Duplicate(Fault, name="duplicate", example="duplicate=0.1"):
    """Each datagram is delivered twice with ``probability``."""

    probability: float
    transports: ClassVar[frozenset[str]] = frozenset({DATAGRAM})

    def validate(self) -> None:
        _share("Duplicate", "probability", self.probability)


@dataclass(frozen=True, repr=False)
class Reorder(Fault, name="reorder", example="reorder=0.2,delay=0.05"):
    """Each datagram is held back ``delay`` seconds with ``probability``: later ones overtake it."""

    probability: float
    delay: float
    transports: ClassVar[frozenset[str]] = frozenset({DATAGRAM})

    def validate(self) -> None:
        _share("Reorder", "probability", self.probability)
        _above("Reorder", "delay", self.delay, 0.0, " seconds")


@dataclass(frozen=True, repr=False)
class Corrupt(Fault, name="corrupt", example="corrupt=0.01"):
    """Each datagram has one bit flipped with ``probability``."""

    probability: float
    transports: ClassVar[frozenset[str]] = frozenset({DATAGRAM})

    def validate(self) -> None:
        _share("Corrupt", "probability", self.probability)


@dataclass(frozen=True, repr=False)
class Truncate(Fault, name="truncate", example="truncate=512"):
    """Datagrams longer than ``max_size`` bytes are cut to ``max_size``."""

    max_size: int
    transports: ClassVar[frozenset[str]] = frozenset({DATAGRAM})

    def validate(self) -> None:
        _whole("Truncate", "max_size", self.max_size, 0)
