"""``hwlat.Oracle``: predicted latency as a cheap constraint for NAS search loops (milliseconds).

>>> oracle = Oracle("local", space="ofa_mbv3")                    # doctest: +SKIP
>>> oracle(arch), oracle.violation(arch, 20.0)                   # doctest: +SKIP
>>> oracle.batch(archs)                                          # doctest: +SKIP
>>> oracle.check_budget(20.0)                                    # doctest: +SKIP

How a latency is computed (``method``):

* ``"kernel-sum"`` (default): the predictor's kernel predictions of the arch's kernels, combined into a
  whole-model latency by the predictor's overhead fit. For ``ofa_mbv3`` and ``fbnet`` this runs on an
  exact per-slot lookup table (no torch, ONNX or kernel objects at query time); other spaces encode the
  arch into kernels once per canonical arch (cached). Exact latency bounds and the differentiable
  surrogate need this method. Predictors whose whole-model step is not additive (a kept residual
  model, transfer predictors) are asked per arch instead, and bounds come from a search.
* ``"subnet"``: the predictor's subnet-level model of the space (what ``Predictor.predict`` uses by
  default when one exists); bounds come from a search.

Results are cached in an LRU keyed on the canonical arch (inactive blocks masked), so equivalent
encodings share one entry; ``cache_info()`` reports hits and misses. ``batch`` is vectorised and
bypasses the cache on the lookup-table path (it is cheaper than the cache there).
"""

from __future__ import annotations

import json
import math
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwlat.errors import ConfigError, HwlatError, PredictorError, UnsupportedOperatorWarning
from hwlat.oracle.encodings import normalize
from hwlat.oracle.models import Z90, as_latency_model
from hwlat.oracle.tables import TABLES, KernelPredictions, SlotTable

METHODS = ("kernel-sum", "subnet")


class InfeasibleBudgetError(HwlatError):
    """A latency budget no arch of the space can meet (or that every arch meets, when asked)."""


@dataclass
class Bounds:
    """Min / max predicted latency over a space (ms), the archs reaching them, and how they were found."""

    min_ms: float
    max_ms: float
    exact: bool
    method: str
    argmin: Any = None
    argmax: Any = None
    note: str = ""
    fixed: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"min_ms": self.min_ms, "max_ms": self.max_ms, "exact": self.exact, "method": self.method,
                "argmin": self.argmin, "argmax": self.argmax, "note": self.note, "fixed": self.fixed}


class _LRU:
    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.data: OrderedDict[Any, tuple[float, float, float]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Any) -> tuple[float, float, float] | None:
        v = self.data.get(key)
        if v is None:
            self.misses += 1
            return None
        self.hits += 1
        self.data.move_to_end(key)
        return v

    def put(self, key: Any, value: tuple[float, float, float]) -> None:
        if self.maxsize <= 0:
            return
        self.data[key] = value
        if len(self.data) > self.maxsize:
            self.data.popitem(last=False)


def _is_model_input(x: Any) -> bool:
    """An nn.Module, an ONNX ModelProto / bytes, or a path to an .onnx file (not an arch encoding)."""
    mod = type(x).__module__
    if mod.startswith("torch") or (hasattr(x, "forward") and hasattr(x, "parameters")):
        return True
    if mod.startswith("onnx") or isinstance(x, (bytes, Path)):
        return True
    return isinstance(x, str) and x.lower().endswith(".onnx")


def _json_key(canon: Any) -> str:
    return canon if isinstance(canon, str) else json.dumps(canon, sort_keys=True, separators=(",", ":"))


class Oracle:
    """Predicted latency of archs of one search space on one device, for search loops (ms).

    ``Oracle(device, space, kind)`` loads the device's trained predictor
    (``hwlat.Predictor.load(device, kind)``); :meth:`from_predictor` wraps one you have (an hwlat
    Predictor, or anything with ``predict_kernels(kernels) -> (ms, low, high)``).

    ``upper=True`` makes ``violation`` / ``feasible`` (and so every adapter) compare the high end of
    the predictor's 90 % interval with the budget instead of the mean: a margin that keeps subnets
    found right at the budget within it when measured.

    ``strict=False`` predicts models (``nn.Module`` / ONNX) with operators no kernel covers, with an
    :class:`~hwlat.errors.UnsupportedOperatorWarning` and the interval's high end widened by the
    covered share; by default such a model raises
    :class:`~hwlat.errors.UnsupportedOperatorError` naming the operators.

    ``residual=False`` leaves out a kept whole-model residual GBDT (``predictor.json`` →
    ``residual.kept``): the oracle then answers from exact per-slot lookup tables (≈ 100× faster per
    arch) at the accuracy of kernel sum + overhead; with the residual it asks the predictor per arch.
    """

    def __init__(self, device: str = "local", space: str = "ofa_mbv3", kind: str = "gbdt", *,
                 method: str = "kernel-sum", cache_size: int = 100_000, root: str | Path | None = None,
                 predictor: Any = None, upper: bool = False, residual: bool = True, strict: bool = True) -> None:
        from hwlat.spaces import get_space

        if method not in METHODS:
            raise ConfigError(f"unknown oracle method {method!r}; use one of {', '.join(METHODS)}")
        if predictor is None:
            from hwlat.predictors.predictor import Predictor

            predictor = Predictor.load(device, kind=kind, root=root)
        self.predictor = predictor
        self.model = as_latency_model(predictor, residual=residual, space=get_space(space).name)
        self.device = str(getattr(self.model, "device", device) or device)
        self.space = get_space(space)
        self.space_name = self.space.name
        self.method = method
        #: constraints use the interval's high end instead of the mean (a safety margin for budgets)
        self.upper = upper
        #: refuse models with operators no kernel covers: a searcher must never act on a partial number
        self.strict = strict
        self._cache = _LRU(cache_size)
        self._graph_cache = _LRU(cache_size)
        self._bounds: dict[Any, Bounds] = {}
        runtime = str(getattr(self.model, "runtime", "onnxruntime"))
        additive = bool(getattr(self.model, "additive", False))
        if method == "subnet":
            spaces = self.model.subnet_spaces() if hasattr(self.model, "subnet_spaces") else []
            if self.space_name not in spaces:
                raise PredictorError(f"no subnet predictor for space {self.space_name!r} on device {self.device!r} "
                                     f"(have: {', '.join(spaces) or 'none'}); use method='kernel-sum' or profile "
                                     f"subnets with `hwlat profile {self.device} --space {self.space_name}` and retrain")
            self.mode = "subnet"
        elif additive and runtime == "onnxruntime":
            self.mode = "table" if self.space_name in TABLES else "kernels"
        elif hasattr(self.model, "predict_archs"):
            self.mode = "archs"  # non-additive whole-model step or another runtime's fusion: ask the predictor
        else:
            raise PredictorError(f"{type(predictor).__name__} is not additive and has no predict_archs; "
                                 "the oracle cannot serve it")
        self.table: SlotTable | None = TABLES[self.space_name](self.model) if self.mode == "table" else None
        self._preds = KernelPredictions(self.model)

    @property
    def target(self) -> str:
        """The measured statistic the predictor learned (``median_ms``, ``min_ms`` or ``floor_ms``):
        what a measurement that checks this oracle must report (``measure_archs(..., target=)``)."""
        manifest = getattr(self.predictor, "manifest", None) or {}
        return str(manifest.get("target", "median_ms"))

    @classmethod
    def from_predictor(cls, predictor: Any, space: str = "ofa_mbv3", **kwargs: Any) -> Oracle:
        """An oracle over ``predictor`` (hwlat Predictor or any object with ``predict_kernels``)."""
        return cls(device=str(getattr(predictor, "device", "")), space=space, predictor=predictor, **kwargs)

    def __repr__(self) -> str:
        return f"Oracle(device={self.device!r}, space={self.space_name!r}, method={self.method!r}, mode={self.mode!r})"

    # Search frameworks pickle the oracle for every worker: send the lookup tables and a lazily
    # loading stand-in for the predictor, not the predictor (hwlat.oracle.portable).
    def __getstate__(self) -> dict[str, Any]:
        from hwlat.oracle.portable import oracle_state

        return oracle_state(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        from hwlat.oracle.portable import restore_oracle

        restore_oracle(self, state)

    # ---- canonical form & keys -----------------------------------------------------------------
    def canonical(self, arch: Any) -> Any:
        """The space's canonical form of ``arch`` (inactive blocks masked): the cache key's source."""
        return self.space.canonical(normalize(self.space_name, arch))

    def key(self, arch: Any) -> Any:
        """Hashable cache key of ``arch`` (equal for equivalent encodings)."""
        if self.table is not None:
            k = self.table.key(arch)
            if k is not None:
                return k
            return self.table.key_of_canonical(self.canonical(arch))  # type: ignore[attr-defined]
        return _json_key(self.canonical(arch))

    # ---- single queries ------------------------------------------------------------------------
    def predict(self, arch: Any, input_shape: Sequence[int] | None = None) -> tuple[float, float, float]:
        """(latency, low, high) in ms of an arch encoding, an ``nn.Module`` (with ``input_shape``) or an
        ONNX model / path."""
        if _is_model_input(arch):
            return self._predict_model(arch, input_shape)
        if self.table is not None:
            k = self.table.key(arch)
            if k is None:
                k = self.table.key_of_canonical(self.canonical(arch))  # type: ignore[attr-defined]
            v = self._cache.get(k)
            if v is None:
                m, lo, hi = self.model.combine(self.table.agg_of_key(k))
                v = (float(m[0]), float(lo[0]), float(hi[0]))
                self._cache.put(k, v)
            return v
        canon = self.canonical(arch)
        k = _json_key(canon)
        v = self._cache.get(k)
        if v is None:
            m, lo, hi = self._compute([canon])
            v = (float(m[0]), float(lo[0]), float(hi[0]))
            self._cache.put(k, v)
        return v

    def __call__(self, arch: Any, input_shape: Sequence[int] | None = None) -> float:
        """Predicted latency of ``arch`` in ms."""
        return self.predict(arch, input_shape)[0]

    latency = __call__

    def interval(self, arch: Any, input_shape: Sequence[int] | None = None) -> tuple[float, float]:
        """The predictor's 90 % interval (low, high) in ms."""
        _, lo, hi = self.predict(arch, input_shape)
        return lo, hi

    def std(self, arch: Any, input_shape: Sequence[int] | None = None) -> float:
        """A standard deviation in ms read off the 90 % interval (width / 2·1.645, normal assumption)."""
        _, lo, hi = self.predict(arch, input_shape)
        return (hi - lo) / (2 * Z90)

    def constraint_value(self, arch: Any, upper: bool | None = None) -> float:
        """The latency the constraint compares with the budget: the mean, or with ``upper`` (default:
        the oracle's ``upper`` setting) the high end of the predictor's 90 % interval."""
        m, _, hi = self.predict(arch)
        return hi if (self.upper if upper is None else upper) else m

    def violation(self, arch: Any, budget_ms: float, upper: bool | None = None) -> float:
        """latency − budget in ms: ≤ 0 means feasible (the sign Optuna and pymoo use)."""
        return self.constraint_value(arch, upper) - float(budget_ms)

    def feasible(self, arch: Any, budget_ms: float, upper: bool | None = None) -> bool:
        return self.violation(arch, budget_ms, upper) <= 0.0

    # ---- batches -------------------------------------------------------------------------------
    def predict_batch(self, archs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(latency, low, high) arrays for many archs (list of encodings or, for ofa_mbv3/fbnet, an
        int array of values / DyNAS-T indices)."""
        if self.table is not None:
            agg = self.table.agg_batch(archs)
            if agg is None:
                keys = [self.key(a) for a in archs]
                agg = np.concatenate([self.table.agg_of_key(k) for k in keys]) if keys else np.zeros((0, 4))
            return self.model.combine(agg)
        archs = self._value_rows_as_dicts(archs)
        n = len(archs)
        out = np.zeros((n, 3))
        todo: dict[str, tuple[Any, list[int]]] = {}
        for i, a in enumerate(archs):
            canon = self.canonical(a)
            k = _json_key(canon)
            v = self._cache.get(k)
            if v is not None:
                out[i] = v
            elif k in todo:
                todo[k][1].append(i)
            else:
                todo[k] = (canon, [i])
        if todo:
            m, lo, hi = self._compute([c for c, _ in todo.values()])
            for j, (k, (_, idx)) in enumerate(todo.items()):
                v = (float(m[j]), float(lo[j]), float(hi[j]))
                self._cache.put(k, v)
                out[idx] = v
        return out[:, 0], out[:, 1], out[:, 2]

    def _value_rows_as_dicts(self, archs: Any) -> list[Any]:
        """An OFA-MobileNetV3 value array (n, 46: ks, e, d, r) as dicts, as the table path reads it;
        index vectors (entries 0..2) and everything else pass through to ``canonical``."""
        if self.space_name == "ofa_mbv3" and isinstance(archs, np.ndarray) and archs.ndim == 2 \
                and archs.shape[1] == 46 and not (archs[:, :45].min(initial=0) >= 0 and archs[:, :45].max(initial=0) <= 2):
            a = archs.astype(np.int64)
            return [{"ks": r[:20].tolist(), "e": r[20:40].tolist(), "d": r[40:45].tolist(), "r": int(r[45])} for r in a]
        return list(archs)

    def batch(self, archs: Any) -> np.ndarray:
        """Predicted latencies (ms) of many archs, vectorised."""
        return self.predict_batch(archs)[0]

    def constraint_batch(self, archs: Any, upper: bool | None = None) -> np.ndarray:
        m, _, hi = self.predict_batch(archs)
        return hi if (self.upper if upper is None else upper) else m

    def violation_batch(self, archs: Any, budget_ms: float, upper: bool | None = None) -> np.ndarray:
        return self.constraint_batch(archs, upper) - float(budget_ms)

    def feasible_batch(self, archs: Any, budget_ms: float, upper: bool | None = None) -> np.ndarray:
        return self.violation_batch(archs, budget_ms, upper) <= 0.0

    def _compute(self, canons: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Uncached latencies of canonical archs (non-table modes)."""
        if self.mode == "subnet":
            return self.model.predict_subnet_batch(self.space_name, canons)
        if self.mode == "archs":
            return self.model.predict_archs(self.space_name, canons, method="kernel-sum")
        agg = self._preds.aggregate_lists([self.space.encode(c) for c in canons])
        return self.model.combine(agg)

    def _predict_model(self, x: Any, input_shape: Sequence[int] | None) -> tuple[float, float, float]:
        """Any nn.Module / ONNX model through decomposition, cached by graph hash."""
        import onnx

        from hwlat.decompose import kernels_of
        from hwlat.errors import ModelFileError
        from hwlat.export import graph_hash, torch_to_onnx

        if isinstance(x, (str, Path)):
            p = Path(x)
            if not p.is_file():
                raise ModelFileError(f"model file {p} does not exist")
            proto = onnx.load(str(p))
        elif isinstance(x, bytes):
            proto = onnx.load_from_string(x)
        elif isinstance(x, onnx.ModelProto):
            proto = x
        else:
            if input_shape is None:
                raise ConfigError("a torch module needs input_shape (e.g. (1, 3, 224, 224)) to be predicted")
            proto = torch_to_onnx(x, tuple(int(s) for s in input_shape))
        k = ("graph", graph_hash(proto))
        v = self._graph_cache.get(k)
        if v is not None:
            return v
        if self.mode in ("table", "kernels"):
            dec = kernels_of(proto, strict=self.strict)
            ks = list(dec.kernels)
            m, lo, hi = self.model.combine(self._preds.aggregate_lists([ks]))
            if dec.unsupported:
                from hwlat.predictors.predictor import coverage_of, unsupported_names

                cov = coverage_of(ks, dec.unsupported)
                warnings.warn(f"{proto.graph.name or 'model'}: operators with no kernel "
                              f"({', '.join(unsupported_names(dec.unsupported))}) are left out; the kernels "
                              f"cover {100 * cov:.0f} % of its operators and the interval's high end is widened "
                              "to match", UnsupportedOperatorWarning, stacklevel=3)
                hi = [float(hi[0]) / max(cov, 1e-3)]
        elif hasattr(self.predictor, "predict"):
            from hwlat.predictors.predictor import Predictor

            # strict= is hwlat's; another predictor object answers as it does
            p = (self.predictor.predict(proto, strict=self.strict) if isinstance(self.predictor, Predictor)
                 else self.predictor.predict(proto))
            m, lo, hi = [p.latency_ms], [p.low_ms], [p.high_ms]
        else:
            raise PredictorError("this predictor cannot predict whole models; use a kernel-level predictor")
        v = (float(m[0]), float(lo[0]), float(hi[0]))
        self._graph_cache.put(k, v)
        return v

    # ---- cache -----------------------------------------------------------------------------------
    def cache_info(self) -> dict[str, int]:
        """Hits, misses and size of the arch cache (single queries and non-table batches)."""
        c = self._cache
        return {"hits": c.hits, "misses": c.misses, "size": len(c.data), "maxsize": c.maxsize,
                "graph_hits": self._graph_cache.hits, "graph_misses": self._graph_cache.misses}

    def clear_cache(self) -> None:
        self._cache = _LRU(self._cache.maxsize)
        self._graph_cache = _LRU(self._graph_cache.maxsize)

    # ---- bounds ----------------------------------------------------------------------------------
    def bounds(self, *, r: int | None = None, wid: float | None = None, n_samples: int = 256,
               seed: int = 0) -> Bounds:
        """Min and max predicted latency over the space (ms).

        Exact on the lookup-table path (additive models): per stage/layer the cheapest and dearest
        choice of each slot, every depth tried (ofa_mbv3), every resolution (or ``r``) tried; for
        ofa_mbv3 the width multiplier is ``wid`` (default 1.0, the space's sampler). Otherwise a
        random sample + coordinate search (``hwlat.oracle.domains``), reported with ``exact=False``.
        Latencies are evaluated with the full model at the arch found, so the affine overhead fit's
        floor (``max(…, 0.1·Σ)``) is included.
        """
        fixed = {k: v for k, v in (("r", r), ("wid", wid)) if v is not None}
        ck = tuple(sorted(fixed.items()))
        if ck in self._bounds:
            return self._bounds[ck]
        from hwlat.oracle.bounds import exact_bounds, searched_bounds

        b = exact_bounds(self, **fixed) if self.mode == "table" else None
        if b is None:
            b = searched_bounds(self, n_samples=n_samples, seed=seed, **fixed)
        self._bounds[ck] = b
        return b

    def check_budget(self, budget_ms: float, *, r: int | None = None, wid: float | None = None,
                     slack: float = 0.05) -> Bounds:
        """Raise :class:`InfeasibleBudgetError` when no arch can meet ``budget_ms``; return the bounds.

        Searched (inexact) minima may sit above the true minimum, so they are trusted only up to
        ``slack`` (relative) before refusing.
        """
        try:
            b_ms = float(budget_ms)
        except (TypeError, ValueError):
            raise ConfigError(f"latency budget {budget_ms!r} is not a number; give milliseconds, e.g. 25.0") from None
        if not math.isfinite(b_ms) or b_ms <= 0:
            raise ConfigError(f"latency budget {budget_ms!r} must be a positive finite number of milliseconds")
        b = self.bounds(r=r, wid=wid)
        floor = b.min_ms if b.exact else b.min_ms * (1.0 - slack)
        if b_ms < floor:
            how = "exact per-slot bound" if b.exact else f"best found by {b.method}"
            raise InfeasibleBudgetError(
                f"latency budget {b_ms:.4g} ms is infeasible for space {self.space_name!r} on device "
                f"{self.device!r}: the fastest arch is predicted at {b.min_ms:.4g} ms ({how}); raise the "
                f"budget to at least {b.min_ms:.4g} ms or search a smaller space/resolution")
        return b

    # ---- differentiable surrogate ----------------------------------------------------------------
    def torch_expected_latency(self, arch_probs: Any) -> Any:
        """Differentiable expected latency (ms, torch scalar) under independent per-slot choice
        probabilities; see :mod:`hwlat.oracle.surrogate` for the ``arch_probs`` layout per space."""
        from hwlat.oracle.surrogate import expected_latency

        return expected_latency(self, arch_probs)

    # ---- helpers for searchers -----------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Any:
        return self.space.sample(rng)
