"""Fault injection measured: proxy overhead beside socat, fault accuracy, wrapper overhead.

Every server and relay runs in a process of its own, as in real use:
``sockharness serve`` (echo or discard), ``socat`` (a plain C relay, from
Debian's packages) and ``sockharness proxy``. The clients run here.

1. Bulk throughput, client -> relay -> discard server, for: a direct
   connection, socat, and the fault proxy with no faults: as it runs (moving
   bytes with ``os.splice`` on Linux) and as it runs without ``os.splice``
   ("proxy copy", copying them through Python, as elsewhere).
2. Round-trip time of a small echo through the same four paths.
3. Latency accuracy: ``Latency(0.05)`` upstream through the proxy; the extra
   round-trip time against the proxy without faults should be 50 ms (median
   within 2 ms).
4. Bandwidth accuracy: ``Bandwidth(1_000_000)`` upstream; the measured rate
   over about a second should be within 5 %.
5. In-process wrapper overhead: echo round trips per second through a client
   whose faults apply to no connection (``toxicity=0``), against a plain
   client, side by side.
6. Targeting on the relay: bulk throughput through the proxy with no fault,
   with a fault whose ``connections=`` selects no connection, and with one
   whose ``framer=lines`` scans every byte but whose message never comes;
   target: both within 10 % of no fault.
7. Connection-phase accuracy: ``accept_delay=0.1`` (the extra time to the
   first reply; target 100 ms ± 5 ms at the median) and ``blackhole`` (how
   long a ``create_connection(timeout=0.2)`` takes to fail; target 200 ms
   ± 10 ms).
8. Message-triggered delay: ``Latency(0.05, framer="lines", messages="every
   2")``: the extra round trip of the struck lines (target 50 ± 2 ms) and of
   the others (target under 1 ms).

Usage: ``python benchmarks/bench_faults.py [--quick] [--json FILE]
[--only-targeting | --skip-targeting]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from sockharness import connect
from sockharness.faults import Latency

CHUNK = bytes(1 << 20)
#: The pid of the proxy process listening on each port (for its CPU time).
PROXY_PIDS: dict[int, int] = {}


@contextlib.contextmanager
def process(*args: str, ready: str) -> Iterator[str]:
    """Run a command; yield its first line of output once it contains ``ready`` (and its
    pid after a space)."""
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if ready not in line:
            raise RuntimeError(f"{args[:3]} did not start: {line!r} {child.stderr.read()!r}")
        yield f"{line.rstrip()} {child.pid}"
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()


#: The proxy, run as ``python -m sockharness`` is, without ``os.splice`` (it copies).
COPYING_PROXY = "import os, sys; del os.splice; from sockharness.cli import main; sys.exit(main())"


def serve(handler: str) -> contextlib.AbstractContextManager[str]:
    return process(
        sys.executable, "-m", "sockharness", "serve", "--handler", handler, ready="serving"
    )


def port_of(line: str) -> int:
    return int(line.split(" at ")[1].split(";", maxsplit=1)[0].rsplit(":", 1)[1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def relay(kind: str, upstream_port: int, *faults: str) -> Iterator[int]:
    """Yield the port of a relay to ``upstream_port``: none (direct), socat, or the proxy."""
    if kind == "direct":
        yield upstream_port
        return
    if kind == "socat":
        port = free_port()
        child = subprocess.Popen(
            [
                "socat",
                f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                f"TCP:127.0.0.1:{upstream_port}",
            ]
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("socat did not start")
                time.sleep(0.01)
            yield port
        finally:
            child.terminate()
            child.wait(10)
        return
    fault_args = [arg for fault in faults for arg in ("--fault", fault)]
    # "proxy copy": the same proxy with os.splice taken away, as on a platform without it.
    launch = ["-c", COPYING_PROXY] if kind == "proxy copy" else ["-m", "sockharness"]
    with process(
        sys.executable, *launch, "proxy",
        "--upstream", f"127.0.0.1:{upstream_port}", *fault_args,
        ready="sockharness: proxy",
    ) as line:  # fmt: skip
        port = int(line.split(" at 127.0.0.1:")[1].split(" ")[0])
        PROXY_PIDS[port] = int(line.rsplit(" ", 1)[1])
        yield port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(port: int, total: int) -> float:
    """Bytes per second from here through ``port`` into a discard server, fully delivered."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        started = time.perf_counter()
        sent = 0
        while sent < total:
            sock.sendall(CHUNK)
            sent += len(CHUNK)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass  # The server closes once it has read everything.
        return sent / (time.perf_counter() - started)


def round_trips(port: int, count: int) -> list[float]:
    """Round-trip times, in seconds, of one-byte echoes over one connection."""
    times = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(b"x")
            sock.recv(16)
            times.append(time.perf_counter() - started)
    return times


def rate_through(port: int, total: int) -> float:
    return throughput(port, total)


def wrapper_rates(echo_port: int, rounds: int, duration: float) -> dict[str, float]:
    """Echo round trips per second: a plain client and one whose faults apply to nothing."""
    rates: dict[str, list[float]] = {"plain": [], "wrapped, no fault applies": []}
    idle_faults = [Latency(0.05, toxicity=0.0)]
    for n in range(rounds):
        order = list(rates) if n % 2 == 0 else list(reversed(rates))
        for name in order:
            faults = idle_faults if name.startswith("wrapped") else []
            with connect(("127.0.0.1", echo_port), faults=faults) as client:
                client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                time.sleep(0.2)
                count = 0
                started = time.perf_counter()
                while time.perf_counter() - started < duration:
                    client.sock.sendall(b"x")
                    client.sock.recv(16)
                    count += 1
                rates[name].append(count / (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in rates.items()}


def line_round_trips(port: int, count: int) -> list[float]:
    """Round-trip times of short lines over one connection to a line echo server."""
    times = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(b"x\n")
            got = b""
            while not got.endswith(b"\n"):
                got += sock.recv(16)
            times.append(time.perf_counter() - started)
    return times


def first_reply(port: int, count: int) -> list[float]:
    """Times from connecting to the first echoed byte, a new connection each."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"x")
            sock.recv(16)
        times.append(time.perf_counter() - started)
    return times


def blackhole_waits(port: int, count: int, timeout: float) -> list[float]:
    """How long ``create_connection(timeout=...)`` to a blackholed proxy takes to fail."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=timeout).close()
        except TimeoutError:
            times.append(time.perf_counter() - started)
    return times


def targeting(results: dict[str, Any], discard: int, echo: int, line_echo: int, args: Any) -> None:
    """Rows 6 to 8: what selectors, framers and the connection phase cost and how exact."""
    total = (64 if args.quick else 256) << 20
    variants = {
        "no fault": (),
        "selector, no connection chosen": ("latency=0.05,connections=1000-",),
        "framer=lines, message never comes": ("latency=0.05,framer=lines,messages=1000000",),
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    rounds = 1 if args.quick else 3
    for n in range(rounds):
        for name in variants if n % 2 == 0 else reversed(list(variants)):
            with relay("proxy", discard, *variants[name]) as port:
                time.sleep(0.3)
                rates[name].append(throughput(port, total))
    results["targeting_throughput_mb_s"] = {
        name: statistics.median(values) / 1e6 for name, values in rates.items()
    }
    count = 20 if args.quick else 100
    with relay("proxy", echo) as plain, relay("proxy", echo, "accept_delay=0.1") as late:
        base = statistics.median(first_reply(plain, count))
        extra = [t - base for t in first_reply(late, count)]
    results["accept_delay_0.1_extra_ms"] = statistics.median(extra) * 1e3
    with relay("proxy", echo, "blackhole") as hole:
        waits = blackhole_waits(hole, 5 if args.quick else 20, 0.2)
    results["blackhole_0.2_wait_ms"] = statistics.median(waits) * 1e3
    with (
        relay("proxy", line_echo) as plain,
        relay(
            "proxy", line_echo, "latency=0.05,framer=lines,messages=every 2,direction=upstream"
        ) as some,
    ):
        base = statistics.median(line_round_trips(plain, 50))
        times = line_round_trips(some, 40 if args.quick else 200)
    struck = [t - base for i, t in enumerate(times) if (i + 1) % 2 == 0]
    spared = [t - base for i, t in enumerate(times) if (i + 1) % 2 != 0]
    results["message_latency_extra_ms"] = {
        "struck": statistics.median(struck) * 1e3,
        "spared": statistics.median(spared) * 1e3,
    }


def print_targeting(results: dict[str, Any]) -> None:
    rates = results["targeting_throughput_mb_s"]
    base = rates["no fault"]
    print("targeting on the relay, bulk throughput MB/s (target: within 10 % of no fault):")
    for name, rate in rates.items():
        print(f"  {name:36} {rate:10.1f}   ({rate / base:.2f}x)")
    print(f"accept_delay=0.1: extra time to the first reply, median "
          f"{results['accept_delay_0.1_extra_ms']:.1f} ms (target 100 ± 5 ms)")  # fmt: skip
    print(f"blackhole: create_connection(timeout=0.2) fails after, median "
          f"{results['blackhole_0.2_wait_ms']:.1f} ms (target 200 ± 10 ms)")  # fmt: skip
    message = results["message_latency_extra_ms"]
    print(f"Latency(0.05) on every 2nd line: extra round trip {message['struck']:.2f} ms "
          f"struck, {message['spared']:.2f} ms spared (targets 50 ± 2, under 1)")  # fmt: skip


def only_targeting(args: Any) -> int:
    results: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    with (
        serve("discard") as discard_line,
        serve("echo") as echo_line,
        serve("line-echo") as line_line,
    ):
        targeting(results, port_of(discard_line), port_of(echo_line), port_of(line_line), args)
    print(f"fault targeting — Python {results['python']}, {results['cpus']} CPUs")
    print_targeting(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--only-targeting", action="store_true", help="rows 6 to 8 only")
    parser.add_argument("--skip-targeting", action="store_true", help="rows 1 to 5 only")
    args = parser.parse_args(argv)
    if args.only_targeting:
        return only_targeting(args)
    if shutil.which("socat") is None:
        print("socat is not installed (apt-get install socat); it is the baseline here")
        return 1
    total = (64 if args.quick else 512) << 20
    rounds = 1 if args.quick else 3
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "bulk_mb": total >> 20,
    }
    paths = ["direct", "socat", "proxy", "proxy copy"]
    with (
        serve("discard") as discard_line,
        serve("echo") as echo_line,
        serve("line-echo") as line_line,
    ):
        discard, echo = port_of(discard_line), port_of(echo_line)
        rates: dict[str, list[float]] = {path: [] for path in paths}
        cpu_per_gb: dict[str, list[float]] = {"proxy": [], "proxy copy": []}
        rtts: dict[str, list[float]] = {path: [] for path in paths}
        for n in range(rounds):
            for path in paths if n % 2 == 0 else reversed(paths):
                with relay(path, discard) as port:
                    time.sleep(0.3)
                    pid = PROXY_PIDS.get(port)
                    spent = cpu_seconds(pid) if pid else 0.0
                    rates[path].append(throughput(port, total))
                    if pid:
                        cpu_per_gb[path].append((cpu_seconds(pid) - spent) / (total / 1e9))
                with relay(path, echo) as port:
                    time.sleep(0.3)
                    rtts[path] += round_trips(port, 200 if args.quick else 2000)
        results["throughput_mb_s"] = {p: statistics.median(v) / 1e6 for p, v in rates.items()}
        results["proxy_cpu_s_per_gb"] = {p: statistics.median(v) for p, v in cpu_per_gb.items()}
        results["rtt_us_median"] = {p: statistics.median(v) * 1e6 for p, v in rtts.items()}
        # Fault accuracy.
        with (
            relay("proxy", echo) as plain,
            relay("proxy", echo, "latency=0.05,direction=upstream") as slow,
        ):
            base = statistics.median(round_trips(plain, 50))
            delayed = round_trips(slow, 50 if args.quick else 200)
        extra = [t - base for t in delayed]
        results["latency_0.05"] = {
            "median_extra_ms": statistics.median(extra) * 1e3,
            "p90_extra_ms": sorted(extra)[int(len(extra) * 0.9)] * 1e3,
        }
        with relay("proxy", discard, "bandwidth=1000000,direction=upstream") as limited:
            measured = throughput(limited, 1 << 20)
        results["bandwidth_1MB_s"] = {
            "measured_b_s": measured,
            "error_pct": (measured / 1e6 - 1) * 100,
        }
        results["wrapper_round_trips_s"] = wrapper_rates(
            echo, rounds * 2, 0.5 if args.quick else 1.0
        )
        if not args.skip_targeting:
            targeting(results, discard, echo, port_of(line_line), args)

    t = results["throughput_mb_s"]
    r = results["rtt_us_median"]
    w = results["wrapper_round_trips_s"]
    print(f"fault injection — Python {results['python']}, {results['cpus']} CPUs")
    print(f"bulk throughput ({results['bulk_mb']} MB into a discard server), MB/s:")
    for path in paths:
        print(f"  {path:10} {t[path]:10.1f}   ({t[path] / t['socat']:.2f}x socat)")
    c = results["proxy_cpu_s_per_gb"]
    print(f"the proxy's CPU time per GB relayed: {c['proxy'] * 1000:.0f} ms, copying "
          f"{c['proxy copy'] * 1000:.0f} ms ({c['proxy copy'] / c['proxy']:.2f}x)")  # fmt: skip
    print("round-trip time of a 1-byte echo, median µs:")
    for path in paths:
        print(f"  {path:10} {r[path]:10.1f}   (+{r[path] - r['direct']:.1f} over direct)")
    lat = results["latency_0.05"]
    print(f"Latency(0.05) upstream: extra round trip median {lat['median_extra_ms']:.2f} ms, "
          f"p90 {lat['p90_extra_ms']:.2f} ms (target 50 ± 2 ms at the median)")  # fmt: skip
    bw = results["bandwidth_1MB_s"]
    print(f"Bandwidth(1 MB/s) upstream: measured {bw['measured_b_s'] / 1e6:.3f} MB/s "
          f"({bw['error_pct']:+.1f} %, target within 5 %)")  # fmt: skip
    overhead = (1 - w["wrapped, no fault applies"] / w["plain"]) * 100
    wrapped = w["wrapped, no fault applies"]
    print(f"in-process wrapper, no fault applying: {wrapped:.0f} vs {w['plain']:.0f} round "
          f"trips/s plain ({overhead:+.1f} % overhead, target at most 5 %)")  # fmt: skip
    results["wrapper_overhead_pct"] = overhead
    if not args.skip_targeting:
        print_targeting(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
