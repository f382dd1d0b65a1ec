"""Finding scenario files: named files as given, directories searched for ``*.toml`` scenarios."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from ._reader import load_scenario
from ._schema import Scenario, ScenarioError

__all__ = ["find_scenario_files", "is_scenario_file", "load_scenarios"]

_SCENARIO_TABLE = re.compile(r"^\s*\[\s*scenario\s*\]", re.MULTILINE)


def is_scenario_file(path: str) -> bool:
    """Whether ``path`` is a ``.toml`` file with a ``[scenario]`` table (cheap: no parsing)."""
    if not path.endswith(".toml") or os.path.basename(path) == "pyproject.toml":
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return _SCENARIO_TABLE.search(stream.read(65536)) is not None
    except OSError:
        return False


def find_scenario_files(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The scenario files under ``paths``: files as named, directories searched, in order.

    A file named directly is always a scenario (and an error if it cannot be
    one); in a directory, ``.toml`` files without a ``[scenario]`` table are
    passed over, and so are hidden directories.
    """
    found: list[str] = []
    for entry in paths:
        path = os.fspath(entry)
        if os.path.isdir(path):
            for root, directories, files in os.walk(path):
                directories[:] = sorted(d for d in directories if not d.startswith("."))
                for name in sorted(files):
                    candidate = os.path.join(root, name)
                    if is_scenario_file(candidate):
                        found.append(candidate)
        elif os.path.exists(path):
            found.append(path)
        else:
            raise ScenarioError(path, "no such file or directory")
    return found


def load_scenarios(
    paths: Iterable[str | os.PathLike[str]], *, variables: Mapping[str, str] | None = None
) -> list[Scenario]:
    """Every scenario under ``paths``, checked; the first invalid one raises.

    ``variables`` fill in ``${NAME}`` before the environment does.
    """
    return [load_scenario(path, variables=variables) for path in find_scenario_files(paths)]
