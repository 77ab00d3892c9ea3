"""Finite index domains of the built-in spaces, and the documented search the oracle runs for
latency bounds when no exact per-slot table applies (non-additive or subnet-level models).

The search: ``n_samples`` uniform random index vectors, then coordinate descent (ascent for the
maximum) from the best one — each sweep tries every choice of every coordinate, one coordinate at
a time, keeping improvements — until a sweep changes nothing or ``max_sweeps`` is reached. The
result is a local optimum: an upper bound on the true minimum (lower bound on the maximum).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Domain:
    """``sizes[i]`` choices for coordinate i; ``to_arch`` turns an index vector into an arch."""

    sizes: tuple[int, ...]
    to_arch: Callable[[Sequence[int]], Any]


def domain_for(space_name: str, **fixed: Any) -> Domain:
    """The index domain of a built-in space (``fixed``: ``wid`` for ofa_mbv3, ``r`` for CNNs)."""
    if space_name == "ofa_mbv3":
        from hwlat.spaces import ofa_mbv3 as m

        rs = (fixed["r"],) if fixed.get("r") else m.RS
        wid = fixed.get("wid") or 1.0

        def mb(v: Sequence[int]) -> Any:
            return {"ks": [m.KS[i] for i in v[:20]], "e": [m.ES[i] for i in v[20:40]],
                    "d": [m.DS[i] for i in v[40:45]], "r": rs[v[45]], "wid": wid}

        return Domain((3,) * 45 + (len(rs),), mb)
    if space_name == "ofa_resnet50":
        from hwlat.spaces import ofa_resnet50 as m

        rs = (fixed["r"],) if fixed.get("r") else m.RS

        def rn(v: Sequence[int]) -> Any:
            return {"d": [m.DS[i] for i in v[:5]], "e": [m.ES[i] for i in v[5:23]],
                    "w": [m.WS[i] for i in v[23:29]], "r": rs[v[29]]}

        return Domain((3,) * 29 + (len(rs),), rn)
    if space_name == "nb201":
        return Domain((5,) * 6, lambda v: [int(i) for i in v])
    if space_name == "fbnet":
        return Domain((9,) * 22, lambda v: [int(i) for i in v])
    if space_name == "vit":
        from hwlat.spaces import vit as m

        L = max(m.SAMPLE_DEPTH)
        r = fixed.get("r") or 224

        def vt(v: Sequence[int]) -> Any:
            depth = m.SAMPLE_DEPTH[v[1]]
            return {"embed_dim": m.SAMPLE_EMBED[v[0]], "depth": depth,
                    "num_heads": [m.SAMPLE_HEADS[i] for i in v[2:2 + depth]],
                    "mlp_ratio": [m.SAMPLE_MLP_RATIO[i] for i in v[2 + L:2 + L + depth]], "r": r}

        return Domain((len(m.SAMPLE_EMBED), len(m.SAMPLE_DEPTH)) + (len(m.SAMPLE_HEADS),) * L
                      + (len(m.SAMPLE_MLP_RATIO),) * L, vt)
    from hwlat.errors import ConfigError

    raise ConfigError(f"no search domain for space {space_name!r}; latency bounds need one of "
                      "ofa_mbv3, ofa_resnet50, nb201, fbnet, vit")


def coordinate_search(evaluate: Callable[[list[Any]], np.ndarray], dom: Domain, sign: float,
                      n_samples: int = 256, max_sweeps: int = 4, seed: int = 0) -> tuple[float, Any]:
    """Minimise ``sign · evaluate`` over ``dom`` (sign=-1 maximises); returns (value, arch)."""
    rng = np.random.default_rng(seed)
    V = np.stack([rng.integers(0, s, n_samples) for s in dom.sizes], axis=1)
    vals = sign * evaluate([dom.to_arch(v) for v in V])
    best = V[int(np.argmin(vals))].copy()
    best_val = float(vals.min())
    for _ in range(max_sweeps):
        changed = False
        for i, size in enumerate(dom.sizes):
            if size < 2:
                continue
            cands = np.repeat(best[None, :], size, axis=0)
            cands[:, i] = np.arange(size)
            v = sign * evaluate([dom.to_arch(c) for c in cands])
            j = int(np.argmin(v))
            if v[j] < best_val - 1e-12:
                best, best_val, changed = cands[j].copy(), float(v[j]), True
        if not changed:
            break
    return sign * best_val, dom.to_arch(best)
