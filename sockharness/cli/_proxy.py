"""``sockharness proxy``: run a fault proxy in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from sockharness._core import UsageError, parse_address, parse_kind, plural

from ._serve import format_address


def run_proxy(
    *,
    listen: str | None,
    upstream: str,
    kind_name: str,
    fault_texts: list[str],
    seed: int,
    network_profile: str | None = None,
    verbose: bool = False,
    out: TextIO | None = None,
) -> int:
    """Relay until SIGINT or SIGTERM; return the exit status."""
    out = sys.stdout if out is None else out
    from sockharness.faults import FaultProxy, parse_fault
    from sockharness.faults import network_profile as profile_faults

    kind = parse_kind(kind_name)
    faults = [] if network_profile is None else list(profile_faults(network_profile, kind))
    faults += [parse_fault(text) for text in fault_texts]
    upstream_address = parse_address(upstream, kind, "--upstream", connect=True)
    listen_address = None if listen is None else parse_address(listen, kind, "--listen")
    try:
        with (
            _signals_to_read(_STOPPING) as next_signal,
            FaultProxy(upstream_address, kind, faults, listen=listen_address, seed=seed) as proxy,
        ):
            if verbose:
                proxy.watch(_printer(out))
            print(
                f"sockharness: proxy {kind.name} at {format_address(kind, proxy.address)} -> "
                f"{format_address(kind, proxy.upstream)} with faults {list(proxy.faults)} "
                f"(seed {seed}); Ctrl-C stops",
                file=out,
                flush=True,
            )
            next_signal()
            stats = proxy.stats
        print(
            f"sockharness: stopped after "
            f"{plural(stats.connections, 'connection' if kind.stream else 'flow')}, "
            f"{plural(stats.upstream_bytes, 'byte')} up, "
            f"{plural(stats.downstream_bytes, 'byte')} down"
            + (
                f", {plural(stats.dropped_datagrams, 'datagram')} dropped"
                if not kind.stream
                else ""
            ),
            file=out,
            flush=True,
        )
    finally:
        if listen_address is not None and kind.unix:
            try:
                os.unlink(listen_address)
            except OSError:
                pass
    return 0


def run_api(
    address: str,
    *,
    seed: int,
    any_host: bool,
    config: str | None = None,
    verbose: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Serve the Toxiproxy-compatible API at ``address`` until SIGINT or SIGTERM; SIGHUP
    reloads the config file."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    from sockharness.control import ProxyAPIServer

    host, _, port_text = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise UsageError(
            f"--api {address!r} is not HOST:PORT (for example 127.0.0.1:8474)"
        ) from None
    if not 0 <= port <= 65535:
        raise UsageError(f"--api {address!r}: {port} is not a port number (0-65535)")
    with _signals_to_read((*_STOPPING, signal.SIGHUP)) as next_signal:
        watch = _printer(out) if verbose else None
        with ProxyAPIServer(
            host, port, seed=seed, any_host=any_host, config=config, watch=watch
        ) as api:
            loaded = f", {plural(len(api.registry.names()), 'proxy', 'proxies')} from {config}"
            print(
                f"sockharness: proxy API at {api.url} (seed {seed}"
                f"{loaded if config else ''}); Ctrl-C stops"
                + ("; SIGHUP reloads the config" if config else ""),
                file=out,
                flush=True,
            )
            while next_signal() == signal.SIGHUP:
                _reload(api, out, err)
            count = len(api.registry.names())
        print(
            f"sockharness: stopped, with {plural(count, 'proxy', 'proxies')}", file=out, flush=True
        )
    return 0


_STOPPING = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _signals_to_read(handled: tuple[signal.Signals, ...]) -> Iterator[Callable[[], int]]:
    """Yield a call that blocks until one of ``handled`` comes, and returns which.

    The signals are written to a pipe by the interpreter itself
    (``signal.set_wakeup_fd``), and their Python handlers do nothing: no lock
    is taken in a handler (an ``Event.set()`` there can deadlock against the
    main thread), and the main thread sleeps in a read, not a polling loop.
    """
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous = {sig: signal.signal(sig, lambda signum, frame: None) for sig in handled}
    previous_fd = signal.set_wakeup_fd(write_end)
    wanted = {int(sig) for sig in handled}

    def next_signal() -> int:
        while True:
            for signum in os.read(read_end, 64):
                if signum in wanted:
                    return signum

    try:
        yield next_signal
    finally:
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(read_end)
        os.close(write_end)


def _reload(api: Any, out: TextIO, err: TextIO) -> None:
    """SIGHUP: apply the config file again; a bad one changes nothing and says why."""
    if api.config is None:
        print("sockharness: SIGHUP, and no --config to reload", file=err, flush=True)
        return
    try:
        names = api.reload()
    except UsageError as exc:
        print(f"sockharness: reload failed, nothing changed: {exc}", file=err, flush=True)
        return
    print(
        f"sockharness: reloaded {api.config}: {', '.join(names) or 'no proxies'}",
        file=out,
        flush=True,
    )


def _printer(out: TextIO) -> Any:
    """What ``-v`` does with each line: print it at once, stamped with the time."""
    lock = threading.Lock()

    def show(line: str) -> None:
        stamp = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"
        with lock:
            print(f"{stamp} {line}", file=out, flush=True)

    return show
