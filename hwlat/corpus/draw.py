"""Random draws the family samplers share; each returns plain Python values (JSON-ready)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from hwlat.zoo.layers import make_divisible

T = TypeVar("T")


def pick(rng: np.random.Generator, choices: Sequence[T]) -> T:
    """One of ``choices`` (any values: tuples, strings, numbers) with equal probability."""
    v = choices[int(rng.integers(len(choices)))]
    return v.item() if isinstance(v, np.generic) else v


def between(rng: np.random.Generator, lo: int, hi: int) -> int:
    """An integer in ``[lo, hi]``, both included."""
    return int(rng.integers(lo, hi + 1))


def uniform(rng: np.random.Generator, lo: float, hi: float, digits: int = 3) -> float:
    """A float in ``[lo, hi)`` rounded, so configs print and hash stably."""
    return round(float(rng.uniform(lo, hi)), digits)


def chance(rng: np.random.Generator, p: float) -> bool:
    return bool(rng.random() < p)


def scaled(channels: float, mult: float, divisor: int = 8) -> int:
    """``channels · mult`` rounded to ``divisor`` the way MobileNet-style width multipliers round."""
    return make_divisible(channels * mult, divisor)
