"""The stateful model: random interleavings of serving, requests, shutdowns and closes.

Hypothesis drives a server through sequences of steps — start
``serve_forever()``, send a request that succeeds or whose handler fails,
handle one request with ``handle_request()``, keep an idle client connected,
shut down, close — and checks the invariants of the other properties after
every step. A failure shrinks to the shortest sequence of steps that breaks
one.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ._lab import SHUTDOWN_HANGS, WAIT, WRONG_REPLY, BudgetSpent, Failure, Lab, Timed
from ._properties import SLACK, CheckConfig
from ._target import ServerUnderTest

if TYPE_CHECKING:
    from ._runner import Search

__all__ = ["run_stateful"]

_Step = TypeVar("_Step", bound=Callable[..., None])


def _traced(step: _Step) -> _Step:
    """Record the step in the example's trace; a failure, with the trace, in the search."""

    @functools.wraps(step)
    def traced(self: Any, **arguments: Any) -> None:
        if not step.__name__.startswith("every_") and step.__name__ not in _INVARIANTS:
            shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
            self.trace.append(f"state.{step.__name__}({shown})")
        try:
            step(self, **arguments)
        except BudgetSpent:
            raise
        except (Exception, SystemExit) as error:
            where = "" if step.__name__ not in _INVARIANTS else f"  (invariant {step.__name__})"
            self.failed = True
            self.search.failed(error, "\n".join([*self.trace, where.strip()]).strip())
            raise

    return traced  # type: ignore[return-value]


_INVARIANTS = {
    "every_completed_request_ran_its_handler_once_in_order",
    "handle_error_once_per_failure",
    "a_closed_server_holds_no_socket",
}


def _machine(
    sut: ServerUnderTest, config: CheckConfig, search: Search
) -> type[RuleBasedStateMachine]:
    class ServerModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.search = search
            self.failed = False
            self.trace = ["state = ServerModel()"]
            search.begin()
            self.lab = Lab(sut)
            self.lab.drain_timeout = 0.2  # Every step already waited for its handler.
            self.server = self.lab.make_server(timeout=1.0)
            self.thread: Any = None
            self.closed = False
            self.next_id = 0
            self.failed_requests = 0
            self.completed: list[int] = []
            self.idle: list[Any] = []

        @property
        def serving(self) -> bool:
            return self.thread is not None

        def _id(self) -> int:
            self.next_id += 1
            return self.next_id

        @precondition(lambda self: not self.serving and not self.closed)
        @rule()
        @_traced
        def start_serving(self) -> None:
            self.thread = self.lab.serve(self.server, poll_interval=0.02)

        @precondition(lambda self: self.serving)
        @rule()
        @_traced
        def shut_down(self) -> None:
            bound = (config.shutdown_bound or 0.02 + SLACK) + 0.4 * len(self.idle)
            stopping = Timed(self.server.shutdown, "shutdown")
            if not stopping.wait(bound):
                self.lab.hung = True
                raise Failure(
                    f"shutdown() did not return within {bound:.2f} s", cause=SHUTDOWN_HANGS
                )
            self.thread.join(WAIT)
            assert not self.thread.is_alive(), "serve_forever() did not return after shutdown()"
            self.thread = None

        @precondition(lambda self: self.serving)
        @rule(fails=st.booleans())
        @_traced
        def request(self, fails: bool) -> None:
            request_id = self._id()
            fields = f"id={request_id}" + (" raise=1" if fails else "")
            reply = self.lab.request(self.server, fields, reply=not fails)
            if fails:
                self.failed_requests += 1
            elif not reply.startswith(b"ok %d " % request_id):
                raise Failure(
                    f"request {request_id} got {reply!r} from a serving server",
                    cause=WRONG_REPLY,
                )
            self.completed.append(request_id)

        @precondition(lambda self: not self.serving and not self.closed)
        @rule()
        @_traced
        def handle_one(self) -> None:
            request_id = self._id()
            replies: list[bytes] = []
            self.lab.in_background(
                lambda: replies.append(self.lab.request(self.server, f"id={request_id}"))
            )
            # handle_request() takes the next connection waiting, and an idle client the
            # loop never accepted before shutdown() is ahead of this request: each call
            # that handled one is followed by another, one per idle client at most.
            for _ in range(len(self.idle) + 1):
                before = len(self._setups())
                handling = Timed(self.server.handle_request, "handle_request")
                assert handling.wait(WAIT), "handle_request() did not return with a client waiting"
                # The handler it started logs its setup (in a thread or child, soon after).
                # (B023: the condition is called here, within this iteration.)
                self.lab.wait_until(
                    lambda: len(self._setups()) > before or bool(replies)  # noqa: B023
                )
                handled = self._setups()[before:]
                if replies or str(request_id) in handled or "?" not in handled:
                    break
            self.lab.wait_until(lambda: bool(replies) or bool(self.lab.background_failures))
            self.lab.reraise()
            reply = replies[0] if replies else b""
            if not reply.startswith(b"ok %d " % request_id):
                raise Failure(
                    f"request {request_id} got {reply!r} from handle_request()", cause=WRONG_REPLY
                )
            self.completed.append(request_id)

        def _setups(self) -> list[str]:
            """The request ids whose handlers logged their setup so far (``?``: an idle one)."""
            return [rid for rid, event, _ in self.lab.events() if event == "setup"]

        @precondition(lambda self: self.serving and sut.stream and len(self.idle) < 2)
        @rule()
        @_traced
        def idle_client(self) -> None:
            self.idle.append(self.lab.idle_client(self.server))

        @precondition(lambda self: bool(self.idle))
        @rule()
        @_traced
        def idle_client_leaves(self) -> None:
            self.idle.pop().close()

        @precondition(lambda self: not self.serving)
        @rule()
        @_traced
        def close(self) -> None:
            closing = Timed(self.server.server_close, "server_close")
            assert closing.wait(WAIT), "server_close() did not return"
            if closing.error is not None:
                raise AssertionError(f"server_close() raised {closing.error!r}")
            self.closed = True

        @invariant()
        @_traced
        def every_completed_request_ran_its_handler_once_in_order(self) -> None:
            if not self.completed:
                return
            self.lab.wait_until(
                lambda: all(
                    (str(n), "finish") in {(i, e) for i, e, _ in self.lab.events()}
                    for n in self.completed
                ),
                # A stream client sees the end only after finish(): little to wait for.
                timeout=0.1 if sut.stream else 1.0,
            )
            events = self.lab.events()
            for n in self.completed:
                steps = [event for request_id, event, _ in events if request_id == str(n)]
                assert steps == ["setup", "handle", "finish"], (
                    f"request {n}: the handler ran {steps}, not setup, handle, finish"
                )

        @invariant()
        @_traced
        def handle_error_once_per_failure(self) -> None:
            if self.failed_requests:
                self.lab.wait_until(lambda: self.lab.count("error") >= self.failed_requests, 1.0)
            errors = self.lab.count("error")
            assert errors == self.failed_requests, (
                f"handle_error() was called {errors} times for {self.failed_requests} "
                f"failing handlers"
            )

        @invariant()
        @_traced
        def a_closed_server_holds_no_socket(self) -> None:
            if self.closed:
                assert self.server.socket.fileno() == -1, "server_close() left the socket open"

        def teardown(self) -> None:
            if not self.failed:
                self.search.passed += 1
            for client in self.idle:
                with contextlib.suppress(OSError):
                    client.close()
            self.lab.close()

    ServerModel.__name__ = f"ServerModel_{sut.name}"
    return ServerModel


def run_stateful(
    sut: ServerUnderTest, options: dict[str, Any], config: CheckConfig, search: Search
) -> None:
    """Run the state machine against ``sut`` with hypothesis ``options``; failures to ``search``."""
    machine = _machine(sut, config, search)
    run_state_machine_as_test(machine, settings=settings(**options, stateful_step_count=12))
