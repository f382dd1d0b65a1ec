"""Name resolution faults in the process: delayed, timed out, NXDOMAIN, or a chosen answer."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest
import urllib3

from sockharness import UsageError
from sockharness.faults import (
    NXDomain,
    Resolve,
    ResolveDelay,
    ResolveTimeout,
    dns_faults,
)
from sockharness.handlers import LineEchoHandler


def test_nxdomain_and_a_chosen_answer_then_all_as_before() -> None:
    real = socket.getaddrinfo
    with dns_faults({"db.test": NXDomain(), "API.test.": Resolve("127.0.0.1")}) as scope:
        with pytest.raises(socket.gaierror) as caught:
            socket.getaddrinfo("db.test", 5432)
        assert caught.value.errno == socket.EAI_NONAME
        assert socket.gethostbyname("api.test") == "127.0.0.1"
        assert socket.gethostbyname_ex("api.TEST") == ("127.0.0.1", [], ["127.0.0.1"])
        answers = set(socket.getaddrinfo("api.test", 80, type=socket.SOCK_STREAM))
        ((family, _, _, _, address),) = answers
        assert (family, address) == (socket.AF_INET, ("127.0.0.1", 80))
        assert socket.gethostbyname("localhost") in ("127.0.0.1", "127.0.1.1")  # Untouched.
        assert scope.unfired() == []
        assert [(e.fault, e.effect) for e in scope.timeline.events] == [
            ("db.test", "NXDOMAIN"),
            ("api.test", "resolved to 127.0.0.1"),
            ("api.TEST", "resolved to 127.0.0.1"),
            ("api.test", "resolved to 127.0.0.1"),
        ]
    assert socket.getaddrinfo is real


def test_a_client_connects_through_a_delayed_name(make_server: Any) -> None:
    server = make_server(LineEchoHandler)
    with dns_faults({"*.slow.test": ResolveDelay(0.3, "127.0.0.1")}):
        started = time.monotonic()
        with socket.create_connection(("svc.slow.test", server.address[1]), timeout=5) as sock:
            assert time.monotonic() - started >= 0.3
            sock.sendall(b"hi\n")
            assert sock.recv(10) == b"hi\n"


def test_a_resolver_timeout_through_urllib3() -> None:
    with dns_faults({"api.test": ResolveTimeout(0.1)}) as scope:
        retries = urllib3.Retry(total=2, backoff_factor=0)
        with urllib3.PoolManager(retries=retries) as pool:
            with pytest.raises(urllib3.exceptions.MaxRetryError) as caught:
                pool.request("GET", "http://api.test:9/", timeout=1)
        assert "NameResolutionError" in repr(caught.value.reason)
        assert len(scope.timeline.events) == 3  # The first try and two retries.


def test_asyncio_resolves_through_it_too() -> None:
    async def lookup() -> Any:
        return await asyncio.get_running_loop().getaddrinfo("db.test", 1)

    with dns_faults({"db.test": NXDomain()}), pytest.raises(socket.gaierror):
        asyncio.run(lookup())


def test_scopes_nest_and_restore_on_error() -> None:
    real = socket.getaddrinfo
    with pytest.raises(RuntimeError), dns_faults({"a.test": Resolve("127.0.0.1")}):
        with dns_faults({"b.test": Resolve("::1")}):
            assert socket.gethostbyname("a.test") == "127.0.0.1"
            assert socket.gethostbyname("b.test") == "::1"
        with pytest.raises(socket.gaierror):
            socket.gethostbyname("b.test")  # The inner scope is gone.
        raise RuntimeError("the block failed")
    assert socket.getaddrinfo is real


def test_other_threads_resolve_through_the_scope() -> None:
    seen: list[str] = []
    with dns_faults({"t.test": Resolve("127.0.0.1")}):
        thread = threading.Thread(target=lambda: seen.append(socket.gethostbyname("t.test")))
        thread.start()
        thread.join(5)
    assert seen == ["127.0.0.1"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: dns_faults({}), "takes a mapping of names to faults"),
        (lambda: dns_faults({"x.test": "nxdomain"}), "is not a resolver fault"),
        (lambda: Resolve("db.example"), r"Resolve\(address='db.example'\) is not an IP"),
        (lambda: ResolveDelay(-1), r"ResolveDelay\(delay=-1\): delay is a number of seconds"),
        (lambda: ResolveTimeout("1"), r"ResolveTimeout\(after='1'\)"),
    ],
)
def test_bad_resolver_faults_are_clear(make: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        with make():
            pass


def test_the_fixture_and_its_unfired_names(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import socket
        import pytest
        from sockharness.faults import NXDomain

        def test_missing_database(dns_faults):
            dns_faults({"db.test": NXDomain()})
            with pytest.raises(socket.gaierror):
                socket.create_connection(("db.test", 5432), timeout=1)

        def test_never_resolved(dns_faults):
            dns_faults({"unused.test": NXDomain()})

        def test_restored_after(dns_faults):
            with pytest.raises(socket.gaierror):
                socket.gethostbyname("db.test")  # Not a name here: the real resolver.
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        ["*NXDomain() for 'unused.test' never fired: nothing resolved that name*"]
    )
