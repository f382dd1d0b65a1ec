"""The proxy API's toxic changes: how long from the request until the change is in force.

A change through the API (``POST /proxies/{name}/toxics``, then ``DELETE``) is
answered once the proxy's event loop has taken it, so the time to the answer
is the time to the effect (each add is checked: the next ping through the
proxy is late by the toxic's latency). Measured side by side, in alternating
rounds, on an idle proxy and on one relaying 256 connections that stream
echo traffic as fast as they can; the figures are the median and the 99th
percentile of the request-to-effect time, and the ratio loaded/idle.

Usage: ``python benchmarks/bench_proxy_api.py [--quick] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import selectors
import socket
import statistics
import sys
import threading
import time
from typing import Any

from sockharness import connect, start_server
from sockharness.control import ProxyAPI, ProxyAPIServer
from sockharness.handlers import EchoHandler, LineEchoHandler

LOAD_CONNECTIONS = 256
DELAY_MS = 20


class _Load:
    """256 connections streaming through the proxy until stopped (bounded by ``limit``)."""

    def __init__(self, address: tuple[str, int], limit: float = 600.0) -> None:
        self.address = address
        self.limit = limit
        self.stop = threading.Event()
        self.bytes = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        block = b"x" * 4096
        socks = [
            socket.create_connection(self.address, timeout=10) for _ in range(LOAD_CONNECTIONS)
        ]
        ends = time.monotonic() + self.limit
        with selectors.DefaultSelector() as selector:
            for sock in socks:
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            while not self.stop.is_set() and time.monotonic() < ends:
                for key, events in selector.select(0.2):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    try:
                        if events & selectors.EVENT_WRITE:
                            sock.send(block)
                        if events & selectors.EVENT_READ:
                            self.bytes += len(sock.recv(65536))
                    except (BlockingIOError, ConnectionError):
                        pass
        for sock in socks:
            sock.close()


def _changes(api: ProxyAPI, name: str, probe: tuple[str, int], count: int) -> list[float]:
    """``count`` add-then-remove cycles; the seconds from each request to its answer."""
    proxy = api.proxy(name)
    times = []
    with connect(probe, timeout=10) as client:
        for _ in range(count):
            began = time.monotonic()
            proxy.add_toxic("latency", latency=DELAY_MS)
            times.append(time.monotonic() - began)
            sent = time.monotonic()
            client.request(b"ping\n")
            late = time.monotonic() - sent
            if late < DELAY_MS / 1000:
                raise AssertionError(f"the toxic was not in force: the ping took {late:.4f} s")
            began = time.monotonic()
            proxy.remove_toxic("latency_downstream")
            times.append(time.monotonic() - began)
    return times


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer changes, fewer rounds")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    rounds, count = (2, 20) if args.quick else (5, 60)
    idle: list[float] = []
    loaded: list[float] = []
    streamed = 0
    with (
        start_server(LineEchoHandler) as probe_server,
        start_server(EchoHandler, daemon_threads=True, request_queue_size=512) as bulk_server,
        ProxyAPIServer() as api_server,
    ):
        # The load's connections are closed with bytes in flight: the server meets resets.
        bulk_server.expect_errors(ConnectionResetError, BrokenPipeError)
        api = ProxyAPI(api_server.url, timeout=30)
        probe = api.create("probe", probe_server.address)
        bulk = api.create("bulk", bulk_server.address)
        for _ in range(rounds):
            idle += _changes(api, "probe", probe.address, count)
            load = _Load(bulk.address)
            load.thread.start()
            time.sleep(0.5)  # A benchmark's warm-up: let the 256 streams get going.
            # The probe's toxics go on the loaded proxy's neighbour; then on the loaded one.
            loaded += _changes(api, "probe", probe.address, count // 2)
            loaded += _bulk_changes(api, count // 2)
            load.stop.set()
            load.thread.join(30)
            streamed += load.bytes
    results: dict[str, Any] = {}
    for label, values in (("idle", idle), ("256 streaming", loaded)):
        results[label] = {
            "changes": len(values),
            "median_ms": statistics.median(values) * 1000,
            "p99_ms": _percentile(values, 0.99) * 1000,
        }
    ratio = results["256 streaming"]["median_ms"] / results["idle"]["median_ms"]
    lines = [
        f"proxy API: request to effect of a toxic change (Python {platform.python_version()}, "
        f"{rounds} rounds; {streamed / 1e6:.0f} MB streamed under load)",
        f"{'proxy':<16}{'changes':>9}{'median ms':>11}{'p99 ms':>9}",
    ]
    for label, row in results.items():
        lines.append(
            f"{label:<16}{row['changes']:>9}{row['median_ms']:>11.2f}{row['p99_ms']:>9.2f}"
        )
    lines.append(f"loaded/idle median: {ratio:.2f}x")
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as stream:
            document = {"python": platform.python_version(), "results": results, "ratio": ratio}
            json.dump(document, stream, indent=2)
    return 0


def _bulk_changes(api: ProxyAPI, count: int) -> list[float]:
    """Changes on the proxy that carries the load itself (its effect is not probed)."""
    proxy = api.proxy("bulk")
    times = []
    for _ in range(count):
        for action in (
            lambda: proxy.add_toxic("latency", latency=1),
            lambda: proxy.remove_toxic("latency_downstream"),
        ):
            began = time.monotonic()
            action()
            times.append(time.monotonic() - began)
    return times


if __name__ == "__main__":
    sys.exit(main())
