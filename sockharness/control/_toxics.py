"""Toxics, as Toxiproxy's API writes them, and the faults of ours they are.

A toxic is ``{"name", "type", "stream", "toxicity", "attributes"}``. The seven
Toxiproxy types keep Toxiproxy's attribute names and units (milliseconds,
KB/s, microseconds, bytes); every other fault of the catalogue is a type of
its own, by its catalogue name (``loss``, ``refuse``, ``accept_delay``), with
its own parameters, in its own units (seconds, bytes). Every type also takes
the selectors (``connections``, ``after_bytes``, ``messages``,
``after_messages``, ``framer``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sockharness._core import UsageError
from sockharness.faults import (
    FAULT_NAMES,
    Bandwidth,
    ConnectionFault,
    Down,
    Fault,
    Latency,
    LimitData,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeout,
)

from ._errors import APIError

__all__ = ["STREAMS", "TOXIPROXY_TYPES", "Toxic", "toxic_from_json"]

Stream = Literal["upstream", "downstream"]
STREAMS: tuple[Stream, ...] = ("upstream", "downstream")
#: What every type takes beside its own attributes: which connections and messages.
SELECTORS = ("connections", "after_bytes", "messages", "after_messages", "framer")


def _milliseconds(value: float) -> float:
    return value / 1000.0


@dataclass(frozen=True)
class _Attribute:
    """One attribute of a Toxiproxy type: our parameter, and how its unit converts."""

    parameter: str
    convert: Callable[[float], Any] = float
    default: float = 0


#: Toxiproxy's types: attribute -> our parameter (and unit), and the fault class.
TOXIPROXY_TYPES: dict[str, tuple[type[Fault], dict[str, _Attribute]]] = {
    "latency": (
        Latency,
        {
            "latency": _Attribute("delay", _milliseconds),
            "jitter": _Attribute("jitter", _milliseconds),
        },
    ),
    "bandwidth": (Bandwidth, {"rate": _Attribute("rate", lambda kb: kb * 1000.0)}),
    "slicer": (
        Slicer,
        {
            "average_size": _Attribute("average_size", int),
            "size_variation": _Attribute("size_variation", int),
            "delay": _Attribute("delay", lambda us: us / 1_000_000.0),
        },
    ),
    "slow_close": (SlowClose, {"delay": _Attribute("delay", _milliseconds)}),
    # Toxiproxy's timeout 0 is "never close": our Timeout without after.
    "timeout": (
        Timeout,
        {"timeout": _Attribute("after", lambda ms: None if ms == 0 else ms / 1000.0)},
    ),
    "reset_peer": (ResetPeer, {"timeout": _Attribute("after", _milliseconds)}),
    "limit_data": (LimitData, {"bytes": _Attribute("nbytes", int)}),
}


def _ours(name: str) -> type[Fault] | None:
    cls = FAULT_NAMES.get(name)
    return None if cls is None or cls is Down else cls


def _fault_types() -> list[str]:
    ours = [name for name in FAULT_NAMES if name not in TOXIPROXY_TYPES and _ours(name)]
    return [*TOXIPROXY_TYPES, *ours]


@dataclass(frozen=True)
class Toxic:
    """A toxic as the API shows it, and the fault it is."""

    name: str
    type: str
    stream: Stream
    toxicity: float
    attributes: Mapping[str, Any] = field(default_factory=dict)
    fault: Fault | None = None

    def to_json(self) -> dict[str, Any]:
        """The API's form (Toxiproxy's keys)."""
        return {
            "attributes": dict(self.attributes),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
        }

    def updated(self, body: Mapping[str, Any]) -> Toxic:
        """This toxic with ``body``'s ``attributes`` merged in and its ``toxicity``, if any."""
        attributes = body.get("attributes", {})
        if not isinstance(attributes, Mapping):
            raise APIError.bad_body(f"attributes: expected an object, found {_kind(attributes)}")
        for name in ("name", "type", "stream"):
            if name in body and body[name] != getattr(self, name):
                raise APIError.bad_body(
                    f"{name}: a toxic's {name} cannot change ({getattr(self, name)!r}); "
                    f"delete it and create another"
                )
        toxicity = body.get("toxicity", self.toxicity)
        return build_toxic(
            self.name, self.type, self.stream, toxicity, {**self.attributes, **attributes}
        )


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "null" if value is None else "an object"


def toxic_from_json(body: Any) -> Toxic:
    """The toxic a create request's body describes (Toxiproxy's defaults filled in)."""
    if not isinstance(body, Mapping):
        raise APIError.bad_body(f"expected a JSON object, found {_kind(body)}")
    known = {"name", "type", "stream", "toxicity", "attributes"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise APIError.bad_body(f"{unknown[0]}: unknown field (known: {', '.join(sorted(known))})")
    kind = body.get("type")
    if not isinstance(kind, str) or not kind:
        raise APIError.missing("type")
    stream = body.get("stream", "downstream")
    if stream not in STREAMS:
        raise APIError(400, "stream was invalid, can be either upstream or downstream")
    name = body.get("name") or f"{kind}_{stream}"
    if not isinstance(name, str):
        raise APIError.bad_body(f"name: expected a string, found {_kind(name)}")
    attributes = body.get("attributes", {})
    if not isinstance(attributes, Mapping):
        raise APIError.bad_body(f"attributes: expected an object, found {_kind(attributes)}")
    return build_toxic(name, kind, stream, body.get("toxicity", 1.0), attributes)


def build_toxic(
    name: str, kind: str, stream: Stream, toxicity: Any, attributes: Mapping[str, Any]
) -> Toxic:
    """The toxic and its fault; a bad value is a 400 naming the field."""
    if isinstance(toxicity, bool) or not isinstance(toxicity, (int, float)):
        raise APIError.bad_body(f"toxicity: expected a number from 0 to 1, found {_kind(toxicity)}")
    if not (math.isfinite(toxicity) and 0 <= toxicity <= 1):
        raise APIError.bad_body(f"toxicity: expected a number from 0 to 1, found {toxicity}")
    if kind in TOXIPROXY_TYPES:
        cls, table = TOXIPROXY_TYPES[kind]
        shown = {key: attributes.get(key, spec.default) for key, spec in table.items()}
        shown |= {key: value for key, value in attributes.items() if key not in table}
        arguments = _toxiproxy_arguments(kind, table, attributes)
    elif (ours := _ours(kind)) is not None:
        cls, shown = ours, dict(attributes)
        arguments = _our_arguments(kind, ours, attributes)
    else:
        raise APIError(400, f"invalid toxic type: {kind!r} (known: {', '.join(_fault_types())})")
    if not issubclass(cls, ConnectionFault):  # Those strike as a connection is made: no stream.
        arguments["direction"] = stream
    arguments["toxicity"] = float(toxicity)
    try:
        fault = cls(**arguments)
    except (UsageError, TypeError, ValueError) as exc:
        parameter = getattr(exc, "parameter", None)
        where = _attribute_of(kind, parameter) if parameter else "attributes"
        raise APIError.bad_body(f"{where}: {exc}") from None
    return Toxic(name, kind, stream, float(toxicity), shown, fault)


def _attribute_of(kind: str, parameter: str) -> str:
    """The attribute (Toxiproxy's name) a parameter of ours comes from."""
    if parameter in ("toxicity", "direction"):
        return "toxicity" if parameter == "toxicity" else "stream"
    if kind in TOXIPROXY_TYPES:
        for attribute, spec in TOXIPROXY_TYPES[kind][1].items():
            if spec.parameter == parameter:
                return f"attributes.{attribute}"
    return f"attributes.{parameter}"


def _number(kind: str, attribute: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise APIError.bad_body(
            f"attributes.{attribute}: expected a number for a {kind} toxic, found {_kind(value)}"
        )
    return float(value)


def _toxiproxy_arguments(
    kind: str, table: Mapping[str, _Attribute], attributes: Mapping[str, Any]
) -> dict[str, Any]:
    selectors = {key: value for key, value in attributes.items() if key in SELECTORS}
    unknown = sorted(set(attributes) - set(table) - set(SELECTORS))
    if unknown:
        known = ", ".join([*table, *SELECTORS])
        raise APIError.bad_body(
            f"attributes.{unknown[0]}: not an attribute of a {kind} toxic (known: {known})"
        )
    arguments: dict[str, Any] = dict(selectors)
    for attribute, spec in table.items():
        if attribute not in attributes:
            if kind == "bandwidth" or (kind == "slicer" and attribute == "average_size"):
                raise APIError.missing(f"attributes.{attribute}")
            continue
        number = _number(kind, attribute, attributes[attribute])
        if number < 0:
            raise APIError.bad_body(f"attributes.{attribute}: expected 0 or more, found {number:g}")
        arguments[spec.parameter] = spec.convert(number)
    return arguments


def _our_arguments(kind: str, cls: type[Fault], attributes: Mapping[str, Any]) -> dict[str, Any]:
    parameters = {item.name for item in dataclasses.fields(cls)} - {"direction", "toxicity"}
    unknown = sorted(set(attributes) - parameters)
    if unknown:
        raise APIError.bad_body(
            f"attributes.{unknown[0]}: not an attribute of a {kind} toxic (known: "
            f"{', '.join(sorted(parameters))})"
        )
    return dict(attributes)
