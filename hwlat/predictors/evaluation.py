"""Held-out evaluation of a device predictor (``hwlat eval DEVICE``).

Held out = everything in the store the predictor was not trained on: the hash-split share kept
aside at training time plus anything profiled since. Kernel level: per-kernel predictions vs
measured kernels. Whole-model level: the kernel sum (+ overhead) on every held-out model, the
subnet models on held-out subnets of their spaces, and ``default`` = what ``Predictor.predict``
returns (subnet model where one exists, else the kernel sum).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hwlat.predictors.metrics import report
from hwlat.store import ProfileStore


def _clean(v: Any) -> Any:
    """NaN → None, numpy scalars → Python, recursively (for JSON)."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return None if math.isnan(f) else f
    if isinstance(v, np.integer):
        return int(v)
    return v


def _report(y: np.ndarray, p: np.ndarray, lo: np.ndarray | None = None, hi: np.ndarray | None = None
            ) -> dict[str, Any] | None:
    if len(y) == 0:
        return None
    r: dict[str, Any] = report(y, p)
    if lo is not None and hi is not None:
        r["interval_coverage"] = float(np.mean((lo <= y) & (y <= hi)))
    return r


def evaluate(pred: Any, store: ProfileStore | None = None, *, train_keys: dict[str, Any] | None = None,
             kd: Any = None, md: Any = None, with_points: bool = True) -> dict[str, Any]:
    """Held-out metrics (``hwlat.predictors.report`` + interval coverage) at kernel and model level.

    Returns ``{"kernel": …, "model": {"kernel_sum", "subnet", "default"}, "summary": …, "points": …}``;
    ``points`` holds (measured, predicted) pairs for scatter plots.
    """
    from hwlat.predictors.training import kernel_data, model_data, read_train_keys

    store = store or ProfileStore(pred.device)
    if train_keys is None:
        train_keys = read_train_keys(pred.directory) if pred.directory is not None else {}
    tk_k = set(train_keys.get("kernels", ()))
    tk_m = set(train_keys.get("models", ()))
    target = str(pred.manifest.get("target", "median_ms"))
    kd = kd if kd is not None else kernel_data(store, target)
    md = md if md is not None else model_data(store, pred.runtime, target=target)
    out: dict[str, Any] = {"device": pred.device, "kind": pred.kind}
    points: dict[str, Any] = {}

    # kernels
    idx = [i for i, h in enumerate(kd.hashes) if h not in tk_k]
    kres: dict[str, Any] = {"overall": None, "per_type": {}, "n": len(idx)}
    if idx:
        ks = [kd.kernels[i] for i in idx]
        y = kd.y[idx]
        m, lo, hi = pred.predict_kernels(ks)
        kres["overall"] = _report(y, m, lo, hi)
        types = np.array([k.type for k in ks])
        for t in sorted(set(types)):
            sel = types == t
            kres["per_type"][t] = {**(_report(y[sel], m[sel], lo[sel], hi[sel]) or {}),
                                   "model": pred.kernel_model.source_of(t)}
        points["kernel"] = {"measured": y.tolist(), "predicted": m.tolist(), "type": types.tolist()}
    out["kernel"] = kres

    # whole models
    idx = [i for i, k in enumerate(md.item_keys) if k not in tk_m]
    mres: dict[str, Any] = {"kernel_sum": None, "subnet": None, "default": None, "n": len(idx)}
    if idx:
        sub = md.subset(idx)
        spaces = np.array([s or "model files" for s in sub.spaces])
        m, lo, hi = np.zeros(len(idx)), np.zeros(len(idx)), np.zeros(len(idx))
        for s in sorted(set(spaces)):  # a space's archs take its own overhead, other models the general one
            sel = np.flatnonzero(spaces == s)
            sp = sub.spaces[int(sel[0])]
            m[sel], lo[sel], hi[sel] = pred.predict_kernel_lists([sub.kernels[i] for i in sel],
                                                                 sp if sp and sp != "zoo" else None)
        dm, dlo, dhi, method = pred.predict_models(sub.spaces, sub.archs, sub.kernels)
        ks_res: dict[str, Any] = {"overall": _report(sub.y, m, lo, hi), "per_space": {}}
        for s in sorted(set(spaces)):
            sel = spaces == s
            ks_res["per_space"][s] = _report(sub.y[sel], m[sel], lo[sel], hi[sel])
        sn_res: dict[str, Any] = {"overall": None, "per_space": {}}
        is_sub = np.array([x == "subnet" for x in method])
        for s in sorted(set(spaces[is_sub])):
            sel = is_sub & (spaces == s)
            sn_res["per_space"][s] = _report(sub.y[sel], dm[sel], dlo[sel], dhi[sel])
        if is_sub.any():
            sn_res["overall"] = _report(sub.y[is_sub], dm[is_sub], dlo[is_sub], dhi[is_sub])
        d_res: dict[str, Any] = {"overall": _report(sub.y, dm, dlo, dhi), "per_space": {}}
        for s in sorted(set(spaces)):
            sel = spaces == s
            d_res["per_space"][s] = _report(sub.y[sel], dm[sel], dlo[sel], dhi[sel])
        mres.update(kernel_sum=ks_res, subnet=sn_res, default=d_res)
        points["model"] = {"measured": sub.y.tolist(), "predicted": dm.tolist(), "kernel_sum": m.tolist(),
                           "space": spaces.tolist(), "name": list(sub.names), "method": list(method)}
    out["model"] = mres

    def pick(r: dict[str, Any] | None) -> dict[str, Any] | None:
        if not r:
            return None
        return {k: r[k] for k in ("acc5", "acc10", "rmse", "mape", "spearman", "kendall", "n",
                                  "interval_coverage") if k in r}

    out["summary"] = {
        "kernel": pick(kres["overall"]),
        "model_kernel_sum": pick((mres["kernel_sum"] or {}).get("overall")),
        "model_subnet": pick((mres["subnet"] or {}).get("overall")),
        "model_default": pick((mres["default"] or {}).get("overall")),
    }
    if with_points:
        out["points"] = points
    return _clean(out)
