"""Every input a user writes, fuzzed: accepted and working, or one clear line (exit 2 on the CLI).

The property, for each parser and entry point: the input is accepted and does
what it says, or it is rejected with a :class:`SockharnessError` (on the
command line: exit status 2 and one ``error:`` line), never another exception,
never a traceback, never a hang, and nothing left behind (descriptors,
threads, files). Scenario documents are generated from the published JSON
Schema, so every key and every type it knows is tried, right and wrong.

Bounded in the default suite; ``SOCKHARNESS_FUZZ=nightly`` runs each property
at depth (see docs/development.md). The control API's JSON is fuzzed in
``tests/test_proxy_api.py``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import json
import math
import os
import re
import string
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from sockharness import SockharnessError
from sockharness._core import parse_address, parse_kind
from sockharness.chaos import Scenario, ScenarioError, parse_scenario, scenario_schema
from sockharness.cli import main
from sockharness.conformance import TargetError, resolve_target
from sockharness.faults import FAULT_NAMES, Fault, parse_fault

NIGHTLY = os.environ.get("SOCKHARNESS_FUZZ") == "nightly"


def examples(default: int) -> int:
    """``default`` examples in the suite, forty times as many in the nightly profile."""
    return default * 40 if NIGHTLY else default


def fuzz(default: int) -> Any:
    """Hypothesis settings for ``default`` examples (more in the nightly profile, with time)."""
    bounded = settings(
        max_examples=examples(default),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    timeout = pytest.mark.timeout(1800 if NIGHTLY else 60)
    return lambda test: timeout(bounded(test))


def _one_line(error: BaseException, starts: str = "") -> None:
    text = str(error)
    assert text.strip(), f"{type(error).__name__} with no message"
    assert "\n" not in text.strip(), f"a message of more than one line: {text!r}"
    assert text.startswith(starts), f"the message does not start with {starts!r}: {text!r}"


@contextlib.contextmanager
def nothing_left_behind() -> Iterator[None]:
    """No descriptor and no thread more afterwards than before."""
    descriptors = set(os.listdir("/proc/self/fd"))
    threads = set(threading.enumerate())
    yield
    extra_threads = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
    assert not extra_threads, f"threads left running: {extra_threads}"
    extra = set(os.listdir("/proc/self/fd")) - descriptors
    assert not {fd for fd in extra if os.path.exists(f"/proc/self/fd/{fd}")}, "descriptors left"


@contextlib.contextmanager
def working_in(directory: Path) -> Iterator[None]:
    """``contextlib.chdir``, which Python 3.10 lacks."""
    before = os.getcwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(before)


# -- --fault strings --------------------------------------------------------------------

PARAMETER_NAMES = [
    "delay", "jitter", "rate", "probability", "direction", "connections", "messages",
    "framer", "after_bytes", "toxicity", "size", "seed", "correlation", "distribution",
    "count", "limit", "bytes", "after", "timeout", "nonsense", "",
]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(["0", "1", "0.5", "-1", "1e9", "nan", "inf", "upstream", "downstream",
                     "both", "lines", "0-1", "every 2", "true", "", " ", "=", "0,1", "x"]),
    st.floats(allow_nan=True).map(repr),
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=8),
)  # fmt: skip
FAULT_TEXT = st.one_of(
    st.builds(
        lambda name, main, params: ",".join(
            [name + (f"={main}" if main is not None else "")]
            + [f"{key}={value}" for key, value in params]
        ),
        st.sampled_from([*FAULT_NAMES, "nosuch", "", "LATENCY", "sockharness.faults:Latency"]),
        st.none() | VALUES,
        st.lists(st.tuples(st.sampled_from(PARAMETER_NAMES), VALUES), max_size=3),
    ),
    st.text(max_size=30),
)


@fuzz(300)
@given(text=FAULT_TEXT)
def test_a_fault_string_is_a_fault_or_one_clear_line(text: str) -> None:
    try:
        fault = parse_fault(text)
    except SockharnessError as error:
        _one_line(error)
        event("rejected")
    else:
        event("accepted")
        assert isinstance(fault, Fault)
        assert parse_fault(text) == fault  # The same text, the same fault.


# -- addresses --------------------------------------------------------------------------

ADDRESS_TEXT = st.one_of(
    st.builds(
        lambda host, port: f"{host}:{port}",
        st.sampled_from(["127.0.0.1", "[::1]", "::1", "", "localhost", "[", "]", "a:b", "[::1"]),
        st.one_of(st.integers(-5, 70000).map(str), st.text(max_size=6)),
    ),
    st.text(max_size=120),
    st.binary(max_size=120).map(lambda raw: raw.decode("utf-8", "surrogateescape")),
)


@fuzz(300)
@given(
    text=ADDRESS_TEXT,
    kind=st.sampled_from(["tcp", "tcp6", "udp", "udp6", "unix", "unix_dgram"]),
    connect=st.booleans(),
)
def test_an_address_is_an_address_or_one_clear_line(text: str, kind: str, connect: bool) -> None:
    parsed_kind = parse_kind(kind)
    try:
        address = parse_address(text, parsed_kind, "--listen", connect=connect)
    except SockharnessError as error:
        _one_line(error)
        return
    if parsed_kind.unix:
        assert address == text
        return
    host, port = address
    assert isinstance(host, str)
    assert 0 <= port <= 65535
    assert not (connect and port == 0)


# -- scenario documents, from the JSON Schema -----------------------------------------

SCHEMA = scenario_schema()
WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["x", "kind"]), st.integers(), max_size=1),
)


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return dict(SCHEMA["$defs"][ref.split("/")[-1]])
    return schema


def value_for(schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values that fit ``schema`` (most of the time) and values that do not."""
    schema = _resolve(schema)
    return st.one_of(_fitting(schema, depth), WRONG) if depth < 4 else WRONG


def _fitting(schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for combined in ("anyOf", "oneOf"):
        if combined in schema:
            return st.one_of([value_for(option, depth + 1) for option in schema[combined]])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object":
        return _object(schema, depth)
    if kind == "array":
        return st.lists(value_for(schema.get("items", {}), depth + 1), max_size=3)
    return _scalar(kind, schema)


def _scalar(kind: Any, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    low, high = schema.get("minimum"), schema.get("maximum")
    if kind == "integer":
        return st.integers(
            int(low) - 2 if low is not None else -1000, int(high) + 2 if high is not None else 10**6
        )
    if kind == "number":
        return st.floats(
            (low - 1) if low is not None else -1e3,
            (high + 1) if high is not None else 1e6,
            allow_nan=False,
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        return st.one_of(
            st.text(string.ascii_letters + string.digits + " ._-${}:/", max_size=16),
            st.sampled_from(["${NAME}", "${UNSET}", "echo", "tcp", "1-2", "every 2"]),
        )
    return WRONG


def _object(schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    properties = schema.get("properties", {})
    known = st.fixed_dictionaries(
        {}, optional={key: value_for(sub, depth + 1) for key, sub in properties.items()}
    )
    stray = st.dictionaries(st.sampled_from(["stray", "Kind", "server "]), WRONG, max_size=1)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        named = st.dictionaries(
            st.sampled_from(["db", "cache", "server", "9x", "a b"]),
            value_for(extra, depth + 1),
            max_size=2,
        )
        return st.builds(lambda a, b: {**a, **b}, known, named)
    return st.builds(lambda a, b: {**a, **b}, known, st.one_of(st.just({}), stray))


def _toml_string(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    return key if key and all(c.isalnum() or c in "_-" for c in key) else _toml_string(key)


def toml_value(value: Any) -> str:
    """``value`` in TOML's inline syntax (``None`` has none: the key is left out upstream)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if -(2**63) <= value < 2**63 else _toml_string(str(value))
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value if item is not None) + "]"
    if isinstance(value, dict):
        items = (f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(items) + "}"
    raise AssertionError(f"no TOML for {value!r}")


def toml_document(document: dict[str, Any]) -> str:
    return "\n".join(
        f"{_toml_key(key)} = {toml_value(value)}"
        for key, value in document.items()
        if value is not None
    )


SCENARIO_DOCUMENTS = _object(SCHEMA, 0)
SHIPPED = [
    tomllib.loads(path.read_text(encoding="utf-8"))
    for path in sorted((Path(__file__).parents[1] / "scenarios").glob("*.toml"))
]


def _schema_at(path: tuple[Any, ...]) -> dict[str, Any]:
    schema: dict[str, Any] = SCHEMA
    for part in path:
        schema = _resolve(schema)
        if isinstance(part, int):
            schema = schema.get("items", {})
        else:
            properties = schema.get("properties", {})
            extra = schema.get("additionalProperties")
            schema = properties.get(part, extra if isinstance(extra, dict) else {})
    return _resolve(schema)


def _leaves(document: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path of ``document``, tables and arrays included."""
    found = [path] if path else []
    if isinstance(document, dict):
        for key, value in document.items():
            found += _leaves(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _leaves(value, (*path, index))
    return found


@st.composite
def mutated_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A shipped scenario with up to three of its values replaced, removed or added to."""
    document = copy.deepcopy(draw(st.sampled_from(SHIPPED)))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_leaves(document)))
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "remove" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            key = draw(st.sampled_from([*_schema_at(path[:-1]).get("properties", {}), "stray"]))
            parent[key] = draw(value_for(_schema_at((*path[:-1], key)), 2))
        else:
            parent[path[-1]] = draw(value_for(_schema_at(path), 2))
    return document


def _check_scenario(text: str, variables: dict[str, str] | None = None) -> Scenario | None:
    try:
        scenario = parse_scenario(text, "fuzz.toml", variables=variables)
    except ScenarioError as error:
        _one_line(error, starts="fuzz.toml")
        event("rejected")
        return None
    event("accepted")
    return scenario


@fuzz(400)
@given(
    document=st.one_of(SCENARIO_DOCUMENTS, mutated_scenarios()),
    name=st.sampled_from(["NAME", "UNSET", "PORT"]),
)
def test_a_scenario_document_is_a_scenario_or_one_clear_line(
    document: dict[str, Any], name: str
) -> None:
    scenario = _check_scenario(toml_document(document), {name: "1"})
    if scenario is not None:
        assert scenario.name.strip()
        assert scenario.duration > 0


@fuzz(150)
@given(text=st.text(max_size=200))
def test_any_text_as_a_scenario_is_one_clear_line(text: str) -> None:
    _check_scenario(text)


@fuzz(150)
@given(
    value=st.one_of(
        st.sampled_from(["tcp", "unix-dgram", "forking", "echo", "upper", "3", "0.5", "-1", ""]),
        st.text(max_size=24),
    ),
    key=st.sampled_from(["kind", "concurrency", "handler", "seed", "duration"]),
)
def test_a_variable_from_the_environment_fills_in_or_is_one_clear_line(
    value: str, key: str
) -> None:
    values = {"kind": '"tcp"', "concurrency": '"threading"', "handler": '"echo"'}
    values["seed"], values["duration"] = "3", "0.5"
    values[key] = '"${FUZZED}"'
    text = (
        f'[scenario]\nname = "v"\nseed = {values["seed"]}\nduration = {values["duration"]}\n'
        f"[server]\nkind = {values['kind']}\nconcurrency = {values['concurrency']}\n"
        f"handler = {values['handler']}\n[[clients]]\ncount = 1\n"
    )
    scenario = _check_scenario(text, {"FUZZED": value})
    if scenario is not None and key in ("kind", "concurrency", "handler"):
        assert getattr(scenario.server, key).replace("-", "_") == value.replace("-", "_")


# -- conformance targets ----------------------------------------------------------------

REAL_TARGETS = [
    "sockharness.server",
    "sockharness.server:TCPServer",
    "sockharness.server:BaseRequestHandler",
    "sockharness.handlers:EchoHandler",
    "sockharness.server:Nothing",
    "sockharness.server:",
    "json",
    "json:JSONDecoder",
    ":TCPServer",
    "sockharness..server",
    "sockharness.server:TCPServer.serve_forever",
]


@fuzz(150)
@given(
    target=st.one_of(
        st.sampled_from(REAL_TARGETS),
        st.text(string.ascii_lowercase + "._:", min_size=1, max_size=12).map(
            lambda text: "shfuzz_" + text
        ),
    ),
    factory=st.sampled_from([None, "shfuzz_none:make", "json:loads", "sockharness.server"]),
)
def test_a_conformance_target_is_classes_or_one_clear_line(target: str, factory: Any) -> None:
    try:
        found = resolve_target(target, factory)
    except TargetError as error:
        _one_line(error)
    else:
        assert found, f"{target!r} accepted with no class to check"
        assert all(isinstance(entry.cls, type) for entry in found)


# -- the command line, in process ----------------------------------------------------

SCENARIO_TEXT = """
[scenario]
name = "fuzzed run"
duration = 0.2
[server]
handler = "echo"
[[clients]]
count = 1
rate = 20
"""


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("fuzz") / "short.toml"
    path.write_text(SCENARIO_TEXT, encoding="utf-8")
    return str(path)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else 1
    return status, out.getvalue(), err.getvalue()


#: The line that says what was wrong: the command's (or argparse's) error, or a file's.
ERROR_LINE = re.compile(r"^(sockharness( \w+)?: (error: )?\S|invalid: \S)")


def _judge_cli(argv: list[str], status: int, err: str) -> None:
    assert "Traceback" not in err, f"{argv}: {err}"
    assert status in (0, 1, 2), f"{argv}: exit {status}"
    event(f"exit {status}")
    if status == 2:
        last = err.strip().splitlines()[-1] if err.strip() else ""
        assert ERROR_LINE.match(last), f"{argv}: exit 2 without an error line: {err!r}"


OPTION_VALUES = st.one_of(
    st.sampled_from(["0", "1", "-1", "2", "x", "", "1e3", "NAME=1", "=", "off", "*", "3"]),
    st.text(string.ascii_letters + string.digits + "=-_.:", max_size=8),
)


def _options(names: list[str], flags: list[str]) -> st.SearchStrategy[list[str]]:
    pair = st.tuples(st.sampled_from(names), OPTION_VALUES).map(list)
    flag = st.sampled_from(flags).map(lambda name: [name])
    return st.lists(st.one_of(pair, flag), max_size=3).map(
        lambda parts: list(itertools.chain(*parts))
    )


RUN_OPTIONS = _options(
    ["--seed", "--seeds", "--name", "--tag", "--var", "--failures", "--replay", "--var-file"],
    ["--check-determinism", "--bogus", "-h"],
)
CHECK_OPTIONS = _options(["--var", "--var-file", "--seed"], ["--quiet", "--bogus"])
EXPLORE_OPTIONS = _options(
    ["--request", "--request-hex", "--kind", "--concurrency", "--points", "--case",
     "--expect-error", "--timeout", "--server-class"],
    ["--bogus"],
)  # fmt: skip


@fuzz(25)
@given(options=RUN_OPTIONS)
def test_run_accepts_its_arguments_or_says_what_is_wrong(
    options: list[str], scenario_file: str, tmp_path: Path
) -> None:
    argv = ["run", scenario_file, *options]
    if "--seeds" in options:
        index = options.index("--seeds")
        assume(index + 1 >= len(options) or not options[index + 1].isdigit()
               or int(options[index + 1]) <= 3)  # fmt: skip
    with nothing_left_behind(), working_in(tmp_path):
        status, _, err = run_cli(argv)
    _judge_cli(argv, status, err)


@fuzz(60)
@given(options=CHECK_OPTIONS, paths=st.lists(st.sampled_from(["x.toml", "", "."]), max_size=2))
def test_check_accepts_its_arguments_or_says_what_is_wrong(
    options: list[str], paths: list[str], scenario_file: str
) -> None:
    argv = ["check", scenario_file, *paths, *options]
    with nothing_left_behind():
        status, _, err = run_cli(argv)
    _judge_cli(argv, status, err)


@fuzz(40)
@given(
    handler=st.sampled_from(
        ["sockharness.handlers:EchoHandler", "sockharness.handlers:LineEchoHandler",
         "sockharness.handlers:Nope", "json:loads", "shfuzz_none:X", "EchoHandler", ""]
    ),
    options=EXPLORE_OPTIONS,
)  # fmt: skip
def test_explore_accepts_its_arguments_or_says_what_is_wrong(
    handler: str, options: list[str]
) -> None:
    argv = ["explore", handler, "--points", "split", *options]
    with nothing_left_behind():
        status, _, err = run_cli(argv)
    _judge_cli(argv, status, err)


@fuzz(40)
@given(
    command=st.sampled_from(["schema", "conform", "nosuch", "--version", ""]),
    rest=st.lists(
        st.sampled_from(["scenario", "report", "x", "-o", "--profile", "nope", "shfuzz_m",
                         "sockharness.handlers:EchoHandler", "--seed", "z", "--bogus"]),
        max_size=3,
    ),
)  # fmt: skip
def test_other_commands_accept_their_arguments_or_say_what_is_wrong(
    command: str, rest: list[str], tmp_path: Path
) -> None:
    argv = [command, *rest] if command else rest
    assume(not (command == "schema" and "-o" in rest))  # Writes a file: tested below.
    with nothing_left_behind(), working_in(tmp_path):
        status, out, err = run_cli(argv)
    _judge_cli(argv, status, err)
    if command == "schema" and status == 0:
        assert json.loads(out)["$schema"]


# -- serve and proxy, as subprocesses -------------------------------------------------

SERVE_ARGS = st.lists(
    st.sampled_from(
        ["--kind", "tcp", "udp", "unix", "bogus", "--port", "0", "70000", "x", "--host",
         "127.0.0.1", "--path", "--handler", "echo", "nosuch", "--concurrency", "forking"]
    ),
    max_size=4,
)  # fmt: skip
PROXY_ARGS = st.lists(
    st.sampled_from(
        ["--kind", "tcp", "unix", "--upstream", "127.0.0.1:1", "127.0.0.1:0", "x:y", "[::1]:9",
         "--listen", "127.0.0.1:0", "--fault", "latency=0.1", "nosuch=1", "loss=2", "--api"]
    ),
    max_size=5,
)  # fmt: skip


def _started_or_refused(argv: list[str]) -> None:
    """Either a clear refusal (exit 2, one error line) or a command that runs until stopped."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sockharness", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=1.5)
    except subprocess.TimeoutExpired:
        process.terminate()  # Running: the arguments were accepted.
        out, err = process.communicate(timeout=10)
        assert "Traceback" not in err, f"{argv}: {err}"
        return
    _judge_cli(argv, process.returncode, err)
    if process.returncode == 0:
        assert out or err, f"{argv}: exit 0 and nothing said"


@fuzz(12)
@given(args=SERVE_ARGS)
def test_serve_starts_or_refuses_with_one_clear_line(args: list[str]) -> None:
    _started_or_refused(["serve", *args])


@fuzz(12)
@given(args=PROXY_ARGS)
def test_proxy_starts_or_refuses_with_one_clear_line(args: list[str]) -> None:
    _started_or_refused(["proxy", *args])
