"""Seeds derived from a run's seed: one per test, one per sweep, the same everywhere."""

from __future__ import annotations

import argparse
import hashlib

__all__ = ["MAX_SWEEP", "derive_seed", "sweep_count_argument", "sweep_seed"]


def derive_seed(seed: int, label: str, *, bits: int = 64) -> int:
    """A seed of ``bits`` bits from ``seed`` and ``label``, the same in every process and host."""
    digest = hashlib.sha256(f"{seed}:{label}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - bits)


def sweep_seed(base: int, index: int) -> int:
    """The ``index``-th seed of a seed sweep from ``base`` (32 bits: a scenario's seed)."""
    return derive_seed(base, f"sweep {index}", bits=32)


#: The most seeds a sweep runs under.
MAX_SWEEP = 10_000


def sweep_count_argument(value: str) -> int:
    """``--seeds N`` / ``--sockharness-seeds N`` read as a number of seeds (an argparse type)."""
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seeds") from None
    if not 1 <= count <= MAX_SWEEP:
        raise argparse.ArgumentTypeError(f"{count} seeds: give from 1 to {MAX_SWEEP}")
    return count
