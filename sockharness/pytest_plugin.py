"""The sockharness pytest plugin: fixtures, options, markers and report hooks.

Registered through the ``pytest11`` entry point, so installing sockharness is
enough. It is a thin shell: servers, clients, TLS and payloads come from the
library (``sockharness.start_server``, ``sockharness.connect``, ...), which
works without pytest too. Loading it imports almost nothing; the library is
imported when a fixture is first used.

Options: ``--sockharness-seed N`` fixes every random choice (the seed is in
the report header and in every failure); ``--sockharness-leaks=fail|warn|off``
(ini ``sockharness_leaks``, default ``warn``) says what a leak does.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import ssl
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._core import (
    LEAK_MODES,
    PROFILE_NAMES,
    UNFIRED_MODES,
    VIRTUAL_TIMES,
    LeakMode,
    UnfiredMode,
    VirtualTime,
    assignment_argument,
    sweep_count_argument,
)

if TYPE_CHECKING:
    import trustme

    from .control import ProxyAPI
    from .explore import Exploration
    from .faults import Fault, FaultProxy, Recording, ResolverFaults
    from .harness import Client, Payloads, RunningServer, TLSMaterial

_SEED = pytest.StashKey[int]()
_LEAKS = pytest.StashKey[LeakMode]()
_SERVERS = pytest.StashKey[list["RunningServer"]]()
_FAILED_WITH_ERRORS = pytest.StashKey[str]()
_USED = pytest.StashKey[bool]()
_STOP_TIMEOUT = pytest.StashKey[float]()
_UNFIRED = pytest.StashKey[UnfiredMode]()
_VIRTUAL_TIME = pytest.StashKey[VirtualTime]()
_PROXIES = pytest.StashKey[list["FaultProxy"]]()
_FAULTY_CLIENTS = pytest.StashKey[list["Client"]]()
_FAILURES = pytest.StashKey["Path | None"]()
_REPLAY = pytest.StashKey["tuple[Path, Recording] | None"]()
_REPLAY_VERDICT = pytest.StashKey[str]()
_WROTE = pytest.StashKey[Path]()
_DETERMINISM = pytest.StashKey[list[str]]()


#: Where the cache keeps the seed of the last run, for ``--sockharness-seed last``.
_LAST_SEED_KEY = "sockharness/seed"


def _seed_option(value: str) -> int | str:
    if value == "last":
        return value
    try:
        seed = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a seed: give a whole number from 0 to 2**64 - 1, or 'last'"
        ) from None
    if not 0 <= seed < 2**64:
        raise argparse.ArgumentTypeError(
            f"{seed} is not a seed: give a whole number from 0 to 2**64 - 1, or 'last'"
        )
    return seed


def sweep_count(config: pytest.Config) -> int | None:
    """How many seeds each swept test runs under: the option's, or the replayed run's."""
    count = config.getoption("--sockharness-seeds")
    replay = config.stash.get(_REPLAY, None)
    if count is None and replay is not None:
        count = replay[1].extra.get("seeds")
    return count if isinstance(count, int) else None


def _run_seed(config: pytest.Config) -> int:
    """The run's seed: the controller's (under xdist), the one given, the last run's, or new."""
    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None and "sockharness_seed" in worker_input:
        seed = int(worker_input["sockharness_seed"])
        if config.getoption("--sockharness-seed") is not None:
            config.option.sockharness_seed = seed  # 'last', as the controller read it.
        return seed
    given = config.getoption("--sockharness-seed")
    cache = getattr(config, "cache", None)
    replay = config.stash.get(_REPLAY, None)
    if replay is not None:
        path, recording = replay
        if given is not None and given != recording.seed:
            raise pytest.UsageError(
                f"--sockharness-seed {given} and --sockharness-replay {path}, whose seed is "
                f"{recording.seed}: a replay runs with its own seed; leave --sockharness-seed out"
            )
        given = recording.seed
    if given == "last":
        last = cache.get(_LAST_SEED_KEY, None) if cache is not None else None
        if not isinstance(last, int):
            why = "the cache is off (-p no:cacheprovider)" if cache is None else "none is cached"
            raise pytest.UsageError(
                f"--sockharness-seed last: no previous run's seed to reuse ({why}); "
                f"give the seed as a number"
            )
        seed = last
        given = seed
    elif given is not None:
        seed = int(given)
    else:
        seed = int.from_bytes(os.urandom(4), "big")
    if given is not None:
        config.option.sockharness_seed = seed  # What scenario items read: the number.
    if cache is not None:
        cache.set(_LAST_SEED_KEY, seed)
    return seed


def _read_replay(config: pytest.Config) -> tuple[Path, Recording] | None:
    given = config.getoption("--sockharness-replay")
    if given is None:
        return None
    from ._core import UsageError
    from .faults import Recording

    path = Path(given)
    try:
        return path, Recording.read(path)
    except UsageError as error:
        raise pytest.UsageError(f"--sockharness-replay: {error}") from None


def _failures_directory(config: pytest.Config) -> Path | None:
    """Where replay files go: ``None`` when off, and while replaying one."""
    value = config.getoption("--sockharness-failures") or config.getini("sockharness_failures")
    if value == "off" or config.stash.get(_REPLAY, None) is not None:
        return None
    return config.rootpath / value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(
        "sockharness", "sockharness: servers, clients and faults for network tests"
    )
    group.addoption(
        "--sockharness-seed",
        type=_seed_option,
        metavar="N|last",
        default=None,
        help="seed for every random choice sockharness makes, or 'last' for the previous "
        "run's (default: a new one per run, printed in the report header and on failure)",
    )
    group.addoption(
        "--sockharness-replay",
        metavar="FILE",
        default=None,
        help="replay a failed test from the replay file its report named: its seed, only "
        "that test, and a check that every fault decision is the recorded one",
    )
    group.addoption(
        "--sockharness-var",
        type=assignment_argument,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="the value of ${NAME} in collected scenario files' strings (before the "
        "environment's); repeat for more",
    )
    group.addoption(
        "--sockharness-seeds",
        type=sweep_count_argument,
        metavar="N",
        default=None,
        help="a seed sweep: run each test marked sockharness_sweep, and each scenario, under "
        "N seeds derived from the run's (or the scenario's)",
    )
    group.addoption(
        "--sockharness-check-determinism",
        action="store_true",
        default=False,
        help="run each test that uses sockharness's servers, clients or proxies twice with "
        "the same seed ([determinism1], [determinism2]) and fail the run where their fault "
        "decisions differ",
    )
    group.addoption(
        "--sockharness-failures",
        metavar="DIR",
        default=None,
        help="where a failing test's replay file is written (default: the "
        "sockharness_failures ini value, else .sockharness/failures under the root "
        "directory; 'off': nowhere)",
    )
    group.addoption(
        "--sockharness-leaks",
        choices=LEAK_MODES,
        default=None,
        help="what a server that leaves threads, sockets, children or socket files behind "
        "does to its test: fail it, warn, or nothing (default: the sockharness_leaks ini "
        "value, else warn)",
    )
    group.addoption(
        "--sockharness-unfired",
        choices=UNFIRED_MODES,
        default=None,
        help="what a fault that was planned but never fired does to its test (default: the "
        "sockharness_unfired ini value, else fail: a chaos test must not pass vacuously)",
    )
    group.addoption(
        "--sockharness-virtual-time",
        choices=VIRTUAL_TIMES,
        default=None,
        help="how in-process faults' waits pass in make_server and make_client: off (real "
        "time), connect (a connect certain to time out does so at once), timeouts (a "
        "receive certain to time out too), jump (every fault wait skipped); default: the "
        "sockharness_virtual_time ini value, else connect. A test's own: "
        "@pytest.mark.sockharness_virtual_time(MODE)",
    )
    group.addoption(
        "--sockharness-conformance",
        metavar="TARGET",
        default=None,
        help="also collect the conformance suite for TARGET: a module like socketserver "
        "(every server class in it) or package.module:ClassName",
    )
    group.addoption(
        "--sockharness-conformance-profile",
        choices=PROFILE_NAMES,
        default="ci",
        help="how hard the conformance suite looks (default: ci)",
    )
    group.addoption(
        "--sockharness-conformance-shutdown-bound",
        type=float,
        metavar="SECONDS",
        default=None,
        help="the longest shutdown() may take (default: the poll interval plus slack)",
    )
    group.addoption(
        "--sockharness-conformance-factory",
        metavar="MODULE:CALLABLE",
        default=None,
        help="builds servers of a class whose constructor needs more than (server_address, "
        "RequestHandlerClass): called as callable(server_class, server_address, "
        "RequestHandlerClass)",
    )
    group.addoption(
        "--sockharness-stop-timeout",
        type=float,
        metavar="SECONDS",
        default=10.0,
        help="how long a server may take to stop at teardown before the test errors (default: 10)",
    )
    parser.addini(
        "sockharness_failures",
        "default for --sockharness-failures: a directory (relative to the root directory), or off",
        default=".sockharness/failures",
    )
    parser.addini(
        "sockharness_leaks",
        "default for --sockharness-leaks: fail, warn or off",
        default="warn",
    )
    parser.addini(
        "sockharness_virtual_time",
        "default for --sockharness-virtual-time: off, connect, timeouts or jump",
        default="connect",
    )
    parser.addini(
        "sockharness_unfired",
        "default for --sockharness-unfired: fail, warn or off",
        default="fail",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sockharness_sweep: under --sockharness-seeds N, run this test under N seeds "
        "(ids sweep0, sweep1, ...), each derived from the run's seed",
    )
    config.addinivalue_line(
        "markers",
        "sockharness_virtual_time(mode): how this test's in-process faults' waits pass in "
        "make_server and make_client: off, connect, timeouts or jump",
    )
    config.addinivalue_line(
        "markers",
        "sockharness(kinds=None, concurrency=None, handler=None, server_attrs=None, "
        "server_class=None): narrow the any_server fixture to these kinds and concurrencies, "
        "choose its handler class, set attributes on its servers, and run a class of your own "
        "(a class: only where it fits; a mapping 'kind' or 'kind-concurrency' -> class).",
    )
    config.stash[_REPLAY] = _read_replay(config)
    config.stash[_SEED] = _run_seed(config)
    config.stash[_FAILURES] = _failures_directory(config)
    leaks = config.getoption("--sockharness-leaks") or config.getini("sockharness_leaks")
    if leaks not in LEAK_MODES:
        raise pytest.UsageError(
            f"sockharness_leaks = {leaks!r} is not one of fail, warn, off; fix the ini file."
        )
    config.stash[_LEAKS] = leaks
    unfired = config.getoption("--sockharness-unfired") or config.getini("sockharness_unfired")
    if unfired not in UNFIRED_MODES:
        raise pytest.UsageError(
            f"sockharness_unfired = {unfired!r} is not one of fail, warn, off; fix the ini file."
        )
    config.stash[_UNFIRED] = unfired
    config.stash[_VIRTUAL_TIME] = _configured_virtual_time(config)
    stop_timeout = config.getoption("--sockharness-stop-timeout")
    if stop_timeout <= 0:
        raise pytest.UsageError(
            f"--sockharness-stop-timeout must be a positive number of seconds, got {stop_timeout}"
        )
    config.stash[_STOP_TIMEOUT] = stop_timeout


def _configured_virtual_time(config: pytest.Config) -> VirtualTime:
    value = config.getoption("--sockharness-virtual-time") or config.getini(
        "sockharness_virtual_time"
    )
    for mode in VIRTUAL_TIMES:
        if value == mode:
            return mode
    raise pytest.UsageError(
        f"sockharness_virtual_time = {value!r} is not one of {', '.join(VIRTUAL_TIMES)}; "
        f"fix the ini file."
    )


def _virtual_time(request: pytest.FixtureRequest) -> VirtualTime:
    """The test's virtual time: its marker's, else the run's."""
    marker = request.node.get_closest_marker("sockharness_virtual_time")
    if marker is None:
        return request.config.stash[_VIRTUAL_TIME]
    value = marker.args[0] if marker.args else marker.kwargs.get("mode")
    for mode in VIRTUAL_TIMES:
        if value == mode:
            return mode
    raise pytest.UsageError(
        f"@pytest.mark.sockharness_virtual_time({value!r}) on {request.node.nodeid}: use one "
        f"of {', '.join(VIRTUAL_TIMES)}"
    )


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: every worker uses the controller's seed."""
    node.workerinput["sockharness_seed"] = node.config.stash[_SEED]


def pytest_report_header(config: pytest.Config) -> str:
    seed = config.stash[_SEED]
    return (
        f"sockharness: seed {seed} (replay with --sockharness-seed {seed}), "
        f"leaks={config.stash[_LEAKS]}"
    )


def derive_test_seed(config: pytest.Config, nodeid: str) -> int:
    """The seed of one test: the run's seed and the test's id, hashed (stable everywhere)."""
    from ._core import derive_seed

    return derive_seed(config.stash[_SEED], _one_of_two(nodeid)[0])


#: The fixtures whose servers, proxies and clients make fault decisions.
_DECIDING_FIXTURES = ("make_server", "any_server", "fault_proxy", "make_client")
_RUN_ID = re.compile(r"(?:^|-)determinism([12])(?=-|$)")


def _one_of_two(nodeid: str) -> tuple[str, int | None]:
    """A test's id without its determinism run (``[determinism1]``), and which run it is."""
    head, bracket, params = nodeid.partition("[")
    if not bracket:
        return nodeid, None
    found = _RUN_ID.search(params[:-1])
    if found is None:
        return nodeid, None
    rest = (params[: found.start()] + params[found.end() :]).strip("-")
    rest = rest.removesuffix("]").strip("-")
    return (f"{head}[{rest}]" if rest else head), int(found.group(1))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Chaos scenario files (``.toml`` with a ``[scenario]`` table) are test items."""
    if file_path.suffix != ".toml":
        return None
    from .chaos import collect_scenario_file

    return collect_scenario_file(file_path, parent)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    _keep_the_replayed_test(config, items)
    target = config.getoption("--sockharness-conformance")
    if not target:
        return
    from .conformance import TargetError, conformance_items

    try:
        items.extend(
            conformance_items(
                session,
                target,
                config.getoption("--sockharness-conformance-profile"),
                config.getoption("--sockharness-conformance-shutdown-bound"),
                config.getoption("--sockharness-conformance-factory"),
            )
        )
    except TargetError as error:
        raise pytest.UsageError(f"--sockharness-conformance={target}: {error}") from None


def _keep_the_replayed_test(config: pytest.Config, items: list[pytest.Item]) -> None:
    replay = config.stash.get(_REPLAY, None)
    if replay is None:
        return
    path, recording = replay
    kept = [item for item in items if item.nodeid == recording.name]
    if not kept:
        raise pytest.UsageError(
            f"--sockharness-replay {path}: the recorded test {recording.name} was not "
            f"collected; run pytest from the same directory, on the same files"
        )
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept


# -- any_server parametrization ------------------------------------------------------------


def _supported_pairs() -> list[tuple[str, str]]:
    import socket

    from ._core import CONCURRENCIES, KINDS

    pairs: list[tuple[str, str]] = []
    for kind in KINDS.values():
        if kind.unix and not hasattr(socket, "AF_UNIX"):
            continue
        for concurrency in CONCURRENCIES:
            if concurrency == "forking" and not hasattr(os, "fork"):
                continue
            pairs.append((kind.name, concurrency))
    return pairs


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    _sweep(metafunc)
    _twice(metafunc)
    if "any_server" not in metafunc.fixturenames:
        return
    from ._core import parse_concurrency, parse_kind

    marker = metafunc.definition.get_closest_marker("sockharness")
    options = marker.kwargs if marker is not None else {}
    unknown = set(options) - set(_MARKER_ARGUMENTS)
    if unknown:
        raise pytest.UsageError(
            f"@pytest.mark.sockharness() got unknown argument(s) {sorted(unknown)}; "
            f"it takes {', '.join(f'{name}=' for name in _MARKER_ARGUMENTS)}."
        )
    attrs = options.get("server_attrs")
    if attrs is not None and not (
        isinstance(attrs, dict) and all(isinstance(key, str) for key in attrs)
    ):
        raise pytest.UsageError(
            f"@pytest.mark.sockharness(server_attrs=...) takes a dict of attribute names to "
            f"values, got {attrs!r}"
        )
    fits = _server_class_filter(options.get("server_class"))
    kinds = [parse_kind(k).name for k in _as_list(options.get("kinds"), "kinds")]
    concurrencies = [
        parse_concurrency(c) for c in _as_list(options.get("concurrency"), "concurrency")
    ]
    pairs = [
        (kind, concurrency)
        for kind, concurrency in _supported_pairs()
        if (not kinds or kind in kinds)
        and (not concurrencies or concurrency in concurrencies)
        and fits(kind, concurrency)
    ]
    if not pairs:
        raise pytest.UsageError(
            f"@pytest.mark.sockharness(kinds={kinds}, concurrency={concurrencies}) leaves no "
            f"server this platform supports for {metafunc.definition.nodeid}."
        )
    metafunc.parametrize(
        "any_server",
        [pytest.param(pair, id=f"{pair[0]}-{pair[1]}") for pair in pairs],
        indirect=True,
    )


def _sweep(metafunc: pytest.Metafunc) -> None:
    """Under ``--sockharness-seeds N``, a marked test runs N times, as ``[sweep0]`` ... : each
    id is part of the test's id, from which its seed derives, so each gets its own."""
    count = sweep_count(metafunc.config)
    if count is None or metafunc.definition.get_closest_marker("sockharness_sweep") is None:
        return
    metafunc.fixturenames.append("_sockharness_sweep")  # As pytest-repeat adds its own.
    metafunc.parametrize(
        "_sockharness_sweep", list(range(count)), ids=[f"sweep{k}" for k in range(count)]
    )


def _twice(metafunc: pytest.Metafunc) -> None:
    """Under ``--sockharness-check-determinism``, a test whose fixtures decide faults runs
    twice, as ``[determinism1]`` and ``[determinism2]``, with one seed."""
    if not metafunc.config.getoption("--sockharness-check-determinism"):
        return
    if not any(name in metafunc.fixturenames for name in _DECIDING_FIXTURES):
        return
    metafunc.fixturenames.append("_sockharness_run")
    metafunc.parametrize("_sockharness_run", [1, 2], ids=["determinism1", "determinism2"])


@pytest.fixture
def _sockharness_run(request: pytest.FixtureRequest) -> int:
    """Which of the two runs of a determinism check this is."""
    return int(request.param)


@pytest.fixture
def _sockharness_sweep(request: pytest.FixtureRequest) -> int:
    """The index of a swept test's seed (under ``--sockharness-seeds``)."""
    return int(request.param)


_MARKER_ARGUMENTS = ("kinds", "concurrency", "handler", "server_attrs", "server_class")


def _server_class_filter(server_class: Any) -> Callable[[str, str], bool]:
    """Which (kind, concurrency) pairs any_server keeps for the marker's ``server_class``.

    A class keeps only the pair it serves; a mapping keeps every pair (those it
    does not name run sockharness's own class).
    """
    if server_class is None or isinstance(server_class, dict):
        return lambda kind, concurrency: True
    from ._core import concurrency_of_class, kind_of_class

    if not isinstance(server_class, type):
        raise pytest.UsageError(
            f"@pytest.mark.sockharness(server_class=...) takes a server class or a mapping "
            f"of 'kind' or 'kind-concurrency' to classes, got {server_class!r}"
        )
    try:
        own = (kind_of_class(server_class).name, concurrency_of_class(server_class))
    except ValueError as exc:
        raise pytest.UsageError(f"@pytest.mark.sockharness(server_class=...): {exc}") from None
    return lambda kind, concurrency: (kind, concurrency) == own


def _marker_server_class(marker: Any, kind: str, concurrency: str) -> type | None:
    """The class the marker asks any_server to run for this pair (``None``: ours)."""
    chosen = marker.kwargs.get("server_class") if marker is not None else None
    if isinstance(chosen, dict):
        found = chosen.get(f"{kind}-{concurrency}", chosen.get(kind))
        return found if isinstance(found, type) else None
    return chosen if isinstance(chosen, type) else None


def _as_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return [str(v) for v in value]
    except TypeError:
        raise pytest.UsageError(
            f"@pytest.mark.sockharness({name}=...) takes a name or a list of names, got {value!r}"
        ) from None


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def sockharness_seed(request: pytest.FixtureRequest) -> int:
    """This test's seed: derived from the run's seed (``--sockharness-seed``) and the test id."""
    request.node.stash[_USED] = True
    return derive_test_seed(request.config, request.node.nodeid)


@pytest.fixture
def payloads(sockharness_seed: int) -> Payloads:
    """Seeded test data: ``.text()``, ``.line()``, ``.bytes(n)``, ``.json_record()``, ``.chunks()``.

    The same seed (``--sockharness-seed``) and test give the same data.
    """
    from .harness import Payloads

    return Payloads(sockharness_seed)


#: The directory under pytest's cache (``.pytest_cache/d/``) that keeps the test CA.
TLS_CACHE_DIRECTORY = "sockharness-tls"


@pytest.fixture(scope="session")
def _sockharness_tls(pytestconfig: pytest.Config) -> TLSMaterial:
    from .harness import TLSMaterial

    # Kept in pytest's cache, so that a session loads the CA instead of importing
    # trustme and cryptography to make one (about 45 ms). ``--cache-clear``
    # gives a new one; ``-p no:cacheprovider`` a new one each session.
    cache = getattr(pytestconfig, "cache", None)
    if cache is None:
        return TLSMaterial()
    try:
        directory = cache.mkdir(TLS_CACHE_DIRECTORY)
    except OSError:  # A read-only checkout, say: a CA of the session's own, not kept.
        return TLSMaterial()
    return TLSMaterial.kept_in(directory)


@pytest.fixture(scope="session")
def tls_ca(_sockharness_tls: TLSMaterial) -> trustme.CA:
    """The session's ``trustme.CA``; sockharness's TLS servers use certificates it issued.

    Kept in pytest's cache for a month (``--cache-clear`` makes a new one).
    """
    return _sockharness_tls.ca


@pytest.fixture
def tls_server_context(_sockharness_tls: TLSMaterial) -> ssl.SSLContext:
    """A new server-side ``ssl.SSLContext`` with a certificate for localhost, 127.0.0.1 and ::1."""
    return _sockharness_tls.server_context()


@pytest.fixture
def tls_client_context(_sockharness_tls: TLSMaterial) -> ssl.SSLContext:
    """A new client-side ``ssl.SSLContext`` that trusts :func:`tls_ca`."""
    return _sockharness_tls.client_context()


def _servers(item: pytest.Item) -> list[RunningServer]:
    item.stash[_USED] = True
    return item.stash.setdefault(_SERVERS, [])


@pytest.fixture
def make_server(request: pytest.FixtureRequest) -> Iterator[Callable[..., RunningServer]]:
    """Start servers in the background; each is stopped at teardown, errors and leaks checked.

    ``make_server(handler, kind="tcp", *, concurrency="threading", tls=False,
    server_class=None, faults=None, virtual_time=None, **server_attrs) ->
    RunningServer``; ``faults`` are applied in process to every accepted
    connection, seeded by the test's seed; ``virtual_time`` (default: the
    test's marker, ``--sockharness-virtual-time``, the ini value) says how
    their waits pass. With ``tls=True`` the session's servers share one server
    context and one client context (``server.client_tls_context``): leave them
    as they are, and take ``tls_server_context`` / ``tls_client_context`` for
    contexts of your own to change.
    """
    __tracebackhide__ = True  # A teardown failure shows the test, not this fixture.
    from ._core import IPv6Unavailable
    from .harness import start_server

    started: list[RunningServer] = []

    def factory(
        handler: type,
        kind: str | None = None,
        *,
        concurrency: str | None = None,
        tls: bool | ssl.SSLContext = False,
        server_class: type | None = None,
        faults: Any = None,
        virtual_time: VirtualTime | None = None,
        **server_attrs: Any,
    ) -> RunningServer:
        __tracebackhide__ = True
        client_tls = None
        if tls is True:
            material: TLSMaterial = request.getfixturevalue("_sockharness_tls")
            # The session's servers share one pair of contexts: making them is
            # the dearest part of a TLS fixture after the handshake (1.7 ms of
            # the 2.5 ms it cost). The tls_*_context fixtures give fresh ones.
            tls, client_tls = material.shared_server_context, material.shared_client_context
        try:
            server = start_server(
                handler,
                kind,
                concurrency=concurrency,
                tls=tls,
                server_class=server_class,
                faults=faults,
                seed=derive_test_seed(request.config, request.node.nodeid),
                leaks="off",  # This plugin acts on leaks itself, at teardown.
                client_tls=client_tls,
                virtual_time=virtual_time or _virtual_time(request),
                **server_attrs,
            )
        except IPv6Unavailable as exc:
            pytest.skip(str(exc))
        started.append(server)
        _servers(request.node).append(server)
        return server

    yield factory
    _stop_all(request, started)


def _stop_all(request: pytest.FixtureRequest, servers: list[RunningServer]) -> None:
    __tracebackhide__ = True
    from .harness import stop_servers

    found = stop_servers(servers, request.config.stash[_STOP_TIMEOUT])
    mode = request.config.stash[_LEAKS]
    error = found.error(mode, _seed_line(request.node))
    if error is not None:
        raise error
    if mode == "warn" and found.leak_warning is not None:
        import warnings

        from ._core import LeakWarning

        warnings.warn(LeakWarning(found.leak_warning), stacklevel=2)
    _report_unfired(request, found.unfired)


def _report_unfired(request: pytest.FixtureRequest, reports: list[str]) -> None:
    __tracebackhide__ = True
    mode = request.config.stash[_UNFIRED]
    if not reports or mode == "off":
        return
    message = (
        "faults that never fired (the test did not exercise them; pass "
        "--sockharness-unfired=warn to allow this):\n  " + "\n  ".join(reports)
    )
    if mode == "fail":
        from ._core import UnfiredFaults

        raise UnfiredFaults(f"{message}\n\n{_seed_line(request.node)}")
    import warnings

    from ._core import UnfiredFaultWarning

    warnings.warn(UnfiredFaultWarning(message), stacklevel=3)


@pytest.fixture
def any_server(
    request: pytest.FixtureRequest, make_server: Callable[..., RunningServer]
) -> RunningServer:
    """A server of every kind and concurrency this platform supports (one test per pair).

    Echoes by default. Narrow it with
    ``@pytest.mark.sockharness(kinds=[...], concurrency=[...], handler=...)``.
    """
    param = getattr(request, "param", None)
    if param is None:
        raise pytest.UsageError(
            "any_server is parametrized by sockharness at collection: name it as an argument "
            "of the test (or of a fixture the test uses), not via request.getfixturevalue()."
        )
    kind, concurrency = param
    marker = request.node.get_closest_marker("sockharness")
    handler = marker.kwargs.get("handler") if marker is not None else None
    if handler is None:
        from .handlers import EchoHandler

        handler = EchoHandler
    attrs = dict(marker.kwargs.get("server_attrs") or {}) if marker is not None else {}
    server_class = _marker_server_class(marker, kind, concurrency)
    if server_class is not None:
        return make_server(handler, kind, server_class=server_class, **attrs)
    return make_server(handler, kind, concurrency=concurrency, **attrs)


@pytest.fixture
def make_client(request: pytest.FixtureRequest) -> Iterator[Callable[..., Client]]:
    """Connect clients to any server, sockharness's or not; they are closed at teardown.

    ``make_client(address, kind="tcp", *, tls=None, timeout=5.0, faults=(),
    virtual_time=None) -> Client``;
    ``tls`` is ``True`` (trust the session's CA) or an ``ssl.SSLContext``;
    ``faults`` are applied in process to what the client sends and receives.
    """
    __tracebackhide__ = True  # A teardown failure shows the test, not this fixture.
    from .harness import connect

    clients: list[Client] = []
    request.node.stash[_USED] = True

    def factory(
        address: Any,
        kind: str = "tcp",
        *,
        tls: bool | ssl.SSLContext | None = None,
        timeout: float = 5.0,
        faults: Sequence[Fault] = (),
        virtual_time: VirtualTime | None = None,
    ) -> Client:
        __tracebackhide__ = True
        context: ssl.SSLContext | None
        if tls is True:
            material: TLSMaterial = request.getfixturevalue("_sockharness_tls")
            context = material.client_context()
        elif tls is None or tls is False:
            context = None
        else:
            context = tls
        client = connect(
            address,
            kind,
            tls=context,
            timeout=timeout,
            faults=faults,
            seed=derive_test_seed(request.config, request.node.nodeid),
            connection=len(clients),
            virtual_time=virtual_time or _virtual_time(request),
        )
        clients.append(client)
        if faults:
            request.node.stash.setdefault(_FAULTY_CLIENTS, []).append(client)
        return client

    yield factory
    for client in clients:
        client.close()
    from .faults import summarize_unfired

    faulty = [client for client in clients if client.faults]
    usage = [entry for client in faulty for entry in client.fault_usage()]
    planned = [fault for client in faulty for fault in client.faults]
    fired = {
        name
        for client in faulty
        if (timeline := client.fault_timeline) is not None
        for name in timeline.fired
    }
    _report_unfired(request, summarize_unfired(planned, usage, len(faulty), "client", fired=fired))


@pytest.fixture
def fault_proxy(
    request: pytest.FixtureRequest, sockharness_seed: int
) -> Iterator[Callable[..., FaultProxy]]:
    """Put a fault proxy in front of any address (or a ``RunningServer``).

    ``fault_proxy(upstream, kind="tcp", faults=[...], *, listen=None) -> FaultProxy``;
    seeded by the test's seed. At teardown every proxy is closed, and a fault
    that never fired fails the test (``--sockharness-unfired``).
    """
    __tracebackhide__ = True  # A teardown failure shows the test, not this fixture.
    from .faults import FaultProxy
    from .harness import RunningServer

    proxies: list[FaultProxy] = []
    request.node.stash[_USED] = True

    def factory(
        upstream: Any,
        kind: str | None = None,
        faults: Sequence[Fault] = (),
        *,
        listen: Any = None,
    ) -> FaultProxy:
        __tracebackhide__ = True
        if isinstance(upstream, RunningServer):
            kind = kind or upstream.kind
            upstream = upstream.address
        proxy = FaultProxy(upstream, kind or "tcp", faults, listen=listen, seed=sockharness_seed)
        proxies.append(proxy)
        request.node.stash.setdefault(_PROXIES, []).append(proxy)
        return proxy

    yield factory
    reports = []
    for proxy in proxies:
        proxy.close()
        reports += [f"{proxy!r}: {line}" for line in proxy.unfired()]
    _report_unfired(request, reports)


@pytest.fixture(scope="session")
def _sockharness_proxy_api(request: pytest.FixtureRequest) -> Iterator[Any]:
    from .control import ProxyAPIServer

    with ProxyAPIServer(seed=_run_seed(request.config)) as server:
        yield server


@pytest.fixture
def proxy_api(_sockharness_proxy_api: Any) -> Iterator[ProxyAPI]:
    """A client (:class:`~sockharness.control.ProxyAPI`) of a Toxiproxy-compatible proxy API
    started once per session (per xdist worker), on loopback.

    Hand ``proxy_api.url`` to a subprocess or a container, or make proxies
    here: ``proxy_api.create("db", server.address)``. At teardown the proxies
    the test made are deleted and the rest reset (enabled, no toxic).
    """
    from .control import ProxyAPI

    client = ProxyAPI(_sockharness_proxy_api.url)
    before = set(client.proxies())
    yield client
    for name, proxy in client.proxies().items():
        if name not in before:
            proxy.delete()
    client.reset()


@pytest.fixture
def dns_faults(request: pytest.FixtureRequest) -> Iterator[Callable[..., ResolverFaults]]:
    """Resolve chosen names slowly, with a timeout, as NXDOMAIN, or to a chosen address.

    ``dns_faults({"db.test": NXDomain(), "*.slow.test": ResolveDelay(0.5)}) ->
    ResolverFaults``; in force until the test ends (each call adds a scope). A
    name no one resolved fails the test at teardown (``--sockharness-unfired``).
    """
    __tracebackhide__ = True
    from .faults import dns_faults as scope

    with contextlib.ExitStack() as stack:
        scopes: list[ResolverFaults] = []

        def factory(faults: Mapping[str, Any]) -> ResolverFaults:
            __tracebackhide__ = True
            made = stack.enter_context(scope(faults))
            scopes.append(made)
            return made

        yield factory
    _report_unfired(request, [line for made in scopes for line in made.unfired()])


@pytest.fixture
def explore_exchanges() -> Callable[..., Exploration]:
    """Explore one exchange at every split, coalescing, close and reset point; fail if one fails.

    ``explore_exchanges(handler, request, **options) -> Exploration``, with the
    options of :func:`sockharness.explore.exchanges`. The test fails with the
    report (the failing cases, and a line that replays the first).
    """
    from .explore import exchanges

    def explore(handler: type, request: bytes | None = None, **options: Any) -> Exploration:
        __tracebackhide__ = True
        exploration = exchanges(handler, request, **options)
        exploration.raise_if_failed()
        return exploration

    return explore


# -- reporting ------------------------------------------------------------------------------


def _seed_line(item: pytest.Item) -> str:
    seed = item.config.stash[_SEED]
    return f"sockharness seed: {seed} (replay with --sockharness-seed {seed})"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Fail a test whose servers' handlers raised errors it did not declare."""
    __tracebackhide__ = True
    try:
        result = yield
    except BaseException:
        servers = item.stash.get(_SERVERS, [])
        from .harness import format_handler_errors

        texts = [
            format_handler_errors(server, errors)
            for server in servers
            if (errors := server.take_undeclared_errors())
        ]
        if texts:
            item.stash[_FAILED_WITH_ERRORS] = "\n\n".join(texts)
        raise
    servers = item.stash.get(_SERVERS, [])
    if servers:
        from ._core import HandlerErrors
        from .harness import format_handler_errors

        texts = [
            format_handler_errors(server, errors)
            for server in servers
            if (errors := server.take_undeclared_errors())
        ]
        if texts:
            raise HandlerErrors("\n\n".join([*texts, _seed_line(item)]))
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and item.stash.get(_USED, False):
        errors = item.stash.get(_FAILED_WITH_ERRORS, None)
        if errors and report.when == "call":
            report.sections.append(("sockharness handler errors", errors))
        for proxy in item.stash.get(_PROXIES, []):
            timeline = proxy.timeline.format()
            if timeline:
                report.sections.append((f"sockharness fault timeline {proxy!r}", timeline))
        for server in item.stash.get(_SERVERS, []):
            timeline = server.fault_timeline.format()
            if timeline:
                report.sections.append((f"sockharness fault timeline {server!r}", timeline))
        for client in item.stash.get(_FAULTY_CLIENTS, []):
            timeline = client.fault_timeline.format() if client.fault_timeline else ""
            if timeline:
                report.sections.append((f"sockharness fault timeline {client!r}", timeline))
        report.sections.append(("sockharness", _seed_line(item)))
        _note_replay_file(item, report)
    if report.when == "teardown" and item.stash.get(_USED, False):
        _write_or_check_recording(item, report)
    return report


def _sources(item: pytest.Item) -> list[tuple[str, Any, tuple[Any, ...], Any]]:
    """``(label, object, faults, timeline)`` of every server, proxy and faulty client."""
    servers: list[RunningServer] = item.stash.get(_SERVERS, [])
    proxies: list[FaultProxy] = item.stash.get(_PROXIES, [])
    clients: list[Client] = item.stash.get(_FAULTY_CLIENTS, [])
    sources: list[tuple[str, Any, tuple[Any, ...], Any]] = []
    for index, server in enumerate(servers):
        sources.append((f"server {index}", server, server.faults, server.fault_timeline))
    for index, proxy in enumerate(proxies):
        sources.append((f"proxy {index}", proxy, tuple(proxy.faults), proxy.timeline))
    for index, client in enumerate(clients):
        if client.fault_timeline is not None:
            sources.append((f"client {index}", client, client.faults, client.fault_timeline))
    return sources


def _recording(item: pytest.Item) -> Recording:
    from .faults import Recording, decisions_of

    sources = _sources(item)
    count = sweep_count(item.config)
    return Recording(
        name=item.nodeid,
        seed=item.config.stash[_SEED],
        extra={"seeds": count} if count is not None else {},
        plans=[
            {"source": label, "what": repr(what), "faults": [repr(f) for f in faults]}
            for label, what, faults, _ in sources
        ],
        decisions=decisions_of((label, timeline) for label, _, _, timeline in sources),
    )


def _replay_path(directory: Path, nodeid: str) -> Path:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("_")[:100]
    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:8]
    return directory / f"{readable}-{digest}.json"


def _note_replay_file(item: pytest.Item, report: pytest.TestReport) -> None:
    """Name, in a failure's report, the replay file teardown writes (decisions so far now)."""
    directory = item.config.stash.get(_FAILURES, None)
    if directory is None or _WROTE in item.stash:
        return
    path = _replay_path(directory, item.nodeid)
    try:
        _recording(item).write(path)
    except OSError as error:
        report.sections.append(("sockharness replay", f"no replay file: {error}"))
        return
    item.stash[_WROTE] = path
    shown = os.path.relpath(path, item.config.invocation_params.dir)
    report.sections.append(
        (
            "sockharness replay",
            f"replay file: {shown}\nreplay with: pytest --sockharness-replay {shown}",
        )
    )


def _write_or_check_recording(item: pytest.Item, report: pytest.TestReport) -> None:
    """After teardown: complete the replay file, or compare the replay with its recording."""
    path = item.stash.get(_WROTE, None)
    if path is not None:
        with contextlib.suppress(OSError):
            _recording(item).write(path)  # Every decision now: children have reported.
    base, run = _one_of_two(item.nodeid)
    if run is not None:
        with contextlib.suppress(OSError):
            _recording(item).write(_determinism_path(item.config, base, run))
    replay = item.config.stash.get(_REPLAY, None)
    if replay is None or item.nodeid != replay[1].name:
        return
    file, recording = replay
    now = _recording(item)
    divergence = recording.first_divergence(now.decisions)
    if divergence is None:
        item.config.stash[_REPLAY_VERDICT] = (
            f"sockharness replay of {file}: the {recording.count()} recorded fault decisions "
            f"came again, in order"
        )
        return
    message = f"sockharness replay of {file}: the run diverged from the recording at {divergence}"
    item.config.stash[_REPLAY_VERDICT] = message
    report.outcome = "failed"
    report.longrepr = message


def _determinism_directory(config: pytest.Config) -> Path:
    return config.rootpath / ".sockharness" / "determinism" / str(config.stash[_SEED])


def _determinism_path(config: pytest.Config, base: str, run: int) -> Path:
    return _replay_path(_determinism_directory(config), base).with_suffix(f".{run}.json")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Compare the two runs of each test of a determinism check (on the controller)."""
    config = session.config
    if not config.getoption("--sockharness-check-determinism"):
        return
    if getattr(config, "workerinput", None) is not None:
        return
    from .faults import Recording

    directory = _determinism_directory(config)
    lines: list[str] = []
    differing = 0
    for first_path in sorted(directory.glob("*.1.json")):
        second_path = first_path.with_name(first_path.name.removesuffix(".1.json") + ".2.json")
        try:
            first = Recording.read(first_path)
            second = Recording.read(second_path)
        except Exception:  # One run did not get to its teardown: nothing to compare.
            continue
        base = _one_of_two(first.name)[0]
        divergence = first.first_divergence(second.decisions)
        if divergence is None:
            lines.append(f"deterministic: {base}: {first.count()} fault decisions, twice")
            continue
        differing += 1
        divergence = divergence.replace("recorded", "first run", 1)
        divergence = divergence.replace("; this run", "; second run", 1)
        lines.append(f"NOT DETERMINISTIC: {base}: the runs differ at {divergence}")
    shutil.rmtree(directory, ignore_errors=True)
    with contextlib.suppress(OSError):
        directory.parent.rmdir()  # .sockharness/determinism, once no other run uses it.
    config.stash[_DETERMINISM] = lines
    if differing:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    verdict = config.stash.get(_REPLAY_VERDICT, None)
    if verdict is not None:
        terminalreporter.write_sep("-", "sockharness replay")
        terminalreporter.write_line(verdict)
    determinism = config.stash.get(_DETERMINISM, None)
    if determinism is not None:
        terminalreporter.write_sep("-", "sockharness determinism")
        for line in determinism or ["no test used sockharness's servers, proxies or clients"]:
            terminalreporter.write_line(line)
