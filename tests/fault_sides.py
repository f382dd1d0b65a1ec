"""What each peer of a TCP exchange observes under one stream fault, wherever it is applied.

One exchange, the same for every fault: the client sends ``SIZE`` bytes and
reads the reply; the server reads the request, takes ``HOLD`` seconds (a slow
server, so that faults on a timer strike in the middle), sends back what it
got, and reads until the end of the stream; the client, once it has the reply,
half-closes and reads until the end too. Each side's observation is one short
phrase (the cells of the table in docs/faults.md, which
``tests/test_fault_sides.py`` checks against what really happens):

- ``all, then FIN``: everything the peer sent, then a clean end of the stream;
- ``N bytes, then FIN`` / ``nothing, then FIN``: less, then a clean end;
- ``reset``: ``ConnectionResetError``;
- ``broken pipe``: ``BrokenPipeError`` on a send;
- ``hangs``: nothing more arrives, and no end (waited ``STALL`` s);
- ``no connection``: the server never saw one.

Run it as a script to print the table: ``python tests/fault_sides.py``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any, Literal

from sockharness import connect, start_server
from sockharness.faults import (
    Bandwidth,
    Down,
    Fault,
    FaultProxy,
    Latency,
    LimitData,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeout,
)
from sockharness.server import BaseRequestHandler

SIZE = 1000
HOLD = 0.25  # The server's thinking time: timed faults strike during it.
STRIKE = 0.08  # When the timed faults strike.
STALL = 0.5  # How long the client waits for bytes that may never come (the server: twice).

Placement = Literal["proxy", "server", "client"]
PLACEMENTS: tuple[Placement, ...] = ("proxy", "server", "client")
DIRECTIONS = ("upstream", "downstream", "both")

#: The faults of the table, by the name its rows use.
FAULTS: dict[str, Any] = {
    "Latency": lambda d: Latency(0.01, direction=d),
    "Bandwidth": lambda d: Bandwidth(100_000, direction=d),
    "Slicer": lambda d: Slicer(100, 50, direction=d),
    "SlowClose": lambda d: SlowClose(0.05, direction=d),
    "LimitData": lambda d: LimitData(SIZE // 2, direction=d),
    "Timeout(after)": lambda d: Timeout(after=STRIKE, direction=d),
    "Timeout()": lambda d: Timeout(direction=d),
    "ResetPeer": lambda d: ResetPeer(after=STRIKE, direction=d),
    "Down": lambda d: Down(direction=d),
}


def _phrase(received: int, expected: int, ending: str) -> str:
    if ending != "end":
        return ending
    if received == expected:
        return "all, then FIN"
    return "nothing, then FIN" if received == 0 else f"{received} bytes, then FIN"


def _read(sock: socket.socket, limit: int | None, stall: float = STALL) -> tuple[int, str]:
    """Read up to ``limit`` bytes (``None``: until the end): (count, how it stopped)."""
    count = 0
    deadline = time.monotonic() + stall
    while limit is None or count < limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return count, "hangs"
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return count, "hangs"
        except ConnectionResetError:
            return count, "reset"
        except BrokenPipeError:
            return count, "broken pipe"
        if not chunk:
            return count, "end"
        count += len(chunk)
    return count, "more"


def _send(sock: socket.socket, data: bytes) -> str | None:
    try:
        sock.sendall(data)
    except ConnectionResetError:
        return "reset"
    except BrokenPipeError:
        return "broken pipe"
    return None


class _Observer(BaseRequestHandler):
    """The server's half of the exchange; what it saw goes to ``server.observed``."""

    def handle(self) -> None:
        sock = self.request
        received, ending = _read(sock, SIZE, 2 * STALL)
        if ending == "more":
            time.sleep(HOLD)  # A slow server: the timed faults strike meanwhile.
            failed = _send(sock, b"r" * received)
            if failed is None:
                more, ending = _read(sock, None, 2 * STALL)
                received += more
            else:
                ending = failed
        self.server.observed.append(_phrase(received, SIZE, ending))  # type: ignore[attr-defined]


def _client_side(sock: socket.socket) -> str:
    failed = _send(sock, b"q" * SIZE)
    if failed is not None:
        return failed
    received, ending = _read(sock, SIZE)
    if ending == "more":
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        more, ending = _read(sock, None)
        received += more
    return _phrase(received, SIZE, ending)


def observe(fault: Fault, placement: Placement) -> tuple[str, str]:
    """(what the client saw, what the server saw) for one exchange under ``fault``."""
    server_faults = [fault] if placement == "server" else None
    with start_server(_Observer, "tcp", faults=server_faults, leaks="off", observed=[]) as server:
        server.expect_errors(OSError)
        proxy = FaultProxy(server.address, "tcp", [fault]) if placement == "proxy" else None
        try:
            address = proxy.address if proxy is not None else server.address
            client_faults = [fault] if placement == "client" else ()
            try:
                client = connect(address, timeout=STALL, faults=client_faults)
            except ConnectionResetError:
                client_saw = "reset"
            else:
                with client:
                    client_saw = _client_side(client.sock)
            observed = server.server.observed
            if proxy is not None and proxy.stats.connections == 0:
                server_saw = "no connection"
            else:
                # The handler is done within HOLD + 4 * STALL of the connection.
                deadline = time.monotonic() + HOLD + 5 * STALL
                while not observed and time.monotonic() < deadline:
                    threading.Event().wait(0.005)
                server_saw = observed[0] if observed else "no connection"
        finally:
            if proxy is not None:
                proxy.close()
    return client_saw, server_saw


def table() -> dict[tuple[str, str, Placement], tuple[str, str]]:
    """Every (fault, direction, placement) observed."""
    observed = {}
    for name, make in FAULTS.items():
        for direction in DIRECTIONS:
            for placement in PLACEMENTS:
                fault = make(direction)
                if fault.proxy_only and placement != "proxy":
                    continue
                observed[(name, direction, placement)] = observe(fault, placement)
    return observed


if __name__ == "__main__":
    for (name, direction, placement), (client, server) in table().items():
        print(f"{name:<15} {direction:<10} {placement:<6} client: {client:<14} server: {server}")
