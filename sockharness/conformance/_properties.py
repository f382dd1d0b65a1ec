"""The properties a socketserver-compatible class must have, each a named check.

Each property is a function of a server class and inputs drawn by hypothesis
(numbers of clients, how long handlers take, which fail, timeouts, poll
intervals), which raises ``AssertionError`` with a sentence saying what went
wrong. Hypothesis shrinks a failure to the smallest inputs that still fail.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from hypothesis import strategies as st

from ._lab import (
    _HANGING,
    NEVER_HANDLED,
    SHUTDOWN_HANGS,
    WAIT,
    WRONG_REPLY,
    Failure,
    Lab,
    Timed,
    child_state,
    socket_fds,
)
from ._target import ServerUnderTest

__all__ = ["PROPERTIES", "CheckConfig", "Property"]

#: Slack added to every time bound: scheduling noise on a loaded machine.
SLACK = 0.5
#: How soon a refused connection must be closed.
REFUSAL_BOUND = 2.0


@dataclass(frozen=True)
class CheckConfig:
    """Per-target settings: the shutdown bound (``None``: poll_interval plus slack)."""

    shutdown_bound: float | None = None


@dataclass(frozen=True)
class Property:
    """A named check: when it applies, what it draws, and the check itself."""

    name: str
    summary: str
    applies: Callable[[ServerUnderTest], str | None]
    inputs: Callable[[ServerUnderTest], st.SearchStrategy[Any]]
    check: Callable[[ServerUnderTest, Any, CheckConfig], None]
    #: A state machine (hypothesis.stateful) rather than one check of drawn inputs.
    stateful: bool = False


def _always(sut: ServerUnderTest) -> str | None:
    return None


def _concurrent(sut: ServerUnderTest) -> str | None:
    return None if sut.concurrency != "sync" else "a sync server has no handler threads or children"


def _forking(sut: ServerUnderTest) -> str | None:
    return None if sut.concurrency == "forking" else "not a forking server"


def _threading(sut: ServerUnderTest) -> str | None:
    return None if sut.concurrency == "threading" else "not a threading server"


def _datagram(sut: ServerUnderTest) -> str | None:
    return None if not sut.stream else "not a datagram server"


def _fields(request_id: int, **extra: Any) -> str:
    return " ".join([f"id={request_id}", *(f"{k}={v}" for k, v in extra.items())])


def _finished(lab: Lab, request_id: int) -> bool:
    return (str(request_id), "finish") in {(i, e) for i, e, _ in lab.events()}


def _append_reply(replies: list[bytes], lab: Lab, server: Any, fields: str) -> None:
    replies.append(lab.request(server, fields))


def _expect_reply(reply: bytes, request_id: int, what: str) -> None:
    if not reply.startswith(b"ok %d " % request_id):
        raise Failure(
            f"{what}: request {request_id} got {reply!r} instead of its reply",
            cause=WRONG_REPLY,
        )


def _expect_errors_handled(lab: Lab, failing: int) -> None:
    """Every one of ``failing`` requests reached a handler, and handle_error() saw each."""
    if lab.wait_until(lambda: lab.count("error") >= failing):
        return
    handled = lab.count("setup")
    if handled < failing:
        raise Failure(
            f"{failing - handled} of {failing} requests never reached a handler",
            cause=NEVER_HANDLED,
        )
    raise AssertionError(
        f"handle_error() was called {lab.count('error')} times for {failing} failing requests"
    )


# -- 1. shutdown ----------------------------------------------------------------------------------


def _shutdown_inputs(sut: ServerUnderTest) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {
            "state": st.sampled_from(["idle", "running", "idle_clients", "after_errors"]),
            "clients": st.integers(1, 3),
            "poll_interval": st.sampled_from([0.01, 0.05, 0.25]),
            "handler_time": st.sampled_from([0.0, 0.02, 0.05]),
        }
    )


def check_shutdown(sut: ServerUnderTest, inputs: dict[str, Any], config: CheckConfig) -> None:
    state, clients = inputs["state"], inputs["clients"]
    poll, handler_time = inputs["poll_interval"], inputs["handler_time"]
    # An explicit bound is the whole allowance; the default is the poll interval plus slack.
    bound = config.shutdown_bound if config.shutdown_bound is not None else poll + SLACK
    if sut.concurrency == "sync":
        # A sync server finishes the request in hand (and those queued) first.
        bound += clients * (handler_time + 0.3)
    lab = Lab(sut)
    try:
        server = lab.make_server()
        thread = lab.serve(server, poll)
        if state == "running":
            for n in range(clients):
                request = _fields(n, sleep=handler_time)
                # No waiting for datagram replies: some may be read only after the shutdown.
                lab.in_background(partial(lab.request, server, request, reply=sut.stream))
            assert lab.wait_until(lambda: lab.count("handle") >= 1), "no handler started"
        elif state == "idle_clients" and sut.stream:
            for _ in range(clients):
                lab.idle_client(server)
        elif state == "after_errors":
            for n in range(clients):
                lab.request(server, _fields(n, **{"raise": 1}), reply=False)
            _expect_errors_handled(lab, clients)
        for round_ in (1, 2):
            stopping = Timed(server.shutdown, "shutdown")
            if not stopping.wait(bound):
                lab.hung = True
                _HANGING.add(type(server).shutdown)
                raise Failure(
                    f"shutdown() did not return within {bound:.2f} s (round {round_}, state "
                    f"{state!r}, poll_interval={poll}); serve_forever() is still running",
                    cause=SHUTDOWN_HANGS,
                )
            thread.join(bound)
            assert not thread.is_alive(), (
                f"shutdown() returned but serve_forever() did not (round {round_})"
            )
            if round_ == 1:
                thread = lab.serve(server, poll)
                _expect_reply(
                    lab.request(server, _fields(99)), 99, "serving again after a shutdown"
                )
    finally:
        lab.close()


# -- 2. block_on_close ----------------------------------------------------------------------------


def _block_inputs(sut: ServerUnderTest) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {
            "block_on_close": st.booleans(),
            "daemon_threads": st.booleans() if sut.concurrency == "threading" else st.just(False),
            "in_flight": st.integers(1, 2),
        }
    )


def check_block_on_close(sut: ServerUnderTest, inputs: dict[str, Any], config: CheckConfig) -> None:
    block, daemon, in_flight = (
        inputs["block_on_close"],
        inputs["daemon_threads"],
        inputs["in_flight"],
    )
    waits = block and (sut.concurrency == "forking" or not daemon)
    lab = Lab(sut)
    try:
        attributes: dict[str, Any] = {"block_on_close": block}
        if sut.concurrency == "threading":
            attributes["daemon_threads"] = daemon
        server = lab.make_server(**attributes)
        lab.serve(server)
        for n in range(in_flight):
            # A datagram reply may have no socket left to go out on: do not wait for it.
            lab.in_background(partial(lab.request, server, _fields(n, gate="g"), reply=False))
        assert lab.wait_until(lambda: lab.count("handle") >= in_flight), (
            f"{in_flight} requests did not all reach their handlers"
        )
        lab.stop_serving(server)
        closing = Timed(server.server_close, "server_close")
        setting = f"block_on_close={block}" + (
            f", daemon_threads={daemon}" if sut.concurrency == "threading" else ""
        )
        if waits:
            assert not closing.wait(0.3), (
                f"server_close() returned while {in_flight} handler(s) still ran ({setting}): "
                f"it must wait for them"
            )
            lab.open_gate("g")
            assert closing.wait(WAIT), (
                f"server_close() did not return once the handlers ended ({setting})"
            )
            assert lab.count("finish") >= in_flight, (
                f"server_close() returned before every handler finished ({setting})"
            )
        else:
            assert closing.wait(0.3 + SLACK), (
                f"server_close() waited for running handlers ({setting}); it must not"
            )
            lab.open_gate("g")
    finally:
        lab.close()


# -- 3. timeout -----------------------------------------------------------------------------------


def _timeout_inputs(sut: ServerUnderTest) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {
            "timeout": st.floats(0.02, 0.1),
            "socket_timeout": st.sampled_from([None, "smaller", "larger"]),
            "client_first": st.booleans(),
        }
    )


def check_timeout(sut: ServerUnderTest, inputs: dict[str, Any], config: CheckConfig) -> None:
    timeout, which, client_first = (
        inputs["timeout"],
        inputs["socket_timeout"],
        inputs["client_first"],
    )
    socket_timeout = {None: None, "smaller": timeout / 2, "larger": 30.0}[which]
    effective = timeout if socket_timeout is None else min(timeout, socket_timeout)
    lab = Lab(sut)
    try:
        server = lab.make_server()
        server.timeout = timeout
        if socket_timeout is not None:
            server.socket.settimeout(socket_timeout)
        replies: list[bytes] = []
        if client_first:
            lab.in_background(lambda: replies.append(lab.request(server, _fields(1))))
            assert lab.wait_until(lambda: bool(lab.clients)), "the client did not connect"
            if not sut.stream:
                time.sleep(0.01)  # Let the datagram land before handle_request() looks.
        started = time.monotonic()
        handling = Timed(server.handle_request, "handle_request")
        assert handling.wait(effective + SLACK + (1.0 if client_first else 0.0)), (
            f"handle_request() with timeout={timeout:.3f} and socket timeout={socket_timeout} "
            f"did not return"
        )
        elapsed = time.monotonic() - started
        if client_first:
            lab.wait_until(lambda: bool(replies) or bool(lab.background_failures))
            lab.reraise()
            assert lab.timeouts == 0, "handle_timeout() was called although a request arrived"
            assert replies, "handle_request() returned but the request was not answered"
            _expect_reply(replies[0], 1, "a request before the timeout")
        else:
            assert lab.timeouts == 1, (
                f"handle_timeout() was called {lab.timeouts} times, not once, after a "
                f"handle_request() that saw no request"
            )
            assert elapsed >= effective * 0.9, (
                f"handle_request() gave up after {elapsed:.3f} s, before the timeout of "
                f"{effective:.3f} s (the smaller of self.timeout and the socket's)"
            )
            assert elapsed < effective + SLACK, (
                f"handle_request() waited {elapsed:.3f} s: the smaller timeout "
                f"({effective:.3f} s) should win"
            )
    finally:
        lab.close()


# -- 4. handler lifecycle -------------------------------------------------------------------------


def _lifecycle_inputs(sut: ServerUnderTest) -> st.SearchStrategy[Any]:
    from sockharness.strategies import handler_behaviours

    return handler_behaviours()


def check_handler_lifecycle(
    sut: ServerUnderTest, behaviours: list[str], config: CheckConfig
) -> None:
    lab = Lab(sut)
    original_hook = threading.excepthook
    threading.excepthook = lambda args: None  # SystemExit in a handler thread: expected here.
    try:
        server = lab.make_server()
        for n, behaviour in enumerate([*behaviours, "ok"]):
            extra = (
                {"raise": 1} if behaviour == "raise" else {"exit": 1} if behaviour == "exit" else {}
            )
            lab.in_background(partial(lab.request, server, _fields(n, **extra), reply=not extra))
            handling = Timed(server.handle_request, "handle_request")
            assert handling.wait(WAIT), (
                f"request {n} ({behaviour}): handle_request() did not return within {WAIT:g} s"
            )
            if behaviour != "exit" and handling.error is not None:
                raise Failure(
                    f"request {n} ({behaviour}): handle_request() raised "
                    f"{type(handling.error).__name__}: {handling.error}; a handler's Exception "
                    f"goes to handle_error() and serving goes on (serve_forever() would die here)",
                    cause="a handler's exception escapes the request loop",
                )
            finished = lab.wait_until(partial(_finished, lab, n), timeout=1.0)
            if not finished and not any(rid == str(n) for rid, _, _ in lab.events()):
                lab.reraise()
                raise Failure(
                    f"request {n} ({behaviour}) never reached a handler", cause=NEVER_HANDLED
                )
            assert finished, f"request {n} ({behaviour}): finish() was never called"
        events = lab.events()
        for n, behaviour in enumerate([*behaviours, "ok"]):
            steps = [event for request_id, event, _ in events if request_id == str(n)]
            assert steps == ["setup", "handle", "finish"], (
                f"request {n} ({behaviour}): the handler ran {steps}, not setup, handle, finish "
                f"once each in that order"
            )
        raised = behaviours.count("raise")
        errors = sum(1 for _, event, _ in events if event == "error")
        assert errors == raised, (
            f"handle_error() was called {errors} times for {raised} handlers that raised an "
            f"Exception (and {behaviours.count('exit')} that raised SystemExit, which it must "
            f"not see)"
        )
    finally:
        threading.excepthook = original_hook
        lab.close()


# -- 5. verify_request ----------------------------------------------------------------------------


def _verify_inputs(sut: ServerUnderTest) -> st.SearchStrategy[Any]:
    return st.lists(st.booleans(), min_size=1, max_size=5)


def check_verify_request(sut: ServerUnderTest, decisions: list[bool], config: CheckConfig) -> None:
    lab = Lab(sut)
    try:
        server = lab.make_server()
        lab.decisions.extend(decisions)
        lab.serve(server)
        for n, accepted in enumerate(decisions):
            if accepted:
                reply = lab.request(server, _fields(n))
            elif sut.stream:
                # The client keeps its side open: the server must close it, promptly.
                reply = lab.refused(server, _fields(n), timeout=REFUSAL_BOUND)
            else:
                with lab.client(server) as client:
                    client.send(_fields(n).encode())
                reply = b""
            if accepted:
                _expect_reply(reply, n, "an accepted request")
            else:
                assert reply == b"", (
                    f"refused request {n} got {reply!r}; its connection must just close"
                )
        _expect_reply(
            lab.request(server, _fields(len(decisions))), len(decisions), "after refusals"
        )
        reached = {request_id for request_id, event, _ in lab.events() if event == "setup"}
        for n, accepted in enumerate(decisions):
            assert (str(n) in reached) == accepted, (
                f"request {n} was {'accepted' if accepted else 'refused'} by verify_request() but "
                f"{'never reached' if accepted else 'still reached'} the handler"
            )
    finally:
        lab.close()


# -- 6. close semantics ---------------------------------------------------------------------------


def _close_inputs(sut: ServerUnderTest) -> st.SearchStrategy[Any]:
    return st.integers(3, 15)


def check_close_semantics(sut: ServerUnderTest, requests: int, config: CheckConfig) -> None:
    lab = Lab(sut)
    try:
        server = lab.make_server()
        lab.serve(server)
        _expect_reply(lab.request(server, _fields(0)), 0, "a first request")
        before = socket_fds()
        for n in range(1, requests + 1):
            # For a stream, recv_all() returns only once the server closed the connection.
            _expect_reply(lab.request(server, _fields(n)), n, "a request")
        assert lab.wait_until(lambda: lab.count("finish") >= requests + 1), (
            "handlers did not finish"
        )
        lab.wait_until(lambda: not (socket_fds() - before), timeout=1.0)
        grew = socket_fds() - before
        assert not grew, (
            f"{len(grew)} sockets more are open after {requests} finished requests: the server "
            f"does not close every connection"
        )
        lab.stop_serving(server)
        server.server_close()
        server.server_close()  # Idempotent: must not raise.
        assert server.socket.fileno() == -1, "server_close() left the listening socket open"
        with lab.build(lab.server_class()) as managed:
            pass
        assert managed.socket.fileno() == -1, "the context manager did not close the server"
    finally:
        lab.close()


# -- 7. forking -----------------------------------------------------------------------------------


def _forking_inputs(sut: ServerUnderTest) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries({"max_children": st.integers(1, 3), "requests": st.integers(1, 6)})


def check_forking(sut: ServerUnderTest, inputs: dict[str, Any], config: CheckConfig) -> None:
    limit, requests = inputs["max_children"], inputs["requests"]
    lab = Lab(sut)
    try:
        server = lab.make_server(max_children=limit)
        lab.serve(server, poll_interval=0.02)
        replies: list[bytes] = []
        for n in range(requests):
            lab.in_background(partial(_append_reply, replies, lab, server, _fields(n, sleep=0.02)))
        answered = lab.wait_until(
            lambda: len(replies) == requests or bool(lab.background_failures), timeout=WAIT * 2
        )
        lab.reraise()
        assert answered, f"{requests - len(replies)} of {requests} requests were not answered"
        assert lab.most_children <= limit, (
            f"{lab.most_children} children were alive at once with max_children={limit}"
        )
        children = set(lab.children_seen)
        reaped = lab.wait_until(lambda: all(child_state(pid) is None for pid in children), 1.0)
        assert reaped, "zombies remain after every request completed: " + ", ".join(
            f"pid {pid} {child_state(pid)}" for pid in sorted(children) if child_state(pid)
        )
    finally:
        lab.close()


# -- 8. threading ---------------------------------------------------------------------------------


def _threading_inputs(sut: ServerUnderTest) -> st.SearchStrategy[Any]:
    return st.integers(5, 15)


def check_threading(sut: ServerUnderTest, requests: int, config: CheckConfig) -> None:
    lab = Lab(sut)
    try:
        before = threading.active_count()
        server = lab.make_server()
        lab.serve(server)
        for n in range(requests):
            _expect_reply(lab.request(server, _fields(n)), n, "a request")
            # The next request only once this one's thread has ended: a server that
            # prunes finished threads when the next request comes (the stdlib) then
            # holds at most one, however slowly threads end on a loaded machine.
            lab.wait_until(lambda: threading.active_count() <= before + 1)
        assert lab.wait_until(lambda: lab.count("finish") >= requests), "handlers did not finish"
        assert lab.wait_until(lambda: threading.active_count() <= before + 1), (
            f"{threading.active_count() - before - 1} handler threads are still alive after "
            f"{requests} finished requests"
        )
        # Whoever still refers to a finished handler thread keeps it: with the lab
        # holding only weak references, that is the server (whatever it calls it).
        gc.collect()
        kept = sum(1 for ref in lab.handler_threads if ref() is not None)
        assert kept <= 2, (
            f"the server still refers to {kept} of {requests} finished handler threads: "
            f"finished threads accumulate"
        )
    finally:
        lab.close()


# -- 9. datagram ----------------------------------------------------------------------------------


def _datagram_inputs(sut: ServerUnderTest) -> st.SearchStrategy[Any]:
    limit = getattr(sut.cls, "max_packet_size", 8192)
    return st.fixed_dictionaries(
        {
            "sizes": st.lists(st.integers(20, min(limit, 8192)), min_size=1, max_size=4),
            "clients": st.integers(1, 3),
        }
    )


def check_datagram(sut: ServerUnderTest, inputs: dict[str, Any], config: CheckConfig) -> None:
    sizes, clients = inputs["sizes"], inputs["clients"]
    lab = Lab(sut)
    try:
        server = lab.make_server()
        lab.serve(server)
        sent = 0
        for c in range(clients):
            with lab.client(server) as client:
                for size in sizes:
                    request_id = c * 100 + sent
                    head = _fields(request_id).encode() + b" "
                    client.send(head + b"x" * max(0, size - len(head)))
                    reply = lab.receive(client, _fields(request_id))
                    expected = b"ok %d %d\n" % (request_id, max(size, len(head)))
                    assert reply == expected, (
                        f"client {c} got {reply!r} for its {size}-byte datagram, not {expected!r}: "
                        f"the reply went astray or the datagram did not arrive whole"
                    )
                    sent += 1
        assert lab.wait_until(lambda: lab.count("finish") >= sent), "handlers did not finish"
        seen = [request_id for request_id, event, _ in lab.events() if event == "setup"]
        assert len(seen) == len(set(seen)) == sent, (
            f"{sent} datagrams were sent, the handler saw {len(seen)} ({len(set(seen))} distinct)"
        )
    finally:
        lab.close()


PROPERTIES: dict[str, Property] = {
    prop.name: prop
    for prop in [
        Property(
            "shutdown",
            "shutdown() from another thread returns in time from any state; serving again works",
            _always,
            _shutdown_inputs,
            check_shutdown,
        ),
        Property(
            "block_on_close",
            "server_close() waits for in-flight handlers exactly when it should",
            _concurrent,
            _block_inputs,
            check_block_on_close,
        ),
        Property(
            "timeout",
            "handle_request() times out once, after the smaller timeout, unless a request comes",
            _always,
            _timeout_inputs,
            check_timeout,
        ),
        Property(
            "handler_lifecycle",
            "setup, handle, finish once each; handle_error for Exception only; serving goes on",
            _always,
            _lifecycle_inputs,
            check_handler_lifecycle,
        ),
        Property(
            "verify_request",
            "refused requests never reach the handler and are closed",
            _always,
            _verify_inputs,
            check_verify_request,
        ),
        Property(
            "close_semantics",
            "connections closed after their handler; no socket grows; server_close() idempotent",
            _always,
            _close_inputs,
            check_close_semantics,
        ),
        Property(
            "forking",
            "no zombies; never more than max_children alive",
            _forking,
            _forking_inputs,
            check_forking,
        ),
        Property(
            "threading",
            "finished handler threads are neither alive nor tracked",
            _threading,
            _threading_inputs,
            check_threading,
        ),
        Property(
            "datagram",
            "every datagram reaches the handler once; replies go to the right client",
            _datagram,
            _datagram_inputs,
            check_datagram,
        ),
        Property(
            "stateful",
            "random interleavings of serving, requests, failures, shutdowns and closes",
            _always,
            lambda sut: st.nothing(),
            lambda sut, inputs, config: None,  # Run by _stateful.run_stateful instead.
            stateful=True,
        ),
    ]
}
