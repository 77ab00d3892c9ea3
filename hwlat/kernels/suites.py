"""Kernel benchmark suites: ``quick`` (~140 kernels, every type, minutes), ``standard``
(~2000, about half an hour at ~1 s per item) and ``full`` (4x standard).

Each type draws from its own generator seeded by (seed, suite, type), so suites are
deterministic per seed and adding a kernel type does not change the others' kernels.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from hwlat.kernels.base import Kernel, get, names
from hwlat.kernels.sampling import estimate_ms, grid, sample_config, try_make


@dataclass(frozen=True)
class SuiteSpec:
    """Per-type kernel counts (``default`` for types not listed), the per-kernel cost cap in
    :func:`~hwlat.kernels.sampling.estimate_ms` units, and the share of grid configs."""

    counts: dict[str, int] = field(default_factory=dict)
    default: int = 6
    max_ms: float = 10.0
    grid_share: float = 1.0


_STANDARD = {"conv_bn_act": 300, "conv2d": 200, "dwconv": 200, "linear": 150, "mbconv": 250, "matmul": 80,
             "pool": 60, "global_pool": 40, "add": 80, "mul": 60, "concat": 60, "activation": 100, "se": 100,
             "batchnorm": 40, "channel_shuffle": 40, "transpose": 40, "patch_embed": 40, "layernorm": 60, "softmax": 60, "mha": 80}

SUITES: dict[str, SuiteSpec] = {
    "quick": SuiteSpec({"conv_bn_act": 14, "conv2d": 10, "dwconv": 12, "linear": 10, "mbconv": 10},
                       default=6, max_ms=10.0, grid_share=0.3),
    "standard": SuiteSpec(_STANDARD, default=60, max_ms=60.0),
    "full": SuiteSpec({k: 4 * v for k, v in _STANDARD.items()}, default=240, max_ms=200.0),
}


def _rng(seed: int, *parts: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(p.encode()) for p in parts)])


def type_kernels(type_name: str, n: int, rng: np.random.Generator, max_ms: float,
                 grid_share: float = 1.0, exclude: set[str] | None = None) -> list[Kernel]:
    """``n`` distinct valid kernels of one type under the cost cap: grid configs first (a
    random ``grid_share`` of them), then random draws. Returns fewer if draws run dry."""
    kt = get(type_name)
    seen = set() if exclude is None else set(exclude)
    out: list[Kernel] = []

    def add(cfg: dict) -> None:
        k = try_make(kt, cfg)
        if k is not None and k.key() not in seen and estimate_ms(k) <= max_ms:
            seen.add(k.key())
            out.append(k)

    g = grid(type_name)
    for i in rng.permutation(len(g))[: int(round(grid_share * len(g)))]:
        if len(out) >= min(n, max(1, n // 2)):  # grid never takes more than half the slots
            break
        add(g[int(i)])
    for _ in range(50 * n):
        if len(out) >= n:
            break
        add(sample_config(type_name, rng))
    return out


def suite(name: str, seed: int = 0) -> list[Kernel]:
    """The kernels of suite ``name`` ("quick" | "standard" | "full") for ``seed``."""
    try:
        spec = SUITES[name]
    except KeyError:
        raise ValueError(f"unknown kernel suite {name!r}; known: {', '.join(SUITES)}") from None
    out: list[Kernel] = []
    for t in names():
        out += type_kernels(t, spec.counts.get(t, spec.default), _rng(seed, name, t), spec.max_ms,
                            spec.grid_share)
    return out
