"""Piecewise-linear encoding of numeric features for the MLP (Gorishniy et al., NeurIPS 2022).

Kernel latency moves in steps: a channel count that fills one more vector block, an output that
crosses a cache size. Trees cut there for free; an MLP on the raw standardized features has to
bend ReLUs into steps and smooths them over. Splitting each feature at its training quantiles
and feeding the net how far a value lies into every bin gives it those cut points directly. On
local's held-out kernels (eight suite draws), the MLP's ±10 % share: raw features 92.6 % (six
raw-feature members had stayed at 92.0 ± 0.4 % over widths, depths and learning rates), 16 bins
94.2 %, with a Huber loss at 5 % 95.1 %, members on 8 and 16 bins with it 95.3 % (95.2 % with
another seed).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class PiecewiseLinear:
    """Per feature: the raw value plus one column per quantile bin, ``clip((x - lo) / (hi - lo), 0, 1)``.

    The first and last bins extrapolate linearly beyond the training range instead of saturating,
    so an input outside it still moves the prediction. Features with at most two distinct
    training values (flags, one-hots) pass through as they are.
    """

    def __init__(self, n_bins: int = 16) -> None:
        if n_bins < 2:
            raise ValueError(f"n_bins must be >= 2, got {n_bins}")
        self.n_bins = n_bins
        self.edges_: list[np.ndarray | None] | None = None

    def fit(self, X: np.ndarray) -> PiecewiseLinear:
        """Bin edges at the training quantiles of each column of ``X`` (n, d)."""
        X = np.asarray(X, dtype=np.float64)
        self.edges_ = []
        for col in X.T:
            if len(np.unique(col)) <= 2:
                self.edges_.append(None)
                continue
            q = np.unique(np.quantile(col, np.linspace(0.0, 1.0, self.n_bins + 1)))
            self.edges_.append(q if len(q) > 2 else None)
        return self

    @property
    def n_out(self) -> int:
        """Width of the encoded matrix."""
        assert self.edges_ is not None
        return sum(1 if e is None else len(e) for e in self.edges_)  # len(e) - 1 bins + the raw value

    def transform(self, X: np.ndarray) -> np.ndarray:
        """The encoded ``X``: ``(n, n_out)``."""
        if self.edges_ is None:
            raise ValueError("PiecewiseLinear is not fitted")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.edges_):
            raise ValueError(f"X must be (n, {len(self.edges_)}), got {X.shape}")
        cols = []
        for x, e in zip(X.T, self.edges_, strict=True):
            cols.append(x[:, None])
            if e is None:
                continue
            lo, hi = e[:-1], e[1:]
            t = np.clip((x[:, None] - lo) / (hi - lo), 0.0, 1.0)
            t[:, 0] = np.where(x < lo[0], (x - lo[0]) / (hi[0] - lo[0]), t[:, 0])
            t[:, -1] = np.where(x > hi[-1], 1.0 + (x - hi[-1]) / (hi[-1] - lo[-1]), t[:, -1])
            cols.append(t)
        return np.hstack(cols)

    def to_json(self) -> dict[str, Any]:
        assert self.edges_ is not None
        return {"n_bins": self.n_bins, "edges": [None if e is None else e.tolist() for e in self.edges_]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PiecewiseLinear:
        enc = cls(int(d["n_bins"]))
        enc.edges_ = [None if e is None else np.asarray(e, dtype=np.float64) for e in d["edges"]]
        return enc
