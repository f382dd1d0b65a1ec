"""Run CPython's own test_socketserver against sockharness.server.

The interpreter's ``test.test_socketserver`` is imported with
``sys.modules["socketserver"]`` already replaced by ``sockharness.server``, so
every server class the suite exercises is ours. The runner checks that the
swap really happened before running anything.

One test is re-aimed, and the output says so: ``MiscTestCase.test_all``
compares ``__all__`` with the public names whose ``__module__`` is literally
``"socketserver"``. Our classes truthfully say ``sockharness.server``, so the
re-aimed check asserts that every public name defined under
``sockharness.server`` is in ``__all__`` and that ``__all__`` holds every name
of this interpreter's own ``socketserver.__all__``. Every other test runs
unmodified.

Usage::

    python tools/cpython_suite.py            # this interpreter, in this process
    python tools/cpython_suite.py --all      # every installed CPython 3.10-3.13
    python tools/cpython_suite.py --python /path/to/python3.12

The last line of a single run is ``SOCKHARNESS-CPYTHON-SUITE {json}`` for
machines; the exit status is 0 only when every test passed and the suite left
no threads or processes behind.
"""

from __future__ import annotations

import argparse
import faulthandler
import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT_PREFIX = "SOCKHARNESS-CPYTHON-SUITE "
SUPPORTED_MINORS = (10, 11, 12, 13)
HANG_TIMEOUT = 300.0
RE_AIM_NOTE = (
    "MiscTestCase.test_all is re-aimed at sockharness.server: every public name defined "
    "under sockharness.server must be in __all__, and __all__ must hold every name of this "
    "interpreter's socketserver.__all__ (the unmodified test compares __module__ with "
    "'socketserver', which our classes truthfully do not claim)."
)


def _stdlib_socketserver_all() -> list[str]:
    """``__all__`` of this interpreter's own socketserver, loaded under a private name."""
    stdlib_dir = Path(unittest.__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(
        "_stdlib_socketserver_for_comparison", stdlib_dir / "socketserver.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.__all__)


def _re_aimed_test_all(stdlib_all: list[str]):
    def test_all(self: unittest.TestCase) -> None:
        import sockharness.server as ours

        defined_here = [
            name
            for name in dir(ours)
            if not name.startswith("_")
            and str(getattr(getattr(ours, name), "__module__", "")).startswith("sockharness.server")
        ]
        self.assertCountEqual(ours.__all__, defined_here)
        missing = sorted(set(stdlib_all) - set(ours.__all__))
        self.assertEqual(missing, [], "names of the stdlib's __all__ missing from ours")

    return test_all


def run_here(verbosity: int) -> dict:
    """Run this interpreter's suite in this process; return a summary."""
    sys.path.insert(0, str(ROOT))
    stdlib_was_loaded = "socketserver" in sys.modules
    import sockharness.server as ours

    sys.modules["socketserver"] = ours
    from test import support
    from test import test_socketserver as suite

    swapped = suite.socketserver is ours
    if not swapped:
        raise SystemExit("the swap failed: test_socketserver did not get sockharness.server")
    stdlib_all = _stdlib_socketserver_all()
    suite.MiscTestCase.test_all = _re_aimed_test_all(stdlib_all)
    print(RE_AIM_NOTE, flush=True)

    faulthandler.dump_traceback_later(HANG_TIMEOUT, exit=True)
    try:
        tests = unittest.defaultTestLoader.loadTestsFromModule(suite)
        result = unittest.TextTestRunner(verbosity=verbosity, stream=sys.stdout).run(tests)
    finally:
        faulthandler.cancel_dump_traceback_later()
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "suite": suite.__file__,
        "socketserver_module": sys.modules["socketserver"].__name__,
        "swapped": swapped,
        "stdlib_socketserver_loaded_before": stdlib_was_loaded,
        "tests_run": result.testsRun,
        "failures": [test.id() for test, _ in result.failures],
        "errors": [test.id() for test, _ in result.errors],
        "skipped": [test.id() for test, _ in result.skipped],
        "unexpected_successes": len(result.unexpectedSuccesses),
        "environment_altered": bool(getattr(support, "environment_altered", False)),
        "re_aimed": ["test.test_socketserver.MiscTestCase.test_all"],
        "passed": result.wasSuccessful() and not getattr(support, "environment_altered", False),
    }


def find_interpreters() -> dict[str, str]:
    """Every CPython 3.10-3.13 found here, as ``{"3.X": executable}``; this one included."""
    found: dict[str, str] = {f"3.{sys.version_info.minor}": sys.executable}
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    for minor in SUPPORTED_MINORS:
        key = f"3.{minor}"
        if key in found:
            continue
        candidates = sorted(glob.glob(f"{pyenv_root}/versions/3.{minor}.*/bin/python3"))
        on_path = shutil.which(f"python3.{minor}")
        if on_path:
            candidates.append(on_path)
        for candidate in reversed(candidates):
            if _has_test_suite(candidate):
                found[key] = candidate
                break
    return dict(sorted(found.items(), key=lambda item: int(item[0].split(".")[1])))


def _has_test_suite(python: str) -> bool:
    probe = "import importlib.util; assert importlib.util.find_spec('test.test_socketserver')"
    completed = subprocess.run([python, "-c", probe], capture_output=True, timeout=60, check=False)
    return completed.returncode == 0


def run_in_subprocess(python: str, timeout: float = HANG_TIMEOUT + 60) -> tuple[dict, str]:
    """Run the suite under ``python``; return its summary and its whole output."""
    completed = subprocess.run(
        [python, str(Path(__file__).resolve()), "--verbosity", "2"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    output = completed.stdout + completed.stderr
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :]), output
    raise RuntimeError(f"{python} printed no summary (exit {completed.returncode}):\n{output}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--all", action="store_true", help="every installed CPython 3.10-3.13")
    group.add_argument("--python", help="run under this interpreter in a subprocess")
    parser.add_argument("--verbosity", type=int, default=1)
    args = parser.parse_args(argv)

    if not args.all and not args.python:
        summary = run_here(args.verbosity)
        print(RESULT_PREFIX + json.dumps(summary), flush=True)
        return 0 if summary["passed"] else 1

    targets = find_interpreters() if args.all else {"?": args.python}
    all_passed = True
    print(f"{'python':<10} {'run':>4} {'fail':>5} {'error':>6} {'skip':>5}  result")
    for _key, python in targets.items():
        summary, output = run_in_subprocess(python)
        passed = summary["passed"]
        all_passed &= passed
        print(
            f"{summary['python']:<10} {summary['tests_run']:>4} {len(summary['failures']):>5} "
            f"{len(summary['errors']):>6} {len(summary['skipped']):>5}  "
            f"{'ok' if passed else 'FAILED'}"
        )
        if not passed:
            print(output)
    print(RE_AIM_NOTE)
    return 0 if all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
