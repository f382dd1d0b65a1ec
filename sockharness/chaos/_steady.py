"""The steady-state lifecycle: the probe before, during and after the faults, and its verdicts.

- **Before** the first fault, one check (``samples`` exchanges, one every
  ``interval``): if it fails, the system was broken before anything was done
  to it, and the run stops there as ``not steady``.
- **During** the faults and the load, the probe keeps going; ``abort_when``
  (an error rate or a median latency over a window) stops the run early.
- **After** the faults end, the probe goes on until ``samples`` exchanges in
  a row pass the check again: the recovery time is the time from the end of
  the faults to the first of them, and must be at most ``max_recovery_time``.

Every wait is bounded: a check takes ``samples`` exchanges, each bounded by
the probe's timeout; recovery is given up once it cannot come within
``max_recovery_time``.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from sockharness._core import Outcome, Phase

from ._schema import SteadyState
from ._traffic import Message, ProbeClient

__all__ = ["Sample", "SteadyMonitor", "SteadyRecord", "judge_check"]


class Sample(NamedTuple):
    """One probe exchange: when (``time.monotonic()``), how it ended, in which phase."""

    sent: float
    done: float
    outcome: Outcome
    detail: str
    phase: Phase

    @property
    def latency(self) -> float:
        """Seconds from the send to the answer (or the failure)."""
        return self.done - self.sent


def judge_check(samples: Sequence[Sample], steady: SteadyState) -> str | None:
    """Why these exchanges do not show the steady state (``None``: they do)."""
    failed = [sample for sample in samples if sample.outcome != "ok"]
    rate = len(failed) / len(samples) if samples else 1.0
    if rate > steady.max_error_rate:
        first = failed[0]
        detail = f": {first.detail}" if first.detail else ""
        return (
            f"{len(failed)} of {len(samples)} probe exchanges failed (at most "
            f"{steady.max_error_rate:.0%} allowed); the first was {first.outcome}{detail}"
        )
    limit = steady.max_latency
    if limit is not None:
        slow = [sample for sample in samples if sample.outcome == "ok" and sample.latency > limit]
        if slow:
            worst = max(sample.latency for sample in slow)
            return (
                f"{len(slow)} of {len(samples)} probe exchanges took longer than "
                f"{limit * 1000:.0f} ms (the slowest {worst * 1000:.1f} ms)"
            )
    return None


@dataclass
class SteadyRecord:
    """What the probe saw, and the lifecycle's verdicts (times on the monotonic clock)."""

    samples: list[Sample] = field(default_factory=list)
    #: Why the check before the faults failed (``None``: it held, or was not reached).
    not_steady: str | None = None
    #: Why ``abort_when`` stopped the run, and when.
    aborted: str | None = None
    aborted_at: float | None = None
    #: When the faults ended (removed, or their windows closed), and when the steady state
    #: held again (the first exchange of the check that passed).
    faults_ended: float | None = None
    recovered_at: float | None = None
    #: Why the steady state did not come back in time.
    not_recovered: str | None = None

    @property
    def recovery_time(self) -> float | None:
        """Seconds from the end of the faults until the steady state held again."""
        if self.recovered_at is None or self.faults_ended is None:
            return None
        return max(0.0, self.recovered_at - self.faults_ended)


class SteadyMonitor:
    """Runs the probe through the lifecycle and fills in a :class:`SteadyRecord`."""

    def __init__(self, steady: SteadyState, client: ProbeClient) -> None:
        self.steady = steady
        self.client = client
        self.record = SteadyRecord()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- one exchange --------------------------------------------------------------------------

    def _sample(self, phase: Phase) -> Sample:
        try:
            message: Message = self.client.exchange()
        except Exception as exc:  # A bug in a workload's import path, say: a failed sample.
            now = time.monotonic()
            sample = Sample(now, now, "error", f"{type(exc).__name__}: {exc}", phase)
        else:
            sample = Sample(message.sent, message.done, message.outcome, message.detail, phase)
        with self._lock:
            self.record.samples.append(sample)
        return sample

    def _paced(self, phase: Phase, count: int, stop: threading.Event) -> list[Sample]:
        """``count`` exchanges, one every ``interval`` (fewer if ``stop`` is set)."""
        taken: list[Sample] = []
        due = time.monotonic()
        for _ in range(count):
            if stop.wait(max(0.0, due - time.monotonic())):
                break
            taken.append(self._sample(phase))
            due = max(due + self.steady.interval, time.monotonic())  # A slow one: no burst.
        return taken

    # -- before ---------------------------------------------------------------------------------

    def check_before(self) -> bool:
        """The check before any fault; ``False`` (and ``not_steady`` says why) if it failed."""
        samples = self._paced("before", self.steady.samples, threading.Event())
        problem = judge_check(samples, self.steady)
        if problem is not None:
            self.record.not_steady = problem
        return problem is None

    # -- during ---------------------------------------------------------------------------------

    def start_during(self, on_abort: Callable[[str], None]) -> None:
        """Probe every ``interval`` until :meth:`stop_during`; call ``on_abort(reason)`` once
        when ``abort_when`` says so."""
        thread = threading.Thread(
            target=self._during, args=(on_abort,), name="sockharness steady-state probe"
        )
        thread.daemon = True
        self._thread = thread
        thread.start()

    def _during(self, on_abort: Callable[[str], None]) -> None:
        began = time.monotonic()
        due = began
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            sample = self._sample("during")
            due = max(due + self.steady.interval, time.monotonic())  # A slow one: no burst.
            if self.record.aborted is None:
                reason = self._abort_reason(began, sample.done)
                if reason is not None:
                    self.record.aborted = reason
                    self.record.aborted_at = sample.done
                    on_abort(reason)

    def _abort_reason(self, began: float, now: float) -> str | None:
        abort = self.steady.abort_when
        if abort is None or now - began < abort.window:
            return None  # The window is not full yet: too few exchanges to judge.
        with self._lock:
            recent = [
                s
                for s in self.record.samples
                if s.phase == "during" and s.done >= now - abort.window
            ]
        if not recent:
            return None
        failed = sum(1 for sample in recent if sample.outcome != "ok")
        rate = failed / len(recent)
        if abort.error_rate is not None and rate >= abort.error_rate:
            return (
                f"{failed} of {len(recent)} probe exchanges in the last {abort.window:g} s "
                f"failed ({rate:.0%}; abort_when.error_rate = {abort.error_rate:.0%})"
            )
        if abort.latency is not None:
            median = statistics.median(sample.latency for sample in recent)
            if median >= abort.latency:
                return (
                    f"the probe's median latency over the last {abort.window:g} s was "
                    f"{median * 1000:.1f} ms (abort_when.latency = {abort.latency * 1000:.0f} ms)"
                )
        return None

    def stop_during(self, timeout: float) -> bool:
        """Stop the probe of the run; ``False`` if it did not stop within ``timeout``."""
        self._stop.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    # -- after ----------------------------------------------------------------------------------

    def recover(self, faults_ended: float) -> None:
        """From ``faults_ended`` on: find, or wait for, the steady state's return."""
        steady = self.steady
        record = self.record
        record.faults_ended = faults_ended
        # The last check that may still begin in time ends this much later.
        deadline = faults_ended + steady.max_recovery_time + steady.check_time
        pause = threading.Event()  # Never set: a bounded wait between exchanges.
        while True:
            with self._lock:
                since = [
                    s for s in record.samples if s.phase != "before" and s.sent >= faults_ended
                ]
            found = _first_passing(since, steady)
            if found is not None or time.monotonic() >= deadline:
                break
            self._sample("after")
            pause.wait(
                max(0.0, min(deadline, time.monotonic() + steady.interval) - time.monotonic())
            )
        if found is not None and found.sent - faults_ended <= steady.max_recovery_time:
            record.recovered_at = found.sent
            return
        late = f" (it held again {found.sent - faults_ended:.2f} s after)" if found else ""
        record.not_recovered = (
            f"the steady state did not hold again within {steady.max_recovery_time:g} s of the "
            f"end of the faults{late}"
        )


def _first_passing(samples: Sequence[Sample], steady: SteadyState) -> Sample | None:
    """The first exchange of the first ``samples`` in a row that pass the check."""
    count = steady.samples
    for start in range(len(samples) - count + 1):
        if judge_check(samples[start : start + count], steady) is None:
            return samples[start]
    return None
