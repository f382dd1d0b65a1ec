"""What an exploration found: one outcome per case, the verdict, and how to replay a case."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sockharness._core import SockharnessError, plural
from sockharness.harness import HandlerError

from ._cases import Case, parse_case

__all__ = ["Exploration", "ExplorationFailed", "Outcome"]


class ExplorationFailed(SockharnessError, AssertionError):
    """Cases of an exploration failed; the message lists them, with a line to replay the first.

    ``exploration`` is the :class:`Exploration` itself.
    """

    def __init__(self, message: str, *, exploration: Exploration) -> None:
        super().__init__(message)
        self.exploration = exploration


@dataclass
class Outcome:
    """One case as it went.

    ``reply``: what the built-in client read (``None`` with a client of your
    own, whose return value is ``result``); ``error``: what the client raised
    or met (a reset, a timeout); ``connections``: how many the server took;
    ``handler_errors``: what the handlers raised meanwhile; ``handler_ended``:
    whether they were done within the timeout;
    ``failure``: why the case failed, or ``None`` when it held.
    """

    case: Case
    reply: bytes | None = None
    result: Any = None
    error: BaseException | None = None
    client_ended: bool = True
    connections: int = 0
    handler_errors: list[HandlerError] = field(default_factory=list)
    handler_ended: bool = True
    failure: str | None = None
    elapsed: float = 0.0

    @property
    def held(self) -> bool:
        """Whether the case held (no check failed)."""
        return self.failure is None


def _size(size: int) -> str:
    return f"{size}-byte"


@dataclass
class Exploration:
    """The result of :func:`~sockharness.explore.exchanges`.

    ``outcomes``: one per case explored, in order (the baseline apart);
    ``baseline``: the exchange with no case applied, the one the others are
    compared with; when it fails, no case runs and the exploration fails.
    ``not_run``: the cases after one whose handler hung (the exploration
    stops there: a hung handler may hold the server).
    """

    target: str
    request_size: int
    reply_size: int
    baseline: Outcome
    outcomes: list[Outcome]
    not_run: list[Case]
    elapsed: float
    replay_line: Callable[[Case], str] = field(repr=False)

    @property
    def failures(self) -> list[Outcome]:
        """The outcomes that failed (the baseline's first, when it failed)."""
        failed = [outcome for outcome in self.outcomes if not outcome.held]
        return ([self.baseline] if not self.baseline.held else []) + failed

    @property
    def ok(self) -> bool:
        """Whether every case held (and the baseline did)."""
        return not self.failures

    def replay(self, case: Case | str) -> str:
        """A line that runs ``case`` again, alone."""
        return self.replay_line(case if isinstance(case, Case) else parse_case(case))

    def format(self, limit: int = 20) -> str:
        """The report: what was explored, how many cases failed and why, a line to replay."""
        head = (
            f"explored {plural(len(self.outcomes), 'case')} of {self.target}: a "
            f"{_size(self.request_size)} request and its {_size(self.reply_size)} reply, "
            f"in {self.elapsed:.2f} s"
        )
        failures = self.failures
        if not failures:
            return f"{head}: every case held"
        lines = [f"{head}: {len(failures)} failed"]
        if not self.baseline.held:
            lines[0] = f"{head}: the exchange fails with no case applied, so no case was explored"
        width = max(len(str(outcome.case)) for outcome in failures[:limit])
        for outcome in failures[:limit]:
            lines.append(f"  {outcome.case!s:<{width}}  {outcome.failure}")
        if len(failures) > limit:
            lines.append(f"  ... and {len(failures) - limit} more")
        if self.not_run:
            lines.append(
                f"stopped at {self.outcomes[-1].case}, which hung: "
                f"{plural(len(self.not_run), 'case')} not run"
            )
        lines.append(f"replay the first: {self.replay(failures[0].case)}")
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        """Raise :class:`ExplorationFailed` with the report when a case failed."""
        __tracebackhide__ = True
        if not self.ok:
            raise ExplorationFailed(self.format(), exploration=self)
