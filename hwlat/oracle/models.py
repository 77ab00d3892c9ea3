"""What the oracle needs from a latency predictor: the small ``LatencyModel`` protocol.

A model must predict single kernels (``predict_kernels``). A whole model's latency is then a
function of *additive* aggregates of its kernels (``combine``), so the oracle can precompute
every slot × choice of a search space once and add them up per arch. Models whose whole-model
step is not a function of those aggregates say ``additive = False``; the oracle then asks them
per arch (``predict_archs``), slower but exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hwlat.kernels.base import Kernel

#: additive aggregates of a kernel list: Σ ms, kernel count, Σ (ms-low)², Σ (high-ms)²
AGGREGATES = ("sum_ms", "n_kernels", "sq_lo", "sq_hi")
Triple = tuple[np.ndarray, np.ndarray, np.ndarray]


@runtime_checkable
class LatencyModel(Protocol):
    """A latency predictor as the oracle sees it (all values in milliseconds)."""

    device: str
    #: True when ``combine`` of the kernel aggregates is the model's whole-model prediction
    additive: bool

    def predict_kernels(self, kernels: Sequence[Kernel]) -> Triple:
        """(mean, low, high) per kernel."""
        ...

    def combine(self, agg: np.ndarray) -> Triple:
        """Whole-model (mean, low, high) from aggregates ``agg`` of shape (n, len(AGGREGATES))."""
        ...

    def affine(self) -> tuple[np.ndarray, float]:
        """(w, c) with mean latency = w·agg + c wherever ``combine`` is affine (for exact bounds and the
        differentiable surrogate)."""
        ...


def aggregates(ms: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The :data:`AGGREGATES` row of one kernel list's predictions."""
    ms = np.asarray(ms, dtype=np.float64)
    return np.array([ms.sum(), float(len(ms)), float(((ms - low) ** 2).sum()), float(((high - ms) ** 2).sum())])


class KernelSumModel:
    """Wraps anything with ``predict_kernels``: whole model = plain kernel sum; interval half-widths
    add in quadrature (errors of different kernels partly cancel)."""

    additive = True

    def __init__(self, model: Any, device: str = "") -> None:
        self.model = model
        self.device = device or str(getattr(model, "device", ""))

    def predict_kernels(self, kernels: Sequence[Kernel]) -> Triple:
        out = self.model.predict_kernels(list(kernels))
        if isinstance(out, tuple):
            m, lo, hi = (np.asarray(x, dtype=np.float64) for x in out[:3])
        else:
            m = np.asarray(out, dtype=np.float64)
            lo = hi = m
        return m, lo, hi

    def affine(self) -> tuple[np.ndarray, float]:
        """Weights over AGGREGATES and a constant: mean latency = w·agg + c."""
        return np.array([1.0, 0.0, 0.0, 0.0]), 0.0

    def combine(self, agg: np.ndarray) -> Triple:
        agg = np.atleast_2d(agg)
        s = agg[:, 0]
        return s, np.maximum(s - np.sqrt(agg[:, 2]), 0.0), s + np.sqrt(agg[:, 3])


class PredictorModel:
    """Adapter for :class:`hwlat.predictors.predictor.Predictor`.

    Reproduces ``Predictor._combine`` vectorised: latency = the affine overhead fit of ``space``
    (``Predictor.overhead_for``) ``max(a·Σ + b·n + c, 0.1·Σ)``, interval = kernel half-widths in quadrature combined in log space
    with the overhead fit's residual spread. That is additive (exactly) unless the predictor kept its
    whole-model residual GBDT or is a transfer predictor; then ``additive`` is False and the oracle
    asks the predictor per arch.
    """

    def __init__(self, predictor: Any, residual: bool = True, space: str | None = None) -> None:
        self.predictor = predictor
        #: the search space whose archs this model serves: they take that space's own overhead fit
        self.space = space
        self.device = str(predictor.device)
        self.kind = str(getattr(predictor, "kind", ""))
        #: False: the whole-model residual GBDT is left out, so the model stays additive (table path)
        self.residual = residual
        # the residual applies only where the general overhead does (not to a space with its own fit)
        has_res = getattr(predictor, "residual", None) is not None and self._overhead() is predictor.overhead
        # context terms (weights beyond a cache size) are not a function of the additive aggregates
        has_ctx = bool(getattr(self._overhead(), "has_context", False))
        self.additive = (not has_res or not residual) and not has_ctx and self.kind != "transfer"
        self.runtime = str(getattr(predictor, "runtime", "onnxruntime"))

    def _overhead(self) -> Any:
        pick = getattr(self.predictor, "overhead_for", None)
        return pick(self.space) if pick is not None else self.predictor.overhead

    def affine(self) -> tuple[np.ndarray, float]:
        """Mean latency = a·Σ + b·n + c before the fit's floor of 0.1·Σ."""
        ov = self._overhead()
        return np.array([ov.a, ov.b, 0.0, 0.0]), float(ov.c)

    def predict_kernels(self, kernels: Sequence[Kernel]) -> Triple:
        m, lo, hi = self.predictor.predict_kernels(list(kernels), return_interval=True)
        return np.asarray(m, np.float64), np.asarray(lo, np.float64), np.asarray(hi, np.float64)

    def combine(self, agg: np.ndarray) -> Triple:
        agg = np.atleast_2d(np.asarray(agg, dtype=np.float64))
        S, n, sq_lo, sq_hi = agg[:, 0], agg[:, 1], agg[:, 2], agg[:, 3]
        ov = self._overhead()
        lat = np.maximum(ov.a * S + ov.b * n + ov.c, 0.1 * S)
        Ssafe = np.maximum(S, 1e-300)
        k_lo = np.log(Ssafe / np.maximum(Ssafe - np.sqrt(sq_lo), 1e-3 * Ssafe))
        k_hi = np.log((Ssafe + np.sqrt(sq_hi)) / Ssafe)
        w_lo, w_hi = max(-ov.q_lo, 0.0), max(ov.q_hi, 0.0)
        low = lat * np.exp(-np.sqrt(k_lo ** 2 + w_lo ** 2))
        high = lat * np.exp(np.sqrt(k_hi ** 2 + w_hi ** 2))
        zero = S <= 0
        return np.where(zero, 0.0, lat), np.where(zero, 0.0, low), np.where(zero, 0.0, high)

    def predict_archs(self, space: str, archs: Sequence[Any], method: str | None = None) -> Triple:
        m, lo, hi = self.predictor.predict_archs(space, list(archs), method=method)
        return np.asarray(m, np.float64), np.asarray(lo, np.float64), np.asarray(hi, np.float64)

    def subnet_spaces(self) -> list[str]:
        return sorted(getattr(self.predictor, "subnets", {}) or {})

    def predict_subnet_batch(self, space: str, archs: Sequence[Any]) -> Triple:
        m, lo, hi, _ = self.predictor.subnets[space].predict(list(archs))
        return np.asarray(m, np.float64), np.asarray(lo, np.float64), np.asarray(hi, np.float64)


def as_latency_model(pred: Any, residual: bool = True, space: str | None = None) -> Any:
    """The oracle's view of ``pred``: an hwlat Predictor, an object already following
    :class:`LatencyModel`, or anything with ``predict_kernels`` (plain kernel sum).
    ``residual=False`` leaves an hwlat Predictor's whole-model residual out (see :class:`PredictorModel`)."""
    if hasattr(pred, "overhead") and hasattr(pred, "predict_archs"):
        return PredictorModel(pred, residual=residual, space=space)
    if hasattr(pred, "combine") and hasattr(pred, "predict_kernels") and hasattr(pred, "additive"):
        return pred
    if hasattr(pred, "predict_kernels"):
        return KernelSumModel(pred)
    from hwlat.errors import PredictorError

    raise PredictorError(f"{type(pred).__name__} cannot serve the oracle: it needs predict_kernels(kernels) "
                         "(an hwlat Predictor, e.g. hwlat.Predictor.load(device))")


#: half-width of a central 90 % normal interval in standard deviations (the predictors' 5 %/95 % bounds)
Z90 = 1.6448536269514722
