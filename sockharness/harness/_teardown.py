"""Stopping a test's servers and judging what they left: one verdict for every front end.

The pytest plugin calls :func:`stop_servers` at teardown, and so can any
other runner: it stops each server (the last started first), and says what
went wrong as a :class:`Teardown` that names the one exception to raise, if
any, for the leak mode in force.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sockharness._core import (
    HandlerErrors,
    LeakError,
    LeakMode,
    ServerStopTimeout,
    SockharnessError,
)

from ._running import RunningServer, format_handler_errors

__all__ = ["Teardown", "stop_servers"]


@dataclass
class Teardown:
    """What stopping a test's servers found."""

    #: The failure messages of undeclared handler errors, one per server with any.
    handler_errors: list[str] = field(default_factory=list)
    #: What each server left behind (and whether it stopped in time), one per server.
    leak_reports: list[str] = field(default_factory=list)
    #: Whether a server did not stop within its timeout.
    stuck: bool = False
    #: Faults planned in those servers (and their clients) that never fired.
    unfired: list[str] = field(default_factory=list)

    def error(self, leaks: LeakMode, footer: str = "") -> SockharnessError | None:
        """The exception the test gets (``None``: none), most serious first.

        Handler errors, then a server that did not stop, then leaks (with
        ``leaks="fail"``). ``footer`` (the seed to replay) ends each message.
        """
        tail = [footer] if footer else []
        if self.handler_errors:
            return HandlerErrors("\n\n".join([*self.handler_errors, *self.leak_reports, *tail]))
        if self.stuck:
            return ServerStopTimeout("\n\n".join([*self.leak_reports, *tail]))
        if self.leak_reports and leaks == "fail":
            return LeakError("\n\n".join([*self.leak_reports, *tail]))
        return None

    @property
    def leak_warning(self) -> str | None:
        """The text of the warning for ``leaks="warn"`` (``None``: nothing leaked)."""
        return "\n\n".join(self.leak_reports) if self.leak_reports else None


def stop_servers(servers: Sequence[RunningServer], timeout: float) -> Teardown:
    """Stop ``servers``, the last started first, each within ``timeout``; what they left."""
    found = Teardown()
    for server in reversed(servers):
        server.stop(timeout, check=False)
        errors = server.take_undeclared_errors()
        if errors:
            found.handler_errors.append(format_handler_errors(server, errors))
        report = server.leak_report()
        if report is not None:
            found.leak_reports.append(report)
        if server.stopped_in_time is False:
            found.stuck = True
        found.unfired += [f"{server!r}: {line}" for line in server.unfired_faults()]
    return found
