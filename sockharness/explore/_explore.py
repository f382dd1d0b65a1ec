"""Bounded-exhaustive exploration of one exchange: every case, run against one server."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sockharness._core import UsageError, object_path, parse_kind
from sockharness.faults import Fault, LimitData, ResetPeer
from sockharness.harness import RunningServer, start_server

from ._cases import (
    BASELINE,
    CLIENT_POINTS,
    Case,
    Point,
    check_case,
    enumerate_cases,
    parse_case,
    parse_points,
)
from ._client import ClientSide, run_builtin, run_users
from ._cut import Cut
from ._report import Exploration, Outcome

__all__ = ["MAX_CASES", "escape_request", "exchanges"]

#: More cases than this is a request too long to explore byte by byte.
MAX_CASES = 20_000

Check = Callable[[Outcome], Any]


def escape_request(data: bytes) -> str:
    r"""``data`` as text that ``--request`` reads back: ``\r``, ``\n``, ``\t``, ``\\``, ``\xNN``."""
    out = []
    for byte in data:
        char = chr(byte)
        if char == "\\":
            out.append("\\\\")
        elif char in "\r\n\t":
            out.append({"\r": "\\r", "\n": "\\n", "\t": "\\t"}[char])
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def _faults_of(case: Case) -> list[Fault]:
    """The in-process faults that make ``case`` on the handler's connection."""
    point, offset = case.point, case.offset
    if point == "split":
        return [Cut(offset, direction="upstream")]
    if point == "coalesce":
        return [] if offset == 0 else [Cut(offset, direction="upstream")]
    if point == "server-close":
        return [LimitData(offset, direction="downstream")]
    if point == "server-reset":
        return [ResetPeer(direction="downstream", after_bytes=offset)]
    return []


class _Explorer:
    """Runs cases one after another against one server, whose faults follow the case."""

    def __init__(
        self,
        *,
        handler: type,
        kind: str,
        concurrency: str | None,
        server_class: type | None,
        request: bytes | None,
        client: Callable[[Any], Any] | None,
        check: Check | None,
        expected_errors: tuple[type[BaseException], ...],
        timeout: float,
        server_attrs: dict[str, Any],
        faults: list[Fault],
    ) -> None:
        self.kind = parse_kind(kind)
        self.request = request
        self.client = client
        self.check = check
        self.expected_errors = expected_errors
        self.timeout = timeout
        self.current: list[Fault] = []
        self.hung = False  # A handler that did not end: the server stops without waiting long.
        self.sequential_reply: bytes | None = None
        self.server: RunningServer = start_server(
            handler,
            kind,
            concurrency=concurrency,
            server_class=server_class,
            faults=faults or None,  # Each connection gets its case's, by the selector.
            select_faults=(lambda: self.current) if faults else None,
            leaks="off",
            **server_attrs,
        )

    # -- one case --------------------------------------------------------------------------

    def run(self, case: Case, baseline: Outcome | None) -> Outcome:
        server = self.server
        self.current = _faults_of(case)
        started = time.monotonic()
        before = server.stats.connections
        side = self._client_side(case)
        outcome = Outcome(
            case,
            reply=side.reply,
            result=side.result,
            error=side.error,
            client_ended=side.ended,
        )
        outcome.handler_ended = self._handlers_done(before)
        self.hung = self.hung or not outcome.handler_ended
        outcome.connections = server.stats.connections - before
        outcome.handler_errors = server.take_undeclared_errors()
        outcome.elapsed = time.monotonic() - started
        self.current = []
        outcome.failure = self._verdict(outcome, baseline)
        return outcome

    def _client_side(self, case: Case) -> ClientSide:
        if self.client is not None:
            return run_users(self.client, self.server.address, self.timeout)
        assert self.request is not None
        return run_builtin(case, self.kind, self.server.address, self.request, self.timeout)

    def sequential(self, reply_size: int) -> ClientSide:
        """The two requests one after the other: what ``coalesce`` cases must give too."""
        assert self.request is not None
        before = self.server.stats.connections
        side = run_builtin(
            BASELINE,
            self.kind,
            self.server.address,
            self.request,
            self.timeout,
            first_reply=reply_size,
        )
        if not self._handlers_done(before):
            self.hung = True
            side.ended = False
        self.server.take_undeclared_errors()
        return side

    def _handlers_done(self, before: int) -> bool:
        """Wait until the server took a connection after the ``before``-th, and its handlers
        are done with every connection taken."""
        try:
            self.server.wait_stats(
                lambda s: s.connections > before and s.connections_done >= s.connections,
                self.timeout,
            )
        except TimeoutError:
            return False
        return True

    # -- the verdict ----------------------------------------------------------------------

    def _verdict(self, outcome: Outcome, baseline: Outcome | None) -> str | None:
        failure = self._ending(outcome) or self._errors(outcome)
        if failure is None and baseline is not None:
            failure = self._same_as_baseline(outcome, baseline)
        if failure is None and self.check is not None:
            try:
                self.check(outcome)
            except Exception as exc:  # The user's check failed: that is the verdict.
                failure = f"check: {type(exc).__name__}: {exc}"
        return failure

    def _ending(self, outcome: Outcome) -> str | None:
        if not outcome.connections:
            return f"the server took no connection within {self.timeout:g} s"
        if not outcome.handler_ended:
            return (
                f"a handler was still running {self.timeout:g} s after the client was done "
                f"(it waits for bytes that never come, or never ends)"
            )
        if not outcome.client_ended:
            return f"the client did not return within {self.timeout:g} s"
        return None

    def _errors(self, outcome: Outcome) -> str | None:
        # Where a connection closes or resets, the errors that say so are allowed.
        broken = outcome.case.point not in (None, "split", "coalesce")
        for handler_error in outcome.handler_errors:
            if not broken or not handler_error.matches(self.expected_errors):
                return f"the handler raised {handler_error.type_name}: {handler_error.message}"
        error = outcome.error
        if error is not None and (not broken or not isinstance(error, self.expected_errors)):
            verb = "raised" if self.client else "met"
            return f"the client {verb} {type(error).__name__}: {error}"
        return None

    def _same_as_baseline(self, outcome: Outcome, baseline: Outcome) -> str | None:
        point = outcome.case.point
        if point == "split":
            if self.client is not None:
                if outcome.result != baseline.result:
                    return f"the client returned {outcome.result!r}, not {baseline.result!r}"
                return None
            expected = baseline.reply
        elif point == "coalesce":
            expected = self.sequential_reply
        else:
            return None
        if outcome.reply != expected:
            return f"the reply was {_short(outcome.reply)}, not {_short(expected)}"
        return None

    def close(self) -> None:
        # A hung handler would hold stop() to its timeout: give it a moment only.
        self.server.stop(timeout=1.0 if self.hung else self.timeout + 5.0, check=False)


def _short(data: bytes | None, limit: int = 60) -> str:
    if data is None:
        return "None"
    text = repr(data[:limit])
    return text + (f" (+{len(data) - limit} bytes)" if len(data) > limit else "")


def _describe(handler: type, kind: str, concurrency: str | None, server_class: type | None) -> str:
    if server_class is not None:
        return f"{handler.__name__} on {server_class.__name__}"
    return f"{handler.__name__} ({kind}, {concurrency or 'threading'})"


def _replay_line(
    handler: type,
    *,
    kind: str,
    concurrency: str | None,
    server_class: type | None,
    request: bytes | None,
    client: Callable[[Any], Any] | None,
) -> Callable[[Case], str]:
    handler_path = object_path(handler)
    class_path = object_path(server_class) if server_class is not None else None
    command_line = (
        handler_path is not None
        and client is None
        and request is not None
        and (server_class is None or class_path is not None)
    )

    def line(case: Case) -> str:
        if command_line:
            assert handler_path is not None
            assert request is not None
            words = ["sockharness", "explore", handler_path]
            if server_class is not None:
                words += ["--server-class", str(class_path)]
            else:
                words += ["--kind", kind, "--concurrency", concurrency or "threading"]
            words += ["--request", escape_request(request), "--case", str(case)]
            return " ".join(shlex.quote(word) for word in words)
        arguments = [handler.__name__]
        arguments.append(repr(request) if request is not None else "client=...")
        arguments.append(f"cases=[{str(case)!r}]")
        return f"exchanges({', '.join(arguments)}) (same arguments otherwise)"

    return line


def _plan(
    points: Sequence[Point], cases: list[Case] | None, request_size: int, reply_size: int
) -> list[Case]:
    """The cases to run: those asked for (checked to exist), or every case of ``points``."""
    if cases is None:
        planned = list(enumerate_cases(points, request_size, reply_size))
    else:
        for case in cases:
            check_case(case, request_size, reply_size)
        planned = cases
    if len(planned) > MAX_CASES:
        raise UsageError(
            f"{len(planned)} cases are more than {MAX_CASES}: explore a shorter "
            f"exchange, or fewer points (points=...)"
        )
    return planned


def _check_arguments(
    handler: type,
    request: bytes | None,
    *,
    kind: str,
    client: Callable[[Any], Any] | None,
    points: str | Sequence[str] | None,
    cases: Iterable[str | Case] | None,
    timeout: float,
) -> tuple[tuple[Point, ...], list[Case] | None]:
    """The points and cases to explore, once the arguments are known to make sense."""
    if not isinstance(handler, type):
        raise UsageError(f"handler must be a request handler class, got {handler!r}")
    if client is None and not isinstance(request, bytes):
        raise UsageError(
            f"request must be bytes (what the built-in client sends), got {request!r}; "
            f"or give client=, your own client, called as client(address)"
        )
    if client is not None and request is not None:
        raise UsageError("give a request for the built-in client, or client=, not both")
    if request == b"":
        raise UsageError("request is empty: there is no exchange to explore")
    if timeout <= 0:
        raise UsageError(f"timeout={timeout!r} must be a positive number of seconds")
    chosen_points = parse_points(points)
    if client is not None:
        refused = [p for p in chosen_points if p in CLIENT_POINTS]
        if refused and points is not None:
            raise UsageError(
                f"points {', '.join(refused)} need the built-in client (they are moves of the "
                f"client's own); with client=, explore split, server-close and server-reset"
            )
        chosen_points = tuple(p for p in chosen_points if p not in CLIENT_POINTS)
    chosen_cases = None if cases is None else [
        case if isinstance(case, Case) else parse_case(case) for case in cases
    ]  # fmt: skip
    if chosen_cases is not None and client is not None:
        for case in chosen_cases:
            if case.point in CLIENT_POINTS:
                raise UsageError(f"case {case} needs the built-in client; drop client=")
    if parse_kind(kind).stream is False:
        raise UsageError(f"kind={kind!r}: exchanges are explored on stream kinds (tcp, unix)")

    return chosen_points, chosen_cases


def exchanges(
    handler: type,
    request: bytes | None = None,
    *,
    kind: str = "tcp",
    concurrency: str | None = None,
    server_class: type | None = None,
    client: Callable[[Any], Any] | None = None,
    check: Check | None = None,
    points: str | Sequence[str] | None = None,
    cases: Iterable[str | Case] | None = None,
    expected_errors: tuple[type[BaseException], ...] = (OSError,),
    timeout: float = 2.0,
    **server_attrs: Any,
) -> Exploration:
    """Run one exchange with a handler at every point where a network can break it.

    The handler is served in this process (``kind``, ``concurrency`` or
    ``server_class`` as for :func:`~sockharness.start_server`). The built-in
    client sends ``request``, ends its side, and reads the reply to its end;
    or give ``client``, called as ``client(address)`` for each case, doing
    the exchange its own way (its return value and exception are the
    outcome; ``coalesce`` and the ``client-*`` points need the built-in client).

    First the baseline: the exchange as it goes with no case applied (it must
    hold, and it gives the sizes). Then each case of ``points`` (all by
    default; see :mod:`sockharness.explore`), or only ``cases``
    (``["split:17"]``). A case fails when:

    - a handler is still running ``timeout`` s after the client is done, or
      the user's client has not returned by then;
    - a handler raises, or the client raises or meets an error; in the cases
      that close or reset, exceptions of ``expected_errors`` (by default
      ``OSError``: resets, broken pipes, timeouts) are allowed;
    - a ``split`` gives another reply (or return value) than the baseline, a
      ``coalesce`` another than the two requests sent one after the other;
    - ``check(outcome)`` raises (it sees every case's :class:`Outcome`).

    Returns the :class:`Exploration`; its ``raise_if_failed()`` raises
    :class:`ExplorationFailed` with the report and a line replaying the first
    failure.
    """
    __tracebackhide__ = True
    chosen_points, chosen_cases = _check_arguments(
        handler, request, kind=kind, client=client, points=points, cases=cases, timeout=timeout
    )
    started = time.monotonic()

    def explorer(faults: list[Fault]) -> _Explorer:
        return _Explorer(
            handler=handler,
            kind=kind,
            concurrency=concurrency,
            server_class=server_class,
            request=request,
            client=client,
            check=check,
            expected_errors=tuple(expected_errors),
            timeout=timeout,
            server_attrs=server_attrs,
            faults=faults,
        )

    # The baseline, on a server of its own: it gives the sizes the cases need.
    first = explorer([])
    try:
        baseline = first.run(BASELINE, None)
        stats = first.server.stats
    finally:
        first.close()
    request_size = len(request) if request is not None else stats.bytes_received
    reply_size = stats.bytes_sent
    outcomes: list[Outcome] = []
    planned: list[Case] = []
    if baseline.held:
        planned = _plan(chosen_points, chosen_cases, request_size, reply_size)
        explore = explorer([fault for case in planned for fault in _faults_of(case)])
        try:
            if any(case.point == "coalesce" for case in planned):
                sequential = explore.sequential(len(baseline.reply or b""))
                if not sequential.ended:
                    baseline.failure = (
                        f"the request sent twice, one after the other (what coalesce cases "
                        f"are compared with), did not end: a handler was still running "
                        f"{timeout:g} s after the client was done"
                    )
                    planned = []
                explore.sequential_reply = sequential.reply
            for case in planned:
                outcomes.append(explore.run(case, baseline))
                if not outcomes[-1].handler_ended:
                    break  # A hung handler may hold the server: what follows would not say.
        finally:
            explore.close()
    return Exploration(
        target=_describe(handler, kind, concurrency, server_class),
        request_size=request_size,
        reply_size=reply_size,
        baseline=baseline,
        outcomes=outcomes,
        not_run=planned[len(outcomes) :] if baseline.held else [],
        elapsed=time.monotonic() - started,
        replay_line=_replay_line(
            handler,
            kind=kind,
            concurrency=concurrency,
            server_class=server_class,
            request=request,
            client=client,
        ),
    )


def points_of(cases: Iterable[Case]) -> list[Point]:
    """The points the cases are of, in order, once each."""
    seen: list[Point] = []
    for case in cases:
        if case.point is not None and case.point not in seen:
            seen.append(case.point)
    return seen
