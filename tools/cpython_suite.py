"""Run CPython's own test suites against sockharness.server.

Two kinds of suite are run, each unmodified from the interpreter's ``test``
package:

* ``test_socketserver``, the module's own conformance suite;
* the *consumer* suites, whose servers come from stdlib modules built on
  socketserver: ``test_logging`` (``logging.config.listen()`` and the test's
  own ``ThreadingTCPServer``/``ThreadingUDPServer`` subclasses),
  ``test_imaplib`` (``socketserver.TCPServer`` IMAP servers),
  ``test_docxmlrpc`` (``xmlrpc.server.DocXMLRPCServer``),
  ``test_urllib2_localnet`` and ``test_robotparser`` (``http.server``).

How the swap is made, and checked
=================================

Each suite runs in a fresh process of a throwaway virtual environment made
from the interpreter under test (in a temporary directory, never in the
repository). Its ``site-packages`` holds a ``.pth`` file that loads a small
hook, ``_sockharness_swap``, at the start of *every* Python process of that
environment: the test process and every Python child a suite starts, even
with ``-I``/``-E`` (which ignore ``PYTHONPATH`` and so a ``sitecustomize``
there) and whatever environment the child is given. In the sockharness mode
the hook puts an import finder first on ``sys.meta_path`` that answers
``import socketserver`` with ``sockharness.server``: nothing is imported at
start-up, so a child that never uses socketserver is not changed at all. The
runner also sets ``sys.modules["socketserver"]`` itself before ``test``, the
suite or any stdlib module is imported.

The hook also reports, one line per event, into a file named by the run:

* each process that starts (pid, parent pid, command line, executable);
* what ``import socketserver`` gave in each process;
* every server the process binds (an audit hook on ``socket.bind`` finds the
  server object), with whether its classes come from ``sockharness.server`` or
  from the standard library's ``socketserver``;
* at exit, every loaded module that refers to a socketserver module or class
  (``http.server``, ``xmlrpc.server``, ``logging.config``, the test module,
  ...), and which one it refers to;
* each Python child started through ``subprocess``, and whether it is this
  environment's interpreter (one that is not would escape the swap);
* any attempt to reach a non-loopback address, which it refuses.

A run of the sockharness mode counts as verified only when the standard
library's socketserver was loaded by no process at all, every server built
(in the test process and in children) is ours, and each of the suite's
known consumer modules (``logging.config`` for test_logging, ...) refers to
``sockharness.server``.

Network: loopback only. Test resources are enabled as regrtest would with
``-u walltime,cpu`` (no ``network``, no ``urlfetch``); test_socketserver
alone also gets ``network``, because it gates its whole module on it although
it only ever uses ``localhost``. The hook's guard refuses any connection to,
or name lookup of, anything but loopback in every process, so an enabled
resource cannot reach out either.

The stdlib baseline
===================

Every consumer suite is run a second time in the same way but with the real
socketserver (the hook only observes). A skip or failure that the stdlib run
has too is an environment matter and is reported as such; anything else
counts against sockharness.server.

One test is re-aimed, and the output says so: ``MiscTestCase.test_all`` of
test_socketserver compares ``__all__`` with the public names whose
``__module__`` is literally ``"socketserver"``. Our classes truthfully say
``sockharness.server``, so the re-aimed check asserts that every public name
defined under ``sockharness.server`` is in ``__all__`` and that ``__all__``
holds every name of this interpreter's own ``socketserver.__all__``. Every
other test runs unmodified.

Usage::

    python tools/cpython_suite.py                       # this interpreter, every suite
    python tools/cpython_suite.py --suite test_logging  # one suite (repeatable)
    python tools/cpython_suite.py --all                 # every installed CPython 3.10-3.13
    python tools/cpython_suite.py --python /path/to/python3.12
    python tools/cpython_suite.py --no-baseline         # skip the stdlib runs
    python tools/cpython_suite.py --in-process --suite test_socketserver  # here, no children check

Every single run (one suite, one mode, one interpreter) prints
``SOCKHARNESS-CPYTHON-SUITE {json}`` as its last line; the driver repeats
those lines and ends with ``SOCKHARNESS-CPYTHON-SUITE-TOTAL {json}``. The exit
status is 0 only when every suite passed on sockharness.server (no failure,
error or skip that the stdlib does not also have), the swap was verified, and
no run left threads or processes behind.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import faulthandler
import glob
import importlib
import importlib.util
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT_PREFIX = "SOCKHARNESS-CPYTHON-SUITE "
TOTAL_PREFIX = "SOCKHARNESS-CPYTHON-SUITE-TOTAL "
SUPPORTED_MINORS = (10, 11, 12, 13)
HANG_TIMEOUT = 300.0
#: One test that runs longer than this dumps every thread's traceback and ends the run.
PER_TEST_TIMEOUT = 120.0
HOOK_MODULE = "_sockharness_swap"
MODES = ("sockharness", "stdlib")
RE_AIM_NOTE = (
    "MiscTestCase.test_all is re-aimed at sockharness.server: every public name defined "
    "under sockharness.server must be in __all__, and __all__ must hold every name of this "
    "interpreter's socketserver.__all__ (the unmodified test compares __module__ with "
    "'socketserver', which our classes truthfully do not claim)."
)
#: Resources as regrtest's ``-u walltime,cpu``: never ``network`` or ``urlfetch``.
SAFE_RESOURCES = ("cpu", "walltime")


@dataclasses.dataclass(frozen=True)
class Suite:
    """One CPython test module and what the run must see of it."""

    name: str
    #: Modules that must refer to ``sockharness.server`` once the suite is loaded.
    consumers: tuple[str, ...]
    #: Seconds the whole run may take (one process); the run is killed after that.
    timeout: float
    resources: tuple[str, ...] = SAFE_RESOURCES
    #: ``test.support.verbose`` (regrtest sets 0; test_socketserver prints its classes with 1).
    verbose: int = 0
    #: Run again on the real socketserver to tell environment skips from ours.
    baseline: bool = True


SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        # test_socketserver gates its whole module on the "network" resource although it
        # only ever serves and connects on localhost; the hook's guard holds it to loopback.
        Suite(
            "test_socketserver",
            ("test.test_socketserver",),
            timeout=HANG_TIMEOUT,
            resources=("network", *SAFE_RESOURCES),
            verbose=1,
            baseline=False,
        ),
        Suite("test_logging", ("logging.config", "test.test_logging"), timeout=600.0),
        Suite("test_imaplib", ("test.test_imaplib",), timeout=300.0),
        Suite("test_docxmlrpc", ("xmlrpc.server", "http.server"), timeout=180.0),
        Suite("test_urllib2_localnet", ("http.server",), timeout=180.0),
        Suite("test_robotparser", ("http.server",), timeout=180.0),
    )
}
CONSUMER_SUITES = tuple(name for name in SUITES if name != "test_socketserver")

# ---------------------------------------------------------------------------
# The hook: loaded by a .pth file at the start of every process of the venv.
# It must stay cheap and import nothing at start-up beyond what ``site``
# already has (some suites patch ``time`` before their first ``import
# logging`` in a child, for instance), so it writes reprs, not JSON.
# ---------------------------------------------------------------------------

HOOK_SOURCE = r'''
"""sockharness test-run hook (written by tools/cpython_suite.py into a throwaway venv).

Configured by _sockharness_swap.cfg beside this file; inert without it.
mode=sockharness: ``import socketserver`` gives ``sockharness.server``.
mode=stdlib: the real socketserver, observed only.
Every process reports into the file named by ``report=``, one repr'd dict a line.
"""
import os
import sys

MODE = None
REPORT = None
_ROOT = None
_VENV = os.path.realpath(sys.prefix)
_seen_servers = set()
_LOOPBACK_NAMES = {
    "", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback",
    "0.0.0.0", "::", "::1", "0:0:0:0:0:0:0:1",
}


def _read_config():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sockharness_swap.cfg")
    try:
        with open(path, encoding="utf-8") as config:
            lines = config.read().splitlines()
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in lines if "=" in line)


def record(event, **fields):
    if REPORT is None:
        return
    fields["event"] = event
    fields["pid"] = os.getpid()
    line = (repr(fields) + "\n").encode("utf-8", "backslashreplace")
    try:
        fd = os.open(REPORT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError:
        return
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _lineage(cls):
    """'ours', 'stdlib' or both, for a class from (or derived from) a socketserver module."""
    kinds = set()
    try:
        mro = cls.__mro__
    except Exception:
        return kinds
    for base in mro:
        module = getattr(base, "__module__", None)
        if module == "sockharness.server":
            kinds.add("ours")
        elif module == "socketserver":
            kinds.add("stdlib")
    return kinds


def census():
    """Every loaded module that refers to a socketserver module or class, and to which."""
    ours = sys.modules.get("sockharness.server")
    found = {}
    for name, module in list(sys.modules.items()):
        if module is None or name == "sockharness" or name.startswith("sockharness.server"):
            continue
        if name in ("socketserver", __name__):
            continue
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        kinds = set()
        for value in list(namespace.values()):
            if isinstance(value, type(sys)):
                if ours is not None and value is ours:
                    kinds.add("ours")
                elif getattr(value, "__name__", None) == "socketserver":
                    kinds.add("stdlib")
            elif isinstance(value, type):
                kinds |= _lineage(value)
        if kinds:
            found[name] = sorted(kinds)
    return found


def _is_loopback(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    host = host.strip("[]").lower().split("%", 1)[0]
    return (
        host in _LOOPBACK_NAMES
        or host.startswith("127.")
        or host.startswith("::ffff:127.")
        or host.endswith(".localhost")
    )


def _is_numeric(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    return isinstance(host, str) and (":" in host or all(c in "0123456789." for c in host))


def _refusal(what, target):
    """The error that refuses a non-loopback connection or name lookup (and a record of it)."""
    record("blocked", what=what, target=repr(target))
    message = "sockharness test run: only loopback, refused %r" % (target,)
    if what.startswith("socket.gethost") or what == "socket.getaddrinfo":
        import _socket

        return _socket.gaierror(_socket.EAI_NONAME, message)
    import errno

    return OSError(errno.ENETUNREACH, message)


def _server_of_current_bind():
    frame = sys._getframe(2)
    for _ in range(6):
        if frame is None:
            return None
        candidate = frame.f_locals.get("self")
        if hasattr(candidate, "RequestHandlerClass") and hasattr(candidate, "server_bind"):
            return candidate
        frame = frame.f_back
    return None


def _audit(event, args):
    if not event.startswith(("socket.", "subprocess.")):
        return
    try:
        refusal = _observe(event, args)
    except Exception:  # a fault of this hook must never break the process it watches
        return
    if refusal is not None:
        raise refusal


def _observe(event, args):
    if event == "socket.bind":
        server = _server_of_current_bind()
        if server is not None and id(server) not in _seen_servers:
            _seen_servers.add(id(server))
            cls = type(server)
            record(
                "server",
                cls="%s.%s" % (cls.__module__, cls.__qualname__),
                kinds=sorted(_lineage(cls)),
            )
    elif event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        sock, address = args[0], args[1]
        if address is None or int(getattr(sock, "family", 0)) not in (2, 10):
            return
        if isinstance(address, tuple) and address and not _is_loopback(address[0]):
            return _refusal(event, address)
    elif event == "socket.getaddrinfo":
        host = args[0]
        if host is not None and not _is_loopback(host) and not _is_numeric(host):
            return _refusal(event, host)
    elif event in ("socket.gethostbyname", "socket.gethostbyaddr"):
        host = args[0]
        if not _is_loopback(host) and not _is_numeric(host):
            import _socket

            if host != _socket.gethostname():
                return _refusal(event, host)
    elif event == "subprocess.Popen":
        executable, argv = args[0], args[1]
        if isinstance(argv, (str, bytes)):
            argv = [argv]
        program = executable or (argv[0] if argv else "")
        program = os.fsdecode(program) if isinstance(program, (bytes, os.PathLike)) else program
        if isinstance(program, str) and os.path.basename(program).startswith("python"):
            resolved = program
            if os.sep not in program:
                import shutil

                resolved = shutil.which(program) or program
            ours = os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(resolved))))
            record(
                "python_child",
                program=program,
                in_venv=ours == _VENV,
                no_site="-S" in [os.fsdecode(a) for a in argv[1:] if isinstance(a, (str, bytes))],
            )
    return None


class _Alias:
    """``import socketserver`` gives sockharness.server: the very module, not a copy."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "socketserver":
            return None
        from importlib.machinery import ModuleSpec

        return ModuleSpec(name, cls)

    @staticmethod
    def create_module(spec):
        import importlib

        # sockharness is put on sys.path for this import only: children see their own sys.path.
        added = _ROOT is not None and _ROOT not in sys.path
        if added:
            sys.path.append(_ROOT)
        try:
            module = importlib.import_module("sockharness.server")
        finally:
            if added and _ROOT in sys.path:
                sys.path.remove(_ROOT)
        spec.loader_state = module.__spec__
        record("import", module=module.__name__, file=module.__file__)
        return module

    @staticmethod
    def exec_module(module):
        # The import system set __spec__ to the alias's spec: give the module its own back.
        alias = module.__spec__
        if alias is not None and alias.loader_state is not None:
            module.__spec__ = alias.loader_state


class _Observer:
    """Finds the real socketserver as usual and notes which file was loaded."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "socketserver":
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        record("import", module="socketserver", file=getattr(spec, "origin", None))
        return spec


def _at_exit():
    record("census", modules=census())


def _install():
    global MODE, REPORT, _ROOT
    config = _read_config()
    MODE, REPORT, _ROOT = config.get("mode"), config.get("report"), config.get("root")
    if MODE not in ("sockharness", "stdlib") or not REPORT:
        MODE = REPORT = None
        return
    record(
        "start",
        ppid=os.getppid(),
        argv=list(getattr(sys, "orig_argv", sys.argv)),
        executable=sys.executable,
        in_venv=os.path.realpath(sys.prefix) == _VENV,
        socketserver_preloaded="socketserver" in sys.modules,
    )
    sys.meta_path.insert(0, _Alias if MODE == "sockharness" else _Observer)
    sys.addaudithook(_audit)
    import atexit

    atexit.register(_at_exit)


_install()
'''


def _venv_site_packages(venv_python: Path) -> Path:
    completed = subprocess.run(
        [str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return Path(completed.stdout.strip())


def make_venv(python: str, directory: Path, *, with_pip: bool = False) -> Path:
    """A throwaway venv of ``python`` with the hook installed (inert until configured)."""
    command = [python, "-m", "venv", str(directory)]
    if not with_pip:
        command.insert(3, "--without-pip")
    subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    venv_python = directory / "bin" / "python"
    site_packages = _venv_site_packages(venv_python)
    (site_packages / f"{HOOK_MODULE}.py").write_text(HOOK_SOURCE, encoding="utf-8")
    (site_packages / "_sockharness_swap.pth").write_text(
        f"import {HOOK_MODULE}\n", encoding="utf-8"
    )
    return venv_python


def configure_venv(venv_python: Path, mode: str | None, report: Path | None) -> None:
    """Arm the hook of the venv for one run (``mode=None`` disarms it)."""
    config = _venv_site_packages_cached(venv_python) / "_sockharness_swap.cfg"
    if mode is None:
        config.unlink(missing_ok=True)
        return
    assert mode in MODES
    config.write_text(f"mode={mode}\nreport={report}\nroot={ROOT}\n", encoding="utf-8")


_SITE_PACKAGES: dict[Path, Path] = {}


def _venv_site_packages_cached(venv_python: Path) -> Path:
    if venv_python not in _SITE_PACKAGES:
        _SITE_PACKAGES[venv_python] = _venv_site_packages(venv_python)
    return _SITE_PACKAGES[venv_python]


def read_report(path: Path) -> list[dict]:
    """The hook's records, in the order written."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        with contextlib.suppress(ValueError, SyntaxError):
            records.append(ast.literal_eval(line))
    return records


def summarize_report(records: list[dict], mode: str, main_pid: int | None = None) -> dict:
    """What the hook saw, across the test process and its children.

    ``main_pid`` is the test process; every other reporting process is a child
    (or grandchild) that the suite started.
    """
    started = [r for r in records if r["event"] == "start"]
    pids = {r["pid"] for r in records}
    children = sorted(pids - {main_pid}) if main_pid is not None else sorted(pids)
    imports = [r for r in records if r["event"] == "import"]
    servers = [r for r in records if r["event"] == "server"]
    census: dict[str, set[str]] = {}
    for r in records:
        if r["event"] == "census":
            for module, kinds in r["modules"].items():
                census.setdefault(module, set()).update(kinds)
    python_children = [r for r in records if r["event"] == "python_child"]
    escaped = [r for r in python_children if not r["in_venv"] or r["no_site"]]
    blocked = [r for r in records if r["event"] == "blocked"]

    def in_children(items: list[dict]) -> list[dict]:
        return [r for r in items if r["pid"] != main_pid]

    ours_imports = [r for r in imports if r["module"] == "sockharness.server"]
    stdlib_imports = [r for r in imports if r["module"] == "socketserver"]
    stdlib_servers = [r for r in servers if "stdlib" in r["kinds"]]
    ours_servers = [r for r in servers if r["kinds"] == ["ours"]]
    stdlib_refs = sorted(m for m, kinds in census.items() if "stdlib" in kinds)
    ours_refs = sorted(m for m, kinds in census.items() if "ours" in kinds)
    return {
        "processes_reporting": len(pids),
        "processes_started": len(started),
        "child_processes": len(children),
        "children_importing_socketserver": len({r["pid"] for r in in_children(imports)}),
        "socketserver_imports": {"ours": len(ours_imports), "stdlib": len(stdlib_imports)},
        "servers": {
            "built": len(servers),
            "ours": len(ours_servers),
            "stdlib": len(stdlib_servers),
            "in_children": len(in_children(servers)),
            "classes": sorted({r["cls"] for r in servers}),
        },
        "modules_referring_to_ours": ours_refs,
        "modules_referring_to_stdlib": stdlib_refs,
        "python_children_launched": len(python_children),
        "python_children_escaping_the_hook": [r["program"] for r in escaped],
        "blocked_network": [f"{r['what']} {r['target']}" for r in blocked],
        # The swap held everywhere: no process loaded, built on or referred to the stdlib's.
        "swap_held": mode == "sockharness"
        and not stdlib_imports
        and not stdlib_servers
        and not stdlib_refs
        and not escaped,
        "stdlib_held": mode == "stdlib" and not ours_imports and not ours_servers,
    }


# ---------------------------------------------------------------------------
# One suite in this process.
# ---------------------------------------------------------------------------


def _stdlib_socketserver_all() -> list[str]:
    """``__all__`` of this interpreter's own socketserver, loaded under a private name.

    The module is executed but never entered in ``sys.modules``.
    """
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


class _BoundedResult(unittest.TextTestResult):
    """Gives each test (and what runs between tests) ``PER_TEST_TIMEOUT`` seconds."""

    def startTest(self, test: unittest.TestCase) -> None:
        faulthandler.dump_traceback_later(PER_TEST_TIMEOUT, exit=True)
        super().startTest(test)

    def stopTest(self, test: unittest.TestCase) -> None:
        super().stopTest(test)
        faulthandler.dump_traceback_later(PER_TEST_TIMEOUT, exit=True)


def _module_view(names: tuple[str, ...], ours: object, mode: str) -> dict[str, str]:
    """Which socketserver each named module refers to: 'ours', 'stdlib', 'both' or 'none'."""
    view: dict[str, str] = {}
    for name in names:
        module = sys.modules.get(name)
        kinds: set[str] = set()
        for value in vars(module).values() if module is not None else ():
            if isinstance(value, type(sys)) and getattr(value, "__name__", "") in (
                "socketserver",
                "sockharness.server",
            ):
                kinds.add("ours" if value is ours else "stdlib")
            elif isinstance(value, type):
                for base in value.__mro__:
                    if getattr(base, "__module__", None) == "sockharness.server":
                        kinds.add("ours")
                    elif getattr(base, "__module__", None) == "socketserver":
                        kinds.add("stdlib")
        view[name] = "both" if len(kinds) == 2 else (kinds.pop() if kinds else "none")
    return view


def run_here(verbosity: int, suite_name: str = "test_socketserver", mode: str = "sockharness"):
    """Run one suite of this interpreter in this process; return a summary."""
    spec = SUITES[suite_name]
    started = time.monotonic()
    sys.path.insert(0, str(ROOT))
    hook = sys.modules.get(HOOK_MODULE)
    hook_mode = getattr(hook, "MODE", None)
    if hook is not None and hook_mode not in (None, mode):
        raise SystemExit(f"the venv's hook is armed for {hook_mode!r}, this run is {mode!r}")
    stdlib_was_loaded = "socketserver" in sys.modules
    if stdlib_was_loaded and mode == "sockharness":
        raise SystemExit("socketserver was imported before the swap could be made")
    import sockharness.server as ours

    if mode == "sockharness":
        sys.modules["socketserver"] = ours
    import socketserver as seen

    from test import support

    # As regrtest would: no test may reach the network, and output stays quiet.
    support.use_resources = list(spec.resources)
    support.verbose = spec.verbose
    suite = importlib.import_module(f"test.{suite_name}")

    swapped = seen is ours and sys.modules["socketserver"] is ours
    view = _module_view(spec.consumers, ours, mode)
    expected = "ours" if mode == "sockharness" else "stdlib"
    if mode == "sockharness" and not swapped:
        raise SystemExit(f"the swap failed: {suite_name} did not get sockharness.server")
    if any(kind != expected for kind in view.values()):
        raise SystemExit(f"{suite_name}: consumers do not see the {mode} socketserver: {view}")
    re_aimed: list[str] = []
    if suite_name == "test_socketserver" and mode == "sockharness":
        stdlib_all = _stdlib_socketserver_all()
        suite.MiscTestCase.test_all = _re_aimed_test_all(stdlib_all)
        re_aimed = ["test.test_socketserver.MiscTestCase.test_all"]
        print(RE_AIM_NOTE, flush=True)

    faulthandler.dump_traceback_later(PER_TEST_TIMEOUT, exit=True)
    try:
        tests = unittest.defaultTestLoader.loadTestsFromModule(suite)
        runner = unittest.TextTestRunner(
            verbosity=verbosity, stream=sys.stdout, resultclass=_BoundedResult
        )
        result = runner.run(tests)
    finally:
        faulthandler.cancel_dump_traceback_later()

    environment_altered = bool(getattr(support, "environment_altered", False))
    hook_report = None
    if hook is not None and hook_mode is not None:
        hook.record("census", modules=hook.census())
        hook_report = summarize_report(read_report(Path(hook.REPORT)), mode, os.getpid())
    if mode == "sockharness":
        verified = swapped and (hook_report is None or hook_report["swap_held"])
    else:
        verified = not swapped and (hook_report is None or hook_report["stdlib_held"])
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "suite": suite.__file__,
        "suite_name": suite_name,
        "mode": mode,
        "socketserver_module": sys.modules["socketserver"].__name__,
        "swapped": swapped,
        "stdlib_socketserver_loaded_before": stdlib_was_loaded,
        "consumers": view,
        "resources": list(spec.resources),
        "tests_run": result.testsRun,
        "failures": [test.id() for test, _ in result.failures],
        "errors": [test.id() for test, _ in result.errors],
        "skipped": [test.id() for test, _ in result.skipped],
        "skip_reasons": {test.id(): reason for test, reason in result.skipped},
        "expected_failures": len(result.expectedFailures),
        "unexpected_successes": len(result.unexpectedSuccesses),
        "environment_altered": environment_altered,
        "re_aimed": re_aimed,
        "hook": hook_report,
        "children_checked": hook_report is not None,
        "verified": verified,
        "duration_s": round(time.monotonic() - started, 1),
        "passed": result.wasSuccessful() and not environment_altered and verified,
    }


# ---------------------------------------------------------------------------
# Interpreters, subprocesses and the driver.
# ---------------------------------------------------------------------------


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


def clean_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a run: no proxy (loopback only), no inherited Python or pytest setup."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy")
        and key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH")
        and not key.startswith(("PYTEST_", "COV_CORE_"))
    }
    env["NO_PROXY"] = env["no_proxy"] = "*"
    env.update(extra or {})
    return env


@dataclasses.dataclass
class Completed:
    returncode: int | None
    output: str
    timed_out: bool
    left_processes: list[str]
    duration_s: float


def run_bounded(
    command: list[str],
    *,
    timeout: float,
    cwd: Path,
    env: dict[str, str],
    log: Path,
    grace: float | None = None,
) -> Completed:
    """Run ``command`` in its own session with output to ``log``; kill it all after ``timeout``.

    Output goes to a file, not a pipe, so a process the command leaves behind
    cannot hold the run open; any such process is reported and killed.
    """
    started = time.monotonic()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
    # Helpers that end as their parent does (multiprocessing's forkserver and resource
    # tracker see their pipe close) get a grace period; what outlives it was left behind.
    left = _wait_for_group(process.pid, LEFTOVER_GRACE if grace is None else grace)
    if left:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    output = log.read_text(encoding="utf-8", errors="replace")
    return Completed(
        process.returncode,
        output,
        timed_out,
        [] if timed_out else left,
        time.monotonic() - started,
    )


#: Seconds the processes of a finished run may take to end by themselves.
LEFTOVER_GRACE = 10.0


def _group_members(pgid: int) -> dict[int, str]:
    """The live processes of process group ``pgid``, with their command lines (Linux /proc)."""
    members = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] == "Z" or int(fields[2]) != pgid:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        members[int(entry.name)] = cmdline.strip()
    return members


def _wait_for_group(pgid: int, grace: float) -> list[str]:
    """Wait up to ``grace`` seconds for group ``pgid`` to end; return what is still alive.

    Waits on pidfds (an event, not a sleep); where there are none, checks once.
    """
    if not Path("/proc").is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [f"process group {pgid}"]
    deadline = time.monotonic() + grace
    members = _group_members(pgid)
    while members and hasattr(os, "pidfd_open"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        poller = select.poll()
        fds = []
        for pid in members:
            with contextlib.suppress(OSError):  # already gone
                fds.append(os.pidfd_open(pid))
                poller.register(fds[-1], select.POLLIN)
        try:
            if fds:
                poller.poll(remaining * 1000)  # returns as soon as one of them ends
        finally:
            for fd in fds:
                os.close(fd)
        members = _group_members(pgid)
    return [f"{pid}: {cmdline}" for pid, cmdline in sorted(members.items())]


def _failed_summary(python: str, suite_name: str, mode: str, reason: str) -> dict:
    return {
        "python": "?",
        "executable": python,
        "suite_name": suite_name,
        "mode": mode,
        "tests_run": 0,
        "failures": [],
        "errors": [f"{suite_name}: {reason}"],
        "skipped": [],
        "skip_reasons": {},
        "verified": False,
        "passed": False,
        "no_summary": reason,
    }


def run_in_subprocess(
    python: str,
    timeout: float | None = None,
    *,
    suite: str = "test_socketserver",
    mode: str = "sockharness",
    venv_python: Path | None = None,
    work_dir: Path | None = None,
) -> tuple[dict, str]:
    """Run one suite under ``python`` in a fresh process of a hooked venv.

    Returns its summary and its whole output. The venv is made in a temporary
    directory unless one (``venv_python``, from :func:`make_venv`) is given;
    ``work_dir`` holds the report and log (a temporary one by default).
    """
    spec = SUITES[suite]
    timeout = spec.timeout if timeout is None else timeout
    with contextlib.ExitStack() as stack:
        if work_dir is None:
            work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="shx-cpy-")))
        if venv_python is None:
            venv_python = make_venv(python, work_dir / "venv")
        report = work_dir / f"{suite}-{mode}.report"
        report.unlink(missing_ok=True)
        configure_venv(venv_python, mode, report)
        test_cwd = work_dir / f"{suite}-{mode}.cwd"
        test_cwd.mkdir(exist_ok=True)
        command = [
            str(venv_python),
            str(Path(__file__).resolve()),
            "--in-process",
            "--suite",
            suite,
            "--mode",
            mode,
            "--verbosity",
            "2",
        ]
        completed = run_bounded(
            command,
            timeout=timeout,
            cwd=test_cwd,
            env=clean_environment(),
            log=work_dir / f"{suite}-{mode}.log",
        )
        probes = probe_children(venv_python, mode, work_dir / f"{suite}-{mode}.probe")
        configure_venv(venv_python, None, None)
        output = completed.output
        summary = None
        for line in reversed(output.splitlines()):
            if line.startswith(RESULT_PREFIX):
                summary = json.loads(line[len(RESULT_PREFIX) :])
                break
        if summary is None:
            reason = (
                f"timed out after {timeout:.0f} s"
                if completed.timed_out
                else f"printed no summary (exit {completed.returncode})"
            )
            summary = _failed_summary(python, suite, mode, reason)
        summary["wall_s"] = round(completed.duration_s, 1)
        summary["child_probes"] = probes
        if not all(probe["as_expected"] for probe in probes):
            summary["verified"] = summary["passed"] = False
        summary["left_processes"] = completed.left_processes
        if completed.left_processes:
            summary["passed"] = False
        # Records written after the test process's own census (children still ending).
        if summary.get("hook") is not None:
            main_pid = _main_pid(read_report(report))
            summary["hook"] = summarize_report(read_report(report), mode, main_pid)
            key = "swap_held" if mode == "sockharness" else "stdlib_held"
            if not summary["hook"][key]:
                summary["verified"] = summary["passed"] = False
        return summary, output


CHILD_PROBE = (
    "import socketserver, http.server, xmlrpc.server, logging.config; "
    "print(repr([socketserver.__name__, http.server.socketserver.__name__, "
    "xmlrpc.server.socketserver.__name__, logging.config.ThreadingTCPServer.__module__]))"
)

#: How the suites start Python children: as test.support.script_helper does (-I, or -E),
#: with an environment of their own (werkzeug's dev server sets PYTHONPATH), and plainly.
CHILD_PROBE_WAYS = {
    "-I (script_helper.assert_python_ok)": (["-I", "-X", "faulthandler"], {}),
    "-E -s": (["-E", "-s"], {}),
    "own PYTHONPATH": ([], {"PYTHONPATH": "/nonexistent"}),
}


def probe_children(venv_python: Path, mode: str, report: Path) -> list[dict]:
    """Start Python children of the venv the ways the suites do; each says what it got.

    The suites' own children mostly never import socketserver (test_logging's
    run logging code in a fresh interpreter), so the swap is shown to hold in
    a child by asking one directly, with the hook armed exactly as for the run.
    """
    expected = "sockharness.server" if mode == "sockharness" else "socketserver"
    configure_venv(venv_python, mode, report)
    probes = []
    for way, (flags, extra_env) in CHILD_PROBE_WAYS.items():
        completed = subprocess.run(
            [str(venv_python), *flags, "-c", CHILD_PROBE],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_environment(extra_env),
            check=False,
        )
        try:
            seen = ast.literal_eval(completed.stdout.strip())
        except (ValueError, SyntaxError):
            seen = [completed.stdout.strip(), completed.stderr.strip()[-300:]]
        probes.append({"way": way, "seen": seen, "as_expected": seen == [expected] * 4})
    hook = summarize_report(read_report(report), mode)
    reported = hook["socketserver_imports"]["ours" if mode == "sockharness" else "stdlib"]
    if reported != len(CHILD_PROBE_WAYS):
        probes.append({"way": "hook reports", "seen": hook, "as_expected": False})
    return probes


def _main_pid(records: list[dict]) -> int | None:
    for record in records:
        if record["event"] == "start" and "--in-process" in record["argv"]:
            return record["pid"]
    return None


def compare_with_baseline(ours: dict, stdlib: dict | None, *, skips_allowed: bool = True) -> dict:
    """Tell what sockharness.server caused from what the stdlib run shows as well.

    Without a stdlib run every failure counts against us, and so does every
    skip unless ``skips_allowed`` (test_socketserver must run whole: it skips
    nothing on a Linux machine with the stdlib either).
    """
    if stdlib is None:
        problems = ours["failures"] + ours["errors"] + ([] if skips_allowed else ours["skipped"])
        return {
            "baseline": False,
            "same_skips": None,
            "only_ours": {"failures": ours["failures"], "errors": ours["errors"]},
            "ok": ours["passed"] and not problems and not ours.get("left_processes"),
        }
    ours_bad = set(ours["failures"]) | set(ours["errors"])
    stdlib_bad = set(stdlib["failures"]) | set(stdlib["errors"])
    only_ours_skips = sorted(set(ours["skipped"]) - set(stdlib["skipped"]))
    only_stdlib_skips = sorted(set(stdlib["skipped"]) - set(ours["skipped"]))
    only_ours_bad = sorted(ours_bad - stdlib_bad)
    verified = bool(ours.get("verified")) and bool(stdlib.get("verified"))
    return {
        "baseline": True,
        "same_skips": not only_ours_skips and not only_stdlib_skips,
        "only_ours_skips": only_ours_skips,
        "only_stdlib_skips": only_stdlib_skips,
        "same_tests_run": ours["tests_run"] == stdlib["tests_run"],
        "only_ours": {
            "failures": sorted(set(ours["failures"]) - stdlib_bad),
            "errors": sorted(set(ours["errors"]) - stdlib_bad),
        },
        "also_on_stdlib": sorted(ours_bad & stdlib_bad),
        "ok": verified
        and not only_ours_bad
        and not only_ours_skips
        and ours["tests_run"] == stdlib["tests_run"]
        and not ours.get("environment_altered")
        and not ours.get("left_processes")
        and not ours.get("no_summary"),
    }


def run_suite(
    python: str,
    suite: str,
    *,
    baseline: bool = True,
    venv_python: Path | None = None,
    work_dir: Path | None = None,
) -> dict:
    """One suite under ``python``: on sockharness.server and, for consumers, on the stdlib."""
    with contextlib.ExitStack() as stack:
        if work_dir is None:
            work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="shx-cpy-")))
        if venv_python is None:
            venv_python = make_venv(python, work_dir / "venv")
        ours, ours_output = run_in_subprocess(
            python, suite=suite, venv_python=venv_python, work_dir=work_dir
        )
        stdlib = stdlib_output = None
        if baseline and SUITES[suite].baseline:
            stdlib, stdlib_output = run_in_subprocess(
                python, suite=suite, mode="stdlib", venv_python=venv_python, work_dir=work_dir
            )
        return {
            "suite": suite,
            "ours": ours,
            "stdlib": stdlib,
            "comparison": compare_with_baseline(ours, stdlib, skips_allowed=SUITES[suite].baseline),
            "ours_output": ours_output,
            "stdlib_output": stdlib_output,
        }


def _row(run: dict) -> str:
    ours, stdlib, comparison = run["ours"], run["stdlib"], run["comparison"]
    if stdlib is None:
        baseline = f"{'-':>6} {'-':>6} {'-':>5}"
    else:
        same = "yes" if comparison["same_skips"] else "NO"
        baseline = f"{stdlib['tests_run']:>6} {len(stdlib['skipped']):>6} {same:>5}"
    return (
        f"{ours['python']:<8} {run['suite']:<22} {ours['tests_run']:>5} "
        f"{len(ours['failures']):>4} {len(ours['errors']):>5} {len(ours['skipped']):>5}  "
        f"{baseline} {ours.get('wall_s', 0):>6.1f} "
        f"{'-' if stdlib is None else format(stdlib.get('wall_s', 0), '.1f'):>6}  "
        f"{'ok' if comparison['ok'] else 'FAILED'}"
    )


HEADER = (
    f"{'python':<8} {'suite':<22} {'run':>5} {'fail':>4} {'error':>5} {'skip':>5}  "
    f"{'std-run':>6} {'std-sk':>6} {'same':>5} {'time':>6} {'std-t':>6}  result"
)


def describe(run: dict) -> list[str]:
    """Readable lines on a run: the swap's evidence, skips and failures."""
    lines = []
    ours, stdlib, comparison = run["ours"], run["stdlib"], run["comparison"]
    hook = ours.get("hook")
    if hook:
        servers = hook["servers"]
        lines.append(
            f"  swap: {'held' if hook['swap_held'] else 'NOT HELD'}; servers built "
            f"{servers['built']} ({servers['ours']} on sockharness.server, {servers['stdlib']} "
            f"on the stdlib, {servers['in_children']} in children); consumers {ours['consumers']}"
        )
        lines.append(
            f"  children: {hook['child_processes']} Python processes reported "
            f"({hook['python_children_launched']} launched via subprocess), "
            f"{hook['children_importing_socketserver']} imported socketserver: "
            f"{hook['socketserver_imports']}"
        )
        probes = ours.get("child_probes") or []
        if probes:
            held = all(probe["as_expected"] for probe in probes)
            lines.append(
                f"  child probes ({', '.join(p['way'] for p in probes)}): "
                f"{'sockharness.server in each' if held else probes}"
            )
        if hook["python_children_escaping_the_hook"]:
            escaping = hook["python_children_escaping_the_hook"]
            lines.append(f"  children escaping the hook: {escaping}")
        if hook["blocked_network"]:
            lines.append(f"  refused non-loopback: {hook['blocked_network']}")
    if ours["skipped"]:
        verdict = (
            "the same skips as the stdlib"
            if comparison.get("same_skips")
            else "skips (no stdlib run to compare)"
            if stdlib is None
            else "skips DIFFER from the stdlib's"
        )
        lines.append(f"  {len(ours['skipped'])} {verdict}:")
        reasons = ours["skip_reasons"]
        lines.extend(f"    {test}: {reasons.get(test, '')}" for test in ours["skipped"])
    if stdlib is not None and comparison.get("only_stdlib_skips"):
        lines.append(f"  skipped on the stdlib only: {comparison['only_stdlib_skips']}")
    for kind in ("failures", "errors"):
        for test in comparison["only_ours"][kind]:
            lines.append(f"  {kind[:-1].upper()} on sockharness.server only: {test}")
    for test in comparison.get("also_on_stdlib", []):
        lines.append(f"  fails on the stdlib too (environment): {test}")
    if ours.get("environment_altered"):
        lines.append("  the suite reports it left threads or processes behind")
    if ours.get("left_processes"):
        lines.append(f"  the run left processes behind: {ours['left_processes']}")
    if ours.get("no_summary"):
        lines.append(f"  the run {ours['no_summary']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--all", action="store_true", help="every installed CPython 3.10-3.13")
    group.add_argument("--python", help="run under this interpreter")
    group.add_argument(
        "--in-process",
        action="store_true",
        help="run one --suite in this process (what the hooked venv runs; no children check)",
    )
    parser.add_argument(
        "--suite",
        action="append",
        choices=[*SUITES, "all"],
        help="a suite to run (repeatable; default: all)",
    )
    parser.add_argument("--mode", choices=MODES, default="sockharness", help="with --in-process")
    parser.add_argument(
        "--no-baseline", action="store_true", help="do not run consumer suites on the stdlib too"
    )
    parser.add_argument("--verbose-failures", action="store_true", help="print failed runs' output")
    parser.add_argument("--verbosity", type=int, default=1)
    args = parser.parse_args(argv)
    suites = list(SUITES) if not args.suite or "all" in args.suite else args.suite

    if args.in_process:
        if len(suites) != 1:
            parser.error("--in-process runs exactly one --suite")
        summary = run_here(args.verbosity, suites[0], args.mode)
        print(RESULT_PREFIX + json.dumps(summary), flush=True)
        return 0 if summary["passed"] else 1

    targets = find_interpreters() if args.all else {"?": args.python or sys.executable}
    runs = []
    print(HEADER, flush=True)
    for python in targets.values():
        with tempfile.TemporaryDirectory(prefix="shx-cpy-") as tmp:
            venv_python = make_venv(python, Path(tmp) / "venv")
            for suite in suites:
                run = run_suite(
                    python,
                    suite,
                    baseline=not args.no_baseline,
                    venv_python=venv_python,
                    work_dir=Path(tmp),
                )
                runs.append(run)
                print(_row(run), flush=True)
                for line in describe(run):
                    print(line, flush=True)
                if not run["comparison"]["ok"] and args.verbose_failures:
                    print(run["ours_output"])
    if "test_socketserver" in suites:
        print(RE_AIM_NOTE)
    for run in runs:
        for summary in (run["ours"], run["stdlib"]):
            if summary is not None:
                print(RESULT_PREFIX + json.dumps(summary))
    all_passed = all(run["comparison"]["ok"] for run in runs)
    total = {
        "passed": all_passed,
        "runs": [
            {
                "python": run["ours"]["python"],
                "suite": run["suite"],
                "tests_run": run["ours"]["tests_run"],
                "failures": len(run["ours"]["failures"]),
                "errors": len(run["ours"]["errors"]),
                "skipped": len(run["ours"]["skipped"]),
                "stdlib_skipped": None if run["stdlib"] is None else len(run["stdlib"]["skipped"]),
                "same_skips": run["comparison"]["same_skips"],
                "seconds": run["ours"].get("wall_s"),
                "stdlib_seconds": None if run["stdlib"] is None else run["stdlib"].get("wall_s"),
                "ok": run["comparison"]["ok"],
            }
            for run in runs
        ],
    }
    print(TOTAL_PREFIX + json.dumps(total), flush=True)
    return 0 if all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
