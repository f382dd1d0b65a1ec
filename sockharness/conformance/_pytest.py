"""Conformance in pytest: a base class to subclass, items for ``--sockharness-conformance``."""

from __future__ import annotations

from typing import Any, ClassVar

from sockharness._core import UsageError

from ._properties import PROPERTIES, CheckConfig
from ._runner import PropertyResult, run_property
from ._target import Factory, ServerUnderTest, describe_class, resolve_target

__all__ = ["ServerConformance", "conformance_items"]


def _outcome(result: PropertyResult) -> None:
    import pytest

    __tracebackhide__ = True
    if result.status == "n/a":
        pytest.skip(f"{result.property} does not apply: {result.message}")
    if result.failed:
        note = f"\n({result.note})" if result.note else ""
        pytest.fail(
            f"{result.name} fails {result.property}: {result.message}\n"
            f"root cause: {result.cause}\n\n{result.counterexample}{note}\n\n"
            f"replay: {result.replay()}",
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
            # server_factory = staticmethod(lambda cls, address, handler: cls(address, handler, 8))

    Each property is one test method (``test_shutdown``, ``test_timeout``, ...,
    one per entry of :data:`PROPERTIES`); a property that does not apply to the
    class (``forking`` on a threading server) is skipped with the reason.
    ``server_factory`` builds a class whose constructor needs more arguments:
    it is called as ``server_factory(server_class, server_address,
    RequestHandlerClass)``.
    """

    server_class: ClassVar[type | None] = None
    conformance_profile: ClassVar[str] = "ci"
    shutdown_bound: ClassVar[float | None] = None
    server_factory: ClassVar[Factory | None] = None

    def _conformance(self, name: str) -> None:
        __tracebackhide__ = True
        if self.server_class is None:
            raise UsageError(f"{type(self).__name__} must set server_class = YourServerClass")
        sut = describe_class(self.server_class, type(self).server_factory)
        result = run_property(
            sut,
            PROPERTIES[name],
            profile=self.conformance_profile,
            config=CheckConfig(shutdown_bound=self.shutdown_bound),
        )
        _outcome(result)


def _property_test(name: str) -> Any:
    def test(self: ServerConformance) -> None:
        __tracebackhide__ = True
        self._conformance(name)

    test.__name__ = test.__qualname__ = f"test_{name}"
    test.__doc__ = f"The conformance property {name!r}: {PROPERTIES[name].summary}."
    return test


for _name in PROPERTIES:
    setattr(ServerConformance, f"test_{_name}", _property_test(_name))
del _name


def conformance_items(
    session: Any, target: str, profile: str, bound: float | None, factory: str | None = None
) -> list[Any]:
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
                factory=factory,
            )
            _outcome(result)

        def reportinfo(self) -> tuple[str, int | None, str]:
            return target, None, f"{self.sut.name}.{self.prop}"

    class ConformanceTarget(pytest.Collector):
        def collect(self) -> list[Any]:
            return [
                ConformanceItem.from_parent(self, name=f"{sut.name}.{prop}", sut=sut, prop=prop)
                for sut in resolve_target(target, factory)
                for prop in PROPERTIES
            ]

    collector = ConformanceTarget.from_parent(session, name=f"conformance[{target}]")
    return collector.collect()
