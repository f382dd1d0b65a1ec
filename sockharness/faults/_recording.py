"""A failed run's fault decisions, written down to be replayed and compared.

A :class:`Recording` holds what a replay needs: the seeds, the faults each
server, proxy and client had, every decision their timelines hold, and the
versions that made them. Decisions are kept per (source, connection,
direction): each such sequence comes from one seeded plan, in order, whatever
the threads did meanwhile, so two runs compare sequence by sequence. Times are
left out: they are when a decision was made, not what it was.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from sockharness._core import UsageError

from ._timeline import Timeline

__all__ = ["FORMAT", "Recording", "decisions_of"]

#: The version of the file format (a file of another is refused, saying so).
FORMAT = 1

Decisions = dict[str, list[list[str]]]


def decisions_of(sources: Iterable[tuple[str, Timeline]]) -> Decisions:
    """Every decision of the timelines, keyed ``"SOURCE conn N DIRECTION"``."""
    found: Decisions = {}
    for source, timeline in sources:
        for event in timeline.events:
            key = f"{source} conn {event.connection} {event.direction}"
            found.setdefault(key, []).append([event.fault, event.effect])
    return dict(sorted(found.items()))


def _version() -> str:
    try:
        return metadata.version("sockharness")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


@dataclass
class Recording:
    """The seeds, plans and decisions of one run (a test, a scenario), to replay.

    ``plans``: one entry per source (``"server 0"``, ``"proxy 1"``,
    ``"client 0"``): what it was and the faults it had. ``decisions``: see
    :func:`decisions_of`.
    """

    name: str
    seed: int
    plans: list[dict[str, Any]] = field(default_factory=list)
    decisions: Decisions = field(default_factory=dict)
    sockharness: str = field(default_factory=_version)
    python: str = field(default_factory=platform.python_version)
    extra: dict[str, Any] = field(default_factory=dict)

    def count(self) -> int:
        """How many decisions it holds."""
        return sum(len(sequence) for sequence in self.decisions.values())

    def write(self, path: str | Path) -> Path:
        """Write it as JSON to ``path`` (its directory made as needed); return the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT,
            "name": self.name,
            "seed": self.seed,
            "sockharness": self.sockharness,
            "python": self.python,
            "plans": self.plans,
            "decisions": self.decisions,
            "extra": self.extra,
        }
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_text(json.dumps(payload, indent=1) + "\n")
        temporary.replace(target)
        return target

    @classmethod
    def read(cls, path: str | Path) -> Recording:
        """Read a file :meth:`write` wrote; a file that is not one is a :class:`UsageError`."""
        try:
            payload = json.loads(Path(path).read_text())
        except OSError as exc:
            raise UsageError(f"replay file {str(path)!r} cannot be read: {exc.strerror}") from None
        except ValueError as exc:
            raise UsageError(f"replay file {str(path)!r} is not JSON: {exc}") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise UsageError(
                f"replay file {str(path)!r} is not a sockharness replay file of format "
                f"{FORMAT} (write it again with this version)"
            )
        try:
            return cls(
                name=str(payload["name"]),
                seed=int(payload["seed"]),
                plans=list(payload["plans"]),
                decisions={
                    str(key): [[str(fault), str(effect)] for fault, effect in sequence]
                    for key, sequence in payload["decisions"].items()
                },
                sockharness=str(payload["sockharness"]),
                python=str(payload["python"]),
                extra=dict(payload.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(
                f"replay file {str(path)!r} is damaged ({type(exc).__name__}: {exc})"
            ) from None

    def first_divergence(self, decisions: Decisions) -> str | None:
        """Where ``decisions`` (a new run's) first differ from these; ``None`` if nowhere.

        The sequences are compared in key order; the message names the
        sequence, the decision's index, what was recorded and what came.
        """
        for key in sorted(set(self.decisions) | set(decisions)):
            recorded = self.decisions.get(key, [])
            now = decisions.get(key, [])
            for index in range(max(len(recorded), len(now))):
                before = _show(recorded, index)
                after = _show(now, index)
                if before != after:
                    return f"{key}, decision {index}: recorded {before}; this run {after}"
        return None


def _show(sequence: list[list[str]], index: int) -> str:
    if index >= len(sequence):
        return "nothing"
    fault, effect = sequence[index]
    return f"{fault}: {effect}"
