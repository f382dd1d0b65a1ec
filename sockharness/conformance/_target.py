"""What to check: every server class of a socketserver-like module, or one class."""

from __future__ import annotations

import importlib
import inspect
import os
import socket
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from sockharness._errors import UsageError
from sockharness._kinds import Kind, concurrency_of_class, kind_of_class

__all__ = ["ServerUnderTest", "TargetError", "describe_class", "resolve_target"]


class TargetError(UsageError):
    """The conformance target cannot be checked: not importable, or not a server class."""


@dataclass(frozen=True)
class ServerUnderTest:
    """One server class, and what it is: its kind and concurrency, detected from its bases."""

    cls: type
    kind: Kind
    concurrency: str

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


def describe_class(cls: type) -> ServerUnderTest:
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
    return ServerUnderTest(cls, kind, concurrency)


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise TargetError(
            f"cannot import {name!r} ({error}); a target is a module like 'socketserver' or "
            f"'sockharness.server', or one class as 'package.module:ClassName'."
        ) from None


def resolve_target(target: str | ModuleType | type) -> list[ServerUnderTest]:
    """The server classes ``target`` names.

    A module (or its dotted name) gives every concrete server class defined or
    exported in it; ``"package.module:ClassName"`` (or the class) gives one.
    """
    if inspect.isclass(target):
        return [describe_class(target)]
    if isinstance(target, ModuleType):
        module = target
    elif isinstance(target, str) and ":" in target:
        module_name, _, attribute = target.partition(":")
        module = _import(module_name)
        value: Any = module
        for part in attribute.split("."):
            try:
                value = getattr(value, part)
            except AttributeError:
                raise TargetError(f"{module_name!r} has no {attribute!r}") from None
        return [describe_class(value)]
    elif isinstance(target, str):
        module = _import(target)
    else:
        raise TargetError(f"a target is a module name, a module or a class, got {target!r}")
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    found = []
    for name in names:
        value = getattr(module, name, None)
        if not _is_server_class(value):
            continue
        if getattr(value, "socket_type", None) not in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            continue
        try:
            found.append(describe_class(value))
        except TargetError:
            continue  # A family this platform lacks: nothing to check here.
    if not found:
        raise TargetError(f"{module.__name__!r} has no server classes to check")
    return found
