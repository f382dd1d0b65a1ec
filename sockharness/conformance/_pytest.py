"""Conformance in pytest: a base class to subclass, items for ``--sockharness-conformance``."""

from __future__ import annotations

from typing import Any, ClassVar

from ._properties import PROPERTIES, CheckConfig
from ._runner import PropertyResult, run_property
from ._target import ServerUnderTest, describe_class, resolve_target

__all__ = ["ServerConformance", "conformance_items"]


def _outcome(result: PropertyResult, target: str) -> None:
    import pytest

    __tracebackhide__ = True
    if result.status == "n/a":
        pytest.skip(f"{result.property} does not apply: {result.message}")
    if result.failed:
        pytest.fail(
            f"{result.name} fails {result.property}: {result.message}\n\n"
            f"{result.counterexample}\n\nreplay: {result.replay(target)}",
            pytrace=False,
        )


class ServerConformance:
    """Subclass it in a test module to check your own server class with every property.

    Example::

        from sockharness.conformance import ServerConformance
        from myproject.server import MyServer

        class TestMyServer(ServerConformance):
            server_class = MyServer
            # conformance_profile = "thorough"; shutdown_bound = 2.0

    Each property is one test method (``test_shutdown``, ``test_timeout``, ...);
    a property that does not apply to the class (``forking`` on a threading
    server) is skipped with the reason.
    """

    server_class: ClassVar[type | None] = None
    conformance_profile: ClassVar[str] = "ci"
    shutdown_bound: ClassVar[float | None] = None

    def _conformance(self, name: str) -> None:
        __tracebackhide__ = True
        if self.server_class is None:
            raise TypeError(f"{type(self).__name__} must set server_class = YourServerClass")
        sut = describe_class(self.server_class)
        result = run_property(
            sut,
            PROPERTIES[name],
            profile=self.conformance_profile,
            config=CheckConfig(shutdown_bound=self.shutdown_bound),
        )
        _outcome(result, sut.qualified)

    def test_shutdown(self) -> None:
        self._conformance("shutdown")

    def test_block_on_close(self) -> None:
        self._conformance("block_on_close")

    def test_timeout(self) -> None:
        self._conformance("timeout")

    def test_handler_lifecycle(self) -> None:
        self._conformance("handler_lifecycle")

    def test_verify_request(self) -> None:
        self._conformance("verify_request")

    def test_close_semantics(self) -> None:
        self._conformance("close_semantics")

    def test_forking(self) -> None:
        self._conformance("forking")

    def test_threading(self) -> None:
        self._conformance("threading")

    def test_datagram(self) -> None:
        self._conformance("datagram")

    def test_stateful(self) -> None:
        self._conformance("stateful")


def conformance_items(session: Any, target: str, profile: str, bound: float | None) -> list[Any]:
    """pytest items, one per property and server class of ``target``."""
    import pytest

    class ConformanceItem(pytest.Item):
        def __init__(self, *, sut: ServerUnderTest, prop: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.sut = sut
            self.prop = prop

        def runtest(self) -> None:
            __tracebackhide__ = True
            result = run_property(
                self.sut,
                PROPERTIES[self.prop],
                profile=profile,
                config=CheckConfig(shutdown_bound=bound),
            )
            _outcome(result, target)

        def reportinfo(self) -> tuple[str, int | None, str]:
            return target, None, f"{self.sut.name}.{self.prop}"

    class ConformanceTarget(pytest.Collector):
        def collect(self) -> list[Any]:
            return [
                ConformanceItem.from_parent(self, name=f"{sut.name}.{prop}", sut=sut, prop=prop)
                for sut in resolve_target(target)
                for prop in PROPERTIES
            ]

    collector = ConformanceTarget.from_parent(session, name=f"conformance[{target}]")
    return collector.collect()
