"""Faults from text and mappings: ``latency=0.1,jitter=0.01`` on a command line, tables in files."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any

from sockharness._core import UsageError, import_object

from ._specs import FAULTS, Fault

__all__ = ["FAULT_NAMES", "fault_class", "fault_from_mapping", "parse_fault"]

#: The name of each fault in files and on the command line (the fault registry).
FAULT_NAMES: dict[str, type[Fault]] = FAULTS


def _parameters(cls: type[Fault]) -> list[dataclasses.Field[Any]]:
    """The fault's own parameters first (the first is its main one), then direction, toxicity."""
    return sorted(dataclasses.fields(cls), key=lambda f: f.kw_only is True)


def _imported_fault(path: str) -> type[Fault]:
    try:
        found = import_object(path)
    except LookupError as exc:
        raise UsageError(f"fault {path!r} could not be imported: {exc}") from None
    if not (isinstance(found, type) and issubclass(found, Fault)):
        raise UsageError(
            f"{path!r} is not a fault class (a subclass of sockharness.faults.Fault), "
            f"it is {found!r}"
        )
    return found


def fault_class(name: str) -> type[Fault]:
    """The fault class a name stands for: a built-in's (``"reset_peer"``) or a user's
    ``"package.module:ClassName"``, imported.

    Example:
        >>> from sockharness.faults import fault_class
        >>> fault_class("reset-peer")
        <class 'sockharness.faults.ResetPeer'>
    """
    if ":" in name:
        return _imported_fault(name)
    key = name.strip().lower().replace("-", "_")
    try:
        return FAULT_NAMES[key]
    except KeyError:
        close = difflib.get_close_matches(key, FAULT_NAMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UsageError(
            f"{name!r} is not a fault.{hint} Faults: {', '.join(FAULT_NAMES)}; "
            f"your own: 'package.module:ClassName'."
        ) from None


def fault_from_mapping(name: str, parameters: Mapping[str, Any]) -> Fault:
    """The fault called ``name`` with these keyword parameters, validated.

    Example:
        >>> from sockharness.faults import fault_from_mapping
        >>> fault_from_mapping("latency", {"delay": 0.1, "direction": "upstream"})
        Latency(delay=0.1, direction='upstream')
    """
    cls = fault_class(name)
    known = {field.name: field for field in _parameters(cls)}
    for key in parameters:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UsageError(
                f"{cls.__name__} has no parameter {key!r}.{hint} "
                f"Its parameters: {', '.join(known)}."
            )
    missing = [
        field.name
        for field in known.values()
        if field.default is dataclasses.MISSING and field.name not in parameters
    ]
    if missing:
        raise UsageError(f"{cls.__name__} needs {', '.join(missing)}.")
    return cls(**parameters)


def _value(text: str) -> Any:
    text = text.strip()
    lowered = text.lower()
    if lowered in ("none", "never"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


#: Parameters whose values may hold commas themselves (``connections=0,2,5-``, ``messages=``).
_LISTS = ("connections", "messages", "calls")


def _joined(items: list[str]) -> list[str]:
    """The ``param=value`` items, with the comma-separated parts of a list value joined."""
    joined: list[str] = []
    for item in items:
        if "=" not in item and joined and joined[-1].partition("=")[0].strip() in _LISTS:
            joined[-1] += "," + item
        else:
            joined.append(item)
    return joined


def parse_fault(text: str) -> Fault:
    """A fault from ``name[=value][,param=value...]``; the first value is its main parameter.

    Example:
        >>> from sockharness.faults import parse_fault
        >>> parse_fault("latency=0.1,jitter=0.01")
        Latency(delay=0.1, jitter=0.01)
        >>> parse_fault("loss=0.2,direction=downstream")
        Loss(probability=0.2, direction='downstream')
        >>> parse_fault("down")
        Down()
        >>> parse_fault("reset_peer,connections=0,2,5-")
        ResetPeer(connections='0,2,5-')
    """
    if not text.strip():
        raise UsageError("an empty fault; write e.g. latency=0.1 or loss=0.2")
    head, *rest = text.split(",")
    name, has_value, main = head.partition("=")
    cls = fault_class(name)
    parameters: dict[str, Any] = {}
    if has_value:
        own = [field for field in _parameters(cls) if not field.kw_only]
        if not own:
            raise UsageError(f"{cls.__name__} takes no main value: write {name.strip()!r} alone")
        parameters[own[0].name] = _value(main)
    for item in _joined(rest):
        key, has_equals, value = item.partition("=")
        if not has_equals:
            raise UsageError(f"{item!r} in {text!r} is not param=value")
        parameters[key.strip()] = _value(value)
    return fault_from_mapping(name, parameters)
