"""What a bounded-exhaustive exploration of one exchange costs, beside a bare exchange.

For a 64-byte request and its 64-byte reply (``LineEchoHandler``), on each
concurrency, measured in one run and interleaved round by round:

- ``explore``: ``sockharness.explore.exchanges()`` over every case: 63 splits,
  64 coalescings, 64 client closes, 64 client resets, 64 server closes and 64
  server resets (383 cases, and the baseline); wall time of the whole call,
  server start and stop included. Target: under 2 s on 2 cores (sync and
  threading; a forking server forks once per case, which bounds its row).
- ``bare``: the same number of plain exchanges (connect, send, end, read to
  the end) against one server started once, with nothing checked: the floor.

Reported: median seconds, the ratio explore / bare, and the time per case.

Usage: ``python benchmarks/bench_explore.py [--rounds R] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import sys
import time
from typing import Any

from sockharness import start_server
from sockharness.explore import exchanges
from sockharness.handlers import LineEchoHandler

REQUEST = b"SET 12345 " + b"x" * 53 + b"\n"
TARGET = 2.0


def explore_seconds(concurrency: str) -> tuple[float, int]:
    started = time.perf_counter()
    exploration = exchanges(LineEchoHandler, REQUEST, concurrency=concurrency)
    seconds = time.perf_counter() - started
    if not exploration.ok:
        raise RuntimeError(exploration.format())
    return seconds, len(exploration.outcomes)


def bare_seconds(concurrency: str, count: int) -> float:
    started = time.perf_counter()
    with start_server(LineEchoHandler, "tcp", concurrency=concurrency) as server:
        for _ in range(count + 1):
            with socket.create_connection(server.address, timeout=5) as sock:
                sock.sendall(REQUEST)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):
                    pass
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per row (default: 5)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    for concurrency in ("sync", "threading", "forking"):
        explored: list[float] = []
        bare: list[float] = []
        cases = 0
        for _ in range(args.rounds):
            seconds, cases = explore_seconds(concurrency)
            explored.append(seconds)
            bare.append(bare_seconds(concurrency, cases))
        row = {
            "cases": cases,
            "explore": statistics.median(explored),
            "explore_max": max(explored),
            "bare": statistics.median(bare),
        }
        row["ratio"] = row["explore"] / row["bare"]
        row["per_case_ms"] = row["explore"] / cases * 1000
        # A forking server forks once per case: its row is bound by fork(), not compared.
        row["meets_target"] = concurrency == "forking" or row["explore_max"] < TARGET
        results[concurrency] = row
    lines = [
        f"exploring one exchange: a {len(REQUEST)}-byte request and its reply, every case "
        f"(Python {platform.python_version()}, {args.rounds} rounds, median; target < "
        f"{TARGET:g} s)",
        f"{'concurrency':<13}{'cases':>7}{'explore':>10}{'max':>9}{'bare':>9}{'ratio':>8}"
        f"{'per case':>11}",
    ]
    for name, row in results.items():
        lines.append(
            f"{name:<13}{row['cases']:>7}{row['explore']:>9.3f}s{row['explore_max']:>8.3f}s"
            f"{row['bare']:>8.3f}s{row['ratio']:>7.2f}x{row['per_case_ms']:>9.2f}ms"
        )
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as stream:
            json.dump({"python": platform.python_version(), "results": results}, stream, indent=2)
    return 0 if all(row["meets_target"] for row in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
