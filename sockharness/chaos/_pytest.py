"""Scenario files as pytest test items: ``pytest scenarios/`` runs one item per scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sockharness._core import SockharnessError, sweep_seed

from ._discover import is_scenario_file
from ._reader import load_scenario
from ._result import ScenarioResult
from ._runner import run_scenario
from ._schema import Scenario, ScenarioError

__all__ = ["ScenarioFile", "ScenarioItem", "collect_scenario_file"]


class ScenarioFailed(SockharnessError, AssertionError):
    """A scenario broke an invariant (or could not run)."""

    def __init__(self, result: ScenarioResult, replay: str) -> None:
        super().__init__(result.failure_message(replay))
        self.result = result


class InvalidScenario(SockharnessError, ValueError):
    """The scenario file is not a valid scenario."""


def collect_scenario_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """The ``pytest_collect_file`` hook's work: a collector for a scenario file, else ``None``."""
    if file_path.suffix != ".toml" or not is_scenario_file(str(file_path)):
        return None
    collector: pytest.Collector = ScenarioFile.from_parent(parent, path=file_path)
    return collector


class ScenarioFile(pytest.File):
    """A ``.toml`` file with a ``[scenario]`` table."""

    def collect(self) -> list[pytest.Item]:
        try:
            variables = dict(self.config.getoption("--sockharness-var", None) or [])
            scenario: Scenario | None = load_scenario(self.path, variables=variables)
            error = None
        except ScenarioError as exc:
            scenario, error = None, exc
        name = scenario.name if scenario is not None else self.path.stem
        count = self.config.getoption("--sockharness-seeds", None)
        if count is None or scenario is None:
            item: pytest.Item = ScenarioItem.from_parent(
                self, name=name, scenario=scenario, error=error
            )
            return [item]
        # A seed sweep: one item per seed, derived from the run's seed or the scenario's.
        given = self.config.getoption("--sockharness-seed", None)
        base = scenario.seed if given is None else int(given)
        return [
            ScenarioItem.from_parent(
                self,
                name=f"{name}[sweep{index}]",
                scenario=scenario,
                error=None,
                seed=sweep_seed(base, index),
            )
            for index in range(count)
        ]


class ScenarioItem(pytest.Item):
    """Runs one scenario; fails with its broken invariants and its seed."""

    def __init__(
        self,
        *,
        scenario: Scenario | None,
        error: ScenarioError | None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.error = error
        self.seed = seed  # A sweep's; ``None``: the run's (--sockharness-seed) or the file's.
        self.result: ScenarioResult | None = None

    def runtest(self) -> None:
        if self.error is not None:
            raise InvalidScenario(str(self.error))
        assert self.scenario is not None
        seed = self.seed if self.seed is not None else self.config.getoption("--sockharness-seed")
        try:
            self.result = run_scenario(self.scenario, seed=seed)
        except ScenarioError as exc:
            raise InvalidScenario(str(exc)) from None
        # In the JUnit XML and in every worker's report: which seed ran, and the verdict.
        self.user_properties.append(("sockharness_seed", self.result.seed))
        self.user_properties.append(("sockharness_result", self.result.result))
        if self.result.skipped is not None:
            pytest.skip(self.result.skipped)
        if self.result.failed:
            replay = f"--sockharness-seed {self.result.seed}"
            raise ScenarioFailed(self.result, replay)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailed):
            return str(excinfo.value)
        if isinstance(excinfo.value, InvalidScenario):
            return f"invalid scenario: {excinfo.value}"
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"scenario: {self.name}"
