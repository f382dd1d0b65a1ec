"""What to check: every server class of a socketserver-like module, or one class."""

from __future__ import annotations

import importlib
import inspect
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from sockharness._core import Kind, UsageError, concurrency_of_class, kind_of_class

__all__ = [
    "Factory",
    "ServerUnderTest",
    "TargetError",
    "describe_class",
    "resolve_factory",
    "resolve_target",
]

#: Builds a server: ``factory(server_class, server_address, RequestHandlerClass)``.
Factory = Callable[[type, Any, type], Any]


class TargetError(UsageError):
    """The conformance target cannot be checked: not importable, or not a server class."""


@dataclass(frozen=True)
class ServerUnderTest:
    """One server class, and what it is: its kind and concurrency, detected from its bases.

    ``factory``, when the class needs more than ``(server_address,
    RequestHandlerClass)`` to be built, is called as ``factory(server_class,
    server_address, RequestHandlerClass)`` and returns the server; the suite
    passes a subclass of the class (it observes calls), which the factory must
    build rather than the class itself.
    """

    cls: type
    kind: Kind
    concurrency: str
    factory: Factory | None = None

    def build(self, cls: type, server_address: Any, handler: type) -> Any:
        """A server of ``cls`` (the class under test or a subclass) on ``server_address``."""
        if self.factory is None:
            return cls(server_address, handler)
        return self.factory(cls, server_address, handler)

    @property
    def name(self) -> str:
        return self.cls.__name__

    @property
    def qualified(self) -> str:
        return f"{self.cls.__module__}:{self.cls.__qualname__}"

    @property
    def stream(self) -> bool:
        return self.kind.stream

    def __str__(self) -> str:
        return f"{self.name} ({self.kind.name}, {self.concurrency})"


def _is_server_class(value: Any) -> bool:
    return (
        inspect.isclass(value)
        and all(hasattr(value, name) for name in ("serve_forever", "shutdown", "server_close"))
        and hasattr(value, "address_family")
        and hasattr(value, "socket_type")
        and hasattr(value, "get_request")
    )


def _needs_more_arguments(cls: type) -> str | None:
    """What ``cls(server_address, RequestHandlerClass)`` lacks, if anything."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return None  # Not introspectable (a C class): let the first example tell.
    try:
        signature.bind("server_address", "RequestHandlerClass")
    except TypeError as error:
        return str(error)
    return None


def describe_class(cls: type, factory: Factory | None = None) -> ServerUnderTest:
    """The :class:`ServerUnderTest` for ``cls``, or a clear error if it is not a server class."""
    if not _is_server_class(cls):
        raise TargetError(
            f"{cls!r} is not a socketserver-compatible server class: it needs serve_forever, "
            f"shutdown, server_close, get_request, address_family and socket_type."
        )
    try:
        kind = kind_of_class(cls)
    except UsageError as error:
        raise TargetError(str(error)) from None
    if not kind.available:
        raise TargetError(f"{cls.__name__} serves {kind.name}, which this platform lacks.")
    concurrency = concurrency_of_class(cls)
    if concurrency == "forking" and not hasattr(os, "fork"):
        raise TargetError(f"{cls.__name__} forks, and this platform has no os.fork().")
    if factory is None and (lacking := _needs_more_arguments(cls)) is not None:
        raise TargetError(
            f"{cls.__name__}(server_address, RequestHandlerClass) cannot be built: {lacking}; "
            f"give a factory (--factory package.module:callable) that is called as "
            f"callable(server_class, server_address, RequestHandlerClass) and builds it"
        )
    return ServerUnderTest(cls, kind, concurrency, factory)


def _import(name: str, what: str = "target") -> ModuleType:
    if not name:
        raise TargetError(
            f"the {what} names no module; write package.module:Name (a module like "
            f"'socketserver' alone checks every server class in it)"
        )
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise TargetError(
            f"cannot import {name!r} ({error}); a target is a module like 'socketserver' or "
            f"'sockharness.server', or one class as 'package.module:ClassName'."
        ) from None
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # The module itself fails: SyntaxError, anything it raises.
        raise TargetError(
            f"importing {name!r} raised {type(error).__name__}: {error}; fix the module"
        ) from None


def resolve_factory(factory: str | Factory | None) -> Factory | None:
    """The factory that ``"package.module:callable"`` names (or the callable itself)."""
    if factory is None or callable(factory):
        return factory
    if not isinstance(factory, str) or ":" not in factory:
        raise TargetError(f"a factory is 'package.module:callable', got {factory!r}")
    module_name, _, attribute = factory.partition(":")
    value: Any = _import(module_name, "factory")
    for part in attribute.split("."):
        value = getattr(value, part, None)
    if not callable(value):
        raise TargetError(f"{module_name!r} has no callable {attribute!r} to use as the factory")
    return value


def resolve_target(
    target: str | ModuleType | type, factory: str | Factory | None = None
) -> list[ServerUnderTest]:
    """The server classes ``target`` names.

    A module (or its dotted name) gives every concrete server class defined or
    exported in it; ``"package.module:ClassName"`` (or the class) gives one.
    ``factory`` builds servers of classes that need more constructor arguments.
    """
    built_by = resolve_factory(factory)
    if inspect.isclass(target):
        return [describe_class(target, built_by)]
    if isinstance(target, ModuleType):
        return _module_classes(target, built_by)
    if isinstance(target, str) and ":" in target:
        return [describe_class(_named_class(target), built_by)]
    if isinstance(target, str):
        return _module_classes(_import(target), built_by)
    raise TargetError(f"a target is a module name, a module or a class, got {target!r}")


def _named_class(target: str) -> Any:
    """What ``"package.module:ClassName"`` names."""
    module_name, _, attribute = target.partition(":")
    value: Any = _import(module_name)
    if not attribute:
        raise TargetError(f"{target!r} names no class after the colon")
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise TargetError(f"{module_name!r} has no {attribute!r}") from None
    return value


def _module_classes(module: ModuleType, built_by: Factory | None) -> list[ServerUnderTest]:
    """Every concrete server class of ``module`` that this platform can serve."""
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    found = []
    for name in names:
        value = getattr(module, name, None)
        if not _is_server_class(value):
            continue
        assert isinstance(value, type)
        if getattr(value, "socket_type", None) not in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            continue
        if built_by is None and (lacking := _needs_more_arguments(value)) is not None:
            raise TargetError(
                f"{module.__name__}.{value.__name__}(server_address, RequestHandlerClass) "
                f"cannot be built: {lacking}; give a factory (--factory "
                f"package.module:callable) or check the other classes one by one"
            )
        try:
            found.append(describe_class(value, built_by))
        except TargetError:
            continue  # A family this platform lacks: nothing to check here.
    if not found:
        raise TargetError(f"{module.__name__!r} has no server classes to check")
    return found
