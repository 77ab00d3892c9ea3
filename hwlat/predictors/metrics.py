"""Accuracy metrics for latency predictors (plain numpy in, floats out).

``acc10`` is nn-Meter's ±10 % accuracy: the share of predictions whose relative error
``|pred - true| / true`` is at most 10 %. ``mape`` is a fraction (0.05 = 5 %), not a percentage.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("metrics need at least one value")
    return t, p


def accuracy_within(y_true: np.ndarray, y_pred: np.ndarray, tol: float = 0.10) -> float:
    """Share of predictions with ``|pred - true| / true <= tol`` (nn-Meter's ±tol accuracy)."""
    t, p = _pair(y_true, y_pred)
    # The tiny epsilon keeps values that sit exactly on the boundary (e.g. 110 vs 100) inside
    # despite float rounding of the division.
    return float(np.mean(np.abs(p - t) / np.abs(t) <= tol + 1e-12))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error, in the unit of the latencies (ms here)."""
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def mape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute percentage error as a fraction (0.05 = 5 %)."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(p - t) / np.abs(t)))


def spearman(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Spearman rank correlation (NaN when either side is constant)."""
    t, p = _pair(y_true, y_pred)
    if t.size < 2 or np.ptp(t) == 0 or np.ptp(p) == 0:
        return float("nan")
    return float(stats.spearmanr(t, p).statistic)


def kendall(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Kendall's tau-b (NaN when either side is constant)."""
    t, p = _pair(y_true, y_pred)
    if t.size < 2 or np.ptp(t) == 0 or np.ptp(p) == 0:
        return float("nan")
    return float(stats.kendalltau(t, p).statistic)


def report(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """All metrics at once: acc5, acc10, rmse, mape, spearman, kendall, n."""
    t, p = _pair(y_true, y_pred)
    return {
        "acc5": accuracy_within(t, p, 0.05),
        "acc10": accuracy_within(t, p, 0.10),
        "rmse": rmse(t, p),
        "mape": mape(t, p),
        "spearman": spearman(t, p),
        "kendall": kendall(t, p),
        "n": int(t.size),
    }
