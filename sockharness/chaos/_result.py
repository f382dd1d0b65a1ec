"""What a scenario run produced: its messages summed up, its invariants, its time series."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sockharness._core import FAILED_OUTCOMES, Phase, ScenarioOutcome
from sockharness.faults import Recording

from ._schema import FaultWindow, Scenario, ServerSpec
from ._steady import SteadyRecord
from ._traffic import Message

__all__ = ["Invariant", "ScenarioResult", "percentile", "time_series"]

_BUCKETS = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass(frozen=True)
class Invariant:
    """One expectation of the scenario and whether it held, with the evidence.

    ``vacuous``: it held only because there was nothing to judge (no message
    outside the fault windows, say): not a failure, but not evidence either,
    and the reports show it apart from the invariants that held.

    ``phase`` is the part of the run it judges: ``before`` the faults (the
    steady state), ``during`` them (the load, the faults, ``abort_when``) or
    ``after`` them (recovery, serving, shutdown, leaks).
    """

    name: str
    held: bool
    detail: str
    vacuous: bool = False
    phase: Phase = "during"


#: The invariants of the steady-state lifecycle whose failure names the result.
NOT_STEADY = "steady_before"
ABORTED = "not_aborted"


@dataclass
class ScenarioResult:
    """The outcome of one scenario: ``held``, ``broken`` (an invariant) or ``error`` (not run)."""

    scenario: Scenario
    seed: int
    elapsed: float = 0.0
    messages: list[Message] = field(default_factory=list)
    invariants: list[Invariant] = field(default_factory=list)
    handler_errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None
    #: For each of the scenario's fault windows, in order: whether the fault did something.
    fired: list[bool] = field(default_factory=list)
    #: The seed, the faults and every fault decision of the run, to replay it.
    recording: Recording | None = None
    #: The steady-state probe's exchanges and verdicts (``None``: no [steady_state]).
    steady: SteadyRecord | None = None
    #: When the run's clock started (``time.monotonic()``): what the probe's times are from.
    clock_started: float | None = None

    @property
    def result(self) -> ScenarioOutcome:
        """``"held"``; ``"not steady"`` (broken before any fault), ``"aborted"``
        (``abort_when`` stopped it), ``"broken"`` (an invariant); ``"error"`` (it
        could not run) or ``"skipped"`` (the host cannot run it)."""
        if self.skipped is not None:
            return "skipped"
        if self.error is not None:
            return "error"
        names = {invariant.name for invariant in self.broken}
        if NOT_STEADY in names:
            return "not steady"
        if ABORTED in names:
            return "aborted"
        return "broken" if names else "held"

    @property
    def failed(self) -> bool:
        """Whether the run fails (exit status 1): broken, aborted, not steady or an error."""
        return self.result in FAILED_OUTCOMES

    @property
    def broken(self) -> list[Invariant]:
        """The invariants that did not hold."""
        return [invariant for invariant in self.invariants if not invariant.held]

    @property
    def ok(self) -> list[Message]:
        """The messages that got their reply."""
        return [message for message in self.messages if message.outcome == "ok"]

    def count(self, outcome: str) -> int:
        """How many messages ended as ``outcome``."""
        return sum(1 for message in self.messages if message.outcome == outcome)

    def latency(self, share: float) -> float | None:
        """The ``share`` percentile of the ok messages' latency, in seconds."""
        return percentile([message.latency for message in self.ok], share)

    def failure_message(self, replay: str | None = None) -> str:
        """Why the scenario failed, with the seed to replay it (empty when it held).

        ``replay`` is how to pass the seed back (default ``--seed N``, as for
        ``sockharness run``).
        """
        head = f"scenario {self.scenario.name!r} ({self.scenario.file}, seed {self.seed})"
        if self.error is not None:
            return f"{head} could not run: {self.error}"
        if not self.broken:
            return ""
        verdict = {"not steady": "not steady before the faults", "aborted": "aborted"}.get(
            self.result, f"{len(self.broken)} invariant(s) broken"
        )
        lines = [f"{head}: {verdict}"]
        lines += [
            f"  {invariant.phase}: {invariant.name}: {invariant.detail}"
            for invariant in self.broken
        ]
        lines.append(
            f"  ({len(self.messages)} messages, {self.count('ok')} ok; replay with "
            f"{replay or f'--seed {self.seed}'})"
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as the reports write it."""
        scenario = self.scenario
        server = scenario.server
        return {
            "name": scenario.name,
            "file": scenario.file,
            "description": scenario.description,
            "seed": self.seed,
            "duration": scenario.duration,
            "elapsed": round(self.elapsed, 3),
            "result": self.result,
            "error": self.error or self.skipped,
            "server": _server_dict(server),
            "services": [
                {"name": service.name, "after": list(service.after)} | _server_dict(service.server)
                for service in scenario.services
            ],
            "messages": {
                "sent": len(self.messages),
                "ok": self.count("ok"),
                "failed": len(self.messages) - self.count("ok"),
                "lost": self.count("lost"),
                "corrupt": self.count("corrupt"),
                "errors": self.count("error"),
            },
            "latency": {
                "p50": _rounded(self.latency(0.5)),
                "p99": _rounded(self.latency(0.99)),
                "max": _rounded(self.latency(1.0)),
            },
            "handler_errors": len(self.handler_errors),
            "invariants": [
                {
                    "name": i.name,
                    "held": i.held,
                    "detail": i.detail,
                    "vacuous": i.vacuous,
                    "phase": i.phase,
                }
                for i in self.invariants
            ],
            "steady_state": self._steady_dict(),
            "faults": [
                _window_dict(window, fired=self.fired[index] if index < len(self.fired) else None)
                for index, window in enumerate(scenario.faults)
            ],
            "problems": list(self.problems),
            "series": time_series(self.messages, scenario.duration),
        }

    def _steady_dict(self) -> dict[str, Any] | None:
        """The probe's exchanges (times from the run's start) and the lifecycle's verdicts."""
        steady = self.steady
        if steady is None:
            return None
        zero = self.clock_started if self.clock_started is not None else 0.0

        def at(value: float | None) -> float | None:
            return None if value is None else round(value - zero, 6)

        return {
            "not_steady": steady.not_steady,
            "aborted": steady.aborted,
            "aborted_at": at(steady.aborted_at),
            "faults_ended": at(steady.faults_ended),
            "recovered_at": at(steady.recovered_at),
            "recovery_time": _rounded(steady.recovery_time),
            "not_recovered": steady.not_recovered,
            "samples": [
                {
                    "t": at(sample.sent),
                    "latency": round(sample.latency, 6),
                    "outcome": sample.outcome,
                    "phase": sample.phase,
                }
                for sample in steady.samples
            ],
        }


def _server_dict(server: ServerSpec) -> dict[str, Any]:
    return {
        "kind": server.kind,
        "concurrency": None if server.target or server.server_class else server.concurrency,
        "handler": None if server.target else server.handler,
        "tls": server.tls,
        "target": server.target,
        "server_class": server.server_class,
        "description": server.describe(),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _window_dict(window: FaultWindow, *, fired: bool | None) -> dict[str, Any]:
    return {
        "fault": repr(window.fault),
        "side": window.side,
        "service": window.service,
        "at": window.at,
        "until": window.until,
        "fired": fired,
    }


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile of ``values`` (``None`` when there are none)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-share * len(ordered) // 1))))
    return ordered[rank - 1]


def time_series(messages: Sequence[Message], duration: float) -> dict[str, Any]:
    """Messages per time bucket (by when each ended): ok and failed counts, p50 and p99."""
    bucket = next((size for size in _BUCKETS if duration / size <= 60), _BUCKETS[-1])
    end = max([duration, *(message.done for message in messages)])
    count = int(end / bucket) + 1
    ok = [0] * count
    failed = [0] * count
    latencies: list[list[float]] = [[] for _ in range(count)]
    for message in messages:
        index = min(count - 1, max(0, int(message.done / bucket)))
        if message.outcome == "ok":
            ok[index] += 1
            latencies[index].append(message.latency)
        else:
            failed[index] += 1
    return {
        "bucket": bucket,
        "t": [round(index * bucket, 6) for index in range(count)],
        "ok": ok,
        "failed": failed,
        "p50": [_rounded(percentile(values, 0.5)) for values in latencies],
        "p99": [_rounded(percentile(values, 0.99)) for values in latencies],
    }
