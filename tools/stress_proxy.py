"""Stress the fault proxy: nothing lost on streams while faults change, UDP loss accounted.

**Streams** (``--connections``, ``--size``): that many TCP connections through
a ``FaultProxy`` to an echo server, each sending ``--size`` bytes and
half-closing, each reading the echo to EOF, all at once. ``--faults toggle``
(the default) adds and removes ``Latency`` and ``Slicer`` on both directions
in a tight loop while they stream (Toxiproxy's ``TestNoDataDropped`` idea);
``--faults none`` relays with no fault. Verdict: every connection ended
(the half-close passed on both ways), every byte back in order (SHA-256 of
what was sent against what came back), the proxy's byte counts exact, no
descriptor left once the proxy closed, and the process's peak RSS recorded.

**Datagrams** (``--datagrams``, ``--rate``): that many UDP datagrams at a
steady rate through a proxy with no fault to a counting server. What did not
arrive must be what was dropped where it can be counted: the proxy's own
``dropped_datagrams`` and the kernel's UDP receive-buffer errors
(``/proc/net/snmp``); a loss beyond those is "silent" and fails.

Exit 0 when everything held, 1 when not, 2 on bad arguments.

    python tools/stress_proxy.py                              # 256 x 4 MB, 100 000 datagrams
    python tools/stress_proxy.py --connections 32 --size 262144 --datagrams 5000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import selectors
import socket
import threading
import time
from dataclasses import dataclass

from _arguments import whole_number  # tools/, on the path when run as a script
from _entry import run_as_script

from sockharness import start_server
from sockharness.faults import FaultProxy, Latency, Slicer
from sockharness.handlers import EchoHandler

BLOCK = 65536
CHUNK = 65536


def _block(index: int) -> bytes:
    seed = hashlib.sha256(b"stress %d" % index).digest()
    return (seed * (BLOCK // len(seed)))[:BLOCK]


def _digest_of(block: bytes, size: int) -> bytes:
    digest = hashlib.sha256()
    whole, rest = divmod(size, len(block))
    for _ in range(whole):
        digest.update(block)
    digest.update(block[:rest])
    return digest.digest()


class _Stream:
    """One connection: sends ``size`` bytes of its block, half-closes, reads to EOF."""

    def __init__(self, index: int, address: tuple[str, int], size: int) -> None:
        self.block = _block(index)
        self.size = size
        self.sent = 0
        self.count = 0
        self.received = hashlib.sha256()
        self.eof = False
        self.sock = socket.create_connection(address, timeout=30)
        self.sock.setblocking(False)

    def send(self) -> None:
        offset = self.sent % BLOCK
        piece = (self.block[offset:] + self.block[:offset])[: min(CHUNK, self.size - self.sent)]
        try:
            self.sent += self.sock.send(piece)
        except BlockingIOError:
            return
        if self.sent == self.size:
            self.sock.shutdown(socket.SHUT_WR)

    def receive(self) -> None:
        try:
            data = self.sock.recv(262144)
        except BlockingIOError:
            return
        if not data:
            self.eof = True
        self.received.update(data)
        self.count += len(data)


def _drive(streams: list[_Stream], deadline: float) -> None:
    with selectors.DefaultSelector() as selector:
        for stream in streams:
            selector.register(stream.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, stream)
        live = len(streams)
        while live and time.monotonic() < deadline:
            for key, events in selector.select(1.0):
                stream = key.data
                if events & selectors.EVENT_WRITE and stream.sent < stream.size:
                    stream.send()
                    if stream.sent == stream.size:
                        selector.modify(stream.sock, selectors.EVENT_READ, stream)
                if events & selectors.EVENT_READ:
                    stream.receive()
                    if stream.eof:
                        selector.unregister(stream.sock)
                        live -= 1


def _toggle(proxy: FaultProxy, stop: threading.Event) -> int:
    """Add and remove faults until ``stop``; how many changes were made."""
    faults = [
        Latency(0.001, jitter=0.0005),
        Slicer(4096, size_variation=2048),
        Latency(0.002, direction="upstream"),
        Slicer(1500, direction="downstream"),
    ]
    changes = 0
    while not stop.is_set():
        for fault in faults:
            proxy.add(fault)
            changes += 1
        for fault in faults:
            proxy.remove(fault)
            changes += 1
        stop.wait(0.005)
    return changes


@dataclass
class StreamVerdict:
    seconds: float
    changes: int
    unfinished: int
    broken: int
    counted: tuple[int, int]
    descriptors_left: int
    peak_rss_mb: float

    def problems(self, connections: int, size: int) -> list[str]:
        found = []
        if self.unfinished:
            found.append(f"{self.unfinished} connections did not reach EOF (half-close lost?)")
        if self.broken:
            found.append(f"{self.broken} connections got bytes lost, changed or out of order")
        if self.counted != (connections * size, connections * size):
            found.append(f"the proxy counted {self.counted}, not {connections * size} each way")
        if self.descriptors_left:
            found.append(f"{self.descriptors_left} descriptors left after the proxy closed")
        return found


def stress_streams(connections: int, size: int, toggle: bool, timeout: float) -> StreamVerdict:
    before = len(os.listdir("/proc/self/fd"))  # Counted again once proxy and server are gone.
    with start_server(EchoHandler, daemon_threads=True, request_queue_size=1024) as server:
        began = time.monotonic()
        with FaultProxy(server.address, seed=1) as proxy:
            streams = [_Stream(index, proxy.address, size) for index in range(connections)]
            stop = threading.Event()
            changes: list[int] = []
            toggler = threading.Thread(
                target=lambda: changes.append(_toggle(proxy, stop)), daemon=True
            )
            if toggle:
                toggler.start()
            try:
                _drive(streams, time.monotonic() + timeout)
            finally:
                stop.set()
                if toggle:
                    toggler.join(30)
                for stream in streams:
                    stream.sock.close()
            broken = sum(
                stream.received.digest() != _digest_of(stream.block, size) for stream in streams
            )
            stats = proxy.stats
            counted = (stats.upstream_bytes, stats.downstream_bytes)
        seconds = time.monotonic() - began
        # The echo server's handlers close their ends just after they count as done.
        server.wait_stats(lambda s: s.connections_done >= s.connections, timeout=60)
    settle = time.monotonic() + 5  # What is still open 5 s after the stop is left for good.
    after = len(os.listdir("/proc/self/fd"))
    while after > before and time.monotonic() < settle:
        time.sleep(0.01)
        after = len(os.listdir("/proc/self/fd"))
    return StreamVerdict(
        seconds=seconds,
        changes=changes[0] if changes else 0,
        unfinished=sum(not stream.eof for stream in streams),
        broken=broken,
        counted=counted,
        descriptors_left=max(0, after - before),
        peak_rss_mb=_peak_rss_mb(),
    )


def _peak_rss_mb() -> float:
    """This process's own peak RSS (``ru_maxrss`` would carry a parent's over ``exec``)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _udp_receive_errors() -> int:
    """The kernel's count of UDP datagrams dropped for want of receive buffer (all sockets)."""
    with open("/proc/net/snmp", encoding="ascii") as snmp:
        rows = [line.split() for line in snmp if line.startswith("Udp:")]
    header, values = rows[0], rows[1]
    return int(values[header.index("RcvbufErrors")])


def stress_datagrams(count: int, rate: float) -> tuple[dict[str, int], list[str]]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    received = [0]
    done = threading.Event()

    def count_them() -> None:
        receiver.settimeout(0.5)
        while not done.is_set():
            try:
                receiver.recv(2048)
            except TimeoutError:
                continue
            received[0] += 1

    counter = threading.Thread(target=count_them, daemon=True)
    counter.start()
    errors_before = _udp_receive_errors()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with FaultProxy(receiver.getsockname(), "udp", seed=1) as proxy:
            began = time.monotonic()
            for index in range(count):
                ahead = began + index / rate - time.monotonic()
                if ahead > 0:
                    # Steady pacing by sleeping (a busy wait would starve the proxy's
                    # thread of the interpreter): at most a millisecond's burst at once.
                    time.sleep(ahead)
                sender.sendto(b"%08d" % index + b"." * 56, proxy.address)
            deadline = time.monotonic() + 5
            while received[0] < count and time.monotonic() < deadline:
                time.sleep(0.01)
            stats = proxy.stats
    finally:
        done.set()
        counter.join(5)
        sender.close()
        receiver.close()
    kernel = _udp_receive_errors() - errors_before
    figures = {
        "sent": count,
        "proxy_received": stats.upstream_datagrams,
        "proxy_dropped": stats.dropped_datagrams,
        "delivered": received[0],
        "kernel_receive_buffer_drops": kernel,
    }
    lost = count - received[0]
    problems = []
    if lost > kernel + stats.dropped_datagrams:
        problems.append(
            f"{lost} datagrams lost, only {kernel + stats.dropped_datagrams} counted "
            f"(kernel {kernel}, proxy {stats.dropped_datagrams}): a silent loss"
        )
    return figures, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/stress_proxy.py")
    parser.add_argument("--connections", type=whole_number, default=256)
    parser.add_argument("--size", type=whole_number, default=4 * 1024 * 1024, help="bytes each way")
    parser.add_argument("--faults", choices=["toggle", "none"], default="toggle")
    parser.add_argument("--timeout", type=float, default=600.0, help="bound on the streams")
    parser.add_argument("--datagrams", type=whole_number, default=100_000)
    parser.add_argument("--rate", type=float, default=10_000.0, help="datagrams per second")
    args = parser.parse_args(argv)
    if not args.rate > 0 or not args.timeout > 0:
        parser.error("--rate and --timeout must be positive")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 4 * args.connections + 256
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            parser.error(
                f"--connections {args.connections} needs {needed} descriptors; limit {hard}"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    problems: list[str] = []
    if args.connections and args.size:
        verdict = stress_streams(args.connections, args.size, args.faults == "toggle", args.timeout)
        total = 2 * args.connections * args.size / 1e6
        print(
            f"streams: {args.connections} x {args.size} bytes each way, faults {args.faults} "
            f"({verdict.changes} changes): {verdict.seconds:.1f} s, {total / verdict.seconds:.0f} "
            f"MB/s through the proxy, peak RSS {verdict.peak_rss_mb:.0f} MB"
        )
        problems += verdict.problems(args.connections, args.size)
    if args.datagrams:
        figures, lost = stress_datagrams(args.datagrams, args.rate)
        print("datagrams: " + ", ".join(f"{key} {value}" for key, value in figures.items()))
        problems += lost
    for problem in problems:
        print(f"BROKEN: {problem}")
    print("held" if not problems else f"{len(problems)} broken")
    return 1 if problems else 0


if __name__ == "__main__":
    run_as_script(main)
