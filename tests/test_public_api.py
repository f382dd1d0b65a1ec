"""The public API is pinned: an accidental export or removal fails here."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest
from hypothesis import strategies as st

import sockharness
from sockharness import handlers

PACKAGE_API = [
    "Client",
    "ConnectionClosed",
    "HandlerError",
    "HandlerErrors",
    "HeldDatagramsWarning",
    "IPv6Unavailable",
    "LeakError",
    "LeakWarning",
    "Payloads",
    "ProxyError",
    "ProxyTimeout",
    "ReceiveTimeout",
    "Received",
    "RunningServer",
    "ServerStopTimeout",
    "SockharnessError",
    "SockharnessWarning",
    "TLSMaterial",
    "UnfiredFaultWarning",
    "UnfiredFaults",
    "UsageError",
    "__version__",
    "connect",
    "start_server",
]

HANDLERS_API = [
    "BUILTIN_HANDLERS",
    "BuiltinHandler",
    "CrashHandler",
    "DiscardHandler",
    "EchoHandler",
    "HandlerCrash",
    "LineEchoHandler",
    "RecordingHandler",
    "SlowHandler",
    "UpperHandler",
]

FIXTURES = [
    "any_server",
    "dns_faults",
    "explore_exchanges",
    "fault_proxy",
    "make_client",
    "make_server",
    "payloads",
    "proxy_api",
    "sockharness_seed",
    "tls_ca",
    "tls_client_context",
    "tls_server_context",
]


def test_package_exports() -> None:
    assert sorted(sockharness.__all__) == sorted(PACKAGE_API)
    for name in PACKAGE_API:
        assert getattr(sockharness, name) is not None


@pytest.mark.parametrize("name", [n for n in PACKAGE_API if n != "__version__"])
def test_public_objects_name_the_public_module(name: str) -> None:
    assert getattr(sockharness, name).__module__ == "sockharness"


def test_handlers_exports() -> None:
    assert sorted(handlers.__all__) == sorted(HANDLERS_API)


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        sockharness.nothing_here  # noqa: B018


def test_error_hierarchy_lets_users_catch_builtins() -> None:
    assert issubclass(sockharness.UsageError, ValueError)
    assert issubclass(sockharness.ReceiveTimeout, TimeoutError)
    assert issubclass(sockharness.ConnectionClosed, EOFError)
    assert issubclass(sockharness.HandlerErrors, AssertionError)
    assert issubclass(sockharness.LeakError, AssertionError)
    for name in ["UsageError", "ReceiveTimeout", "ConnectionClosed", "HandlerErrors", "LeakError"]:
        assert issubclass(getattr(sockharness, name), sockharness.SockharnessError)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="typing.final records __final__ from 3.11")
def test_final_classes_are_marked_final() -> None:
    assert getattr(sockharness.RunningServer, "__final__", False)
    assert getattr(sockharness.Client, "__final__", False)


def test_fixtures_are_the_documented_ones(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--fixtures", "-p", "no:cacheprovider")
    listed = result.stdout.str()
    section = listed.split("fixtures defined from sockharness.pytest_plugin", 1)[1]
    section = section.split("\n", 1)[1]  # Past the rest of the heading line.
    section = section.split("\n---", 1)[0].split("\n===", 1)[0]
    names = sorted(
        line.split()[0]
        for line in section.splitlines()
        if line and not line.startswith(" ") and not line.startswith("-")
    )
    assert names == sorted(FIXTURES)


@pytest.mark.parametrize(
    "module", ["sockharness", "sockharness.pytest_plugin", "sockharness.server"]
)
def test_importing_is_cheap(module: str) -> None:
    """Loading the plugin (every pytest run does) imports none of the heavy dependencies."""
    code = (
        f"import sys, {module}; "
        "heavy = ('faker', 'trustme', 'cryptography', 'hypothesis'); "
        "heavy = [m for m in heavy if m in sys.modules]; "
        "print(heavy)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


FAULTS_API = [
    "FaultClock",
    "VirtualTime",
    "VIRTUAL_TIMES",
    "check_virtual_time",
    "Recording",
    "decisions_of",
    "connection_fate",
    "SharedState",
    "NETWORK_PROFILES",
    "NetworkProfile",
    "network_profile",
    "DISTRIBUTIONS",
    "GilbertElliott",
    "MarkovLoss",
    "Slot",
    "TLS_POINTS",
    "Stall",
    "TLSAbort",
    "TLSStall",
    "NXDomain",
    "Resolve",
    "ResolveDelay",
    "ResolveTimeout",
    "ResolverFault",
    "ResolverFaults",
    "dns_faults",
    "SOCKET_ERRORS",
    "CallFault",
    "ShortSend",
    "SmallRecv",
    "SocketError",
    "DatagramEffect",
    "Recorder",
    "Stage",
    "StreamEffect",
    "Timed",
    "fault_class",
    "FRAMERS",
    "Framing",
    "LengthPrefix",
    "framers",
    "AcceptDelay",
    "AcceptThenClose",
    "AcceptThenReset",
    "Blackhole",
    "ConnectionFault",
    "FaultsInForce",
    "NeverRead",
    "NoReply",
    "Ordinals",
    "Refuse",
    "ordinals",
    "DATAGRAM",
    "FAULT_NAMES",
    "STREAM",
    "Bandwidth",
    "Corrupt",
    "Down",
    "Duplicate",
    "Event",
    "Fault",
    "FaultProxy",
    "FaultyDatagramSocket",
    "FaultyStreamSocket",
    "Latency",
    "LimitData",
    "Loss",
    "ProxyStats",
    "Reorder",
    "ResetPeer",
    "Slicer",
    "SlowClose",
    "Timeline",
    "Timeout",
    "Truncate",
    "check_faults",
    "fault_from_mapping",
    "parse_fault",
    "summarize_unfired",
    "wrap_socket",
]

STRATEGIES_API = [
    "fault_plans",
    "message_triggers",
    "call_faults",
    "client_schedules",
    "connection_faults",
    "ordinal_sets",
    "datagram_faults",
    "handler_behaviours",
    "directions",
    "fault_lists",
    "harmless_stream_faults",
    "payloads",
    "stream_faults",
    "toxicities",
]


def test_faults_exports() -> None:
    from sockharness import faults

    assert sorted(faults.__all__) == sorted(FAULTS_API)
    for name in FAULTS_API:
        value = getattr(faults, name)
        # Classes only: a type alias (Timed) passes for a type on Python 3.10.
        if isinstance(value, type) and not isinstance(value, types.GenericAlias):
            assert value.__module__ == "sockharness.faults"


def test_strategies_exports() -> None:
    from sockharness import strategies

    assert sorted(strategies.__all__) == sorted(STRATEGIES_API)


CONFORMANCE_API = [
    "PROFILES",
    "PROPERTIES",
    "CheckConfig",
    "Profile",
    "Property",
    "PropertyResult",
    "Report",
    "ServerConformance",
    "ServerUnderTest",
    "TargetError",
    "check",
    "conformance_items",
    "resolve_target",
    "run_property",
]


def test_conformance_exports() -> None:
    from sockharness import conformance

    assert sorted(conformance.__all__) == sorted(CONFORMANCE_API)
    assert list(conformance.PROPERTIES) == [
        "shutdown",
        "block_on_close",
        "timeout",
        "handler_lifecycle",
        "verify_request",
        "close_semantics",
        "forking",
        "threading",
        "datagram",
        "stateful",
    ]


CHAOS_API = [
    "REPORT_SCHEMA_ID",
    "SCENARIO_SCHEMA_ID",
    "report_schema",
    "scenario_schema",
    "scenario_id",
    "AbortWhen",
    "ClientSpec",
    "Expectations",
    "FaultWindow",
    "Invariant",
    "Scenario",
    "ScenarioError",
    "ScenarioResult",
    "ServerSpec",
    "Service",
    "SpecError",
    "SteadyRecord",
    "SteadyState",
    "collect_scenario_file",
    "find_scenario_files",
    "is_scenario_file",
    "json_report",
    "junit_report",
    "load_scenario",
    "load_scenarios",
    "markdown_report",
    "parse_scenario",
    "render_html",
    "resolve_classes",
    "resolve_services",
    "run_scenario",
    "summary_table",
]


def test_chaos_exports() -> None:
    from sockharness import chaos

    assert sorted(chaos.__all__) == sorted(CHAOS_API)
    for name in CHAOS_API:
        assert getattr(chaos, name).__doc__, f"sockharness.chaos.{name} has no docstring"


HARNESS_API = [
    "ServerStats",
    "LOOPBACK_IDENTITIES",
    "Client",
    "HandlerError",
    "Leaks",
    "Payloads",
    "Received",
    "RunningServer",
    "TLSMaterial",
    "Teardown",
    "connect",
    "describe_address",
    "describe_client",
    "format_handler_errors",
    "has_ipv6_loopback",
    "start_server",
    "stop_servers",
]


def test_harness_exports_and_the_old_import_paths_of_the_package() -> None:
    from sockharness import harness

    assert sorted(harness.__all__) == sorted(HARNESS_API)
    for name in PACKAGE_API:  # What users import from sockharness is the same object.
        if name in HARNESS_API:
            assert getattr(sockharness, name) is getattr(harness, name)


def test_the_command_and_the_server_support_seams() -> None:
    from sockharness import cli
    from sockharness.server import support

    assert sorted(cli.__all__) == ["build_parser", "main"]
    assert sorted(support.__all__) == ["WakeUpPair", "unix_path_limit"]


def test_every_fault_is_registered_by_name_with_an_effect_for_each_of_its_transports() -> None:
    """Adding a fault: its spec, its effect, its docs row; everything else follows."""
    from sockharness.faults import DATAGRAM, FAULT_NAMES, STREAM, ConnectionFault
    from sockharness.faults._effects import DATAGRAM_EFFECTS, STREAM_EFFECTS, effect_of
    from sockharness.strategies import call_faults, datagram_faults, stream_faults

    builtin = {n: c for n, c in FAULT_NAMES.items() if c.__module__.startswith("sockharness.")}
    assert list(FAULT_NAMES) == [cls.name for cls in FAULT_NAMES.values()]
    for name, cls in builtin.items():
        fault = cls(**dict.fromkeys(_required(cls), 1))
        phase = issubclass(cls, ConnectionFault)  # Decided as connections are made.
        if STREAM in cls.transports and not (cls.proxy_only or cls.process_only or phase):
            assert effect_of(STREAM_EFFECTS, fault) is not None, f"{name} has no stream effect"
        if DATAGRAM in cls.transports:
            assert effect_of(DATAGRAM_EFFECTS, fault) is not None, f"{name} has no datagram effect"
        assert cls.example.split("=")[0].split(",")[0] == name
    drawn = _drawn(st.one_of(stream_faults(), datagram_faults(), call_faults()))
    for cls in builtin.values():
        if cls.proxy_only or issubclass(cls, ConnectionFault):
            continue  # connection_faults() draws these.
        assert cls in drawn, f"the strategies never draw {cls.__name__}"


def _required(cls: type) -> list[str]:
    import dataclasses

    return [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]


def _drawn(strategy: st.SearchStrategy[object]) -> set[type]:
    """The types 1 000 draws give: the same draws at every run (``derandomize``), since a
    random sample of 300 once missed a fault the strategies do draw (1 seed in thousands)."""
    from hypothesis import HealthCheck, given, settings

    seen: set[type] = set()

    @settings(
        max_examples=1_000,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: object) -> None:
        seen.add(type(value))

    collect()
    return seen


def test_every_exception_and_warning_is_under_one_root() -> None:
    from sockharness import chaos, conformance

    exceptions = [getattr(sockharness, n) for n in PACKAGE_API if n != "__version__"]
    exceptions += [chaos.ScenarioError, conformance.TargetError]
    for value in exceptions:
        if isinstance(value, type) and issubclass(value, Warning):
            assert issubclass(value, sockharness.SockharnessWarning), value
        elif isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, sockharness.SockharnessError), value


EXPLORE_API = [
    "MAX_CASES",
    "POINTS",
    "Case",
    "Cut",
    "Exploration",
    "ExplorationFailed",
    "Outcome",
    "Point",
    "escape_request",
    "exchanges",
    "parse_case",
    "parse_points",
]


def test_control_exports() -> None:
    from sockharness import control

    names = [
        "API_VERSION", "TOXIPROXY_TYPES", "APIError", "APIProxy", "ProxyAPI", "ProxyAPIServer",
        "Toxic",
    ]  # fmt: skip
    assert sorted(control.__all__) == sorted(names)
    for name in ("APIError", "APIProxy", "ProxyAPI", "ProxyAPIServer", "Toxic"):
        assert getattr(control, name).__doc__, f"sockharness.control.{name} has no docstring"


def test_explore_exports() -> None:
    from sockharness import explore

    assert sorted(explore.__all__) == sorted(EXPLORE_API)
    assert explore.exchanges.__module__ == "sockharness.explore"
    assert explore.ExplorationFailed.__mro__[1:3] == (sockharness.SockharnessError, AssertionError)
