"""Subnet-level latency models: one estimator per search space on the space's arch features.

Trained on the space's whole-subnet measurements, so they see inter-kernel effects the kernel sum
misses; they only serve archs of their own space.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwlat.predictors.artifacts import PredictorArtifact, load_predictor, save_predictor
from hwlat.predictors.features import subnet_features
from hwlat.predictors.kernel_models import make_estimator
from hwlat.predictors.range_check import RangeCheck

#: fewer measured subnets than this and no subnet model is trained for the space
MIN_SUBNETS = 20


class SubnetModel:
    """A GBDT/MLP on ``space.features(arch)`` for one search space."""

    def __init__(self, space_name: str, kind: str = "gbdt", fast: bool = False, seed: int = 0) -> None:
        self.space_name = space_name
        self.kind = kind
        self.fast = fast
        self.seed = seed
        self.part: PredictorArtifact | None = None

    @property
    def space(self) -> Any:
        from hwlat.spaces import get_space

        return get_space(self.space_name)

    def fit(self, archs: Sequence[Any], y: np.ndarray) -> SubnetModel:
        """Fit on archs of the space and their measured latencies (ms)."""
        sp = self.space
        X = subnet_features(sp, archs)
        y = np.asarray(y, dtype=np.float64)
        est = make_estimator(self.kind, len(y), self.fast, self.seed).fit(X, y)
        names = list(sp.feature_names())
        self.part = PredictorArtifact(model=est, meta={"kind": self.kind, "feature_names": names, "X": X, "y": y},
                                      range_check=RangeCheck(names).fit(X))
        return self

    def predict(self, archs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """(mean, low, high, out-of-range feature names over all ``archs``)."""
        assert self.part is not None
        X = subnet_features(self.space, archs)
        m, lo, hi = self.part.predict(X, return_interval=True)
        return m, lo, hi, [f"{self.space_name}.{n}" for n in self.part.out_of_range(X)]

    def save(self, directory: str | Path, device: str, fingerprint_id: str | None,
             metrics: dict[str, Any] | None = None) -> Path:
        assert self.part is not None and "X" in self.part.meta
        return save_predictor(directory, self.part.model, device=device, feature_names=self.part.feature_names,
                              X_train=self.part.meta["X"], y_train=self.part.meta["y"],
                              fingerprint_id=fingerprint_id, metrics=metrics,
                              extra={"space": self.space_name, "level": "subnet"})

    @classmethod
    def load(cls, directory: str | Path, device: str, space_name: str) -> SubnetModel:
        art = load_predictor(directory, expected_device=device)
        m = cls(space_name, art.kind)
        m.part = art
        return m
