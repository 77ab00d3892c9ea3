"""The whole-model stage on top of the kernel sum, chosen by how it does on families it never saw.

A search space's subnets all look alike (the same kernel count, the same mix of types), so an
overhead ``a·Σ + b·n + c`` fitted on them describes *that* space and nothing else: fitted on the
quickstart's ofa_mbv3 subnets it scaled other networks by 0.87-0.89 although their kernels
measured alone summed to 0.86-1.03 of the whole model. So the stage is split:

- **per space**: the subnets of a space with enough measured subnets get an overhead of their own,
  used only for archs of that space (in distribution by construction);
- **everything else** (a user's ONNX file, a timm model, a zoo model): the plain kernel sum, the
  affine overhead, the *context* overhead (affine plus weights beyond a cache size and spatial
  activation bytes, the two effects a kernel timed alone does not see; the cache size picked from
  :data:`CACHE_GRID_MB`), or the best of these times the residual GBDT on model aggregates,
  whichever has the lowest error in *leave-one-family-out* cross-validation over the measured whole
  models. With fewer than :data:`MIN_FAMILIES` families that question has no answer and the plain
  kernel sum is used.

The interval of a foreign model takes its spread from the same leave-one-family-out errors, so it
says what such predictions actually miss by.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwlat.predictors.kernel_models import OverheadModel, fit_residual

#: fewest distinct families of measured whole models before a learned stage may replace the plain sum
MIN_FAMILIES = 3
#: fewest training subnets of a space before it gets an overhead fit of its own
MIN_SPACE_MODELS = 8
#: a learned stage must beat the plain kernel sum's held-out-family MAPE by this factor to be kept
MARGIN = 0.95
#: Log half-width added (in quadrature) to the interval of a model whose predicted time lies wholly in
#: kernels outside the training range or of unseen types, scaled by the share that does; and for a
#: model outside the kernel sums/counts the whole-model stage was fitted on. Calibrated on
#: leave-one-family-out errors of the model corpus (``scripts/bench_generalization.py`` prints the
#: coverage with and without it).
NOVEL_KERNEL_LOG_HW = 0.30
NOVEL_STAGE_LOG_HW = 0.10


def model_family(name: str, space: str | None, arch: Any = None) -> str:
    """The architecture family a stored whole model belongs to, for leave-one-family-out splits.

    Subnets: their space. Zoo models and corpus files: the family their name starts with
    (``resnet18`` and a corpus ``resnet-…`` file are both ``resnet``; ``mobilenet_v3_small`` is
    ``mobilenet_v3``). Other files: their name up to the first digit or separator after it, so a
    user's ``mynet_a.onnx`` and ``mynet_b.onnx`` are held out together.
    """
    if space and space != "zoo":
        return f"space:{space}"
    base = str(arch if space == "zoo" and arch else name)
    base = re.sub(r"\.(onnx|tflite|pt2)$", "", base.lower())
    try:
        from hwlat.corpus import families

        for fam in sorted(families(), key=len, reverse=True):
            if re.match(rf"{re.escape(fam)}(?:[-_\d]|$)", base):
                return fam
    except ImportError:  # the corpus needs nothing beyond numpy; guard anyway for trimmed installs
        pass
    m = re.match(r"[a-z]+(?:_v\d+)?", base)
    return m.group(0) if m else base


def widen_for_novelty(lat: float, low: float, high: float, novel_share: float, stage_out_of_range: bool
                      ) -> tuple[float, float]:
    """``(low, high)`` widened for what a prediction leans on that training never covered: the share
    of its predicted time in kernels with out-of-range features or unseen types, and a kernel sum or
    count outside the whole models the stage was fitted on. Such predictions miss by more, and a
    ±5 % interval on them would be a wrong number."""
    extra = NOVEL_KERNEL_LOG_HW * min(max(novel_share, 0.0), 1.0) + (NOVEL_STAGE_LOG_HW if stage_out_of_range else 0.0)
    if extra <= 0 or lat <= 0:
        return low, high
    w_lo = math.log(lat / low) if 0 < low < lat else 0.0
    w_hi = math.log(high / lat) if high > lat else 0.0
    return lat * math.exp(-math.hypot(w_lo, extra)), lat * math.exp(math.hypot(w_hi, extra))


def _plain(S: np.ndarray, N: np.ndarray, y: np.ndarray) -> OverheadModel:
    ov = OverheadModel()
    ov.n = len(y)
    if ov.n:
        ov.s_range = (float(S.min()), float(S.max()))
        ov.n_range = (int(N.min()), int(N.max()))
    return ov


def _fit(mode: str, S: np.ndarray, N: np.ndarray, y: np.ndarray, C: np.ndarray | None = None) -> OverheadModel:
    if mode == "plain":
        return _plain(S, N, y)
    if mode.startswith("context@"):
        return OverheadModel().fit(S, N, y, ctx=C, cache_mb=float(mode.split("@")[1]))
    return OverheadModel().fit(S, N, y)


#: cache sizes (MB) tried for the context overhead's weight term; the one with the lowest
#: held-out-family error is kept (on ``local``, 2 MB of L2 and 32 MB of L3: 4 MB won)
CACHE_GRID_MB = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)

#: at most this many folds of whole families (each fold refits the residual GBDT)
MAX_FOLDS = 8


def _logo(groups: np.ndarray, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], n: int) -> np.ndarray:
    """Out-of-family predictions: each model predicted by ``fn(train_idx, test_idx)`` fitted without
    its family. Up to :data:`MAX_FOLDS` families one fold each; beyond, families are dealt round-robin
    into that many folds, so no model is ever predicted by a fit that saw its family."""
    fams = sorted(set(groups.tolist()))
    fold_of = {f: i % MAX_FOLDS for i, f in enumerate(fams)}
    folds = np.array([fold_of[g] for g in groups.tolist()])
    out = np.zeros(n)
    for k in np.unique(folds):
        te = np.flatnonzero(folds == k)
        tr = np.flatnonzero(folds != k)
        out[te] = fn(tr, te)
    return out


@dataclass
class WholeModelStage:
    """What :func:`fit_stage` chose: the overhead for foreign models, one per space, the residual
    GBDT (or None) and a report of the held-out-family comparison."""

    overhead: OverheadModel
    space_overhead: dict[str, OverheadModel] = field(default_factory=dict)
    residual: Any = None
    report: dict[str, Any] = field(default_factory=dict)


def fit_stage(S: np.ndarray, N: np.ndarray, F: np.ndarray, y: np.ndarray, families: Sequence[str],
              spaces: Sequence[str | None], *, C: np.ndarray | None = None, residual: bool = True,
              seed: int = 0) -> WholeModelStage:
    """Choose and fit the whole-model stage from measured whole models (see the module docstring).

    ``S, N, F``: Σ predicted kernels, kernel count and model aggregates per model; ``y`` measured;
    ``families`` from :func:`model_family`; ``spaces``: the search space of each subnet (else None);
    ``C``: context features per model (:func:`~hwlat.predictors.kernel_models.context_matrix`), which
    make the context overhead a candidate.
    """
    S, N, y = (np.asarray(v, dtype=np.float64) for v in (S, N, y))
    groups = np.asarray(list(families), dtype=object)
    space_ov = {}
    sp_arr = np.asarray([s if s and s != "zoo" else "" for s in spaces], dtype=object)
    for sp in sorted({s for s in sp_arr if s}):
        ix = np.flatnonzero(sp_arr == sp)
        if len(ix) >= MIN_SPACE_MODELS:
            space_ov[sp] = OverheadModel().fit(S[ix], N[ix], y[ix])
    n_fam = len(set(groups.tolist()))
    report: dict[str, Any] = {"families": n_fam, "models": len(y), "spaces_with_overhead": sorted(space_ov)}
    if n_fam < MIN_FAMILIES:
        ov = _plain(S, N, y)
        if len(y):
            r = np.log(y / np.maximum(S, 1e-12))
            ov.q_lo, ov.q_hi = (float(v) for v in np.quantile(r, [0.05, 0.95]))
        report.update(chosen="plain", reason=f"{n_fam} famil{'y' if n_fam == 1 else 'ies'} of measured whole "
                      f"models (< {MIN_FAMILIES}): whether a learned overhead carries over to other families "
                      "cannot be checked, so foreign models get the plain kernel sum")
        return WholeModelStage(ov, space_ov, None, report)

    Cm = None if C is None else np.asarray(C, dtype=np.float64).reshape(len(y), 2)

    def base_of(ov: OverheadModel, idx: np.ndarray) -> np.ndarray:
        return ov.predict(S[idx], N[idx], None if Cm is None else Cm[idx])

    def fit_on(mode: str, tr: np.ndarray) -> OverheadModel:
        return _fit(mode, S[tr], N[tr], y[tr], None if Cm is None else Cm[tr])

    # every family weighs the same: forty subnets of one space must not outvote three other networks
    _, inv, counts = np.unique(groups.astype(str), return_inverse=True, return_counts=True)
    w = 1.0 / counts[inv]
    w /= w.sum()

    def mape_of(p: np.ndarray) -> float:
        return float(np.sum(w * np.abs(p / y - 1.0)))

    preds: dict[str, np.ndarray] = {}
    for mode in ("plain", "affine"):
        preds[mode] = _logo(groups, lambda tr, te, m=mode: base_of(fit_on(m, tr), te), len(y))
    if Cm is not None and len(y) >= 12:
        # the cache size is one more choice made on held-out families; only the best one competes
        ctx = {f"context@{c:g}": _logo(groups, lambda tr, te, m=f"context@{c:g}": base_of(fit_on(m, tr), te), len(y))
               for c in CACHE_GRID_MB}
        best_ctx = min(ctx, key=lambda k: mape_of(ctx[k]))
        preds[best_ctx] = ctx[best_ctx]

    if residual and len(y) >= 20:  # the residual on top of the better base only: each fold refits a GBDT
        base_mode = min(preds, key=lambda k: mape_of(preds[k]))

        def with_res(tr: np.ndarray, te: np.ndarray) -> np.ndarray:
            ov = fit_on(base_mode, tr)
            res = fit_residual(F[tr], y[tr] / base_of(ov, tr), seed)
            return base_of(ov, te) * res.predict(F[te])
        preds[f"{base_mode}+residual"] = _logo(groups, with_res, len(y))
    mape = {k: mape_of(p) for k, p in preds.items()}
    within = {k: float(np.sum(w * (np.abs(p / y - 1.0) <= 0.10))) for k, p in preds.items()}
    best = min(mape, key=lambda k: mape[k])
    if best != "plain" and mape[best] > MARGIN * mape["plain"]:
        best = "plain"
    report.update(chosen=best, logo_mape=mape, logo_within_10=within)
    mode = best.split("+")[0]
    ov = fit_on(mode, np.arange(len(y)))
    r = np.log(y / preds[best])  # spread of held-out-family errors, not of the in-sample fit
    ov.q_lo, ov.q_hi = (float(v) for v in np.quantile(r, [0.05, 0.95]))
    res = fit_residual(F, y / base_of(ov, np.arange(len(y))), seed) if best.endswith("+residual") else None
    return WholeModelStage(ov, space_ov, res, report)
