"""``sockharness proxy``: run a fault proxy in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
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
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with FaultProxy(upstream_address, kind, faults, listen=listen_address, seed=seed) as proxy:
            if verbose:
                proxy.watch(_printer(out))
            print(
                f"sockharness: proxy {kind.name} at {format_address(kind, proxy.address)} -> "
                f"{format_address(kind, proxy.upstream)} with faults {list(proxy.faults)} "
                f"(seed {seed}); Ctrl-C stops",
                file=out,
                flush=True,
            )
            while not stop.wait(0.5):
                pass
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
        for sig, handler in previous.items():
            signal.signal(sig, handler)
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
    stop = threading.Event()
    reload = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        (reload if signum == signal.SIGHUP else stop).set()

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    try:
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
            while not stop.wait(0.2):
                if reload.is_set():
                    reload.clear()
                    _reload(api, out, err)
            count = len(api.registry.names())
        print(
            f"sockharness: stopped, with {plural(count, 'proxy', 'proxies')}", file=out, flush=True
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


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
