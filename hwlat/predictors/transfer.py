"""Few-shot transfer of a latency predictor to a new device (HELP / LitePred setting).

What is known about the new (target) device: N measured latencies (N = 10 … 100). What is
known about every architecture: its latency on some *source* devices (measured, or predicted
by those devices' predictors) and its arch features. The model, in log-latency:

    log y_target ≈ linear map of log y_sources  +  ridge(arch features)   [residual, N ≥ 20]

The linear map is the average of three fits of the N samples, each cheap and tuning-free:
a ridge over all sources (penalty by closed-form leave-one-out), a non-negative least squares
mix (a new device's cost is a positive mix of the others'), and single-source maps
``a + b·log s_j`` averaged with weights from their leave-one-out errors. Averaging is
again a linear map, so the fitted model is one coefficient vector plus an intercept.

Why this one: source latencies already carry nearly all the architecture signal, and with 10
points only a few parameters are identifiable. Chosen on HELP's meta-*valid* devices
(titanx_*, gold_6240; mean Spearman at N=10 over 8 draws): NB201 ridge 0.967, NNLS 0.974,
weighted single-source 0.977, the average 0.976; FBNet 0.910 / 0.944 / 0.948 / 0.945. The
average was kept over weighted single-source because the latter alone collapses when no single
source resembles the target. Arch-feature-only models reach 0.48 at N=10; a joint ridge on
[sources, arch] 0.903 (NB201 meta-test). The arch residual adds a little once N ≥ 50.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import nnls

from hwlat.errors import PredictorError
from hwlat.predictors.metrics import report

_ALPHAS = tuple(float(a) for a in np.logspace(-3, 4, 15))
_Z90 = 1.6448536269514722


class _RidgeLOO:
    """Ridge on standardized columns with an unpenalised intercept; alpha by leave-one-out."""

    def __init__(self, alphas: tuple[float, ...] = _ALPHAS) -> None:
        self.alphas = alphas
        self.mu = self.sd = self.w = None
        self.b = 0.0
        self.alpha = 0.0
        self.loo_mse = float("nan")

    def fit(self, F: np.ndarray, y: np.ndarray) -> _RidgeLOO:
        n = len(y)
        self.mu = F.mean(axis=0)
        sd = F.std(axis=0)
        self.sd = np.where(sd > 0, sd, 1.0)
        Z = (F - self.mu) / self.sd
        self.b = float(y.mean())
        yc = y - self.b
        best: tuple[float, float] | None = None
        G = Z.T @ Z
        for a in self.alphas:
            H = Z @ np.linalg.solve(G + a * np.eye(Z.shape[1]), Z.T)
            # LOO residual of a ridge with a centred intercept: the intercept adds 1/n to the leverage.
            denom = np.maximum(1.0 - np.diag(H) - 1.0 / n, 1e-6)
            mse = float(np.mean(((yc - H @ yc) / denom) ** 2))
            if best is None or mse < best[0]:
                best = (mse, a)
        assert best is not None
        self.loo_mse, self.alpha = best
        self.w = np.linalg.solve(G + self.alpha * np.eye(Z.shape[1]), Z.T @ yc)
        return self

    def predict(self, F: np.ndarray) -> np.ndarray:
        return ((F - self.mu) / self.sd) @ self.w + self.b

    def to_dict(self) -> dict[str, Any]:
        return {"mu": self.mu.tolist(), "sd": self.sd.tolist(), "w": self.w.tolist(), "b": self.b,
                "alpha": self.alpha, "loo_mse": self.loo_mse}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> _RidgeLOO:
        r = cls()
        r.mu, r.sd, r.w = (np.asarray(d[k], dtype=np.float64) for k in ("mu", "sd", "w"))
        r.b, r.alpha, r.loo_mse = float(d["b"]), float(d["alpha"]), float(d["loo_mse"])
        return r


def _conformal_halfwidth(loo: np.ndarray, level: float = 0.9) -> float:
    """Jackknife half-width: the ⌈level·(n+1)⌉-th smallest |LOO residual| (the largest when n is
    too small for that rank). A Gaussian on 10 residuals understates the tails that decide coverage:
    leave-one-source-out among HELP's NB201 meta-train devices, 1.645·σ covered 84.5 / 88.6 / 94.6 %
    of the other archs at N = 10 / 20 / 50, the wider of the two 88.6 / 90.7 / 94.9 %."""
    a = np.sort(np.abs(np.asarray(loo, dtype=np.float64)))
    if not len(a):
        return 0.0
    k = int(np.ceil(level * (len(a) + 1)))
    return float(a[min(k, len(a)) - 1])


def _single_source_loo(s: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(intercept, slope, leave-one-out MSE) of ``y ≈ a + b·s``."""
    A = np.column_stack([np.ones_like(s), s])
    P = np.linalg.pinv(A)
    coef = P @ y
    lev = np.einsum("ij,ji->i", A, P)
    r = (y - A @ coef) / np.maximum(1.0 - lev, 1e-6)
    return float(coef[0]), float(coef[1]), float(np.mean(r**2))


def _source_map(logS: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, dict[str, Any]]:
    """Average of ridge, NNLS and LOO-weighted single-source maps, as one (coef, intercept)."""
    k = logS.shape[1]
    ridge = _RidgeLOO().fit(logS, y)
    c_ridge = ridge.w / ridge.sd
    b_ridge = ridge.b - float(ridge.mu @ c_ridge)
    mu = logS.mean(axis=0)
    w_nn, _ = nnls(logS - mu, y - y.mean())
    c_nn, b_nn = w_nn, float(y.mean() - mu @ w_nn)
    singles = [_single_source_loo(logS[:, j], y) for j in range(k)]
    errs = np.array([e for _, _, e in singles])
    # Weights fall by e-fold per 100 % of extra LOO error over the best source.
    w = np.exp(-(errs - errs.min()) / max(errs.min(), 1e-12))
    w /= w.sum()
    c_ss = w * np.array([b for _, b, _ in singles])
    b_ss = float(w @ np.array([a for a, _, _ in singles]))
    coef = (c_ridge + c_nn + c_ss) / 3.0
    intercept = (b_ridge + b_nn + b_ss) / 3.0
    info = {"ridge_alpha": ridge.alpha, "ridge_coef": c_ridge.tolist(), "nnls_coef": c_nn.tolist(),
            "single_source_weights": w.tolist()}
    return coef, float(intercept), info


def arch_smoothed_sources(source_latency: np.ndarray, arch_features: np.ndarray, n_fit: int = 1000,
                          seed: int = 0, alpha: float = 1.0) -> np.ndarray:
    """Each source column re-predicted by a ridge on arch features (log space) fitted on ``n_fit``
    random archs of that source: what a source device's own (smooth) predictor would say.

    Used beside the measured columns: coarse or noisy source timings (phones stored as whole ms)
    rank archs worse than their smoothed version. Chosen leave-one-source-out among HELP's
    meta-train devices, N = 10: mean Spearman NB201 0.916 (measured) → 0.939 (measured + smoothed
    + FLOPs/bytes), FBNet 0.804 → 0.848; ±10 % at N = 50 0.749 → 0.753 and 0.871 → 0.890.
    """
    S = np.asarray(source_latency, dtype=np.float64)
    A = np.asarray(arch_features, dtype=np.float64)
    idx = np.random.default_rng(seed).permutation(len(A))[:n_fit]
    Z = A[idx]
    mu, sd = Z.mean(axis=0), Z.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    Zs = (Z - mu) / sd
    G = Zs.T @ Zs + alpha * np.eye(Zs.shape[1])
    L = np.log(np.maximum(S[idx], 1e-6))
    b = L.mean(axis=0)
    W = np.linalg.solve(G, Zs.T @ (L - b))
    return np.exp(((A - mu) / sd) @ W + b)


def transfer_features(source_latency: np.ndarray, arch_features: np.ndarray) -> np.ndarray:
    """``X`` for :class:`TransferRegressor`: source latencies (ms, n × k) then arch features (n × d)."""
    S = np.asarray(source_latency, dtype=np.float64)
    if S.ndim == 1:  # one source device
        S = S.reshape(-1, 1)
    A = np.asarray(arch_features, dtype=np.float64)
    if A.ndim != 2 or len(A) != len(S):
        raise ValueError(f"arch_features must be (n, d) with n={len(S)}, got shape {A.shape}")
    return np.hstack([S, A])


class TransferRegressor:
    """Target-device predictor from N target samples; ``X = transfer_features(src_ms, arch)``.

    The first ``n_sources`` columns of ``X`` are source-device latencies in ms (> 0), the rest
    arch features.
    """

    kind = "transfer"

    def __init__(self, n_sources: int, residual_min_n: int = 20) -> None:
        if n_sources < 1:
            raise ValueError("n_sources must be >= 1")
        self.n_sources = n_sources
        self.residual_min_n = residual_min_n
        self.n_features_ = 0
        self.sigma_ = 0.0
        #: 90 % half-width in log space: max(1.645·σ_LOO, jackknife quantile of |LOO residuals|)
        self.halfwidth_ = 0.0
        self.coef_: np.ndarray | None = None
        self.intercept_ = 0.0
        self.source_info_: dict[str, Any] = {}
        self._res: _RidgeLOO | None = None
        #: the residual correction is clipped to ± the largest training residual: with tens of
        #: samples a ridge on arch features extrapolates wildly outside them (one 20-sample draw
        #: on local → local-2t gave 677 % MAPE before this)
        self.res_bound_ = float("inf")

    def _split(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] <= self.n_sources - 1:
            raise ValueError(f"X must be (n, n_sources + d) with n_sources={self.n_sources}, got {X.shape}")
        S = X[:, : self.n_sources]
        if np.any(S <= 0) or not np.all(np.isfinite(S)):
            raise ValueError("source latencies (the first n_sources columns) must be finite and > 0")
        return np.log(S), X[:, self.n_sources:]

    def fit(self, X: np.ndarray, y: np.ndarray) -> TransferRegressor:
        """Fit on N target-device samples (N ≥ 3)."""
        logS, A = self._split(X)
        y = np.asarray(y, dtype=np.float64).ravel()
        if len(y) != len(logS):
            raise ValueError(f"X has {len(logS)} rows but y has {len(y)} values")
        if len(y) < 3 or np.any(y <= 0):
            raise ValueError("transfer needs at least 3 positive target latencies")
        ylog = np.log(y)
        self.n_features_ = X.shape[1]
        self.coef_, self.intercept_, self.source_info_ = _source_map(logS, ylog)
        resid = ylog - (logS @ self.coef_ + self.intercept_)
        loo = self._loo_residuals(logS, ylog)
        sigma2 = float(np.mean(loo**2))
        conf = _conformal_halfwidth(loo)
        self._res = None
        if len(y) >= self.residual_min_n and A.shape[1] > 0:
            res = _RidgeLOO().fit(A, resid)
            # Keep the residual model only if leave-one-out says it helps.
            if res.loo_mse < float(np.mean(resid**2)):
                self._res = res
                self.res_bound_ = float(np.max(np.abs(resid)))
                shrink = res.loo_mse / max(float(np.mean(resid**2)), 1e-12)
                sigma2 *= shrink
                conf *= float(np.sqrt(shrink))
        self.sigma_ = float(np.sqrt(sigma2))
        self.halfwidth_ = max(_Z90 * self.sigma_, conf)
        return self

    @staticmethod
    def _loo_residuals(logS: np.ndarray, ylog: np.ndarray, max_points: int = 50) -> np.ndarray:
        """Leave-one-out residuals (log) of the source map, on at most ``max_points`` samples."""
        n = len(ylog)
        out = np.zeros(min(n, max_points))
        for i in range(len(out)):
            keep = np.arange(n) != i
            c, b, _ = _source_map(logS[keep], ylog[keep])
            out[i] = float(ylog[i] - (logS[i] @ c + b))
        return out

    @staticmethod
    def _loo_mse(logS: np.ndarray, ylog: np.ndarray, max_points: int = 50) -> float:
        """Leave-one-out MSE of the source map (on at most ``max_points`` held-out samples)."""
        return float(np.mean(TransferRegressor._loo_residuals(logS, ylog, max_points) ** 2))

    def predict(self, X: np.ndarray, return_interval: bool = False
                ) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Target latency; the 90 % interval (log space) is the wider of ∓1.645 × the leave-one-out
        residual spread and the jackknife (conformal) quantile of the leave-one-out residuals."""
        if self.coef_ is None:
            raise PredictorError("transfer predictor is not fitted; call fit() first")
        logS, A = self._split(X)
        mu = logS @ self.coef_ + self.intercept_
        if self._res is not None:
            mu = mu + np.clip(self._res.predict(A), -self.res_bound_, self.res_bound_)
        if not return_interval:
            return np.exp(mu)
        h = self.halfwidth_ if self.halfwidth_ > 0 else _Z90 * self.sigma_
        return np.exp(mu), np.exp(mu - h), np.exp(mu + h)

    def save(self, directory: str | Path) -> list[str]:
        if self.coef_ is None:
            raise PredictorError("cannot save an unfitted transfer predictor; call fit() first")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {"n_sources": self.n_sources, "residual_min_n": self.residual_min_n,
                 "n_features": self.n_features_, "sigma": self.sigma_, "halfwidth": self.halfwidth_, "source_coef": self.coef_.tolist(),
                 "source_intercept": self.intercept_, "source_info": self.source_info_,
                 "residual_ridge": self._res.to_dict() if self._res is not None else None,
                 "residual_bound": self.res_bound_ if np.isfinite(self.res_bound_) else None}
        (d / "transfer.json").write_text(json.dumps(state, indent=1))
        return ["transfer.json"]

    @classmethod
    def load(cls, directory: str | Path) -> TransferRegressor:
        d = Path(directory)
        try:
            s = json.loads((d / "transfer.json").read_text())
            m = cls(s["n_sources"], s["residual_min_n"])
            m.n_features_, m.sigma_ = s["n_features"], float(s["sigma"])
            m.halfwidth_ = float(s.get("halfwidth", _Z90 * m.sigma_))
            m.coef_ = np.asarray(s["source_coef"], dtype=np.float64)
            m.intercept_ = float(s["source_intercept"])
            m.source_info_ = s.get("source_info", {})
            m._res = _RidgeLOO.from_dict(s["residual_ridge"]) if s["residual_ridge"] else None
            if s.get("residual_bound") is not None:
                m.res_bound_ = float(s["residual_bound"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise PredictorError(f"transfer model file in {d} is missing or unreadable ({e}); "
                                 f"retrain with `hwlat train DEVICE`") from None
        return m


def transfer_curve(source_latency: np.ndarray, arch_features: np.ndarray, y_target: np.ndarray,
                   ns: tuple[int, ...] = (10, 20, 50, 100), seeds: tuple[int, ...] = (0, 1, 2),
                   fixed_samples: dict[int, list[int]] | None = None, score_on: str = "all"
                   ) -> list[dict[str, Any]]:
    """Accuracy of :class:`TransferRegressor` vs the number N of target samples.

    For each N and seed, draws N archs at random (or uses ``fixed_samples[N]`` for seed 0, e.g.
    HELP's 10 hardware-embedding archs), fits, and scores on all archs (``score_on="all"``, as
    HELP reports) or on the archs not sampled (``"rest"``). Returns one row per (N, seed):
    ``{"n_samples": N, "seed": s, "residual": bool, **metrics.report(...), "coverage90": share
    inside the 90 % interval}`` with the report's ``n`` renamed ``n_eval``.
    """
    if score_on not in ("all", "rest"):
        raise ValueError("score_on must be 'all' or 'rest'")
    X = transfer_features(source_latency, arch_features)
    k = np.asarray(source_latency).shape[1] if np.ndim(source_latency) == 2 else 1
    y = np.asarray(y_target, dtype=np.float64)
    rows = []
    for n in ns:
        for seed in seeds:
            if fixed_samples and n in fixed_samples and seed == seeds[0]:
                idx = np.asarray(fixed_samples[n])
            else:
                idx = np.random.default_rng(1000 * n + seed).choice(len(y), n, replace=False)
            model = TransferRegressor(k).fit(X[idx], y[idx])
            ev = np.ones(len(y), bool)
            if score_on == "rest":
                ev[idx] = False
            m, lo, hi = model.predict(X[ev], return_interval=True)
            metrics = report(y[ev], m)
            metrics["n_eval"] = metrics.pop("n")
            metrics["coverage90"] = float(np.mean((y[ev] >= lo) & (y[ev] <= hi)))
            rows.append({"n_samples": int(n), "seed": int(seed), "residual": model._res is not None, **metrics})
    return rows
