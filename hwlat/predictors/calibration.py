"""Interval calibration from out-of-fold errors (split-conformal style).

Quantile trees fitted on the training rows and the spread of an MLP ensemble both understate the
error on new inputs: on the standard suite (local) the GBDT's nominal 90 % kernel interval covered
74 % of held-out kernels, the MLP's 50 %. Each estimator therefore keeps the 5 %/95 % quantiles of
its out-of-fold log errors (``log measured − log predicted`` on rows a model did not train on) and
widens every interval to at least ``mean · exp(q)``. An estimator's own, input-dependent band
still wins where it is wider.
"""

from __future__ import annotations

import numpy as np

#: Fewer out-of-fold errors than this give quantiles too noisy to trust: no calibration.
MIN_ERRORS = 20


def calibration(log_errors: np.ndarray, alpha: float = 0.10) -> dict[str, float] | None:
    """``{"q_lo", "q_hi", "n"}``: the ``alpha/2`` and ``1 − alpha/2`` quantiles of ``log_errors``,
    with the finite-sample correction of split conformal prediction; ``None`` for too few errors."""
    e = np.asarray(log_errors, dtype=np.float64)
    e = e[np.isfinite(e)]
    n = len(e)
    if n < MIN_ERRORS:
        return None
    lo = max(0.0, np.floor((n + 1) * alpha / 2) / n)
    hi = min(1.0, np.ceil((n + 1) * (1 - alpha / 2)) / n)
    return {"q_lo": float(min(np.quantile(e, lo), 0.0)), "q_hi": float(max(np.quantile(e, hi), 0.0)), "n": n}


def widen(mean: np.ndarray, low: np.ndarray, high: np.ndarray, cal: dict[str, float] | None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, low, high)`` with the interval widened to at least the calibrated band."""
    if not cal:
        return mean, low, high
    return mean, np.minimum(low, mean * np.exp(cal["q_lo"])), np.maximum(high, mean * np.exp(cal["q_hi"]))
