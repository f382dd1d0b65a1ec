"""sockharness.server against the stdlib's socketserver, side by side in one run.

Measures, for both implementations in the same process and interleaved round
by round (so machine drift hits both alike):

1. ``shutdown()`` latency of an idle ``serve_forever()`` at the default
   ``poll_interval`` of 0.5 s;
2. the cost of one server's life: construct, start ``serve_forever()`` in a
   thread, serve one request, ``shutdown()``, join, ``server_close()``, per
   server type;
3. echo round trips per second over one persistent connection (one datagram
   at a time for datagram types), per server type;
4. new connections per second (connect, one echo, close), per stream type.

Ratios are ours / stdlib for times (below 1 is better) and ours / stdlib for
rates (above 1 is better). On these machines throughput moves 10-40 % between
runs; only ratios outside +/-5 % mean anything.

Within a round the two implementations take turns going first (the first of a
pair ran measurably slower on some machines). ``--rounds N`` sets the rounds of
3 and 4 (default 3); ``--only NAME`` (repeatable) keeps the server types whose
class name is NAME, and skips 1 and 2.

Usage: ``python benchmarks/bench_server.py [--quick] [--rounds N] [--only NAME] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import socket
import socketserver as stdlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import sockharness.server as ours

IMPLEMENTATIONS = {"stdlib": stdlib, "sockharness": ours}
TYPES = [
    ("tcp", "sync", "TCPServer"),
    ("tcp", "threading", "ThreadingTCPServer"),
    ("tcp", "forking", "ForkingTCPServer"),
    ("udp", "sync", "UDPServer"),
    ("udp", "threading", "ThreadingUDPServer"),
    ("udp", "forking", "ForkingUDPServer"),
    ("unix", "sync", "UnixStreamServer"),
    ("unix", "threading", "ThreadingUnixStreamServer"),
    ("unix", "forking", "ForkingUnixStreamServer"),
    ("unix_dgram", "sync", "UnixDatagramServer"),
    ("unix_dgram", "threading", "ThreadingUnixDatagramServer"),
    ("unix_dgram", "forking", "ForkingUnixDatagramServer"),
]
TIMEOUT = 10.0
# Seen here: a measurement that starts right after another burst of work runs
# up to 2x slower than one that starts after a short idle spell, whichever
# implementation it measures. Every timed section starts after the same pause.
SETTLE = 0.3


def server_class(module: Any, kind: str, name: str) -> type | None:
    """The class, or ``None`` where this interpreter's stdlib lacks it (3.10-3.11 Forking Unix)."""
    cls = getattr(module, name, None)
    if cls is None and kind.startswith("unix") and name.startswith("Forking"):
        base = module.UnixStreamServer if kind == "unix" else module.UnixDatagramServer
        cls = type(name, (module.ForkingMixIn, base), {})
    return cls


def handler_class(module: Any, kind: str) -> type:
    if kind in ("tcp", "unix"):

        class StreamEcho(module.BaseRequestHandler):
            def handle(self) -> None:
                while data := self.request.recv(65536):
                    self.request.sendall(data)

        return StreamEcho

    class DatagramEcho(module.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            sock.sendto(data, self.client_address)

    return DatagramEcho


class Workspace:
    """Short paths for Unix sockets, removed at the end."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="shb-", dir="/tmp")
        self.counter = 0

    def path(self) -> str:
        self.counter += 1
        return os.path.join(self.directory, f"{self.counter}.sock")

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def bind_address(kind: str, work: Workspace) -> Any:
    return work.path() if kind.startswith("unix") else ("127.0.0.1", 0)


class Client:
    def __init__(self, kind: str, address: Any, work: Workspace) -> None:
        self.kind = kind
        self.address = address
        stream = kind in ("tcp", "unix")
        family = socket.AF_UNIX if kind.startswith("unix") else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM if stream else socket.SOCK_DGRAM)
        self.sock.settimeout(TIMEOUT)
        if kind == "unix_dgram":
            self.sock.bind(work.path())
        if stream:
            self.sock.connect(address)
            if kind == "tcp":
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def echo(self, payload: bytes) -> None:
        if self.kind in ("tcp", "unix"):
            self.sock.sendall(payload)
            received = 0
            while received < len(payload):
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed early")
                received += len(chunk)
        else:
            self.sock.sendto(payload, self.address)
            self.sock.recv(65536)

    def close(self) -> None:
        """Close; for streams, first wait for the server's EOF, i.e. the request is done."""
        if self.kind in ("tcp", "unix"):
            try:
                self.sock.shutdown(socket.SHUT_WR)  # EOF even to forked children.
                while self.sock.recv(65536):
                    pass
            except OSError:
                pass
        self.sock.close()


class Running:
    def __init__(self, cls: type, handler: type, address: Any, poll_interval: float) -> None:
        self.server = cls(address, handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": poll_interval}
        )
        self.thread.start()

    def stop(self) -> float:
        """Shut down and close; return how long ``shutdown()`` took, in seconds."""
        started = time.perf_counter()
        self.server.shutdown()
        took = time.perf_counter() - started
        self.thread.join(TIMEOUT)
        self.server.server_close()
        return took


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return ordered[index]


def bench_shutdown(trials: int, work: Workspace) -> dict[str, dict[str, float]]:
    """Latency of shutdown() of an idle, running serve_forever at poll_interval=0.5.

    The shutdown comes at a random moment of the poll interval (the same
    moments for both implementations), as it does in real use.
    """
    samples: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
    moments = random.Random(20261125)
    for _ in range(trials):
        idle_for = moments.uniform(0.0, 0.5)
        for name, module in IMPLEMENTATIONS.items():
            handler = handler_class(module, "tcp")
            running = Running(module.TCPServer, handler, ("127.0.0.1", 0), 0.5)
            client = Client("tcp", running.server.server_address, work)
            client.echo(b"ping")
            client.close()  # The request is done: the loop is idle in select() again.
            time.sleep(idle_for)
            samples[name].append(running.stop())
    return {
        name: {
            "median_ms": statistics.median(values) * 1e3,
            "p99_ms": percentile(values, 0.99) * 1e3,
            "max_ms": max(values) * 1e3,
        }
        for name, values in samples.items()
    }


def bench_lifecycle(trials: int, work: Workspace) -> dict[str, dict[str, float]]:
    """Mean milliseconds for construct + serve + one request + shutdown + close, per type.

    The mean, not the median: the stdlib's cost is either ~0 or a whole
    poll_interval, depending on a race, and the mean is what a test suite pays.
    """
    results: dict[str, dict[str, float]] = {}
    for kind, _concurrency, class_name in TYPES:
        samples: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
        for _ in range(trials):
            for name, module in IMPLEMENTATIONS.items():
                cls = server_class(module, kind, class_name)
                handler = handler_class(module, kind)
                time.sleep(SETTLE / 10)
                started = time.perf_counter()
                running = Running(cls, handler, bind_address(kind, work), 0.5)
                client = Client(kind, running.server.server_address, work)
                client.echo(b"ping")
                client.close()
                running.stop()
                samples[name].append(time.perf_counter() - started)
        results[class_name] = {name: statistics.fmean(v) * 1e3 for name, v in samples.items()}
    return results


def timed_rate(action: Callable[[], None], duration: float) -> float:
    """Calls of ``action`` per second over about ``duration`` seconds."""
    count = 0
    started = time.perf_counter()
    deadline = started + duration
    while True:
        for _ in range(20):
            action()
        count += 20
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started)


def _in_turn(round_: int) -> list[tuple[str, Any]]:
    """The implementations in the order of this round: each goes first every other round."""
    pairs = list(IMPLEMENTATIONS.items())
    return pairs if round_ % 2 == 0 else pairs[::-1]


def bench_round_trips(rounds: int, duration: float, work: Workspace) -> dict[str, dict[str, float]]:
    """Echo round trips per second over one connection (streams) or one socket (datagrams)."""
    results: dict[str, dict[str, float]] = {}
    payload = b"x" * 64
    for kind, _concurrency, class_name in TYPES:
        rates: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
        for round_ in range(rounds):
            for name, module in _in_turn(round_):
                cls = server_class(module, kind, class_name)
                running = Running(cls, handler_class(module, kind), bind_address(kind, work), 0.5)
                client = Client(kind, running.server.server_address, work)
                try:
                    client.echo(payload)  # Warm up: the handler thread or child exists.
                    time.sleep(SETTLE)
                    rates[name].append(timed_rate(lambda c=client: c.echo(payload), duration))
                finally:
                    client.close()
                    running.stop()
        results[class_name] = _summary(rates)
    return results


def bench_connections(rounds: int, duration: float, work: Workspace) -> dict[str, dict[str, float]]:
    """New connections per second (connect, one echo, close), per stream type."""
    results: dict[str, dict[str, float]] = {}
    for kind, _concurrency, class_name in TYPES:
        if kind not in ("tcp", "unix"):
            continue
        rates: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
        for round_ in range(rounds):
            for name, module in _in_turn(round_):
                cls = server_class(module, kind, class_name)
                running = Running(cls, handler_class(module, kind), bind_address(kind, work), 0.5)
                address = running.server.server_address

                def one_connection(address: Any = address, kind: str = kind) -> None:
                    client = Client(kind, address, work)
                    client.echo(b"hello")
                    client.close()

                try:
                    time.sleep(SETTLE)
                    rates[name].append(timed_rate(one_connection, duration))
                finally:
                    running.stop()
        results[class_name] = _summary(rates)
    return results


def _summary(rates: dict[str, list[float]]) -> dict[str, float]:
    """Each implementation's median rate, and the median of the rounds' own ratios.

    A round's two figures were taken back to back, so its ratio is spared the
    drift between rounds that moves both medians.
    """
    summary = {name: statistics.median(values) for name, values in rates.items()}
    paired = [
        ours / theirs
        for ours, theirs in zip(rates["sockharness"], rates["stdlib"], strict=True)
        if theirs
    ]
    summary["paired_ratio"] = statistics.median(paired) if paired else float("nan")
    return summary


def ratio(mine: float, theirs: float) -> str:
    return f"{mine / theirs:.2f}x" if theirs else "n/a"


def report(results: dict[str, Any]) -> str:
    lines = [
        f"sockharness.server vs stdlib socketserver — Python {results['python']}, "
        f"{results['machine']}, {results['cpus']} CPUs",
    ]
    if "shutdown" in results:
        lines += [
            "",
            "shutdown() of an idle serve_forever(), poll_interval=0.5 s",
            f"{'':14}{'median':>10}{'p99':>10}{'max':>10}",
        ]
    for name, values in results.get("shutdown", {}).items():
        lines.append(
            f"{name:14}{values['median_ms']:>8.2f}ms{values['p99_ms']:>8.2f}ms"
            f"{values['max_ms']:>8.2f}ms"
        )
    sections = [
        (
            "lifecycle",
            "start + one request + shutdown + close (mean ms; ratio < 1 is better)",
            "ms",
        ),
        ("round_trips", "echo round trips per second (median; ratio > 1 is better)", "/s"),
        ("connections", "new connections per second (median; ratio > 1 is better)", "/s"),
    ]
    for key, title, unit in sections:
        if not results.get(key):
            continue
        lines += [
            "",
            title,
            f"{'server':30}{'stdlib':>12}{'sockharness':>14}{'ratio':>9}{'paired':>9}",
        ]
        for class_name, values in results[key].items():
            lines.append(
                f"{class_name:30}{values['stdlib']:>10.1f}{unit}{values['sockharness']:>12.1f}{unit}"
                f"{ratio(values['sockharness'], values['stdlib']):>9}"
                + (f"{values['paired_ratio']:>8.2f}x" if "paired_ratio" in values else "")
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few samples each (smoke test)")
    parser.add_argument("--rounds", type=int, help="rounds of the throughput measures")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="only these server types"
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    shutdown_trials, lifecycle_trials, rounds, duration = (
        (2, 1, 1, 0.05) if args.quick else (30, 8, 3, 0.4)
    )
    if args.rounds is not None:
        rounds = args.rounds
    if args.only:
        known = {class_name for _, _, class_name in TYPES}
        unknown = sorted(set(args.only) - known)
        if unknown:
            parser.error(f"no server type {unknown[0]!r}; types: {', '.join(sorted(known))}")
        TYPES[:] = [entry for entry in TYPES if entry[2] in args.only]
    work = Workspace()
    try:
        results: dict[str, Any] = {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "rounds": rounds,
        }
        if not args.only:  # Every type's shutdown and life, or only throughput.
            results["shutdown"] = bench_shutdown(shutdown_trials, work)
            results["lifecycle"] = bench_lifecycle(lifecycle_trials, work)
        results["round_trips"] = bench_round_trips(rounds, duration, work)
        results["connections"] = bench_connections(rounds, duration, work)
    finally:
        work.close()
    print(report(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
