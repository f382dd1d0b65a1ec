"""Running one scenario: the server, the proxy, the fault windows, the load, the verdict."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib
import math
import os
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sockharness import handlers
from sockharness._core import (
    IPv6Unavailable,
    UsageError,
    import_object,
    kind_of_class,
    old_objects_left_alone,
    parse_kind,
    server_class_for,
)
from sockharness.faults import Fault, FaultProxy, Recording, Timeline, decisions_of
from sockharness.harness import connect

from ._command import CommandRunner, address_environment
from ._invariants import RunRecord, evaluate, fired_key
from ._protocols import Workload
from ._result import ScenarioResult
from ._schema import ClientSpec, FaultWindow, Scenario, ScenarioError, ServerSpec, dotted
from ._services import ServiceRun
from ._steady import SteadyMonitor
from ._toml import line_of
from ._traffic import ProbeClient, Route, Traffic

__all__ = ["Progress", "resolve_classes", "resolve_services", "run_scenario"]

#: Called about five times a second while the load runs: (elapsed, duration, ok, failed).
Progress = Callable[[float, float, int, int], None]


def _line(scenario: Scenario, key: tuple[str | int, ...]) -> int | None:
    """The line of ``key`` (``("server", "handler")``) in the scenario's file, if readable."""
    try:
        with open(scenario.file, encoding="utf-8") as stream:
            return line_of(stream.read(), key)
    except (OSError, UnicodeDecodeError):
        return None


def _invalid(scenario: Scenario, key: str, message: str) -> ScenarioError:
    """The error for ``key`` of the scenario, pointing at its line."""
    return ScenarioError(
        scenario.file, message, key=key, line=_line(scenario, tuple(key.split(".")))
    )


def _import(scenario: Scenario, key: str, value: str) -> type:
    module_name, _, name = value.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise _invalid(
            scenario, key, f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    found: Any = module
    for part in name.split("."):
        found = getattr(found, part, None)
    if not isinstance(found, type):
        raise _invalid(scenario, key, f"{module_name!r} has no class {name!r}")
    return found


def resolve_workloads(scenario: Scenario) -> list[Workload | None]:
    """Each client group's workload function, imported (``None`` for the built-in clients),
    and last, the steady-state probe's (when the scenario has one)."""
    groups: list[tuple[ClientSpec, tuple[str | int, ...]]] = [
        (group, ("clients", index, "workload")) for index, group in enumerate(scenario.clients)
    ]
    steady = scenario.steady_state
    if steady is not None and steady.probe is not None:
        groups.append((steady.probe, ("steady_state", "probe", "workload")))
    workloads: list[Workload | None] = []
    for group, key in groups:
        if group.workload is None:
            workloads.append(None)
            continue
        try:
            found = import_object(group.workload)
        except LookupError as exc:
            raise _invalid_at(scenario, key, f"cannot import: {exc}") from None
        if not callable(found):
            raise _invalid_at(scenario, key, f"{group.workload!r} is not a function")
        workloads.append(found)
    return workloads


def check_commands(scenario: Scenario) -> None:
    """Every command workload's program can be found (on ``PATH``, or as a path)."""
    for index, group in enumerate(scenario.clients):
        if group.command is None:
            continue
        program = group.command[0]
        if shutil.which(program) is None:
            where = "is not an executable file" if os.sep in program else "is not on PATH"
            raise _invalid_at(
                scenario,
                ("clients", index, "command"),
                f"the program {program!r} {where}: install it, or give its full path",
            )


def _invalid_at(scenario: Scenario, key: tuple[str | int, ...], message: str) -> ScenarioError:
    """The error for ``key`` (a path with list indexes) of the scenario, at its line."""
    return ScenarioError(scenario.file, message, key=dotted(key), line=_line(scenario, key))


def resolve_classes(scenario: Scenario) -> tuple[type | None, type | None]:
    """The handler and server classes of the scenario's (first client group's) server,
    imported (``None`` where not given).

    Checks every service's classes and every command workload's program, so
    that everything a scenario names outside its file is checked before a run.
    """
    return resolve_services(scenario)[scenario.clients[0].service or ""]


def resolve_services(scenario: Scenario) -> dict[str, tuple[type | None, type | None]]:
    """Each service's handler and server classes, imported (``None`` where not given)."""
    check_commands(scenario)
    return {
        service.name: _service_classes(scenario, service.name, service.server)
        for service in scenario.services
    }


def _service_classes(
    scenario: Scenario, name: str, server: ServerSpec
) -> tuple[type | None, type | None]:
    if server.target is not None:
        return None, None
    where = "server" if scenario.short_form else f"services.{name}"
    if server.handler == "slow":
        handler: type | None = handlers.SlowHandler.with_delay(server.handler_delay)
    elif server.handler in handlers.BUILTIN_HANDLERS:
        handler = handlers.BUILTIN_HANDLERS[server.handler].handler
    else:
        handler = _import(scenario, f"{where}.handler", server.handler)
    server_class = (
        _import(scenario, f"{where}.server_class", server.server_class)
        if server.server_class is not None
        else None
    )
    _check_server(scenario, where, server, server_class)
    return handler, server_class


def _check_server(
    scenario: Scenario, where: str, spec: ServerSpec, server_class: type | None
) -> None:
    """The class serves the service's kind, and has every attribute the scenario sets."""
    if server_class is not None:
        try:
            own = kind_of_class(server_class).name
        except UsageError as exc:
            raise _invalid(scenario, f"{where}.server_class", str(exc)) from None
        if own != spec.kind:
            raise _invalid(
                scenario,
                f"{where}.kind",
                f"{server_class.__name__} serves {own!r}, and the scenario says kind = "
                f"{spec.kind!r}; write kind = {own!r}",
            )
        cls = server_class
    else:
        cls = server_class_for(parse_kind(spec.kind), spec.concurrency)
    known = {name for name in dir(cls) if not name.startswith("_")}
    for name in spec.attributes:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise _invalid(
                scenario,
                f"{where}.attributes.{name}",
                f"{cls.__name__} has no attribute {name!r}{hint} (attributes are set on "
                f"the server before it starts: timeout, block_on_close, daemon_threads, ...)",
            )


class _Windows:
    """The scenario's fault windows on the clock of one run."""

    def __init__(self, windows: tuple[FaultWindow, ...], started: float = math.inf) -> None:
        self.windows = windows
        #: When the run's clock started (until it does, no window is open).
        self.started = started
        #: When the faults were cut short (``abort_when``): no window is open from then on.
        self.cut_at = math.inf

    def active(self, side: str, when: float, service: str) -> tuple[Fault, ...]:
        """The faults of ``service`` on ``side`` in force at ``when``."""
        if when >= self.cut_at:
            return ()
        offset = when - self.started
        return tuple(
            w.fault
            for w in self.windows
            if w.side == side and w.service == service and w.at <= offset < w.end
        )

    def last_end(self, duration: float) -> float:
        """When the last window closes, in seconds from the start (0 without windows)."""
        return max((min(w.end, duration) for w in self.windows), default=0.0)

    def boundaries(self, sides: set[str]) -> list[float]:
        times: set[float] = set()
        for window in self.windows:
            if window.side in sides:
                times.update((self.started + window.at, self.started + window.end))
        return sorted(times)


def _schedule_proxy(
    proxy: FaultProxy,
    windows: tuple[FaultWindow, ...],
    started: float,
    stop: threading.Event,
    problems: list[str],
) -> threading.Thread:
    """A thread that adds each proxy fault at its ``at`` and removes it at its ``until``."""
    steps: list[tuple[float, int, FaultWindow]] = []
    for window in windows:
        if window.side != "proxy":
            continue
        if window.at > 0:
            steps.append((window.at, 1, window))
        steps.append((window.end, 0, window))
    steps.sort(key=lambda step: (step[0], step[1]))

    def run() -> None:
        try:
            for offset, adding, window in steps:
                if stop.wait(max(0.0, started + offset - time.monotonic())):
                    return
                if adding:
                    proxy.add(window.fault)
                else:
                    with contextlib.suppress(UsageError):  # Already cleared: nothing to undo.
                        proxy.remove(window.fault)
        except Exception:  # Shown in the verdict, not lost with the thread.
            problems.append(f"the fault schedule stopped on an error:\n{traceback.format_exc()}")

    thread = threading.Thread(target=run, name="sockharness chaos fault schedule", daemon=True)
    thread.start()
    return thread


def run_scenario(
    scenario: Scenario, *, seed: int | None = None, progress: Progress | None = None
) -> ScenarioResult:
    """Run ``scenario`` and judge it; never raises for what the server or the faults do.

    An invalid scenario (a class that cannot be imported, a server attribute
    the class lacks) raises :class:`ScenarioError` before anything starts; a
    scenario the host cannot run (no IPv6 loopback) returns a ``skipped``
    result, and one that fails to start returns a result whose ``error`` says
    why.
    """
    seed = scenario.seed if seed is None else seed
    classes = resolve_services(scenario)
    workloads = resolve_workloads(scenario)
    result = ScenarioResult(scenario=scenario, seed=seed)
    began = time.monotonic()
    try:
        # A full collection over the caller's heap stops every thread for as long as it
        # takes: the probe and the latency invariants would take it for the server's.
        with old_objects_left_alone():
            _Run(
                scenario,
                seed,
                classes=classes,
                result=result,
                progress=progress,
                workloads=workloads,
            ).run()
    except ScenarioError:
        raise
    except IPv6Unavailable as exc:
        result.skipped = str(exc)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.elapsed = time.monotonic() - began
    return result


def scenario_id(scenario: Scenario) -> str:
    """How a replay file names a scenario: its file and its name."""
    return f"{scenario.file}::{scenario.name}"


class _Once:
    """Calls ``action`` the first time it is called, and never again."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.action: Callable[[], None] | None = action

    def __call__(self) -> None:
        action, self.action = self.action, None
        if action is not None:
            action()


class _Run:
    """One run of one scenario; :meth:`run` fills in the result."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        *,
        classes: Mapping[str, tuple[type | None, type | None]],
        result: ScenarioResult,
        progress: Progress | None,
        workloads: Sequence[Workload | None] = (),
    ) -> None:
        self.scenario = scenario
        self.workloads = workloads
        self.seed = seed
        self.result = result
        self.progress = progress
        #: The services, in the order they start.
        self.services = {
            service.name: ServiceRun(
                scenario,
                service,
                handler=classes[service.name][0],
                server_class=classes[service.name][1],
                seed=seed,
            )
            for service in scenario.services
        }
        self.client_timeline = Timeline()
        self.probe: str | None = None
        self.fired: dict[tuple[str, str], set[str]] = {}
        self.monitor: SteadyMonitor | None = None

    def run(self) -> None:
        windows = _Windows(self.scenario.faults)
        # Torn down in reverse, whatever fails: the clients and the fault schedule
        # first, then the probe, then each service's proxy and server, the last
        # started first.
        with contextlib.ExitStack() as stack:
            self.start_services(stack, windows)
            if self.steady_before(stack):
                self.load_and_faults(stack, windows)
        self.judge()

    def start_services(self, stack: contextlib.ExitStack, windows: _Windows) -> None:
        """Start each service after those it needs; with a steady state to check first, the
        proxies' first faults wait."""
        reached: dict[str, Any] = {}
        for name, service in self.services.items():
            service.start(
                stack,
                lambda service_name, when: windows.active("server", when, service_name),
                reached,
                hold_first_faults=self.scenario.steady_state is not None,
            )
            reached[name] = service.address

    def route(self, group: ClientSpec, windows: _Windows | None = None) -> Route:
        """Where ``group``'s clients go (its service, through the proxy when there is one)."""
        service = self.services[self.service_name(group)]
        name = service.name
        return Route(
            address=service.address,
            kind=service.spec.kind,
            tls=service.client_tls(),
            client_faults=(lambda when: windows.active("client", when, name))
            if windows is not None
            else (lambda when: ()),
            command_environment=self.command_environment(service),
        )

    def service_name(self, group: ClientSpec) -> str:
        """The service a (resolved) client group addresses."""
        assert group.service is not None
        return group.service

    def steady_before(self, stack: contextlib.ExitStack) -> bool:
        """Check the steady state before any fault (``True`` without one); then add the
        proxies' first faults."""
        if self.scenario.steady_state is None:
            return True
        self.monitor = monitor = self.steady_monitor()
        stack.callback(monitor.client.close)
        self.result.steady = monitor.record
        self.result.clock_started = time.monotonic()
        if not monitor.check_before():
            return False
        for service in self.services.values():
            service.add_first_faults()
        return True

    def load_and_faults(self, stack: contextlib.ExitStack, windows: _Windows) -> None:
        """The load, the fault schedule and the probe for the scenario's duration; then the
        recovery, and the probe after the faults."""
        scenario = self.scenario
        stop = threading.Event()
        traffic = Traffic(  # Builds the message bodies: before the clock starts.
            scenario.clients,
            routes=[self.route(group, windows) for group in scenario.clients],
            seed=self.seed,
            duration=scenario.duration,
            timeline=self.client_timeline,
            workloads=self.workloads,
        )
        schedule: list[threading.Thread] = []
        wind_down = _Once(lambda: self.wind_down(stop, traffic, schedule))
        stack.callback(wind_down)
        # The clock starts now, with everything listening and ready.
        started = time.monotonic()
        windows.started = started
        self.result.clock_started = started
        for service in self.services.values():
            if service.proxy is not None:
                schedule.append(
                    _schedule_proxy(
                        service.proxy, service.windows, started, stop, self.result.problems
                    )
                )
        if self.monitor is not None:
            monitor = self.monitor
            monitor.start_during(lambda reason: self.abort(stop, windows))
            # Stopped however the run ends (an error, Ctrl-C), not only after the faults.
            stack.callback(monitor.stop_during, 2 * self.probe_timeout() + 5.0)
        traffic.start(started, windows.boundaries({"client", "server"}))
        self.wait(traffic, started, stop)
        wind_down()
        if self.monitor is not None:
            self.after_the_faults(self.monitor, windows, started)
        self.fired = self.fired_faults()
        self.probe = self.probe_serving()

    def judge(self) -> None:
        """Fill in the result's invariants from what the run saw."""
        scenario = self.scenario
        self.result.fired = [
            repr(window.fault) in self.fired.get(fired_key(window), set())
            for window in scenario.faults
        ]
        self.result.recording = self.recording()
        started = [service for service in self.services.values() if service.server is not None]
        self.result.handler_errors = [
            error if scenario.short_form else f"{service.name}: {error}"
            for service in started
            for error in service.handler_errors
        ]
        took = [service.shutdown_took for service in started if service.shutdown_took is not None]
        leaks = [
            service.leaks if scenario.short_form else f"{service.name}: {service.leaks}"
            for service in started
            if service.leaks
        ]
        self.result.invariants = evaluate(
            RunRecord(
                scenario=scenario,
                messages=tuple(self.result.messages),
                fired={key: frozenset(names) for key, names in self.fired.items()},
                probe=self.probe,
                server_started=bool(started),
                shutdown_took=max(took) if took else None,
                leaks="\n".join(leaks) if leaks else None,
                handler_errors=tuple(self.result.handler_errors),
                problems=tuple(self.result.problems),
                steady=self.result.steady,
            )
        )

    def command_environment(self, service: ServiceRun) -> dict[str, str]:
        """What a command workload of ``service``'s clients finds in its environment: every
        service by name, and its own as ``SOCKHARNESS_SERVER_*``."""
        environment: dict[str, str] = {}
        for other in self.services.values():
            environment |= other.environment()
        return environment | service.environment("server")

    # -- the steady state ---------------------------------------------------------------------

    def steady_monitor(self) -> SteadyMonitor:
        """The probe of the steady state: its own client, to where its service's load goes."""
        steady = self.scenario.steady_state
        assert steady is not None
        assert steady.probe is not None
        own = len(self.scenario.clients) < len(self.workloads)
        client = ProbeClient(
            steady.probe,
            route=self.route(steady.probe),
            seed=self.seed,
            workload=self.workloads[-1 if own else 0] if self.workloads else None,
        )
        return SteadyMonitor(steady, client)

    def abort(self, stop: threading.Event, windows: _Windows) -> None:
        """``abort_when`` came true (in the probe's thread): stop the run, take the faults away."""
        windows.cut_at = time.monotonic()
        stop.set()
        for service in self.services.values():
            with contextlib.suppress(Exception):  # Cleared again once the schedule stopped.
                service.clear_faults()

    def probe_timeout(self) -> float:
        """The steady-state probe's timeout (one exchange's longest wait)."""
        steady = self.scenario.steady_state
        assert steady is not None
        assert steady.probe is not None
        return steady.probe.timeout

    def after_the_faults(self, monitor: SteadyMonitor, windows: _Windows, started: float) -> None:
        """Stop the probe of the run, take every fault away, and wait for the steady state."""
        if not monitor.stop_during(2 * self.probe_timeout() + 5.0):
            self.result.problems.append("the steady-state probe did not stop in time")
        now = time.monotonic()
        windows.cut_at = min(windows.cut_at, now)
        for service in self.services.values():
            service.clear_faults()
        record = monitor.record
        if record.aborted_at is not None:
            ended = record.aborted_at
        else:
            last = windows.last_end(self.scenario.duration)
            ended = now if last >= self.scenario.duration else started + last
        monitor.recover(ended)

    def wait(self, traffic: Traffic, started: float, stop: threading.Event) -> None:
        """Let the load run its duration, reporting progress."""
        duration = self.scenario.duration
        end = started + duration
        while not stop.wait(min(0.2, max(0.0, end - time.monotonic()))):
            if self.progress is not None:
                ok, failed = traffic.counts()
                self.progress(time.monotonic() - started, duration, ok, failed)
            if time.monotonic() >= end or traffic.finished():
                break  # The time is up, or every client is done (commands that run once).
        if self.progress is not None:
            ok, failed = traffic.counts()
            self.progress(duration, duration, ok, failed)

    def wind_down(
        self, stop: threading.Event, traffic: Traffic, schedule: list[threading.Thread]
    ) -> None:
        """Stop the clients and the fault schedule, and keep what the clients saw."""
        stop.set()
        # One exchange may wait its timeout to connect, to send and to receive.
        longest = max(group.timeout for group in self.scenario.clients)
        messages, problems = traffic.stop(3 * longest + 2.0)
        for thread in schedule:
            thread.join(5.0)
            if thread.is_alive():
                problems.append(
                    "the fault schedule did not stop within 5 s (a change to the proxy's faults "
                    "is stuck)"
                )
        self.result.messages = messages
        self.result.problems.extend(problems)

    def source(self, service: str, side: str) -> str:
        """How recordings name a side of a service: ``proxy``, or ``db proxy`` of several."""
        return side if self.scenario.short_form or side == "client" else f"{service} {side}"

    def recording(self) -> Recording:
        """The run's seed, fault windows and decisions, for a replay file."""
        sources: list[tuple[str, Timeline]] = [("client", self.client_timeline)]
        for name, service in self.services.items():
            if service.proxy is not None:
                sources.append((self.source(name, "proxy"), service.proxy.timeline))
            if service.server is not None:
                sources.append((self.source(name, "server"), service.server.fault_timeline))
        windows: dict[str, list[str]] = {}
        for window in self.scenario.faults:
            span = f"from {window.at:g} s" + (
                f" until {window.until:g} s" if window.until is not None else ""
            )
            source = self.source(window.service or "", window.side)
            if window.side == "client" and not self.scenario.short_form:
                span += f" (clients of {window.service})"
            windows.setdefault(source, []).append(f"{window.fault!r} {span}")
        return Recording(
            name=scenario_id(self.scenario),
            seed=self.seed,
            plans=[{"source": side, "faults": faults} for side, faults in windows.items()],
            decisions=decisions_of(sources),
            extra={"file": str(self.scenario.file), "scenario": self.scenario.name},
        )

    def fired_faults(self) -> dict[tuple[str, str], set[str]]:
        """The faults (by repr) that did something, per (service, side).

        The clients' timeline is shared: a client fault counts as fired for a
        service when one of its clients' connections fired it.
        """
        fired: dict[tuple[str, str], set[str]] = {}
        for name, service in self.services.items():
            fired[(name, "client")] = self.client_timeline.fired
            fired[(name, "proxy")] = (
                service.proxy.timeline.fired if service.proxy is not None else set()
            )
            fired[(name, "server")] = (
                service.server.fault_timeline.fired if service.server is not None else set()
            )
        return fired

    def probe_serving(self) -> str | None:
        """After the faults: a fresh client's request gets its reply (``None``) or why not."""
        if not self.scenario.expect.serving_after_faults:
            return None
        for service in self.services.values():
            service.clear_faults()
        group = self.scenario.clients[0]
        service = self.services[self.service_name(group)]
        # Straight to the server when sockharness started it, past its proxy.
        target = service.upstream if service.server is not None else service.address
        route = dataclasses.replace(self.route(group), address=target)
        if group.command is not None:
            return self.probe_command(group, route)
        if group.workload is not None or group.protocol != "echo":
            return self.probe_protocol(group, route)
        return self.probe_echo(group, route)

    def probe_echo(self, group: ClientSpec, route: Route) -> str | None:
        """The probe of an echo group: one numbered line, its reply checked."""
        probe = b"0:0:sockharness probe\n"
        expected = {"echo": probe, "upper": probe.upper()}.get(group.reply or "any")
        problem = None
        for _ in range(3):
            try:
                with connect(
                    route.address, route.kind, tls=route.tls, timeout=group.timeout
                ) as client:
                    client.send(probe)
                    if group.reply == "none":
                        return None
                    if group.pattern == "connect-per-request":
                        client.shutdown_write()
                        got = client.recv_all()
                    elif group.pattern == "datagram":
                        got = client.recv()
                    elif expected is not None:
                        got = client.recv_exactly(len(expected))
                    else:
                        got = client.recv_line()
                if (expected is None and got) or got == expected:
                    return None
                problem = f"the probe request got {got[:80]!r}, expected {expected!r}"
            except Exception as exc:
                problem = f"the probe request failed: {type(exc).__name__}: {exc}"
        return problem

    def probe_command(self, group: ClientSpec, route: Route) -> str | None:
        """The probe of a command group: one more run, straight to the server."""
        assert group.command is not None
        environment = dict(route.command_environment) | address_environment("server", route.address)
        runner = CommandRunner(
            group.command, environment=environment, timeout=group.timeout, client_id=0
        )
        outcome, detail = runner.run(0)
        return (
            None
            if outcome == "ok"
            else f"the command's run after the faults was {outcome}: {detail}"
        )

    def probe_protocol(self, group: ClientSpec, route: Route) -> str | None:
        """The probe of a group that speaks its own protocol (or runs a workload): one of
        its exchanges, straight to the server, judged as the load's are."""
        probe = ProbeClient(
            group,
            route=route,
            seed=self.seed,
            workload=self.workloads[0] if self.workloads else None,
        )
        problem = None
        for _ in range(3):
            try:
                message = probe.exchange()
                outcome, detail = message.outcome, message.detail
            except Exception as exc:  # A bug in the exchange: the probe failed, and says why.
                outcome, detail = "error", f"{type(exc).__name__}: {exc}"
            finally:
                probe.close()
            if outcome == "ok":
                return None
            problem = f"the probe request was {outcome}: {detail}"
        return problem
