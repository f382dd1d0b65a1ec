"""The ``sockharness`` command."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from typing import Any, NoReturn

from sockharness._core import (
    CONCURRENCIES,
    KINDS,
    PROFILE_NAMES,
    UsageError,
    sweep_count_argument,
)

from ._interrupts import ctrl_c_caught

__all__ = ["main"]


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (0-65535)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0-65535)")
    return port


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of seconds")
    return seconds


def _seed(value: str) -> int:
    try:
        seed = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if not 0 <= seed < 2**32:
        raise argparse.ArgumentTypeError(
            f"{seed} is not a seed: use a whole number from 0 to 2**32 - 1"
        )
    return seed


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sockharness")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree, not installed
        return "unknown (not installed)"


class _Parser(argparse.ArgumentParser):
    """Bad arguments are one line (what is wrong, where help is), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_proxy(commands: Any, kinds: list[str]) -> None:
    """The ``proxy`` command's arguments."""
    from sockharness.faults import FAULT_NAMES

    proxy = commands.add_parser(
        "proxy",
        help="run a fault proxy in the foreground until Ctrl-C",
        description="Relay --listen to --upstream, applying faults; Ctrl-C or SIGTERM stops. "
        "A fault is name[=value][,param=value...], the first value its main parameter: "
        + "  ".join(fault.example for fault in FAULT_NAMES.values())
        + "; every fault also takes direction=upstream|downstream|both and toxicity=0..1.",
    )
    proxy.add_argument("--kind", default="tcp", choices=kinds, help="transport (default: tcp)")
    proxy.add_argument(
        "--listen",
        help="host:port or path to listen on (default: loopback, a free port or a private path)",
    )
    proxy.add_argument("--upstream", help="host:port or path to relay to (not with --api)")
    proxy.add_argument(
        "--fault", action="append", default=[], metavar="FAULT", help="a fault; repeat for more"
    )
    proxy.add_argument(
        "--network-profile",
        metavar="NAME",
        help="make the link behave like a named one (3g, edge, lte, wifi, lossy-wifi, "
        "satellite), before the --fault ones",
    )
    proxy.add_argument(
        "--seed", type=_seed, default=0, help="seed of every random choice (default 0)"
    )
    proxy.add_argument(
        "--api",
        metavar="HOST:PORT",
        help="serve Toxiproxy's HTTP API there instead (e.g. 127.0.0.1:8474): every "
        "Toxiproxy client creates proxies and toxics through it (docs/proxy-api.md)",
    )
    proxy.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print a line per connection opened and closed and per fault decision, as it happens",
    )
    proxy.add_argument(
        "--config",
        metavar="FILE",
        help="with --api: proxies and their toxics to make at start (JSON as Toxiproxy's "
        "-config, or .toml); SIGHUP applies the file again (POST /populate takes the same list)",
    )
    proxy.add_argument(
        "--api-any-host",
        action="store_true",
        help="let --api listen beyond loopback. Off by default because whoever reaches the "
        "API can open proxies from this machine to anywhere it reaches",
    )


def _add_schema(commands: Any) -> None:
    """The ``schema`` command's arguments."""
    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of scenario files or of the JSON report",
        description="Print the versioned JSON Schema (draft 2020-12) of scenario files "
        "('scenario': point your editor's TOML validation at it) or of the JSON report of "
        "'sockharness run --json' ('report').",
    )
    schema.add_argument("document", choices=("scenario", "report"), help="which schema")
    schema.add_argument(
        "--output", "-o", metavar="FILE", help="write it to FILE instead of standard output"
    )


def _add_explore(commands: Any) -> None:
    """The ``explore`` command's arguments."""
    explore = commands.add_parser(
        "explore",
        help="run one exchange at every point where the network can break it",
        description="Serve HANDLER (package.module:ClassName) in this process and run one "
        "exchange with it: once as it goes, then once per case: the request split in two "
        "reads at each byte, two requests coalesced, the client ending or resetting after "
        "each byte of the request, the server's side closed or reset after each byte of its "
        "reply. Print which cases failed and a line to replay the first. Exit 0: every case "
        "held; 1: one failed; 2: bad arguments.",
    )
    explore.add_argument("handler", metavar="HANDLER")
    explore.add_argument(
        "--request", metavar="TEXT", help="the request, with escapes such as \\r\\n, \\xNN"
    )
    explore.add_argument("--request-file", metavar="FILE", help="the request, from a file")
    explore.add_argument("--request-hex", metavar="HEX", help="the request, in hexadecimal")
    explore.add_argument(
        "--kind", default="tcp", choices=["tcp", "tcp6", "unix"], help="(default: tcp)"
    )
    explore.add_argument(
        "--concurrency", default="threading", choices=CONCURRENCIES, help="(default: threading)"
    )
    explore.add_argument(
        "--server-class", metavar="CLASS", help="serve with package.module:ClassName instead"
    )
    explore.add_argument(
        "--points",
        metavar="LIST",
        help="which kinds of case, comma-separated: split, coalesce, client-close, "
        "client-reset, server-close, server-reset (default: all)",
    )
    explore.add_argument(
        "--case",
        action="append",
        metavar="CASE",
        help="only this case, e.g. split:17 (repeat for more): a replay",
    )
    explore.add_argument(
        "--expect-error",
        action="append",
        metavar="EXCEPTION",
        help="an exception allowed where a connection closes or resets (default: OSError; "
        "repeat for more)",
    )
    explore.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=2.0,
        help="how long a case may take before it is a hang (default: 2 s)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sockharness`` command."""
    from sockharness.handlers import BUILTIN_HANDLERS

    parser = _Parser(
        prog="sockharness",
        description="Servers, faults and checks for testing network code.",
    )
    parser.add_argument("--version", action="version", version=f"sockharness {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run a server in the foreground until Ctrl-C",
        description="Run a sockharness.server server in the foreground until Ctrl-C or "
        "SIGTERM, printing the address it bound. Port 0 (the default) picks a free port; "
        "a Unix server with no --path gets one in a private temporary directory.",
    )
    kinds = [name.replace("_", "-") for name in KINDS]
    serve.add_argument("--kind", default="tcp", choices=kinds, help="transport (default: tcp)")
    serve.add_argument(
        "--concurrency",
        default="threading",
        choices=CONCURRENCIES,
        help="how requests are run (default: threading)",
    )
    serve.add_argument("--host", help="address to bind (default: the loopback address)")
    serve.add_argument("--port", type=_port, default=0, help="port to bind (default: 0, any free)")
    serve.add_argument("--path", help="socket path for unix kinds")
    serve.add_argument(
        "--handler",
        default="echo",
        choices=list(BUILTIN_HANDLERS),
        help="what to serve (default: echo)",
    )

    _add_proxy(commands, kinds)

    conform = commands.add_parser(
        "conform",
        help="check server classes with the conformance suite",
        description="Check every server class of TARGET (a module like socketserver, or "
        "package.module:ClassName) against the conformance properties; print a table "
        "(rows: classes, columns: properties) and each counterexample, shrunk by hypothesis. "
        "Exit 0: all hold; 1: a property failed; 2: a bad target.",
    )
    conform.add_argument("target")
    conform.add_argument(
        "--property",
        action="append",
        default=[],
        metavar="NAME",
        help="check only this property; repeat for more",
    )
    conform.add_argument("--profile", default="ci", choices=PROFILE_NAMES, help="(default: ci)")
    conform.add_argument("--seed", type=_seed, default=None, help="replay a randomized run")
    conform.add_argument(
        "--factory",
        metavar="MODULE:CALLABLE",
        help="builds servers of a class whose constructor needs more than (server_address, "
        "RequestHandlerClass): called as callable(server_class, server_address, "
        "RequestHandlerClass); server_class is a subclass the suite observes",
    )
    conform.add_argument(
        "--shutdown-bound",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="the longest shutdown() may take (default: the poll interval plus slack)",
    )
    conform.add_argument("--junit-xml", metavar="FILE", help="also write a JUnit XML report")
    conform.add_argument("--json", metavar="FILE", help="also write a JSON report")

    run = commands.add_parser(
        "run",
        help="run chaos scenarios",
        description="Run every chaos scenario in PATH (files, or directories searched for "
        ".toml files with a [scenario] table); show progress, print a summary table and "
        "write the reports asked for. Exit 0: every invariant held; 1: one broke (or a "
        "scenario could not run); 2: an invalid scenario.",
    )
    run.add_argument("paths", nargs="+", metavar="PATH")
    run.add_argument(
        "--seed", type=_seed, default=None, help="replay with this seed (default: each file's)"
    )
    run.add_argument("--junit-xml", metavar="FILE", help="also write a JUnit XML report")
    run.add_argument("--json", metavar="FILE", help="also write a JSON report")
    run.add_argument(
        "--html", metavar="FILE", help="also write a self-contained HTML report with plots"
    )
    run.add_argument(
        "--replay",
        metavar="FILE",
        help="run the scenario a replay file recorded, with its seed, and check that every "
        "fault decision comes again",
    )
    run.add_argument(
        "--seeds",
        type=sweep_count_argument,
        metavar="N",
        help="run each scenario under N seeds derived from its own (or --seed), and say "
        "which broke",
    )
    run.add_argument(
        "--check-determinism",
        action="store_true",
        help="run each scenario twice with the same seed and fail where a fault decision differs",
    )
    run.add_argument(
        "--name",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run only the scenarios whose name matches this glob pattern; repeat for more",
    )
    run.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="TAG",
        help="run only the scenarios with this tag ([scenario] tags); repeat for more",
    )
    run.add_argument(
        "--markdown",
        metavar="FILE",
        help="also write a Markdown summary (added to $GITHUB_STEP_SUMMARY too, when it is set)",
    )
    _add_variables(run)
    run.add_argument(
        "--failures",
        metavar="DIR",
        default=".sockharness/failures",
        help="where a broken scenario's replay file is written ('off': nowhere; default: "
        ".sockharness/failures)",
    )

    _add_explore(commands)

    check = commands.add_parser(
        "check",
        help="validate chaos scenarios without running them",
        description="Check every scenario file in PATH (files or directories): keys, types, "
        "values, fault parameters and import paths. Exit 0: all valid; 2: one is not.",
    )
    check.add_argument("paths", nargs="+", metavar="PATH")
    _add_variables(check)

    _add_schema(commands)
    return parser


def _add_variables(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="the value of ${NAME} in the scenarios' strings (before the environment's); "
        "repeat for more",
    )
    command.add_argument(
        "--var-file",
        action="append",
        default=[],
        metavar="FILE",
        help="NAME=VALUE lines (# comments), read before --var; repeat for more",
    )


def _serve(args: argparse.Namespace) -> int:
    from ._serve import serve

    return serve(
        args.kind, args.concurrency, args.handler, host=args.host, port=args.port, path=args.path
    )


def _proxy(args: argparse.Namespace) -> int:
    from ._proxy import run_api, run_proxy

    if args.api is not None:
        given = [
            option
            for option, value in (
                ("--upstream", args.upstream),
                ("--listen", args.listen),
                ("--fault", args.fault),
                ("--network-profile", args.network_profile),
            )
            if value
        ]
        if given:
            raise UsageError(
                f"{given[0]} does not go with --api: proxies and their faults are made "
                f"through the API"
            )
        return run_api(
            args.api,
            seed=args.seed,
            any_host=args.api_any_host,
            config=args.config,
            verbose=args.verbose,
        )
    if args.api_any_host or args.config:
        raise UsageError(f"{'--config' if args.config else '--api-any-host'} goes with --api")
    if args.upstream is None:
        raise UsageError("--upstream is required (where to relay to), or --api HOST:PORT")
    return run_proxy(
        listen=args.listen,
        upstream=args.upstream,
        kind_name=args.kind,
        fault_texts=args.fault,
        seed=args.seed,
        network_profile=args.network_profile,
        verbose=args.verbose,
    )


def _conform(args: argparse.Namespace) -> int:
    from ._conform import run_conform

    return run_conform(
        args.target,
        properties=args.property,
        profile=args.profile,
        seed=args.seed,
        shutdown_bound=args.shutdown_bound,
        factory=args.factory,
        junit_xml=args.junit_xml,
        json_path=args.json,
    )


def _run(args: argparse.Namespace) -> int:
    from ._chaos import run_scenarios
    from ._variables import variables_from

    return run_scenarios(
        args.paths,
        seed=args.seed,
        junit_xml=args.junit_xml,
        json_path=args.json,
        html_path=args.html,
        replay=args.replay,
        failures=None if args.failures == "off" else args.failures,
        seeds=args.seeds,
        check_determinism=args.check_determinism,
        variables=variables_from(args.var_file, args.var),
        names=args.name,
        tags=args.tag,
        markdown_path=args.markdown,
    )


def _explore(args: argparse.Namespace) -> int:
    from ._explore import read_request, run_explore

    return run_explore(
        args.handler,
        request=read_request(args.request, args.request_file, args.request_hex),
        kind=args.kind,
        concurrency=args.concurrency,
        server_class_path=args.server_class,
        points=args.points,
        cases=args.case,
        expect_errors=args.expect_error,
        timeout=args.timeout,
    )


def _check(args: argparse.Namespace) -> int:
    from ._chaos import check_scenarios
    from ._variables import variables_from

    return check_scenarios(args.paths, variables=variables_from(args.var_file, args.var))


def _schema(args: argparse.Namespace) -> int:
    from ._schema import print_schema

    return print_schema(args.document, args.output)


_COMMANDS = {
    "schema": _schema,
    "serve": _serve,
    "proxy": _proxy,
    "conform": _conform,
    "run": _run,
    "explore": _explore,
    "check": _check,
}
#: Commands that Ctrl-C ends with the results so far.
_INTERRUPTIBLE = ("conform", "run", "explore")


def main(argv: list[str] | None = None) -> int:
    """Run the ``sockharness`` command; return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = _COMMANDS.get(args.command)
    if command is None:  # pragma: no cover - argparse checks
        parser.error(f"unknown command {args.command!r}")
    interruptible = (
        args.command in _INTERRUPTIBLE and threading.current_thread() is threading.main_thread()
    )
    try:
        # Ctrl-C ends these with the results so far.
        with ctrl_c_caught() if interruptible else contextlib.nullcontext():
            return command(args)
    except UsageError as error:
        parser.exit(2, f"sockharness {args.command}: error: {error}\n")
    except OSError as error:
        parser.exit(1, f"sockharness {args.command}: error: {error}\n")
    except KeyboardInterrupt:  # Ctrl-C outside a command's own handling: no traceback.
        parser.exit(130, f"sockharness {args.command}: interrupted\n")


if __name__ == "__main__":
    sys.exit(main())
