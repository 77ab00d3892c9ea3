"""Training-range check: flags features of a query that lie outside what the model was trained on."""

from __future__ import annotations

from typing import Any

import numpy as np


class RangeCheck:
    """Per-feature min/max seen in training; :meth:`out_of_range` names the features outside it."""

    def __init__(self, feature_names: list[str] | None = None, rel_tol: float = 1e-9) -> None:
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.rel_tol = rel_tol
        self.min_: np.ndarray | None = None
        self.max_: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> RangeCheck:
        """Record per-column min/max of the training features ``X`` (n, d)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"X must be a non-empty 2-D array, got shape {X.shape}")
        if self.feature_names is None:
            self.feature_names = [f"f{i}" for i in range(X.shape[1])]
        if len(self.feature_names) != X.shape[1]:
            raise ValueError(f"{len(self.feature_names)} feature names for {X.shape[1]} columns")
        self.min_, self.max_ = X.min(axis=0), X.max(axis=0)
        return self

    def mask(self, X: np.ndarray) -> np.ndarray:
        """Boolean (n, d): True where a value lies outside the training range of its column."""
        if self.min_ is None or self.max_ is None:
            raise ValueError("RangeCheck is not fitted")
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if X.shape[1] != len(self.min_):
            raise ValueError(f"X has {X.shape[1]} features, the range was fitted on {len(self.min_)}")
        # A tolerance relative to the column's span so float round-trips through JSON never flag.
        tol = self.rel_tol * np.maximum(np.abs(self.max_ - self.min_), 1.0)
        lo, hi = self.min_ - tol, self.max_ + tol
        return np.less(X, lo) | np.greater(X, hi) | ~np.isfinite(X)

    def out_of_range(self, X: np.ndarray) -> list[str]:
        """Names of the features for which any row of ``X`` is outside the training range."""
        bad = self.mask(X).any(axis=0)
        assert self.feature_names is not None
        return [n for n, b in zip(self.feature_names, bad, strict=True) if b]

    def to_dict(self) -> dict[str, Any]:
        if self.min_ is None or self.max_ is None:
            raise ValueError("RangeCheck is not fitted")
        return {"feature_names": self.feature_names, "min": self.min_.tolist(), "max": self.max_.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RangeCheck:
        rc = cls(d["feature_names"])
        rc.min_ = np.asarray(d["min"], dtype=np.float64)
        rc.max_ = np.asarray(d["max"], dtype=np.float64)
        return rc
