"""The ``[expect]`` section, judged against what a run saw."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from sockharness._core import Phase

from ._result import ABORTED, NOT_STEADY, Invariant, percentile
from ._schema import FaultWindow, Scenario
from ._steady import SteadyRecord
from ._traffic import Message

__all__ = ["RunRecord", "evaluate", "fired_key"]


@dataclass(frozen=True)
class RunRecord:
    """What one run of a scenario saw, frozen once the run is over: what the invariants judge."""

    scenario: Scenario
    messages: tuple[Message, ...]
    #: The faults (by repr) that did something, per (service, side): see :func:`fired_key`.
    fired: Mapping[tuple[str, str], frozenset[str]]
    #: Why the probe after the faults failed (``None``: it got its reply, or was not asked).
    probe: str | None
    #: Whether sockharness started the server (not an outside target).
    server_started: bool
    shutdown_took: float | None
    leaks: str | None
    handler_errors: tuple[str, ...]
    problems: tuple[str, ...]
    #: The steady-state probe's record (``None``: the scenario has no [steady_state]).
    steady: SteadyRecord | None = None


def fired_key(window: FaultWindow) -> tuple[str, str]:
    """Where a window's fault is looked for among those that fired: (service, side)."""
    return (window.service or "", window.side)


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def _outside_faults(run: RunRecord, message: Message) -> bool:
    """Whether the message was sent and answered clear of every window (plus the grace)."""
    grace = run.scenario.expect.grace
    return not any(
        window.covers(message.sent, message.done, grace) for window in run.scenario.faults
    )


def _describe_failures(messages: list[Message]) -> str:
    counts = Counter(message.outcome for message in messages)
    summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
    first = messages[0]
    detail = f": {first.detail}" if first.detail else ""
    return (
        f"{summary}; the first, client {first.client} message {first.seq} sent at "
        f"{first.sent:.2f} s, was {first.outcome}{detail}"
    )


def _intact_outside_faults(run: RunRecord, messages: list[Message]) -> Invariant:
    outside = [message for message in messages if _outside_faults(run, message)]
    failed = [message for message in outside if message.outcome != "ok"]
    if not outside:
        detail = (
            "nothing to judge: no message was sent and answered outside the fault "
            "windows (and their grace)"
        )
    elif not failed:
        detail = f"all {len(outside)} messages outside the fault windows arrived intact"
    else:
        detail = (
            f"{len(failed)} of {len(outside)} messages outside the fault windows failed: "
            + _describe_failures(failed)
        )
    return Invariant("intact_outside_faults", not failed, detail, vacuous=not outside)


def _steady_state(run: RunRecord) -> list[Invariant]:
    """The lifecycle's invariants: steady before, not aborted, recovered after."""
    steady, spec = run.steady, run.scenario.steady_state
    if steady is None or spec is None:
        return []
    if steady.not_steady is not None:
        detail = f"the system was not steady before any fault: {steady.not_steady}"
        return [Invariant(NOT_STEADY, False, detail, phase="before")]
    checks = [
        Invariant(
            NOT_STEADY,
            True,
            f"{spec.samples} probe exchanges before the faults showed the steady state",
            phase="before",
        )
    ]
    if spec.abort_when is not None:
        checks.append(
            Invariant(
                ABORTED,
                steady.aborted is None,
                f"abort_when stopped the run: {steady.aborted}"
                if steady.aborted
                else "abort_when never came true",
            )
        )
    took = steady.recovery_time
    checks.append(
        Invariant(
            "recovered",
            steady.not_recovered is None,
            steady.not_recovered
            or f"the steady state held again {took or 0:.2f} s after the faults ended (at most "
            f"{spec.max_recovery_time:g} s)",
            phase="after",
        )
    )
    return checks


def evaluate(run: RunRecord) -> list[Invariant]:
    """Every invariant the scenario asks for, held or not, with the evidence."""
    expect = run.scenario.expect
    messages = list(run.messages)
    ok = [message for message in messages if message.outcome == "ok"]
    checks: list[Invariant] = _steady_state(run)
    if run.steady is not None and run.steady.not_steady is not None:
        return checks  # No fault and no load ran: nothing else to judge.

    def add(
        name: str, held: bool, detail: str, *, vacuous: bool = False, phase: Phase = "during"
    ) -> None:
        checks.append(Invariant(name, held, detail, vacuous=vacuous and held, phase=phase))

    add(
        "min_messages",
        len(ok) >= expect.min_messages,
        f"{len(ok)} messages got their reply (at least {expect.min_messages} expected)",
    )
    if expect.intact_outside_faults:
        checks.append(_intact_outside_faults(run, messages))
    if expect.max_error_rate is not None:
        rate = (len(messages) - len(ok)) / len(messages) if messages else 0.0
        add(
            "max_error_rate",
            rate <= expect.max_error_rate,
            f"{rate:.1%} of {len(messages)} messages failed (at most "
            f"{expect.max_error_rate:.1%} allowed)"
            if messages
            else "nothing to judge: no message was sent",
            vacuous=not messages,
        )
    latencies = [message.latency for message in ok]
    for name, share, limit in (
        ("max_p50_latency", 0.5, expect.max_p50_latency),
        ("max_p99_latency", 0.99, expect.max_p99_latency),
    ):
        if limit is None:
            continue
        value = percentile(latencies, share)
        add(
            name,
            value is not None and value <= limit,
            f"p{int(share * 100)} latency {_ms(value)} (at most {_ms(limit)})",
        )
    if expect.serving_after_faults:
        add(
            "serving_after_faults",
            run.probe is None,
            run.probe or "a fresh client's request got its reply after the faults ended",
            phase="after",
        )
    if run.server_started:
        took = run.shutdown_took
        add(
            "shutdown_within",
            took is not None and took <= expect.shutdown_within,
            f"the server stopped in {_ms(took)} (at most {_ms(expect.shutdown_within)})",
            phase="after",
        )
        if expect.no_leaks:
            add(
                "no_leaks",
                run.leaks is None,
                run.leaks or "no threads, descriptors, children or socket files left behind",
                phase="after",
            )
    if expect.max_handler_errors is not None:
        errors = run.handler_errors
        sample = f"; the first: {errors[0]}" if errors else ""
        add(
            "max_handler_errors",
            len(errors) <= expect.max_handler_errors,
            f"{len(errors)} handler errors (at most {expect.max_handler_errors}){sample}",
        )
    if expect.faults_fired and run.scenario.faults:
        unfired = [
            f"{window.fault!r} ({window.side}, {window.at:g}-{window.until:g} s)"
            for window in run.scenario.faults
            if repr(window.fault) not in run.fired.get(fired_key(window), set())
        ]
        add(
            "faults_fired",
            not unfired,
            "every fault did something"
            if not unfired
            else "never fired, so the scenario tested nothing with it: " + "; ".join(unfired),
        )
    if run.problems:
        add("clients_stopped", False, "; ".join(run.problems))
    return checks
