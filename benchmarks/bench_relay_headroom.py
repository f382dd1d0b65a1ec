"""How fast a splicing relay can go here: the fault proxy beside minimal relays and socat.

Bulk throughput of one connection into ``sockharness serve --handler discard``
(``--mb`` MB per run, rounds interleaved forwards and backwards, median):

- ``direct``: no relay;
- ``socat``: ``socat TCP-LISTEN:...,fork TCP:...``, the C baseline, and
  ``proxy``: ``sockharness proxy`` with no fault (splicing), both started as
  ``bench_faults.py`` starts them;
- ``loop``: the least a one-thread splicing relay does, in a child process:
  non-blocking ``os.splice`` socket -> pipe -> socket, woken by ``epoll``;
- ``loop-buffers``: the same with 4 MiB socket buffers asked for;
- ``threads``: two threads, blocking splices, one filling the pipe and one
  emptying it (the pipe is the only hand-off).

If ``loop`` runs as fast as ``proxy``, the proxy's own Python is not what
bounds it; what ``threads`` gains over ``loop`` is what overlapping the two
hops could buy.

    python benchmarks/bench_relay_headroom.py --mb 256 --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import select
import shutil
import socket
import statistics
import threading
import traceback
from collections.abc import Callable

from bench_faults import port_of, relay, serve, throughput  # benchmarks/, the script's folder

PIPE_SIZE = 1 << 20


def _pipe() -> tuple[int, int, int]:
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    return read_fd, write_fd, fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ)


def _finish(client: socket.socket, upstream: socket.socket) -> None:
    upstream.shutdown(socket.SHUT_WR)
    while upstream.recv(65536):
        pass  # The discard server closes once it has read everything.
    client.close()
    upstream.close()


def relay_loop(listener: socket.socket, upstream_port: int, *, buffers: bool = False) -> None:
    client, _ = listener.accept()
    upstream = socket.create_connection(("127.0.0.1", upstream_port))
    if buffers:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        upstream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    client.setblocking(False)
    upstream.setblocking(False)
    read_fd, write_fd, capacity = _pipe()
    flags = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
    held, ended = 0, False
    poller = select.epoll()
    poller.register(client.fileno(), select.EPOLLIN)
    poller.register(upstream.fileno(), 0)
    while not (ended and not held):
        poller.poll(10.0)
        moved = True
        while moved:
            moved = False
            if not ended and held < capacity:
                with contextlib.suppress(BlockingIOError):
                    n = os.splice(client.fileno(), write_fd, capacity - held, flags=flags)
                    ended = n == 0
                    held += n
                    moved = n > 0
            if held:
                with contextlib.suppress(BlockingIOError):
                    n = os.splice(read_fd, upstream.fileno(), held, flags=flags)
                    held -= n
                    moved = moved or n > 0
        poller.modify(client.fileno(), select.EPOLLIN if not ended and held < capacity else 0)
        poller.modify(upstream.fileno(), select.EPOLLOUT if held else 0)
    poller.close()
    upstream.setblocking(True)
    _finish(client, upstream)
    os.close(read_fd)
    os.close(write_fd)


def relay_loop_buffers(listener: socket.socket, upstream_port: int) -> None:
    relay_loop(listener, upstream_port, buffers=True)


def relay_threads(listener: socket.socket, upstream_port: int) -> None:
    client, _ = listener.accept()
    upstream = socket.create_connection(("127.0.0.1", upstream_port))
    read_fd, write_fd, capacity = _pipe()

    def fill() -> None:
        while os.splice(client.fileno(), write_fd, capacity, flags=os.SPLICE_F_MOVE):
            pass
        os.close(write_fd)

    filler = threading.Thread(target=fill)
    filler.start()
    while os.splice(read_fd, upstream.fileno(), capacity, flags=os.SPLICE_F_MOVE):
        pass
    filler.join()
    _finish(client, upstream)
    os.close(read_fd)


def through_child(
    relay_function: Callable[[socket.socket, int], None], upstream: int, total: int
) -> float:
    """The relay in a forked child (no thread runs here when it forks), its own GIL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            relay_function(listener, upstream)
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    listener.close()
    try:
        return throughput(port, total) / 1e6
    finally:
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise RuntimeError(f"the relay child failed (status {status})")


def through(kind: str, upstream: int, total: int) -> float:
    """MB/s through socat or the proxy, started as ``bench_faults.py`` starts them."""
    with relay(kind, upstream) as port:
        return throughput(port, total) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=256, help="MB per run (default: 256)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the medians here")
    args = parser.parse_args(argv)
    if args.mb < 1 or args.rounds < 1:
        parser.error("--mb and --rounds must be at least 1")
    if shutil.which("socat") is None or not hasattr(os, "splice"):
        print("needs socat (apt-get install socat) and os.splice (Linux)")
        return 1
    total = args.mb << 20
    paths: dict[str, Callable[[int], float]] = {
        "direct": lambda up: throughput(up, total) / 1e6,
        "socat": lambda up: through("socat", up, total),
        "proxy": lambda up: through("proxy", up, total),
        "loop": lambda up: through_child(relay_loop, up, total),
        "loop-buffers": lambda up: through_child(relay_loop_buffers, up, total),
        "threads": lambda up: through_child(relay_threads, up, total),
    }
    rates: dict[str, list[float]] = {name: [] for name in paths}
    with serve("discard") as discard_line:
        upstream = port_of(discard_line)
        for n in range(args.rounds):
            for name in paths if n % 2 == 0 else reversed(list(paths)):
                rates[name].append(paths[name](upstream))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(f"bulk throughput (MB/s; {args.mb} MB, median of {args.rounds} rounds; "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs)")  # fmt: skip
    for name, values in rates.items():
        print(f"  {name:13} {medians[name]:8.0f}   ({medians[name] / medians['socat']:.2f}x socat;"
              f" rounds {min(values):.0f} .. {max(values):.0f})")  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"python": platform.python_version(), "mb_s": medians}, out, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
