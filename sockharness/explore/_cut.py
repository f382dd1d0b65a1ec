"""The fault that makes a handler read its stream in two reads, cut after a given byte."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from sockharness._core import UsageError
from sockharness.faults import STREAM, Fault, Recorder, Stage, StreamEffect, Timed

__all__ = ["Cut"]


class _CutEffect(StreamEffect):
    def data(self, plan: Recorder, stage: Stage, items: Timed) -> tuple[Timed, list[Any]]:
        fault = stage.fault
        assert isinstance(fault, Cut)
        offset = stage.state.get("offset", 0)
        out: Timed = []
        for at, data in items:
            inside = fault.at - offset
            if 0 < inside < len(data):
                plan.record(stage, at, f"cut the stream after byte {fault.at}")
                out += [(at, data[:inside]), (at, data[inside:])]
            else:
                out.append((at, data))
            offset += len(data)
        stage.state["offset"] = offset
        return out, []


@dataclasses.dataclass(frozen=True, repr=False)
class Cut(Fault):
    """The stream reaches the application in two reads, the first ending after byte ``at``.

    Bytes that arrive apart are read apart anyway; this cuts where the
    network did not, so that the read boundary falls exactly there.
    """

    at: int
    transports: ClassVar[frozenset[str]] = frozenset({STREAM})
    stream_effect: ClassVar[Any] = _CutEffect()

    def validate(self) -> None:
        if not isinstance(self.at, int) or self.at < 1:
            raise UsageError(f"Cut(at={self.at!r}): a cut falls after byte 1 or later")
