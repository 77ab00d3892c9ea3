"""Gradient-boosted trees (xgboost) on log-latency, with a small CV search and quantile intervals.

Training on ``log(latency)`` makes the squared error a relative error, which is what ±10 %
accuracy and rank metrics care about, and keeps predictions positive.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from hwlat.errors import PredictorError
from hwlat.predictors.calibration import calibration, widen

#: A handful of configurations for the CV search; the first is also the no-search default.
DEFAULT_CONFIGS: tuple[dict[str, Any], ...] = (
    {"max_depth": 6, "eta": 0.05, "subsample": 0.8, "colsample_bytree": 0.8, "min_child_weight": 1.0},
    {"max_depth": 4, "eta": 0.1, "subsample": 0.8, "colsample_bytree": 0.8, "min_child_weight": 1.0},
    {"max_depth": 8, "eta": 0.05, "subsample": 0.8, "colsample_bytree": 0.6, "min_child_weight": 2.0},
    {"max_depth": 3, "eta": 0.1, "subsample": 1.0, "colsample_bytree": 1.0, "min_child_weight": 1.0},
    {"max_depth": 6, "eta": 0.03, "subsample": 0.7, "colsample_bytree": 0.5, "min_child_weight": 1.0,
     "lambda": 5.0},
)

QUANTILES = (0.05, 0.95)
_MAX_ROUNDS = 2000
_EARLY_STOP = 40


def _mean_file(i: int) -> str:
    return "gbdt_mean.ubj" if i == 0 else f"gbdt_mean_{i}.ubj"


def _as_xy(X: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if y is None:
        return X, None
    y = np.asarray(y, dtype=np.float64).ravel()
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]} values")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise ValueError("latencies must be finite and > 0 (the model is fitted on log-latency)")
    return X, y


class GBDTRegressor:
    """xgboost regressor on log-latency.

    ``fit`` runs a k-fold search over ``configs`` (stopping when ``budget_s`` is spent; the
    first config is always tried), picks the config with the lowest CV RMSE in log space and
    refits on all data with the CV-chosen number of rounds. ``n_jobs`` defaults to 1: on the
    small tables subnet predictors see, extra OpenMP threads mostly add spin-waiting (2 threads
    were 2-10x slower than 1 on a busy 2-core machine). With ``interval=True`` it also fits
    one multi-quantile model (``reg:quantileerror``, alphas 0.05/0.95) for a 90 % interval,
    widened where needed to the 5 %/95 % quantiles of the CV's out-of-fold log errors
    (:mod:`hwlat.predictors.calibration`): quantile trees fitted in-sample are too narrow.
    With ``n_ensemble=k > 1`` the prediction is the mean log-latency of the ``k`` best CV configs,
    each refitted on all data, and with ``n_seeds=s > 1`` each of them ``s`` times with other row
    and column subsamples (the CV already ran, so this costs ``k·s - 1`` more refits).
    """

    kind = "gbdt"

    def __init__(self, configs: tuple[dict[str, Any], ...] | list[dict[str, Any]] = DEFAULT_CONFIGS,
                 n_folds: int = 3, budget_s: float = 30.0, interval: bool = True, seed: int = 0,
                 n_jobs: int = 1, n_ensemble: int = 1, n_seeds: int = 1) -> None:
        if not configs:
            raise ValueError("configs must hold at least one configuration")
        if n_ensemble < 1 or n_seeds < 1:
            raise ValueError(f"n_ensemble and n_seeds must be ≥ 1, got {n_ensemble} and {n_seeds}")
        self.configs = [dict(c) for c in configs]
        self.n_folds = n_folds
        self.budget_s = budget_s
        self.interval = interval
        self.seed = seed
        self.n_jobs = n_jobs
        self.n_ensemble = n_ensemble
        self.n_seeds = n_seeds
        self.members_: list[dict[str, Any]] = []
        self.best_config_: dict[str, Any] | None = None
        self.n_rounds_: int = 0
        self.cv_results_: list[dict[str, Any]] = []
        self.n_features_: int = 0
        self.calibration_: dict[str, float] | None = None
        self._means: list[xgb.Booster] = []
        self._quant: xgb.Booster | None = None

    # -- fitting -----------------------------------------------------------------------------
    def _params(self, config: dict[str, Any], seed: int | None = None) -> dict[str, Any]:
        return {"objective": "reg:squarederror", "eval_metric": "rmse", "tree_method": "hist",
                "nthread": self.n_jobs, "seed": self.seed if seed is None else seed, "verbosity": 0, **config}

    def _cv(self, X: np.ndarray, ylog: np.ndarray, config: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray]:
        """CV summary of ``config`` and its out-of-fold log predictions."""
        rng = np.random.default_rng(self.seed)
        folds = np.array_split(rng.permutation(len(ylog)), self.n_folds)
        scores, rounds = [], []
        oof = np.zeros(len(ylog))
        for i, val in enumerate(folds):
            tr = np.concatenate([f for j, f in enumerate(folds) if j != i])
            dtr = xgb.DMatrix(X[tr], label=ylog[tr])
            dva = xgb.DMatrix(X[val], label=ylog[val])
            booster = xgb.train(self._params(config), dtr, _MAX_ROUNDS, evals=[(dva, "val")],
                                early_stopping_rounds=_EARLY_STOP, verbose_eval=False)
            scores.append(float(booster.best_score))
            rounds.append(int(booster.best_iteration) + 1)
            oof[val] = booster.predict(dva, iteration_range=(0, int(booster.best_iteration) + 1))
        return {"config": config, "cv_rmse_log": float(np.mean(scores)), "rounds": int(np.mean(rounds))}, oof

    def fit(self, X: np.ndarray, y: np.ndarray) -> GBDTRegressor:
        """Fit on features ``X`` (n, d) and positive latencies ``y`` (n,)."""
        X, y = _as_xy(X, y)
        ylog = np.log(y)
        self.n_features_ = X.shape[1]
        self.cv_results_ = []
        oofs: list[np.ndarray] = []
        start = time.monotonic()
        if len(ylog) >= 4 * self.n_folds:
            for config in self.configs:
                if self.cv_results_ and time.monotonic() - start > self.budget_s:
                    break
                res, oof = self._cv(X, ylog, config)
                self.cv_results_.append(res)
                oofs.append(oof)
        self.calibration_ = None
        if self.cv_results_:
            order = sorted(range(len(self.cv_results_)), key=lambda i: self.cv_results_[i]["cv_rmse_log"])
            top = order[:self.n_ensemble]
            # The out-of-fold mean of the chosen members is what the ensemble predicts held out.
            self.calibration_ = calibration(ylog - np.mean([oofs[i] for i in top], axis=0))
            # The final model sees 1/(k-1) more data than each fold did: a few more rounds.
            self.members_ = [{"config": dict(self.cv_results_[i]["config"]), "seed": self.seed + j,
                              "n_rounds": max(10, int(self.cv_results_[i]["rounds"] * self.n_folds
                                                      / (self.n_folds - 1)))}
                             for i in top for j in range(self.n_seeds)]
        else:  # too few samples to cross-validate: the default config with a fixed, short run
            self.members_ = [{"config": dict(self.configs[0]), "n_rounds": 100, "seed": self.seed}]
        self.best_config_ = dict(self.members_[0]["config"])
        self.n_rounds_ = int(self.members_[0]["n_rounds"])
        dall = xgb.DMatrix(X, label=ylog)
        self._means = [xgb.train(self._params(m["config"], m["seed"]), dall, m["n_rounds"]) for m in self.members_]
        self._quant = None
        if self.interval:
            qparams = {**self._params(self.best_config_), "objective": "reg:quantileerror",
                       "quantile_alpha": np.array(QUANTILES), "eval_metric": "quantile"}
            self._quant = xgb.train(qparams, dall, self.n_rounds_)
        return self

    # -- prediction --------------------------------------------------------------------------
    def predict(self, X: np.ndarray, return_interval: bool = False
                ) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predicted latency; with ``return_interval=True`` also the 5 %/95 % quantile bounds."""
        if not self._means:
            raise PredictorError("GBDT predictor is not fitted; call fit() or load a trained one first")
        X, _ = _as_xy(X)
        if X.shape[1] != self.n_features_:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted on {self.n_features_}")
        dm = xgb.DMatrix(X)
        mean = np.exp(np.mean([b.predict(dm).astype(np.float64) for b in self._means], axis=0))
        if not return_interval:
            return mean
        if self._quant is None:
            raise PredictorError("this GBDT predictor was fitted with interval=False; refit with interval=True")
        q = np.exp(self._quant.predict(dm).astype(np.float64)).reshape(len(mean), len(QUANTILES))
        # Separately fitted quantile trees can cross each other or the mean; widen to keep order.
        low = np.minimum(q.min(axis=1), mean)
        high = np.maximum(q.max(axis=1), mean)
        return widen(mean, low, high, self.calibration_)

    # -- persistence (xgboost UBJ + JSON only) -----------------------------------------------
    def save(self, directory: str | Path) -> list[str]:
        """Write the model files into ``directory``; returns the file names written."""
        if not self._means:
            raise PredictorError("cannot save an unfitted GBDT predictor; call fit() first")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        mean_files = [_mean_file(i) for i in range(len(self._means))]
        files = ["gbdt.json", *mean_files]
        for b, f in zip(self._means, mean_files, strict=True):
            b.save_model(str(d / f))
        if self._quant is not None:
            self._quant.save_model(str(d / "gbdt_quantile.ubj"))
            files.append("gbdt_quantile.ubj")
        meta = {"n_features": self.n_features_, "n_rounds": self.n_rounds_, "best_config": self.best_config_,
                "cv_results": self.cv_results_, "n_folds": self.n_folds, "seed": self.seed,
                "members": self.members_, "mean_files": mean_files,
                "interval": self._quant is not None, "quantiles": list(QUANTILES),
                "calibration": self.calibration_}
        (d / "gbdt.json").write_text(json.dumps(meta, indent=1))
        return files

    @classmethod
    def load(cls, directory: str | Path) -> GBDTRegressor:
        """Read a model written by :meth:`save`."""
        d = Path(directory)
        try:
            meta = json.loads((d / "gbdt.json").read_text())
            means = []
            for f in meta.get("mean_files", [_mean_file(0)]):
                if Path(f).name != f:  # names only: metadata must not point outside the folder
                    raise ValueError(f"bad model file name {f!r}")
                means.append(xgb.Booster())
                means[-1].load_model(str(d / f))
            quant = None
            if meta.get("interval"):
                quant = xgb.Booster()
                quant.load_model(str(d / "gbdt_quantile.ubj"))
        except (OSError, ValueError, KeyError, xgb.core.XGBoostError) as e:
            raise PredictorError(f"GBDT model files in {d} are missing or unreadable ({e}); "
                                 f"retrain with `hwlat train DEVICE`") from None
        model = cls(configs=[meta["best_config"]], n_folds=meta.get("n_folds", 3),
                    interval=quant is not None, seed=meta.get("seed", 0))
        model.best_config_ = meta["best_config"]
        model.n_rounds_ = meta["n_rounds"]
        model.cv_results_ = meta.get("cv_results", [])
        model.n_features_ = meta["n_features"]
        model.calibration_ = meta.get("calibration")
        model.members_ = meta.get("members", [{"config": meta["best_config"], "n_rounds": meta["n_rounds"],
                                               "seed": meta.get("seed", 0)}])
        model.n_ensemble = len({json.dumps(m["config"], sort_keys=True) for m in model.members_})
        model.n_seeds = max(1, len(model.members_) // model.n_ensemble)
        model._means, model._quant = means, quant
        return model
