"""Latency bounds over a space: exact from per-slot tables, or by the documented search of
:mod:`hwlat.oracle.domains`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from hwlat.errors import ConfigError
from hwlat.oracle.domains import coordinate_search, domain_for
from hwlat.oracle.tables import FBNetTable, MBv3Table

if TYPE_CHECKING:
    from hwlat.oracle.oracle import Bounds, Oracle


def exact_bounds(oracle: Oracle, r: int | None = None, wid: float | None = None) -> Bounds | None:
    """Exact min/max for additive models with an affine whole-model step on a lookup table.

    The mean latency is ``w·(fixed + Σ slot rows) + c``: a sum of independent per-slot terms, so the
    cheapest arch takes each slot's cheapest choice; for ofa_mbv3 each stage's depth is chosen by
    comparing the cumulative sums of its slots' minima (all depths tried), and every resolution is tried.
    """
    from hwlat.oracle.oracle import Bounds

    t, model = oracle.table, oracle.model
    if t is None or not hasattr(model, "affine"):
        return None
    w, c = model.affine()
    w = np.asarray(w, dtype=np.float64)
    fixed: dict[str, Any] = {k: v for k, v in (("r", r), ("wid", wid)) if v is not None}
    if isinstance(t, MBv3Table):
        m = t.m
        if wid is not None and round(float(wid), 6) not in m.WIDS:
            raise ConfigError(f"ofa_mbv3: wid={wid!r} not in {{1.0,1.2}}")
        if r is not None and r not in m.RS:
            raise ConfigError(f"ofa_mbv3: r={r!r} not in 128..224 step 4")
        wi = 1 if wid is not None and round(float(wid), 6) == 1.2 else 0
        t.build(wi)
        lin = t.block[wi] @ w  # (n_r, 20, 10)
        flin = t.fixed[wi] @ w + c
        ris = [t.r_index[r]] if r is not None else list(range(len(m.RS)))
        found = []
        for sign in (1.0, -1.0):
            best: tuple[float, Any] = (np.inf, None)
            for ri in ris:
                val = sign * flin[ri]
                choice, depth = [9] * m.N_BLOCKS, []
                for st in range(m.N_STAGES):
                    L = sign * lin[ri, st * 4:(st + 1) * 4, :9]
                    mins, arg = L.min(axis=1), L.argmin(axis=1)
                    cum = np.array([mins[:dd].sum() for dd in m.DS])
                    j = int(np.argmin(cum))
                    val += cum[j]
                    depth.append(m.DS[j])
                    for pos in range(m.DS[j]):
                        choice[st * 4 + pos] = int(arg[pos])
                if val < best[0]:
                    best = (float(val), t.arch_of(wi, ri, choice, depth))
            found.append(best[1])
    elif isinstance(t, FBNetTable):
        t.build()
        assert t.layer is not None
        lin = t.layer @ w  # (22, 9)
        found = [[int(i) for i in lin.argmin(axis=1)], [int(i) for i in lin.argmax(axis=1)]]
    else:
        return None
    amin, amax = (oracle.canonical(a) for a in found)
    return Bounds(min_ms=oracle(amin), max_ms=oracle(amax), exact=True, method="per-slot table",
                  argmin=amin, argmax=amax, fixed=fixed,
                  note="exact for the affine part of the model; the overhead fit's floor max(., 0.1*sum) "
                       "is applied at the archs found")


def searched_bounds(oracle: Oracle, n_samples: int = 256, seed: int = 0, r: int | None = None,
                    wid: float | None = None) -> Bounds:
    """Random sample + coordinate search for the min and the max (see :mod:`hwlat.oracle.domains`)."""
    from hwlat.oracle.oracle import Bounds

    fixed: dict[str, Any] = {k: v for k, v in (("r", r), ("wid", wid)) if v is not None}
    dom = domain_for(oracle.space_name, **fixed)
    lo, amin = coordinate_search(oracle.batch, dom, 1.0, n_samples=n_samples, seed=seed)
    hi, amax = coordinate_search(oracle.batch, dom, -1.0, n_samples=n_samples, seed=seed + 1)
    note = "local optimum: the true minimum may be lower and the true maximum higher"
    if oracle.space_name == "vit":
        note += "; over the space's sampler grid (AutoFormer-Tiny choices, r=224)"
    return Bounds(min_ms=lo, max_ms=hi, exact=False, method=f"{n_samples} random samples + coordinate search",
                  argmin=oracle.canonical(amin), argmax=oracle.canonical(amax), note=note, fixed=fixed)
