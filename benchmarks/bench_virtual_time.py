"""Virtual time: a "30 s fault against a 1 s timeout" test, in virtual and in real time.

Each row is a whole test body, as a user writes it: start a server, connect a
client, meet the fault, see the timeout, stop the server (leaks checked).
Run in virtual time (median of the rounds) and once in real time, in the same
run; the outcome (what the client saw) must be the same in both.

- ``client latency``: ``connect(faults=[Latency(30, direction="downstream")],
  timeout=1)``, a request: the reply is held 30 s, the client times out
  (virtual time ``"timeouts"``);
- ``server read timeout``: a handler with ``timeout = 1`` behind
  ``Latency(30, direction="upstream")`` on the server: its read times out and
  it answers so (``"timeouts"``);
- ``blackholed connect``: ``connect(faults=[Blackhole()], timeout=1)``
  (``"connect"``, the default).

Target: each virtual-time test under 50 ms of wall time, with the real-time
outcome. Usage: ``python benchmarks/bench_virtual_time.py [--rounds R] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from sockharness import ReceiveTimeout, start_server
from sockharness.faults import Blackhole, Latency, VirtualTime
from sockharness.handlers import LineEchoHandler
from sockharness.server import StreamRequestHandler

TARGET = 0.050
LATENCY = 30.0
TIMEOUT = 1.0


class Impatient(StreamRequestHandler):
    """Reads one line within its 1 s timeout, or says it gave up."""

    timeout = TIMEOUT

    def handle(self) -> None:
        try:
            self.wfile.write(b"got " + self.rfile.readline())
        except TimeoutError:
            self.wfile.write(b"gave up\n")


def client_latency(virtual_time: VirtualTime) -> str:
    with start_server(LineEchoHandler, virtual_time=virtual_time, leaks="fail") as server:
        faults = [Latency(LATENCY, direction="downstream")]
        with server.connect(timeout=TIMEOUT, faults=faults) as client:
            try:
                return client.request(b"ping\n").decode()
            except ReceiveTimeout:
                return "client timed out"


def server_read_timeout(virtual_time: VirtualTime) -> str:
    faults = [Latency(LATENCY, direction="upstream")]
    with (
        start_server(Impatient, faults=faults, virtual_time=virtual_time, leaks="fail") as server,
        server.connect(timeout=LATENCY * 2) as client,
    ):
        return client.request(b"ping\n").decode().strip()


def blackholed_connect(virtual_time: VirtualTime) -> str:
    with start_server(LineEchoHandler, virtual_time=virtual_time, leaks="fail") as server:
        try:
            server.connect(timeout=TIMEOUT, faults=[Blackhole()]).close()
        except ReceiveTimeout:
            return "connect timed out"
        return "connected"


ROWS: dict[str, tuple[Callable[[VirtualTime], str], VirtualTime]] = {
    "client latency": (client_latency, "timeouts"),
    "server read timeout": (server_read_timeout, "timeouts"),
    "blackholed connect": (blackholed_connect, "connect"),
}


def timed(test: Callable[[VirtualTime], str], virtual_time: VirtualTime) -> tuple[float, str]:
    started = time.perf_counter()
    outcome = test(virtual_time)
    return time.perf_counter() - started, outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="virtual rounds per row")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    for name, (test, mode) in ROWS.items():
        real_seconds, real_outcome = timed(test, "off")
        runs = [timed(test, mode) for _ in range(args.rounds)]
        seconds = [run[0] for run in runs]
        outcomes = {run[1] for run in runs}
        results[name] = {
            "virtual_time": mode,
            "virtual_median_ms": statistics.median(seconds) * 1000,
            "virtual_max_ms": max(seconds) * 1000,
            "real_s": real_seconds,
            "speedup": real_seconds / statistics.median(seconds),
            "outcome": real_outcome,
            "same_outcome": outcomes == {real_outcome},
            "meets_target": max(seconds) < TARGET and outcomes == {real_outcome},
        }
    lines = [
        f"a {LATENCY:g} s fault against a {TIMEOUT:g} s timeout, a whole test each (Python "
        f"{platform.python_version()}, {args.rounds} virtual rounds; target < "
        f"{TARGET * 1000:g} ms, the real-time outcome)",
        f"{'test':<21}{'mode':<10}{'virtual':>10}{'max':>10}{'real':>9}{'speedup':>9}  outcome",
    ]
    for name, row in results.items():
        same = "same" if row["same_outcome"] else "DIFFERS"
        lines.append(
            f"{name:<21}{row['virtual_time']:<10}{row['virtual_median_ms']:>8.2f}ms"
            f"{row['virtual_max_ms']:>8.2f}ms{row['real_s']:>8.3f}s{row['speedup']:>8.0f}x"
            f"  {row['outcome']!r} ({same})"
        )
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as stream:
            json.dump({"python": platform.python_version(), "results": results}, stream, indent=2)
    return 0 if all(row["meets_target"] for row in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
