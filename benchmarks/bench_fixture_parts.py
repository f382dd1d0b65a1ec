"""Where a fixture's time goes, in process: each part of a test's server timed alone.

Without pytest around it, N cycles of each part, the parts interleaved round by
round (forwards, then backwards), median of the rounds, in microseconds per cycle:

- ``thread_start_join``: a ``threading.Thread`` started and joined, doing
  nothing (what each thread the harness starts per test costs);
- ``kept_thread_handoff``: the same nothing handed to a thread kept alive and
  waited for (what a thread kept for the session would cost instead);
- ``bare_server_request``: our ``ThreadingTCPServer`` made, served on a
  thread, asked one echo over a plain socket, shut down and closed, nothing
  checked;
- ``harness_no_request``: ``start_server(EchoHandler).stop()``;
- ``harness_raw_request``: ``start_server`` and ``stop()`` around the same plain
  socket's echo;
- ``harness_client_request``: the same through ``server.connect()``'s client.

    python benchmarks/bench_fixture_parts.py --cycles 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import platform
import queue
import socket
import statistics
import threading
import time
from collections.abc import Callable

from sockharness import start_server
from sockharness.handlers import EchoHandler
from sockharness.server import ThreadingTCPServer

_Job = tuple[Callable[[], None], threading.Event]
_jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()


def _kept_worker() -> None:
    while True:
        job, done = _jobs.get()
        job()
        done.set()


def thread_start_join() -> None:
    thread = threading.Thread(target=lambda: None, daemon=True)
    thread.start()
    thread.join()


def kept_thread_handoff() -> None:
    done = threading.Event()
    _jobs.put((lambda: None, done))
    if not done.wait(5):
        raise RuntimeError("the kept thread did not run the job within 5 s")


def _echo_once(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"x\n")
        if sock.recv(16) != b"x\n":
            raise RuntimeError("the echo server did not echo")


def bare_server_request() -> None:
    server = ThreadingTCPServer(("127.0.0.1", 0), EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _echo_once(server.server_address)
    server.shutdown()
    server.server_close()
    thread.join(5)


def harness_no_request() -> None:
    start_server(EchoHandler).stop()


def harness_raw_request() -> None:
    server = start_server(EchoHandler)
    address = server.address
    assert isinstance(address, tuple)
    _echo_once(address)
    server.stop()


def harness_client_request() -> None:
    server = start_server(EchoHandler)
    with server.connect() as client:
        client.request(b"x\n")
    server.stop()


PARTS = [
    thread_start_join,
    kept_thread_handoff,
    bare_server_request,
    harness_no_request,
    harness_raw_request,
    harness_client_request,
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=1000, help="cycles per part and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the medians here")
    args = parser.parse_args(argv)
    if args.cycles < 1 or args.rounds < 1:
        parser.error("--cycles and --rounds must be at least 1")
    threading.Thread(target=_kept_worker, name="kept worker", daemon=True).start()
    times: dict[str, list[float]] = {part.__name__: [] for part in PARTS}
    for n in range(args.rounds):
        for part in PARTS if n % 2 == 0 else reversed(PARTS):
            for _ in range(50):  # warm-up
                part()
            started = time.perf_counter()
            for _ in range(args.cycles):
                part()
            times[part.__name__].append((time.perf_counter() - started) / args.cycles * 1e6)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"per cycle (µs; {args.cycles} cycles, median of {args.rounds} rounds; "
          f"Python {platform.python_version()})")  # fmt: skip
    for name, values in times.items():
        print(f"  {name:26} {medians[name]:8.1f}   (rounds {min(values):.1f} .. {max(values):.1f})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"python": platform.python_version(), "us_per_cycle": medians}, out, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
