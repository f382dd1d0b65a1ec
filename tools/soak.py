"""Soak: cycle servers, proxies and scenarios many times in one process; nothing may accumulate.

Three phases, each in this one process, each sampled every ``--every`` cycles:

* **servers**: ``start_server`` + one request + ``stop()`` for every kind and
  concurrency (TCP, TCP over IPv6 where the host has it, UDP, UDP over IPv6,
  Unix stream and datagram; sync, threading and forking), with TLS servers and
  servers applying in-process faults in the mix, ``--cycles`` times in all;
* **proxies**: a ``FaultProxy`` (TCP, UDP, Unix; with and without a fault) in
  front of a running echo server, one request through it, ``close()``,
  ``--proxy-cycles`` times;
* **scenarios**: ``--scenario-runs`` back-to-back runs of one short chaos
  scenario (its own, or ``--scenario FILE``), each of which must hold;
* **api**: the control plane as it is run: ``sockharness proxy --api --config
  FILE`` in a child process, driven over HTTP ``--api-cycles`` times (a proxy
  created, a request through it with a toxic and without, the proxy deleted),
  its config file rewritten and reloaded with SIGHUP every ``--reload-every``
  cycles (and a request through a proxy the file made). The samples of this
  phase are the child's.

A sample counts this process's threads, open descriptors, children, zombies,
the entries under the private temporary directories sockharness makes
(``sh-``, ``shc-``, ``shp-``, ``shl-``, ``sockharness-`` under ``$TMPDIR``:
give the soak a ``TMPDIR`` of its own beside other work) and its resident set
size. The verdict, per phase: no count above its value at the first sample
(taken after one sample's worth of warm-up cycles; ``--every``,
``--proxy-every`` and ``--scenario-every`` set the interval per phase) at the
end of the phase, and RSS grown less than ``--rss-budget`` MB from that first
sample. Exit 0 when every phase holds, 1 when one does not (each broken target
named), 2 on bad arguments.

``--inject-leak KIND`` makes each server cycle leave one thread, descriptor,
child or temporary file behind: a check of the soak itself, whose verdict must
then fail.

    python tools/soak.py                  # the full profile: 10 000 / 1 000 / 200 / 1 000
    python tools/soak.py --cycles 600 --proxy-cycles 120 --scenario-runs 4 --api-cycles 60 \
        --every 100 --api-every 20
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _arguments import whole_number  # tools/, on the path when run as a script
from _entry import run_as_script

import sockharness
import sockharness.harness
from sockharness.chaos import parse_scenario, run_scenario
from sockharness.control import ProxyAPI
from sockharness.faults import FaultProxy, Latency, Slicer
from sockharness.handlers import EchoHandler

#: The prefixes of the private directories sockharness makes under the temporary directory.
PRIVATE_PREFIXES = ("sh-", "shc-", "shp-", "shl-", "sockharness-")
COUNTS = ("threads", "descriptors", "children", "zombies", "temp_entries")
LEAK_KINDS = ("thread", "descriptor", "child", "file")

#: A short scenario: two clients, a latency window, every invariant checked.
SCENARIO = textwrap.dedent(
    """
    [scenario]
    name = "soak"
    seed = 7
    duration = 0.4

    [server]
    kind = "tcp"
    concurrency = "threading"
    handler = "echo"

    [[clients]]
    count = 2
    pattern = "persistent"
    rate = 50
    size = 64

    [[faults]]
    fault = "latency"
    delay = 0.01
    at = 0.1
    until = 0.2

    [expect]
    max_error_rate = 0.0
    """
)


@dataclass
class Sample:
    """What the process holds after ``cycle`` cycles of a phase."""

    cycle: int
    threads: int
    descriptors: int
    children: int
    zombies: int
    temp_entries: int
    rss_mb: float


@dataclass
class PhaseResult:
    """A phase's samples and its verdict."""

    name: str
    cycles: int
    seconds: float
    samples: list[Sample] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)


def _children(pid: int) -> tuple[int, int]:
    """(children, zombies) of process ``pid``, read from /proc."""
    me = str(pid)
    children = zombies = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me:
            children += 1
            zombies += fields[0] == "Z"
    return children, zombies


def _private_base() -> str:
    """Where sockharness makes its private directories: ``$TMPDIR``, or ``/tmp`` if too long."""
    base = tempfile.gettempdir()
    return "/tmp" if len(os.fsencode(base)) > 60 and os.path.isdir("/tmp") else base


def _temp_entries() -> int:
    """Entries (directories and what they hold) under sockharness's private directories."""
    base = _private_base()
    total = 0
    for name in os.listdir(base):
        if name.startswith(PRIVATE_PREFIXES):
            total += 1
            for _, dirs, files in os.walk(os.path.join(base, name)):
                total += len(dirs) + len(files)
    return total


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def _threads_of(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/status has no thread count")


#: How long a sample may wait for its threads and descriptors to come back down to the
#: previous sample's (see :func:`_settled_counts`).
SETTLE_WITHIN = 1.0


def _counts(pid: int | None) -> tuple[int, int]:
    """(threads, descriptors) of this process (``None``) or of process ``pid``."""
    if pid is None:
        # Less the listing's own descriptor.
        return threading.active_count(), len(os.listdir("/proc/self/fd")) - 1
    return _threads_of(pid), len(os.listdir(f"/proc/{pid}/fd"))


def _settled_counts(pid: int | None, before: Sample | None) -> tuple[int, int]:
    """The (threads, descriptors) of this process or ``pid``'s, once no more than
    ``before``'s, or the least seen within :data:`SETTLE_WITHIN`.

    The step before a sample ended on a request whose other end is still
    finishing: the API server's handler thread and connection, after the reply
    reached us (seen once beside the suite: one thread and one descriptor
    "grew"); in this process, the handler thread of the proxy phase's echo
    server, whose connection the closed proxy has just ended (seen once: one
    thread "grew"). What stays for a second is counted; a leak stays for good.
    """
    deadline = time.monotonic() + SETTLE_WITHIN
    threads, descriptors = _counts(pid)
    while (
        before is not None
        and (threads > before.threads or descriptors > before.descriptors)
        and time.monotonic() < deadline
    ):
        time.sleep(0.01)  # No event tells when a thread of a server or process ends.
        now = _counts(pid)
        threads, descriptors = min(threads, now[0]), min(descriptors, now[1])
    return threads, descriptors


def sample(cycle: int, pid: int | None = None, before: Sample | None = None) -> Sample:
    """Take a sample of this process, after a garbage collection (what is unreachable is
    not a leak), or of process ``pid``; settled against ``before``, the previous sample."""
    if pid is None:
        gc.collect()
    threads, descriptors = _settled_counts(pid, before)
    me = os.getpid() if pid is None else pid
    children, zombies = _children(me)
    return Sample(
        cycle=cycle,
        threads=threads,
        descriptors=descriptors,
        children=children,
        zombies=zombies,
        temp_entries=_temp_entries(),
        rss_mb=round(_rss_mb(me), 2),
    )


def judge(result: PhaseResult, rss_budget_mb: float) -> None:
    """Fill ``result.broken``: any count above the first sample's, or RSS over the budget."""
    if len(result.samples) < 2:
        result.broken.append(
            f"only {len(result.samples)} sample(s): run at least twice as many cycles as a sample"
        )
        return
    first, last = result.samples[0], result.samples[-1]
    for name in COUNTS:
        before, after = getattr(first, name), getattr(last, name)
        if after > before:
            result.broken.append(f"{name} grew from {before} to {after}")
    growth = last.rss_mb - first.rss_mb
    if growth >= rss_budget_mb:
        result.broken.append(f"RSS grew {growth:.1f} MB (budget {rss_budget_mb:g} MB)")


# -- the subjects ---------------------------------------------------------------------------


def _server_mix() -> list[dict[str, Any]]:
    kinds = ["tcp", "udp", "unix", "unix_dgram"]
    if sockharness.harness.has_ipv6_loopback():
        kinds += ["tcp6", "udp6"]
    mix: list[dict[str, Any]] = [
        {"kind": kind, "concurrency": concurrency}
        for kind in kinds
        for concurrency in ("sync", "threading", "forking")
    ]
    mix.append({"kind": "tcp", "concurrency": "threading", "tls": True})
    mix.append({"kind": "tcp", "concurrency": "threading", "faults": [Slicer(7)]})
    mix.append({"kind": "unix", "concurrency": "sync", "faults": [Latency(0.001)]})
    return mix


class _Leaker:
    """Leaves one thing behind per call, to show that the soak's verdict can fail."""

    def __init__(self, kind: str | None) -> None:
        self.kind = kind
        self.kept: list[Any] = []
        self._release = threading.Event()

    def __call__(self) -> None:
        if self.kind == "thread":
            thread = threading.Thread(target=self._release.wait, args=(60,), daemon=True)
            thread.start()
            self.kept.append(thread)
        elif self.kind == "descriptor":
            self.kept.append(socket.socket())
        elif self.kind == "child":
            pid = os.fork()
            if pid == 0:
                os._exit(0)  # Never waited for: a zombie until the soak ends.
            self.kept.append(pid)
        elif self.kind == "file":
            self.kept.append(tempfile.mkdtemp(prefix="sh-"))

    def release(self) -> None:
        self._release.set()
        for item in self.kept:
            if isinstance(item, socket.socket):
                item.close()
            elif isinstance(item, int):
                os.waitpid(item, 0)
            elif isinstance(item, str):
                os.rmdir(item)


def _echo_once(client: Any, payload: bytes, what: str) -> None:
    """One request on ``client``, which must come back as sent; the client is closed."""
    try:
        if client.request(payload) != payload:
            raise AssertionError(f"{what}: the echo came back wrong")
    finally:
        client.close()


def server_cycles(count: int, leaker: _Leaker) -> Iterator[None]:
    """One server start, request and stop per step, every kind of the mix in turn."""
    mix = _server_mix()
    for index in range(count):
        options = dict(mix[index % len(mix)])
        with sockharness.start_server(EchoHandler, leaks="fail", **options) as server:
            _echo_once(server.connect(timeout=5.0), b"soak %d\n" % index, str(options))
        leaker()
        yield


def proxy_cycles(count: int) -> Iterator[None]:
    """One FaultProxy made, used once and closed per step, over a long-lived server per kind."""
    kinds = ("tcp", "udp", "unix")
    servers = {kind: sockharness.start_server(EchoHandler, kind, leaks="fail") for kind in kinds}
    try:
        for index in range(count):
            kind = kinds[index % len(kinds)]
            faults = [Latency(0.001)] if index % 2 else []
            with FaultProxy(servers[kind].address, kind, faults, seed=index) as proxy:
                client = sockharness.connect(proxy.address, kind, timeout=5.0)
                _echo_once(client, b"through %d\n" % index, f"{kind} proxy")
            yield
    finally:
        for server in servers.values():
            server.stop()


def scenario_cycles(count: int, path: Path | None) -> Iterator[None]:
    """One scenario run per step; each must hold."""
    text = path.read_text(encoding="utf-8") if path else SCENARIO
    scenario = parse_scenario(text, str(path or "<soak scenario>"))
    for _ in range(count):
        result = run_scenario(scenario)
        if result.result != "held":
            raise AssertionError(f"scenario {scenario.name!r}: {result.failure_message()}")
        yield


#: The config file's two forms, swapped at each reload: a proxy kept (with its toxic
#: changed), one replaced by another.
_CONFIGS = (
    """
[[proxies]]
name = "kept"
listen = "127.0.0.1:0"
upstream = "{upstream}"
[[proxies.toxics]]
type = "latency"
attributes = {{ latency = 1 }}

[[proxies]]
name = "first"
listen = "127.0.0.1:0"
upstream = "{upstream}"
""",
    """
[[proxies]]
name = "kept"
listen = "127.0.0.1:0"
upstream = "{upstream}"
[[proxies.toxics]]
type = "slicer"
attributes = {{ average_size = 3, size_variation = 1, delay = 0 }}

[[proxies]]
name = "second"
listen = "127.0.0.1:0"
upstream = "{upstream}"
""",
)


class _APIChild:
    """``sockharness proxy --api 127.0.0.1:0 --config FILE`` in a child process, its output
    read line by line with a bound on every wait."""

    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sockharness", "proxy", "--api", "127.0.0.1:0", "--config",
             str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        line = self.line(20.0)
        if " proxy API at " not in line:
            self.stop()
            raise AssertionError(f"the proxy API did not start: {line!r}")
        self.url = line.split(" proxy API at ", 1)[1].split(" ", 1)[0]

    def line(self, timeout: float) -> str:
        """The child's next line of output, within ``timeout`` seconds."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            raise AssertionError(f"the proxy API printed nothing for {timeout:g} s")
        return self.process.stdout.readline().rstrip("\n")

    def reload(self) -> None:
        """SIGHUP, and wait until it says it reloaded."""
        self.process.send_signal(signal.SIGHUP)
        line = self.line(10.0)
        if not line.startswith("sockharness: reloaded "):
            raise AssertionError(f"the reload did not happen: {line!r}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()


def _until_relays_ended(api: ProxyAPI, timeout: float = 5.0) -> None:
    """Wait (at most ``timeout``) until the API's proxies relay no connection.

    The client's side is closed by now, but the child closes its two sockets
    of that connection when its loop next sees the end: a sample taken before
    counted them (2 descriptors "grew", once under load). One that never
    ends is left for the sample to find.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = [
            line for line in api.metrics().splitlines()
            if line.startswith("sockharness_proxy_active_connections{")
        ]  # fmt: skip
        if all(line.rsplit(" ", 1)[1] == "0" for line in active):
            return
        time.sleep(0.005)  # Polled through the API: no event crosses the process.


def api_cycles(count: int, reload_every: int, directory: Path) -> Iterator[int]:
    """One proxy created, used with a toxic or without, and deleted through the HTTP API
    per step; the config file swapped and reloaded every ``reload_every`` steps. Yields
    the API's pid (the process sampled)."""
    server = sockharness.start_server(EchoHandler, leaks="fail")
    config = directory / "proxies.toml"
    host, port = server.address[:2]
    forms = [form.format(upstream=f"{host}:{port}") for form in _CONFIGS]
    config.write_text(forms[0], encoding="utf-8")
    child = None
    try:
        child = _APIChild(config)
        api = ProxyAPI(child.url, timeout=10.0)
        for index in range(count):
            proxy = api.create(f"soak-{index}", server.address)
            payload = b"api %d\n" % index
            if index % 2:
                with proxy.toxic("latency", latency=1, toxicity=1.0):
                    _echo_once(sockharness.connect(proxy.address, timeout=5.0), payload, "api")
            else:
                _echo_once(sockharness.connect(proxy.address, timeout=5.0), payload, "api")
            proxy.delete()
            if (index + 1) % reload_every == 0:
                config.write_text(forms[(index + 1) // reload_every % 2], encoding="utf-8")
                child.reload()
                kept = api.proxy("kept")
                _echo_once(sockharness.connect(kept.address, timeout=5.0), payload, "reloaded")
            _until_relays_ended(api)
            yield child.process.pid
    finally:
        if child is not None:
            child.stop()
        server.stop()
        config.unlink(missing_ok=True)


def _last(samples: list[Sample]) -> Sample | None:
    return samples[-1] if samples else None


def run_phase(
    name: str,
    steps: Callable[[], Iterator[int | None]],
    cycles: int,
    every: int,
    rss_budget: float,
) -> PhaseResult:
    """Run ``steps`` to the end, sampling every ``every`` steps after the first ``every``.

    A step yields ``None`` (sample this process) or the pid of the process to sample.
    """
    result = PhaseResult(name=name, cycles=cycles, seconds=0.0)
    began = time.monotonic()
    done = 0
    subject: int | None = None
    for done, subject in enumerate(steps(), start=1):
        if done % every == 0:
            result.samples.append(sample(done, subject, _last(result.samples)))
            print(_row(name, result.samples[-1]), flush=True)
    if done % every:
        result.samples.append(sample(done, subject, _last(result.samples)))
        print(_row(name, result.samples[-1]), flush=True)
    result.seconds = time.monotonic() - began
    judge(result, rss_budget)
    return result


def _row(phase: str, entry: Sample) -> str:
    return (
        f"{phase:<10} {entry.cycle:>7} {entry.threads:>8} {entry.descriptors:>12} "
        f"{entry.children:>9} {entry.zombies:>8} {entry.temp_entries:>12} {entry.rss_mb:>9.1f}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/soak.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--cycles", type=whole_number, default=10_000, help="server cycles")
    parser.add_argument(
        "--proxy-cycles", type=whole_number, default=1_000, help="FaultProxy cycles"
    )
    parser.add_argument("--scenario-runs", type=whole_number, default=200, help="scenario runs")
    parser.add_argument("--every", type=whole_number, default=500, help="server cycles per sample")
    parser.add_argument(
        "--proxy-every", type=whole_number, default=100, help="proxy cycles per sample"
    )
    parser.add_argument("--scenario-every", type=whole_number, default=20, help="runs per sample")
    parser.add_argument("--api-cycles", type=whole_number, default=1_000, help="proxy API cycles")
    parser.add_argument("--api-every", type=whole_number, default=100, help="API cycles per sample")
    parser.add_argument(
        "--reload-every", type=whole_number, default=10, help="API cycles per config reload"
    )
    parser.add_argument("--rss-budget", type=float, default=5.0, help="MB of RSS growth allowed")
    parser.add_argument("--scenario", type=Path, help="a scenario file instead of the built-in")
    parser.add_argument("--inject-leak", choices=LEAK_KINDS, help="leak per server cycle")
    parser.add_argument("--json", type=Path, help="write the samples and verdicts here")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for option in ("every", "proxy_every", "scenario_every", "api_every", "reload_every"):
        if getattr(args, option) == 0:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    if args.scenario is not None and not args.scenario.is_file():
        parser.error(f"--scenario {args.scenario}: no such file")
    leaker = _Leaker(args.inject_leak)
    print(
        f"{'phase':<10} {'cycles':>7} {'threads':>8} {'descriptors':>12} {'children':>9} "
        f"{'zombies':>8} {'temp entries':>12} {'RSS MB':>9}"
    )
    phases = [
        ("servers", lambda: server_cycles(args.cycles, leaker), args.cycles, args.every),
        ("proxies", lambda: proxy_cycles(args.proxy_cycles), args.proxy_cycles, args.proxy_every),
        (
            "scenarios",
            lambda: scenario_cycles(args.scenario_runs, args.scenario),
            args.scenario_runs,
            args.scenario_every,
        ),
        (
            "api",
            lambda: api_cycles(args.api_cycles, args.reload_every, Path(workspace)),
            args.api_cycles,
            args.api_every,
        ),
    ]
    results = []
    workspace = tempfile.mkdtemp(prefix="soak-api-")
    try:
        for name, steps, cycles, every in phases:
            if cycles:
                results.append(run_phase(name, steps, cycles, every, args.rss_budget))
    finally:
        leaker.release()
        os.rmdir(workspace)
    for result in results:
        verdict = "held" if not result.broken else "BROKEN: " + "; ".join(result.broken)
        first, last = result.samples[0], result.samples[-1]
        print(
            f"{result.name}: {result.cycles} cycles in {result.seconds:.1f} s "
            f"({1000 * result.seconds / result.cycles:.2f} ms each), RSS {first.rss_mb:.1f} -> "
            f"{last.rss_mb:.1f} MB: {verdict}"
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(result) for result in results], indent=2) + "\n")
    return 1 if any(result.broken for result in results) else 0


if __name__ == "__main__":
    run_as_script(main)
