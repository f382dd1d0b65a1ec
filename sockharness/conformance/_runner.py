"""Running the properties against server classes with hypothesis, and the report.

Every property run ends, with a verdict, within its profile's budget whatever
the class does:

- every wait inside an example is bounded (``_lab.WAIT``) and cut to what is
  left of the budget; a spent budget ends the property at once;
- a failing example is shrunk only while tries are quick: one that took more
  than ``SHRINK_BELOW`` seconds (a server that hangs, so every try waits out a
  bound) is reported as found, unshrunk, and the search stops;
- the failure reported is the last (smallest) failing example the search ran,
  as recorded here, with its root cause; hypothesis's own printing is not used.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import pprint
import random
import re
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any, Literal

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky
from hypothesis.reporting import with_reporter

from sockharness._core import UsageError, format_table, old_objects_left_alone

from ._lab import Budget, BudgetSpent, Failure, budgeted
from ._properties import PROPERTIES, CheckConfig, Property
from ._target import Factory, ServerUnderTest, resolve_target

__all__ = [
    "PROFILES",
    "Profile",
    "PropertyResult",
    "Report",
    "check",
    "run_property",
]

Status = Literal["pass", "FAIL", "n/a"]

#: A failing example that took longer than this is not shrunk (each try would too).
SHRINK_BELOW = 1.0
#: Lines of what the class printed to stderr kept for a failure's report.
_STDERR_LINES = 20


@dataclass(frozen=True)
class Profile:
    """How hard to look: hypothesis's settings and the time each property may take."""

    name: str
    max_examples: int
    derandomize: bool
    shrink: bool
    #: Seconds per property on one class, examples and shrinking included.
    budget: float
    #: The same for the stateful model.
    stateful_budget: float

    def hypothesis_settings(self) -> dict[str, Any]:
        phases = [Phase.explicit, Phase.reuse, Phase.generate]
        return {
            "max_examples": self.max_examples,
            "derandomize": self.derandomize,
            "phases": [*phases, Phase.shrink] if self.shrink else phases,
        }

    def budget_for(self, prop: Property) -> float:
        return self.stateful_budget if prop.stateful else self.budget


#: ``ci`` is derandomized (the same examples every run) and bounded; ``quick`` does
#: not shrink a failure (a smoke test); ``thorough`` draws new examples every run
#: (its seed is in the report, to replay). With the ci budgets, one class takes
#: under a minute for every property but the stateful model, whatever it does.
PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile("quick", 3, derandomize=True, shrink=False, budget=5.0, stateful_budget=15.0),
        Profile("ci", 8, derandomize=True, shrink=True, budget=5.0, stateful_budget=30.0),
        Profile("thorough", 60, derandomize=False, shrink=True, budget=60.0, stateful_budget=180.0),
    )
}


@dataclass
class PropertyResult:
    """One property on one server class: ``pass``, ``FAIL`` or ``n/a``, and why.

    ``server`` is the class as ``module:Class``; ``cause`` is the root cause of
    a failure, the same words for every property it broke; ``note`` says how
    the search went where that matters (stopped unshrunk, cut by the budget).
    """

    server: str
    name: str
    kind: str
    concurrency: str
    property: str
    status: Status
    message: str = ""
    counterexample: str = ""
    seed: int | None = None
    profile: str = "ci"
    seconds: float = 0.0
    cause: str = ""
    note: str = ""
    stderr: str = ""
    factory: str | None = None

    @builtins.property
    def failed(self) -> bool:
        return self.status == "FAIL"

    def replay(self, target: str | None = None) -> str:
        """The command that replays this result (on its own class)."""
        seed = f" --seed {self.seed}" if self.seed is not None else ""
        factory = f" --factory {self.factory}" if self.factory else ""
        return (
            f"sockharness conform {self.server} --property {self.property} "
            f"--profile {self.profile}{seed}{factory}"
        )


@dataclass
class Report:
    """The results of :func:`check`: rows are server classes, columns properties."""

    target: str
    profile: str
    results: list[PropertyResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether no property failed."""
        return not any(result.failed for result in self.results)

    @property
    def failures(self) -> list[PropertyResult]:
        return [result for result in self.results if result.failed]

    def result(self, server: str, prop: str) -> PropertyResult:
        """The result of ``prop`` on the class named ``server``."""
        for result in self.results:
            if result.name == server and result.property == prop:
                return result
        raise KeyError((server, prop))

    def causes(self) -> list[tuple[str, str, list[PropertyResult]]]:
        """``(class, root cause, failed results)``, one entry per root cause of each class."""
        groups: dict[tuple[str, str], list[PropertyResult]] = {}
        for failure in self.failures:
            groups.setdefault((failure.name, failure.cause), []).append(failure)
        return [(name, cause, results) for (name, cause), results in groups.items()]

    def table(self) -> str:
        """The results as a table; under it each root cause once, with its counterexample."""
        properties = list(dict.fromkeys(r.property for r in self.results))
        servers = list(dict.fromkeys(r.name for r in self.results))
        cells = {(r.name, r.property): r.status for r in self.results}
        rows = [[server, *(cells.get((server, p), "") for p in properties)] for server in servers]
        lines = format_table(["server", *properties], rows).splitlines()
        for name, cause, results in self.causes():
            first = results[0]
            broke = ", ".join(result.property for result in results)
            lines += ["", f"FAIL {name}: {cause}", f"  broke: {broke}"]
            lines.append(f"  {first.property}: {first.message}")
            if first.counterexample:
                lines += ["    " + line for line in first.counterexample.strip().splitlines()]
            if first.note:
                lines.append(f"    ({first.note})")
            for other in results[1:]:
                if other.message != first.message:
                    lines.append(f"  {other.property}: {other.message}")
            lines.append(f"  replay: {first.replay()}")
        failed = len(self.failures)
        plural = "es" if len(servers) != 1 else ""
        causes = len(self.causes())
        lines += [
            "",
            f"{len(servers)} server class{plural}, {len(properties)} "
            f"propert{'ies' if len(properties) != 1 else 'y'}: "
            + (
                "all hold"
                if not failed
                else f"{failed} failed, from {causes} root cause{'s' if causes != 1 else ''}"
            ),
        ]
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(
            {
                "target": self.target,
                "profile": self.profile,
                "passed": self.passed,
                "results": [asdict(result) for result in self.results],
            },
            indent=2,
        )

    def to_junit_xml(self) -> str:
        suite = ET.Element(
            "testsuite",
            name=f"sockharness conformance of {self.target}",
            tests=str(len(self.results)),
            failures=str(len(self.failures)),
            skipped=str(sum(1 for r in self.results if r.status == "n/a")),
            time=f"{sum(r.seconds for r in self.results):.3f}",
        )
        for result in self.results:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=result.server,
                name=result.property,
                time=f"{result.seconds:.3f}",
            )
            if result.failed:
                failure = ET.SubElement(case, "failure", message=result.message)
                failure.text = (
                    f"root cause: {result.cause}\n{result.counterexample}\n"
                    f"replay: {result.replay()}"
                )
            elif result.status == "n/a":
                ET.SubElement(case, "skipped", message=result.message)
        return ET.tostring(suite, encoding="unicode", xml_declaration=True)


# -- one property -----------------------------------------------------------------------------


class _StopSearch(BaseException):
    """A failure was found whose tries are too slow to shrink: stop where it is."""


@dataclass
class _Attempt:
    example: str
    error: BaseException
    took: float


class Search:
    """What the examples of one property run did: the failures, in order, and the passes.

    The property calls :meth:`attempt` for each example (the stateful model
    for each step sequence), so that the report comes from what really ran.
    """

    def __init__(self) -> None:
        self.failures: list[_Attempt] = []
        self.passed = 0
        self._started = time.monotonic()

    def begin(self) -> None:
        """An example starts (for :meth:`failed`, which times it)."""
        self._started = time.monotonic()

    def attempt(self, call: Callable[[], None], example: Callable[[], str]) -> None:
        """Run one example; record how it went."""
        self.begin()
        try:
            call()
        except BudgetSpent:
            raise
        except (Exception, SystemExit) as error:
            self.failed(error, example())
            raise
        self.passed += 1

    def failed(self, error: BaseException, example: str) -> None:
        """Record a failing example; stop the search if it was too slow to shrink."""
        took = time.monotonic() - self._started
        self.failures.append(_Attempt(example, error, took))
        if took > SHRINK_BELOW:
            raise _StopSearch from error


def _cause(error: BaseException, message: str) -> str:
    if isinstance(error, Failure):
        return error.cause
    # Without a named cause: the sentence, without what varies between examples.
    text = re.split(r" \(|; |: (?=[a-z])", message, maxsplit=1)[0]
    text = re.sub(r" within [\d.]+ s", "", text)
    text = re.sub(r"b?'[^']*'", "...", text)
    return re.sub(r"\d+(\.\d+)?", "N", text)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().split("\n", 1)[0]
    if isinstance(error, AssertionError) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _Tail(io.TextIOBase):
    """A stand-in for ``sys.stderr`` keeping the last lines written to it."""

    def __init__(self) -> None:
        self._text = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._text = (self._text + text)[-20_000:]
        return len(text)

    def lines(self, count: int) -> str:
        return "\n".join(self._text.rstrip("\n").splitlines()[-count:])


@contextlib.contextmanager
def _captured_stderr() -> Iterator[_Tail]:
    """What the class prints to ``sys.stderr`` while it is checked (``handle_error()``, ...)."""
    tail = _Tail()
    previous, sys.stderr = sys.stderr, tail
    try:
        yield tail
    finally:
        sys.stderr = previous


def run_property(
    sut: ServerUnderTest,
    prop: Property,
    *,
    profile: str = "ci",
    seed: int | None = None,
    config: CheckConfig | None = None,
    factory: str | None = None,
) -> PropertyResult:
    """Check one property on one class; a quick failure shrinks to a minimal counterexample.

    Ends within the profile's budget for the property, whatever the class
    does; ``factory`` is only named in the replay line (``sut`` builds).
    """
    config = config or CheckConfig()
    chosen = PROFILES[profile]
    result = PropertyResult(
        sut.qualified, sut.name, sut.kind.name, sut.concurrency, prop.name, "pass"
    )
    result.profile = profile
    result.factory = factory
    reason = prop.applies(sut)
    if reason is not None:
        result.status, result.message = "n/a", reason
        return result
    options = chosen.hypothesis_settings()
    if not options["derandomize"] and seed is None:
        seed = random.SystemRandom().randrange(2**32)
    if seed is not None:
        options["derandomize"] = False
    result.seed = seed
    search = Search()
    test = _hypothesis_test(
        sut, prop=prop, options=options, config=config, search=search, seed=seed
    )
    limit = Budget(chosen.budget_for(prop))
    stopped: BaseException | None = None
    unexpected: BaseException | None = None
    started = time.monotonic()
    # A full collection over the caller's heap would count against the shutdown bound.
    with (
        old_objects_left_alone(),
        budgeted(limit),
        _captured_stderr() as printed,
        with_reporter(lambda text: None),
    ):
        try:
            test()
        except (_StopSearch, BudgetSpent, Flaky) as error:
            stopped = error
        except Exception as error:  # The shrunk failure, already recorded; or our own bug.
            unexpected = error
    result.seconds = time.monotonic() - started
    _judge(
        result, search=search, stopped=stopped, unexpected=unexpected, limit=limit, printed=printed
    )
    return result


def _hypothesis_test(
    sut: ServerUnderTest,
    *,
    prop: Property,
    options: dict[str, Any],
    config: CheckConfig,
    search: Search,
    seed: int | None,
) -> Callable[[], None]:
    common: dict[str, Any] = {
        "deadline": None,
        "database": None,
        "suppress_health_check": list(HealthCheck),
        "print_blob": False,
        "report_multiple_bugs": False,
    }
    if prop.stateful:
        from ._stateful import run_stateful

        def stateful() -> None:
            if seed is not None:
                random.seed(seed)
            run_stateful(sut, {**options, **common}, config, search)

        return stateful

    @settings(**options, **common)
    @given(prop.inputs(sut))
    def run(inputs: Any) -> None:
        search.attempt(
            lambda: prop.check(sut, inputs, config), lambda: f"inputs = {pprint.pformat(inputs)}"
        )

    run.__name__ = run.__qualname__ = f"{prop.name}_{sut.name}"
    return hypothesis_seed(seed)(run) if seed is not None else run


def _judge(
    result: PropertyResult,
    *,
    search: Search,
    stopped: BaseException | None,
    unexpected: BaseException | None,
    limit: Budget,
    printed: _Tail,
) -> None:
    """The verdict, from what the search recorded and how it ended."""
    if search.failures:
        last = search.failures[-1]
        result.status = "FAIL"
        result.message = _first_line(last.error)
        result.cause = _cause(last.error, result.message)
        result.counterexample = last.example
        if isinstance(stopped, _StopSearch):
            result.note = f"not shrunk: the failing try took {last.took:.1f} s"
        elif isinstance(stopped, BudgetSpent):
            result.note = f"shrinking stopped when the budget of {limit.seconds:g} s ran out"
        elif isinstance(stopped, Flaky):
            result.note = "intermittent: it failed, then passed when replayed"
        result.stderr = printed.lines(_STDERR_LINES)
    elif unexpected is not None:
        result.status = "FAIL"
        result.message = _first_line(unexpected)
        result.cause = f"the check itself failed: {result.message}"
        result.counterexample = "".join(traceback.format_exception(unexpected)[-6:])
    elif isinstance(stopped, BudgetSpent):
        if search.passed == 0:
            result.status = "FAIL"
            result.message = (
                f"no example finished within the budget of {limit.seconds:g} s: the class is "
                f"too slow to check"
            )
            result.cause = "examples take longer than the budget"
            result.stderr = printed.lines(_STDERR_LINES)
        else:
            result.note = (
                f"{search.passed} example{'s' if search.passed != 1 else ''} held within "
                f"the budget of {limit.seconds:g} s"
            )


# -- every property, every class ---------------------------------------------------------------

#: Told of each property as it ends: the result, its position, and how many there are.
ProgressCallback = Callable[[PropertyResult, int, int], None]


def check(
    target: str | ModuleType | type,
    properties: Sequence[str] | None = None,
    *,
    profile: str = "ci",
    seed: int | None = None,
    shutdown_bound: float | None = None,
    factory: str | Factory | None = None,
    progress: ProgressCallback | None = None,
) -> Report:
    """Check every property on every server class of ``target``; return the :class:`Report`.

    Args:
        target: a module like ``socketserver`` or ``sockharness.server`` (or its
            name): every server class in it; or one class, or
            ``"package.module:ClassName"``.
        properties: names from :data:`PROPERTIES` (default: all).
        profile: ``"quick"``, ``"ci"`` (the default: derandomized, bounded) or
            ``"thorough"``.
        seed: replay a run of a randomized profile.
        shutdown_bound: the longest ``shutdown()`` may take, in seconds
            (default: the poll interval, plus slack).
        factory: builds servers of a class whose constructor needs more than
            ``(server_address, RequestHandlerClass)``: a callable, or
            ``"package.module:callable"``, called as ``factory(server_class,
            server_address, RequestHandlerClass)``.
        progress: called as each property ends (the CLI prints a line).

    Example:
        >>> from sockharness.conformance import check
        >>> report = check("sockharness.server:TCPServer", ["timeout"], profile="quick")
        >>> report.passed
        True
    """
    if profile not in PROFILES:
        raise UsageError(f"profile={profile!r} is not one of {', '.join(PROFILES)}")
    if shutdown_bound is not None and not shutdown_bound > 0:
        raise UsageError(f"shutdown_bound={shutdown_bound!r} is not a positive number of seconds")
    if seed is not None and not 0 <= seed < 2**32:
        raise UsageError(f"seed={seed!r} is not a seed: a whole number from 0 to 2**32 - 1")
    names = list(properties) if properties else list(PROPERTIES)
    for name in names:
        if name not in PROPERTIES:
            raise UsageError(
                f"{name!r} is not a conformance property; properties: {', '.join(PROPERTIES)}"
            )
    servers = resolve_target(target, factory)
    label = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    report = Report(str(label), profile)
    config = CheckConfig(shutdown_bound=shutdown_bound)
    factory_name = factory if isinstance(factory, str) else None
    total = len(servers) * len(names)
    for sut in servers:
        for name in names:
            result = run_property(
                sut,
                PROPERTIES[name],
                profile=profile,
                seed=seed,
                config=config,
                factory=factory_name,
            )
            report.results.append(result)
            if progress is not None:
                progress(result, len(report.results), total)
    return report
