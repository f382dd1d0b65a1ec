"""A method called by class name does what the standard library's does, under multiple inheritance.

Code written for the stdlib calls ``socketserver.UnixStreamServer.server_bind(self)``
in a class that also derives from another server (CPython's test_asyncio does,
with ``http.server.HTTPServer``). Where the stdlib's method is inherited
unchanged or does not use ``super()``, ours must not go on along the MRO into
the other class either. Each case puts a recording class between the class
and its base in the MRO, calls the method by the class's name, and compares
which recorded methods ran with what the stdlib runs in the same place.
"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver as stdlib
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

import sockharness.server as ours

from .helpers import HAS_UNIX

#: (class, the server base a class deriving from it and another server would meet next).
PAIRS = [
    ("TCPServer", "BaseServer"),
    ("UDPServer", "TCPServer"),
    ("ThreadingTCPServer", "TCPServer"),
    ("ThreadingUDPServer", "UDPServer"),
]
if HAS_UNIX:
    PAIRS += [
        ("UnixStreamServer", "TCPServer"),
        ("UnixDatagramServer", "UDPServer"),
        ("ThreadingUnixStreamServer", "UnixStreamServer"),
        ("ThreadingUnixDatagramServer", "UnixDatagramServer"),
    ]
if hasattr(os, "fork"):
    PAIRS += [("ForkingTCPServer", "TCPServer"), ("ForkingUDPServer", "UDPServer")]

METHODS = [
    "server_bind",
    "server_activate",
    "server_close",
    "fileno",
    "verify_request",
    "handle_timeout",
    "service_actions",
    "shutdown_request",
    "close_request",
]


@contextlib.contextmanager
def _private_directory() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="shm-", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        yield directory
    finally:
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


def _reached(module: Any, name: str, base_name: str, method: str) -> list[str]:
    """Which of the recording class's methods ran when ``name.method`` was called by name."""
    cls, base = getattr(module, name), getattr(module, base_name)
    reached: list[str] = []

    def recording(method_name: str) -> Any:
        def record(self: Any, *args: Any, **kwargs: Any) -> Any:
            reached.append(method_name)
            return getattr(base, method_name)(self, *args, **kwargs)

        return record

    recorder = type("Recorder", (base,), {m: recording(m) for m in METHODS})
    probe_class = type("Probe", (cls, recorder), {})
    unix = getattr(cls, "address_family", None) == getattr(socket, "AF_UNIX", object())
    with _private_directory() as directory:
        address = os.path.join(directory, "s.sock") if unix else ("127.0.0.1", 0)
        if base_name == "BaseServer":
            probe = probe_class(address, module.BaseRequestHandler)
        else:
            probe = probe_class(address, module.BaseRequestHandler, bind_and_activate=False)
        arguments = _arguments(probe, method)
        reached.clear()  # What the constructor and the set-up did is not the question.
        try:
            with contextlib.suppress(OSError, NotImplementedError):
                getattr(cls, method)(probe, *arguments)
        finally:
            for sock in (*arguments, getattr(probe, "socket", None)):
                if isinstance(sock, socket.socket):
                    sock.close()
            with contextlib.suppress(OSError):
                os.unlink(address) if unix else None
    return reached


def _arguments(probe: Any, method: str) -> tuple[Any, ...]:
    if method in ("shutdown_request", "close_request"):
        left, right = socket.socketpair()
        right.close()
        return (left,)
    if method == "verify_request":
        return (None, None)
    if method in ("server_activate", "server_close", "fileno") and hasattr(probe, "socket"):
        with contextlib.suppress(OSError):
            probe.server_bind()  # The socket these work on (the recorder is told nothing of it).
    return ()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("name", "base"), PAIRS, ids=[f"{n}-{b}" for n, b in PAIRS])
def test_a_method_called_by_class_name_stays_where_the_stdlib_stays(
    name: str, base: str, method: str
) -> None:
    if not hasattr(stdlib, name):
        pytest.skip(f"this interpreter's socketserver has no {name}")
    theirs = _reached(stdlib, name, base, method)
    mine = _reached(ours, name, base, method)
    assert mine == theirs, (
        f"{name}.{method}(self) in a class whose MRO goes on to another {base}: the stdlib "
        f"calls {theirs or 'nothing'} there, sockharness.server calls {mine or 'nothing'}"
    )


def test_the_asyncio_unix_http_server_binds_without_a_dns_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CPython's test_asyncio: ``UnixStreamServer.server_bind`` never calls getfqdn()."""
    if not HAS_UNIX:
        pytest.skip("needs Unix sockets")
    import http.server

    monkeypatch.setitem(__import__("sys").modules, "socketserver", ours)
    lookups: list[object] = []
    monkeypatch.setattr(socket, "getfqdn", lambda *a: lookups.append(a) or "host")

    class UnixHTTPServer(ours.UnixStreamServer, http.server.HTTPServer):
        def server_bind(self) -> None:
            ours.UnixStreamServer.server_bind(self)
            self.server_name = "127.0.0.1"
            self.server_port = 80

    with _private_directory() as directory:
        path = os.path.join(directory, "http.sock")
        server = UnixHTTPServer(path, http.server.BaseHTTPRequestHandler)
        try:
            assert server.server_name == "127.0.0.1"
        finally:
            server.server_close()
        assert not os.path.exists(path)
    assert lookups == []
