"""The chaos runner's own overhead: how many messages its clients drive, beside raw echo.

For each transport (threading TCP and threading UDP, echo handler, no faults)
and each client count (1 and 4), side by side in one process run, alternating
in rounds:

- **raw**: client threads doing echo round trips on plain sockets as fast as
  they can (the server benchmark's round-trip loop, threaded), messages per
  second;
- **runner**: a scenario with the same server and the same number of clients at
  ``rate = 0`` (as fast as replies come), run by ``run_scenario``; messages per
  second is its ok messages over the duration. Each runner message is framed,
  checked byte for byte and timed, and its client checks for fault windows.

The ratio runner/raw is the share of the raw rate the runner's clients reach.
The rows ``x4, N proc`` run the runner's 4 clients in N processes of their own
(``processes = N``), beside the same raw threads.

A last row does the same for a real protocol: an ``http.server`` JSON app
(HTTP/1.1, keep-alive) under 4 clients, **raw** being ``http.client`` threads
doing GETs as fast as they can, **runner** a scenario of 4 ``protocol = "http"``
clients that check each status and JSON value.

Usage: ``python benchmarks/bench_chaos.py [--quick] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import socket
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from sockharness import start_server
from sockharness.chaos import parse_scenario, run_scenario
from sockharness.handlers import EchoHandler

PAYLOAD = b"x" * 63 + b"\n"


def _run_threads(
    loop: Any, clients: int, start: threading.Barrier, counts: list[int], duration: float
) -> float:
    """Run ``loop(index)`` in ``clients`` threads released together; the rate they reached."""
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join(duration + 10)
    return sum(counts) / duration


def raw_rate(kind: str, clients: int, duration: float) -> float:
    """Echo round trips per second of ``clients`` threads on plain sockets."""
    with start_server(EchoHandler, kind, leaks="off") as server:
        counts = [0] * clients
        start = threading.Barrier(clients + 1)

        def loop(index: int) -> None:
            stream = kind == "tcp"
            sock = socket.socket(
                socket.AF_INET, socket.SOCK_STREAM if stream else socket.SOCK_DGRAM
            )
            sock.settimeout(5.0)
            sock.connect(server.address)
            if stream:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                start.wait()
                deadline = time.perf_counter() + duration
                while time.perf_counter() < deadline:
                    sock.sendall(PAYLOAD) if stream else sock.send(PAYLOAD)
                    received = 0
                    while received < len(PAYLOAD):
                        received += len(sock.recv(65536))
                    counts[index] += 1
            finally:
                if stream:
                    sock.shutdown(socket.SHUT_WR)
                sock.close()

        return _run_threads(loop, clients, start, counts, duration)


class JSONApp(BaseHTTPRequestHandler):
    """A keep-alive JSON answer to every GET (the real-protocol row's server)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # Headers and body are two writes: no 40 ms stall between.
    BODY = b'{"ok": true, "items": [1, 2, 3]}'

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        self.wfile.write(self.BODY)


def raw_http_rate(clients: int, duration: float) -> float:
    """GETs per second of ``clients`` http.client threads, one keep-alive connection each."""
    with start_server(JSONApp, "tcp", leaks="off") as server:
        counts = [0] * clients
        start = threading.Barrier(clients + 1)

        def loop(index: int) -> None:
            connection = http.client.HTTPConnection(*server.address, timeout=5.0)
            try:
                start.wait()
                deadline = time.perf_counter() + duration
                while time.perf_counter() < deadline:
                    connection.request("GET", "/items")
                    response = connection.getresponse()
                    if response.status == 200 and json.loads(response.read())["ok"]:
                        counts[index] += 1
            finally:
                connection.close()

        return _run_threads(loop, clients, start, counts, duration)


def _ok_rate(text: str, duration: float) -> float:
    """Run the scenario in ``text`` (no probe after it); its ok messages per second."""
    body = text.replace("        ", "") + "[expect]\nserving_after_faults = false\n"
    result = run_scenario(parse_scenario(body, "<bench>"))
    if result.result != "held":
        raise RuntimeError(result.failure_message())
    return result.count("ok") / duration


def runner_http_rate(clients: int, duration: float) -> float:
    """Ok HTTP requests per second of the runner's ``protocol = "http"`` clients."""
    app = f"{JSONApp.__module__}:{JSONApp.__qualname__}"
    text = f"""
        [scenario]
        name = "bench http"
        duration = {duration}
        [server]
        handler = "{app}"
        [[clients]]
        protocol = "http"
        count = {clients}
        rate = 0
        path = "/items"
        expect_status = 200
        expect_json = {{ "/ok" = true }}
        """
    return _ok_rate(text, duration)


def runner_rate(kind: str, clients: int, duration: float, processes: int = 0) -> float:
    """Ok messages per second that the chaos runner's clients drive (in ``processes``
    processes of their own; 0: threads of the runner)."""
    pattern = "persistent" if kind == "tcp" else "datagram"
    text = f"""
        [scenario]
        name = "bench"
        duration = {duration}
        [server]
        kind = "{kind}"
        [[clients]]
        count = {clients}
        pattern = "{pattern}"
        rate = 0
        size = {len(PAYLOAD)}
        processes = {processes}
        """
    return _ok_rate(text, duration)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer rounds")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    rounds, duration = (1, 0.5) if args.quick else (3, 2.0)
    results: dict[str, Any] = {}
    for kind in ("tcp", "udp"):
        for clients in (1, 4):
            raw: list[float] = []
            runner: list[float] = []
            for _ in range(rounds):
                raw.append(raw_rate(kind, clients, duration))
                runner.append(runner_rate(kind, clients, duration))
            results[f"{kind} x{clients}"] = {
                "raw": statistics.median(raw),
                "runner": statistics.median(runner),
            }
    for kind in ("tcp", "udp"):
        for processes in (2, 4):
            raw, runner = [], []
            for _ in range(rounds):
                raw.append(raw_rate(kind, 4, duration))
                runner.append(runner_rate(kind, 4, duration, processes))
            results[f"{kind} x4, {processes} proc"] = {
                "raw": statistics.median(raw),
                "runner": statistics.median(runner),
            }
    raw, runner = [], []
    for _ in range(rounds):
        raw.append(raw_http_rate(4, duration))
        runner.append(runner_http_rate(4, duration))
    results["http x4"] = {"raw": statistics.median(raw), "runner": statistics.median(runner)}
    lines = [
        f"chaos runner overhead (Python {platform.python_version()}, "
        f"{rounds} rounds of {duration:g} s, median messages per second)",
        f"{'server, clients':<20}{'raw echo':>12}{'runner':>12}{'runner/raw':>12}",
    ]
    for name, row in results.items():
        ratio = row["runner"] / row["raw"] if row["raw"] else float("nan")
        row["ratio"] = ratio
        lines.append(f"{name:<20}{row['raw']:>12.0f}{row['runner']:>12.0f}{ratio:>11.2f}x")
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as stream:
            json.dump({"python": platform.python_version(), "results": results}, stream, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
