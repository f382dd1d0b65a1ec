"""Seeds derived from a run's seed: one per test, one per sweep, the same everywhere."""

from __future__ import annotations

import hashlib

__all__ = ["derive_seed", "sweep_seed"]


def derive_seed(seed: int, label: str, *, bits: int = 64) -> int:
    """A seed of ``bits`` bits from ``seed`` and ``label``, the same in every process and host."""
    digest = hashlib.sha256(f"{seed}:{label}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - bits)


def sweep_seed(base: int, index: int) -> int:
    """The ``index``-th seed of a seed sweep from ``base`` (32 bits: a scenario's seed)."""
    return derive_seed(base, f"sweep {index}", bits=32)
