"""Name resolution faults, in the process: chosen names resolve slowly, time out, or do not exist.

Within a scope (:func:`dns_faults`, or the ``dns_faults`` fixture),
``socket.getaddrinfo`` (which ``socket.create_connection``, ``http.client``,
urllib3, requests and asyncio's resolver all use), ``socket.gethostbyname``
and ``socket.gethostbyname_ex`` answer the chosen names as the faults say;
every other name resolves as before. No DNS server is involved, and nothing
outside the process changes. The scope is process-wide while it lasts (every
thread resolves through it): a test that runs other tests' threads beside it
should keep its names to itself (``*.test`` names, say).
"""

from __future__ import annotations

import contextlib
import fnmatch
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sockharness._core import UsageError

from ._timeline import Event, Timeline

__all__ = [
    "NXDomain",
    "Resolve",
    "ResolveDelay",
    "ResolveTimeout",
    "ResolverFault",
    "ResolverFaults",
    "dns_faults",
]


def _seconds(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 3600:
        raise UsageError(
            f"{owner}({name}={value!r}): {name} is a number of seconds from 0 (and under an hour)",
            parameter=name,
            value=value,
        )


def _address(owner: str, value: Any) -> None:
    if value is None:
        return
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in str(value) else socket.AF_INET, str(value))
    except (OSError, TypeError):
        raise UsageError(
            f"{owner}(address={value!r}) is not an IP address: give one such as '127.0.0.1' "
            f"or '::1' (a name would need resolving itself)",
            parameter="address",
            value=value,
        ) from None


@dataclass(frozen=True)
class ResolverFault:
    """Base of what happens when a chosen name is resolved."""

    def describe(self) -> str:
        return repr(self)


@dataclass(frozen=True)
class Resolve(ResolverFault):
    """The name resolves to ``address`` (a name that exists nowhere else, say)."""

    address: str

    def __post_init__(self) -> None:
        _address("Resolve", self.address)


@dataclass(frozen=True)
class ResolveDelay(ResolverFault):
    """Resolving takes ``delay`` seconds more; then the answer is ``address``, or the real one."""

    delay: float
    address: str | None = None

    def __post_init__(self) -> None:
        _seconds("ResolveDelay", "delay", self.delay)
        _address("ResolveDelay", self.address)


@dataclass(frozen=True)
class ResolveTimeout(ResolverFault):
    """The resolver gives up after ``after`` seconds: ``socket.gaierror`` ``EAI_AGAIN``
    ("Temporary failure in name resolution"), as a resolver that timed out says."""

    after: float = 0.0

    def __post_init__(self) -> None:
        _seconds("ResolveTimeout", "after", self.after)


@dataclass(frozen=True)
class NXDomain(ResolverFault):
    """The name does not exist: ``socket.gaierror`` ``EAI_NONAME`` ("Name or service not known")."""


class ResolverFaults:
    """The faults of one :func:`dns_faults` scope: what each chosen name gets, and what happened.

    ``timeline`` records every resolution of a chosen name; :meth:`unfired`
    lists the names no one resolved.
    """

    def __init__(self, faults: Mapping[str, ResolverFault], timeline: Timeline | None = None):
        if not isinstance(faults, Mapping) or not faults:
            raise UsageError(
                "dns_faults() takes a mapping of names to faults, e.g. "
                "{'db.test': NXDomain(), 'api.test': ResolveDelay(0.5, '127.0.0.1')}"
            )
        for name, fault in faults.items():
            if not isinstance(name, str) or not name.strip():
                raise UsageError(f"dns_faults(): {name!r} is not a host name (or pattern)")
            if not isinstance(fault, ResolverFault):
                raise UsageError(
                    f"dns_faults(): {fault!r} for {name!r} is not a resolver fault; use "
                    f"Resolve, ResolveDelay, ResolveTimeout or NXDomain"
                )
        self.faults = {name.strip().lower().rstrip("."): fault for name, fault in faults.items()}
        self.timeline = timeline if timeline is not None else Timeline()
        self._started = time.monotonic()
        self._used: set[str] = set()
        self._lock = threading.Lock()

    def fault_for(self, host: Any) -> tuple[str, ResolverFault] | None:
        """The pattern and fault for ``host``, if it is a chosen name."""
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if not isinstance(host, str):
            return None
        key = host.lower().rstrip(".")
        for pattern, fault in self.faults.items():
            if key == pattern or fnmatch.fnmatchcase(key, pattern):
                return pattern, fault
        return None

    def note(self, pattern: str, host: str, effect: str) -> None:
        with self._lock:
            self._used.add(pattern)
        self.timeline.add(Event(time.monotonic() - self._started, -1, "resolve", f"{host}", effect))

    def unfired(self) -> list[str]:
        """The chosen names no one resolved while the scope lasted."""
        with self._lock:
            used = set(self._used)
        return [
            f"{fault.describe()} for {pattern!r} never fired: nothing resolved that name"
            for pattern, fault in self.faults.items()
            if pattern not in used
        ]


_patch_lock = threading.Lock()


def _faulty(
    real: Callable[..., Any], scope: ResolverFaults, shape: Callable[[str, Any, tuple], Any]
) -> Callable[..., Any]:
    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        found = scope.fault_for(host)
        if found is None:
            return real(host, *args, **kwargs)
        pattern, fault = found
        if isinstance(fault, NXDomain):
            scope.note(pattern, host, "NXDOMAIN")
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if isinstance(fault, ResolveTimeout):
            threading.Event().wait(fault.after)
            scope.note(pattern, host, f"timed out after {fault.after:g} s")
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if isinstance(fault, ResolveDelay):
            threading.Event().wait(fault.delay)
            if fault.address is None:
                scope.note(pattern, host, f"delayed {fault.delay:g} s, then resolved")
                return real(host, *args, **kwargs)
            scope.note(pattern, host, f"delayed {fault.delay:g} s, then {fault.address}")
            return shape(fault.address, real, (args, kwargs))
        assert isinstance(fault, Resolve)
        scope.note(pattern, host, f"resolved to {fault.address}")
        return shape(fault.address, real, (args, kwargs))

    resolve.__wrapped__ = real  # type: ignore[attr-defined]
    return resolve


def _as_getaddrinfo(address: str, real: Callable[..., Any], call: tuple) -> Any:
    args, kwargs = call
    return real(address, *args, **kwargs)  # A numeric host: no resolver is asked.


def _as_gethostbyname(address: str, real: Callable[..., Any], call: tuple) -> Any:
    return address


def _as_gethostbyname_ex(address: str, real: Callable[..., Any], call: tuple) -> Any:
    return (address, [], [address])


@contextlib.contextmanager
def dns_faults(
    faults: Mapping[str, ResolverFault], *, timeline: Timeline | None = None
) -> Iterator[ResolverFaults]:
    """Resolve the chosen names as ``faults`` say, for the length of a ``with`` block.

    Keys are host names or ``fnmatch`` patterns (``"*.test"``), case
    insensitive; values :class:`Resolve`, :class:`ResolveDelay`,
    :class:`ResolveTimeout` or :class:`NXDomain`. Scopes nest; on exit the
    resolver is what it was before, even when the block fails.

    Example:
        >>> import socket
        >>> from sockharness.faults import NXDomain, Resolve, dns_faults
        >>> with dns_faults({"db.test": NXDomain(), "api.test": Resolve("127.0.0.1")}):
        ...     socket.gethostbyname("api.test")
        ...     try:
        ...         socket.getaddrinfo("db.test", 5432)
        ...     except socket.gaierror as error:
        ...         print(error)
        '127.0.0.1'
        [Errno -2] Name or service not known
    """
    scope = ResolverFaults(faults, timeline)
    with _patch_lock:
        saved = (socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex)
        socket.getaddrinfo = _faulty(saved[0], scope, _as_getaddrinfo)
        socket.gethostbyname = _faulty(saved[1], scope, _as_gethostbyname)
        socket.gethostbyname_ex = _faulty(saved[2], scope, _as_gethostbyname_ex)
    try:
        yield scope
    finally:
        with _patch_lock:
            socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex = saved
