"""The transports sockharness serves, and the server class for each kind and concurrency."""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sockharness import server as _server
from sockharness.server.support import unix_path_limit

from .errors import UsageError

__all__ = [
    "CONCURRENCIES",
    "KINDS",
    "Address",
    "Concurrency",
    "Kind",
    "concurrency_of_class",
    "kind_of_class",
    "parse_address",
    "parse_concurrency",
    "parse_kind",
    "server_class_for",
]


@dataclass(frozen=True)
class Kind:
    """One transport: its name, socket family and type, and its loopback host."""

    name: str
    family: int
    socket_type: int
    loopback: str | None

    @property
    def stream(self) -> bool:
        """Whether the transport is a byte stream (TCP, Unix stream)."""
        return self.socket_type == socket.SOCK_STREAM

    @property
    def unix(self) -> bool:
        """Whether the transport is a Unix-domain socket."""
        return self.loopback is None

    @property
    def available(self) -> bool:
        """Whether this platform has the transport at all."""
        return self.family != -1


_AF_UNIX = getattr(socket, "AF_UNIX", -1)

KINDS: dict[str, Kind] = {
    "tcp": Kind("tcp", socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1"),
    "tcp6": Kind("tcp6", socket.AF_INET6, socket.SOCK_STREAM, "::1"),
    "udp": Kind("udp", socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1"),
    "udp6": Kind("udp6", socket.AF_INET6, socket.SOCK_DGRAM, "::1"),
    "unix": Kind("unix", _AF_UNIX, socket.SOCK_STREAM, None),
    "unix_dgram": Kind("unix_dgram", _AF_UNIX, socket.SOCK_DGRAM, None),
}

#: Where a server listens: ``(host, port)`` for network kinds, a socket path for Unix kinds.
Address = tuple[str, int] | str

#: How a server runs its requests: in its loop, one thread each, one child each.
Concurrency = Literal["sync", "threading", "forking"]
CONCURRENCIES: tuple[Concurrency, ...] = get_args(Concurrency)


def parse_kind(value: str | Kind) -> Kind:
    """The :class:`Kind` named ``value`` (``"unix-dgram"`` is accepted for ``"unix_dgram"``)."""
    if isinstance(value, Kind):
        return value
    name = str(value).replace("-", "_")
    try:
        kind = KINDS[name]
    except KeyError:
        raise UsageError(
            f"kind={value!r} is not a transport sockharness knows; "
            f"use one of {', '.join(repr(k) for k in KINDS)}."
        ) from None
    if not kind.available:
        raise UsageError(f"kind={value!r} needs AF_UNIX, which this platform does not have.")
    return kind


def parse_concurrency(value: str) -> Concurrency:
    """Validate a concurrency name: ``"sync"``, ``"threading"`` or ``"forking"``."""
    if value not in CONCURRENCIES:
        raise UsageError(
            f"concurrency={value!r} is not one sockharness knows; "
            f"use one of {', '.join(repr(c) for c in CONCURRENCIES)}.",
            parameter="concurrency",
            value=value,
        )
    if value == "forking" and not hasattr(os, "fork"):
        raise UsageError("concurrency='forking' needs os.fork(), which this platform lacks.")
    return value


_BASES = {
    ("stream", "sync"): "TCPServer",
    ("stream", "threading"): "ThreadingTCPServer",
    ("stream", "forking"): "ForkingTCPServer",
    ("dgram", "sync"): "UDPServer",
    ("dgram", "threading"): "ThreadingUDPServer",
    ("dgram", "forking"): "ForkingUDPServer",
    ("unix_stream", "sync"): "UnixStreamServer",
    ("unix_stream", "threading"): "ThreadingUnixStreamServer",
    ("unix_stream", "forking"): "ForkingUnixStreamServer",
    ("unix_dgram", "sync"): "UnixDatagramServer",
    ("unix_dgram", "threading"): "ThreadingUnixDatagramServer",
    ("unix_dgram", "forking"): "ForkingUnixDatagramServer",
}


@functools.cache
def server_class_for(kind: str | Kind, concurrency: str) -> type[_server.BaseServer]:
    """The :mod:`sockharness.server` class serving ``kind`` with ``concurrency``.

    IPv6 kinds get a subclass whose ``address_family`` is ``AF_INET6``.
    """
    kind = parse_kind(kind)
    concurrency = parse_concurrency(concurrency)
    shape = ("unix_" if kind.unix else "") + ("stream" if kind.stream else "dgram")
    base = getattr(_server, _BASES[(shape, concurrency)])
    if kind.family != socket.AF_INET6:
        return base
    name = base.__name__.replace("TCP", "TCP6").replace("UDP", "UDP6")
    return type(name, (base,), {"address_family": socket.AF_INET6, "__module__": __name__})


def kind_of_class(cls: type) -> Kind:
    """The kind a server class serves, from its ``address_family`` and ``socket_type``."""
    family = getattr(cls, "address_family", None)
    socket_type = getattr(cls, "socket_type", None)
    for kind in KINDS.values():
        if kind.family == family and kind.socket_type == socket_type:
            return kind
    raise UsageError(
        f"{cls.__name__} has address_family={family!r} and socket_type={socket_type!r}, "
        f"which match none of sockharness's kinds."
    )


def concurrency_of_class(cls: type) -> Concurrency:
    """``"forking"``, ``"threading"`` or ``"sync"``, from the mix-ins among the class's bases."""
    names = {base.__name__ for base in cls.__mro__}
    if "ForkingMixIn" in names:
        return "forking"
    if "ThreadingMixIn" in names:
        return "threading"
    return "sync"


def parse_address(text: str, kind: Kind, what: str, *, connect: bool = False) -> Any:
    """``host:port``, ``[v6]:port`` or ``:port`` for network kinds; a path for Unix kinds.

    ``connect``: the address is to be connected to, so port 0 (any port, for
    binding) is an error.
    """
    if kind.unix:
        if not text:
            raise UsageError(f"{what} needs a socket path ({kind.name} is a Unix kind)")
        raw = os.fsencode(text)
        limit = unix_path_limit()
        if not raw.startswith(b"\0") and len(raw) > limit:
            raise UsageError(
                f"{what} {text!r} is {len(raw)} bytes long, over the platform's limit of "
                f"{limit} bytes for a Unix socket path; use a shorter path"
            )
        return text
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise UsageError(f"{what} {text!r} is not host:port (for example 127.0.0.1:8080)")
    host = host.strip("[]") or kind.loopback or ""
    try:
        port = int(port_text)
    except ValueError:
        raise UsageError(f"{what} {text!r} has no port number after the last ':'") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"{what} {text!r}: {port} is not a port number (0-65535)")
    if connect and port == 0:
        raise UsageError(
            f"{what} {text!r}: port 0 cannot be connected to; give the port the server listens on"
        )
    return (host, port)
