"""One service of a run: its server (or outside target), its fault proxy, and its teardown."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

from sockharness._core import parse_address, parse_kind
from sockharness.faults import Fault, FaultProxy
from sockharness.harness import RunningServer, describe_address, start_server

from ._command import address_environment
from ._schema import Scenario, ServerSpec, Service

__all__ = ["ServiceRun"]

#: Which server-side faults are in force at a time: (service, time.monotonic()) -> faults.
ActiveFaults = Callable[[str, float], tuple[Fault, ...]]


def _target_address(server: ServerSpec) -> Any:
    assert server.target is not None
    return parse_address(server.target, parse_kind(server.kind), "the target", connect=True)


def _check_reachable(spec: ServerSpec, address: Any, where_in_file: str) -> None:
    """An outside stream target accepts a connection, or the run cannot start: say why.

    (Through the proxy, a target with nothing listening would look like a
    connection reset at every message.)
    """
    if not spec.stream:
        return
    kind = parse_kind(spec.kind)
    where = describe_address(kind, address)
    try:
        with socket.socket(kind.family, socket.SOCK_STREAM) as probe:
            probe.settimeout(5.0)
            probe.connect(address)
    except (ConnectionRefusedError, FileNotFoundError):
        raise ConnectionRefusedError(
            f"the target {where} refused the connection: nothing is listening there (start "
            f"the service first, or fix {where_in_file} target)"
        ) from None
    except OSError as exc:
        raise ConnectionError(f"the target {where} cannot be reached: {exc}") from None


class ServiceRun:
    """One service while a scenario runs.

    :meth:`start` starts its server (or checks that its outside target
    answers) and, when the service needs one, the fault proxy in front of
    it; :attr:`address` is then where its clients go. :meth:`stop_server`
    stops the server and keeps how long that took, what it leaked and what
    its handlers raised.
    """

    def __init__(
        self,
        scenario: Scenario,
        service: Service,
        *,
        handler: type | None,
        server_class: type | None,
        seed: int,
    ) -> None:
        self.scenario = scenario
        self.service = service
        self.spec = service.server
        self.handler = handler
        self.server_class = server_class
        self.seed = seed
        self.server: RunningServer | None = None
        self.proxy: FaultProxy | None = None
        #: The server itself (past the proxy), once started.
        self.upstream: Any = None
        #: Where its clients go: the proxy when there is one, else the server.
        self.address: Any = None
        #: The proxy's faults from 0 s, added at once or once the steady state held.
        self.first_faults: list[Fault] = []
        self.shutdown_took: float | None = None
        self.leaks: str | None = None
        self.handler_errors: list[str] = []

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def windows(self) -> tuple[Any, ...]:
        """The scenario's fault windows that strike this service."""
        return self.scenario.faults_of(self.name)

    def start(
        self,
        stack: contextlib.ExitStack,
        active: ActiveFaults,
        reached: Mapping[str, Any],
        *,
        hold_first_faults: bool,
    ) -> None:
        """Start the server and the proxy, torn down by ``stack``; ``reached`` holds the
        addresses of the services started before (for ``{db.address}`` in attributes)."""
        spec = self.spec
        if spec.target is None:
            self.start_server(active, reached)
            assert self.server is not None
            stack.callback(self.stop_server)
            self.upstream = self.server.address
        else:
            self.upstream = _target_address(spec)
            where = "[server]" if self.scenario.short_form else f"[services.{self.name}]"
            _check_reachable(spec, self.upstream, where)
        self.address = self.upstream
        self.first_faults = [w.fault for w in self.windows if w.side == "proxy" and w.at == 0]
        if spec.target is not None or any(w.side == "proxy" for w in self.windows):
            now = [] if hold_first_faults else self.first_faults
            self.proxy = FaultProxy(self.upstream, spec.kind, now, seed=self.seed)
            stack.callback(self.proxy.close)
            self.address = self.proxy.address

    def start_server(self, active: ActiveFaults, reached: Mapping[str, Any]) -> None:
        spec = self.spec
        server_faults = [w.fault for w in self.windows if w.side == "server"]
        assert self.handler is not None
        windowed = bool(server_faults) and spec.stream
        name = self.name
        self.server = start_server(
            self.handler,
            spec.kind,
            concurrency=None if self.server_class is not None else spec.concurrency,
            tls=spec.tls,
            server_class=self.server_class,
            faults=server_faults or None,
            # Each accepted connection gets the server-side faults whose window is open.
            select_faults=(lambda: active(name, time.monotonic())) if windowed else None,
            seed=self.seed,
            leaks="off",
            **self.service.attributes_with(reached),
        )

    def add_first_faults(self) -> None:
        """Add the proxy's faults from 0 s (held back while the steady state was checked)."""
        if self.proxy is not None:
            for fault in self.first_faults:
                self.proxy.add(fault)

    def clear_faults(self) -> None:
        """Take every fault off the proxy."""
        if self.proxy is not None:
            self.proxy.clear()

    def client_tls(self) -> ssl.SSLContext | None:
        """The client context that trusts the server's certificate (``None`` without TLS)."""
        return self.server.client_tls_context if self.server is not None else None

    def environment(self, name: str | None = None) -> dict[str, str]:
        """``SOCKHARNESS_<NAME>_*`` (through the proxy) and ``_UPSTREAM_*`` (past it)."""
        name = name or self.service.environment_name
        return address_environment(name, self.address) | address_environment(
            f"{name}_upstream", self.upstream
        )

    def stop_server(self) -> None:
        server = self.server
        if server is None:
            return
        began = time.monotonic()
        server.stop(timeout=self.scenario.expect.shutdown_within + 10.0, check=False)
        self.shutdown_took = time.monotonic() - began
        self.leaks = server.leak_report()
        self.handler_errors = [f"{error.type_name}: {error.message}" for error in server.errors]
