"""The exceptions and warnings sockharness raises, under one root each.

Every exception is a :class:`SockharnessError`, every warning a
:class:`SockharnessWarning`. Where a user would catch a built-in exception,
ours subclasses it too (``UsageError`` is a ``ValueError``, ``ReceiveTimeout``
a ``TimeoutError``), so ``except ValueError`` keeps working. Errors carry
what they are about as fields, so no caller parses a message.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConnectionClosed",
    "HandlerErrors",
    "HeldDatagramsWarning",
    "IPv6Unavailable",
    "LeakError",
    "LeakWarning",
    "ProxyError",
    "ProxyTimeout",
    "ReceiveTimeout",
    "ServerStopTimeout",
    "SockharnessError",
    "SockharnessWarning",
    "UnfiredFaultWarning",
    "UnfiredFaults",
    "UsageError",
]


class SockharnessError(Exception):
    """Root of every exception sockharness raises on its own account."""


class UsageError(SockharnessError, ValueError):
    """An argument or setting was invalid; the message names it and says how to fix it.

    ``parameter`` and ``value``, where the raiser knows them, say which
    argument (``"delay"``, ``"--seed"``) and what it was given.
    """

    def __init__(self, message: str, *, parameter: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.value = value


class IPv6Unavailable(SockharnessError, OSError):
    """An IPv6 kind was asked for on a host without an IPv6 loopback (``::1``)."""


class ReceiveTimeout(SockharnessError, TimeoutError):
    """A client waited longer than its timeout; the message names the peer and what was awaited.

    ``received`` holds what did arrive meanwhile (for a stream, the bytes read
    before the wait ran out).
    """

    def __init__(self, message: str, *, received: bytes = b"") -> None:
        super().__init__(message)
        self.received = received


class ConnectionClosed(SockharnessError, EOFError):
    """The peer closed the connection before what was awaited arrived."""


class HandlerErrors(SockharnessError, AssertionError):
    """Handlers raised exceptions that the test did not declare with ``expect_errors()``.

    An ``AssertionError``, so pytest reports it as a test failure with the
    handlers' tracebacks in the message.
    """


class LeakError(SockharnessError, AssertionError):
    """A server left threads, descriptors, child processes or socket files behind."""


class ServerStopTimeout(SockharnessError, TimeoutError):
    """A server (or a proxy) did not stop within the allowed time (a handler never returned).

    ``timeout`` is the time it had, in seconds.
    """

    def __init__(self, message: str, *, timeout: float | None = None) -> None:
        super().__init__(message)
        self.timeout = timeout


class ProxyError(SockharnessError, RuntimeError):
    """A fault proxy's event loop failed (the exception that ended it is the cause)."""


class ProxyTimeout(SockharnessError, TimeoutError):
    """A fault proxy did not do in time what it was asked (take new faults, close).

    ``timeout`` is the time it had, in seconds.
    """

    def __init__(self, message: str, *, timeout: float) -> None:
        super().__init__(message)
        self.timeout = timeout


class UnfiredFaults(SockharnessError, AssertionError):
    """Faults were planned but never fired: the test did not exercise what it claims to."""


class SockharnessWarning(UserWarning):
    """Root of every warning sockharness issues."""


class LeakWarning(SockharnessWarning):
    """A server left threads, sockets, children or socket files behind (``leaks="warn"``)."""


class HeldDatagramsWarning(SockharnessWarning):
    """A faulty datagram socket was closed with datagrams its faults still held back."""


class UnfiredFaultWarning(SockharnessWarning):
    """Like :class:`UnfiredFaults`, as a warning (``--sockharness-unfired=warn``)."""


# Tracebacks and reports name the public module (``sockharness.HandlerErrors``), where
# users import them from, whichever module raised them.
for _name in __all__:
    globals()[_name].__module__ = "sockharness"
del _name
