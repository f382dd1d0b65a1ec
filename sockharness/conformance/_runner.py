"""Running the properties against server classes with hypothesis, and the report."""

from __future__ import annotations

import builtins
import json
import random
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.reporting import with_reporter

from sockharness._errors import UsageError
from sockharness._table import format_table

from ._properties import PROPERTIES, CheckConfig, Property
from ._target import ServerUnderTest, resolve_target

__all__ = ["PROFILES", "PropertyResult", "Report", "check", "run_property"]

_ALL_PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink]

#: How hard to look. ``ci`` is derandomized (the same examples every run) and bounded;
#: ``quick`` does not shrink a failure (a smoke test); ``thorough`` draws new examples
#: every run (its seed is in the report, to replay).
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"max_examples": 3, "derandomize": True, "phases": _ALL_PHASES[:3]},
    "ci": {"max_examples": 8, "derandomize": True, "phases": _ALL_PHASES},
    "thorough": {"max_examples": 60, "derandomize": False, "phases": _ALL_PHASES},
}


@dataclass
class PropertyResult:
    """One property on one server class: ``pass``, ``FAIL`` or ``n/a``, and why."""

    server: str
    name: str
    kind: str
    concurrency: str
    property: str
    status: str
    message: str = ""
    counterexample: str = ""
    seed: int | None = None
    profile: str = "ci"
    seconds: float = 0.0

    @builtins.property
    def failed(self) -> bool:
        return self.status == "FAIL"

    def replay(self, target: str) -> str:
        """The command that replays this result."""
        seed = f" --seed {self.seed}" if self.seed is not None else ""
        return (
            f"sockharness conform {target} --property {self.property} "
            f"--profile {self.profile}{seed}"
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

    def table(self) -> str:
        """The results as a table, with every failure and its counterexample under it."""
        properties = list(dict.fromkeys(r.property for r in self.results))
        servers = list(dict.fromkeys(r.name for r in self.results))
        cells = {(r.name, r.property): r.status for r in self.results}
        rows = [[server, *(cells.get((server, p), "") for p in properties)] for server in servers]
        lines = format_table(["server", *properties], rows).splitlines()
        for failure in self.failures:
            lines += [
                "",
                f"FAIL {failure.name}.{failure.property}: {failure.message}",
            ]
            if failure.counterexample:
                lines += ["  " + line for line in failure.counterexample.strip().splitlines()]
            lines.append(f"  replay: {failure.replay(self.target)}")
        failed = len(self.failures)
        plural = "es" if len(servers) != 1 else ""
        lines += [
            "",
            f"{len(servers)} server class{plural}, {len(properties)} "
            f"propert{'ies' if len(properties) != 1 else 'y'}: "
            + ("all hold" if not failed else f"{failed} failed"),
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
                failure.text = f"{result.counterexample}\nreplay: {result.replay(self.target)}"
            elif result.status == "n/a":
                ET.SubElement(case, "skipped", message=result.message)
        return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def run_property(
    sut: ServerUnderTest,
    prop: Property,
    *,
    profile: str = "ci",
    seed: int | None = None,
    config: CheckConfig | None = None,
) -> PropertyResult:
    """Check one property on one class; failures shrink to a minimal counterexample."""
    config = config or CheckConfig()
    base = PropertyResult(
        sut.qualified, sut.name, sut.kind.name, sut.concurrency, prop.name, "pass"
    )
    base.profile = profile
    reason = prop.applies(sut)
    if reason is not None:
        base.status, base.message = "n/a", reason
        return base
    options = dict(PROFILES[profile])
    derandomize = options["derandomize"]
    if not derandomize and seed is None:
        seed = random.SystemRandom().randrange(2**32)
    if seed is not None:
        options["derandomize"] = False
    base.seed = seed
    strategy = prop.inputs(sut)

    @settings(
        **options,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(strategy)
    def run(inputs: Any) -> None:
        prop.check(sut, inputs, config)

    run.__name__ = run.__qualname__ = f"{prop.name}_{sut.name}"
    test = hypothesis_seed(seed)(run) if seed is not None else run
    if prop.name == "stateful":
        from ._stateful import run_stateful

        machine_options = dict(options)
        if seed is not None:
            machine_options["derandomize"] = False

        def test() -> None:
            if seed is not None:
                import random as _random

                _random.seed(seed)
            run_stateful(sut, machine_options, config)

    reported: list[str] = []
    started = time.monotonic()
    try:
        with with_reporter(lambda text: reported.append(str(text))):
            test()
    except AssertionError as error:
        base.status = "FAIL"
        base.message = str(error).split("\n", 1)[0]
        base.counterexample = _counterexample(error, reported)
    except Exception as error:  # Several failures, or one the check did not foresee.
        base.status = "FAIL"
        parts = getattr(error, "exceptions", None)
        if parts:
            base.message = "; ".join(str(part).split("\n", 1)[0] for part in parts)
        else:
            base.message = f"{type(error).__name__}: {str(error).split(chr(10), 1)[0]}"
        base.counterexample = (
            _counterexample(error, reported)
            + "\n"
            + "".join(traceback.format_exception(type(error), error, error.__traceback__)[-4:])
        )
    base.seconds = time.monotonic() - started
    return base


def _counterexample(error: BaseException, reported: list[str]) -> str:
    """Hypothesis's shrunk example: its notes on the exception, or what it reported."""
    notes = [str(note) for note in getattr(error, "__notes__", [])]
    for sub in getattr(error, "exceptions", []):  # Several distinct failures.
        notes += [str(note) for note in getattr(sub, "__notes__", [])]
    return "\n".join(notes + reported).strip()


def check(
    target: str | ModuleType | type,
    properties: Sequence[str] | None = None,
    *,
    profile: str = "ci",
    seed: int | None = None,
    shutdown_bound: float | None = None,
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

    Example:
        >>> from sockharness.conformance import check
        >>> report = check("sockharness.server:TCPServer", ["timeout"], profile="quick")
        >>> report.passed
        True
    """
    if profile not in PROFILES:
        raise UsageError(f"profile={profile!r} is not one of {', '.join(PROFILES)}")
    names = list(properties) if properties else list(PROPERTIES)
    for name in names:
        if name not in PROPERTIES:
            raise UsageError(
                f"{name!r} is not a conformance property; properties: {', '.join(PROPERTIES)}"
            )
    servers = resolve_target(target)
    label = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    report = Report(str(label), profile)
    config = CheckConfig(shutdown_bound=shutdown_bound)
    for sut in servers:
        for name in names:
            report.results.append(
                run_property(sut, PROPERTIES[name], profile=profile, seed=seed, config=config)
            )
    return report
