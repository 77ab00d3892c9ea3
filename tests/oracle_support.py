"""Shared by tests/test_oracle_*.py and tests/test_adapters_*.py: a small REAL profile of the local
device and a real predictor trained on it (``hwlat.predictors.training.train``), built once per session.

The profile holds the distinct kernels of a few OFA-MobileNetV3 subnets at three resolutions, measured
with short settings on the built-in ``local`` device (onnxruntime, 1 thread).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

QUICK_MEASURE = {"min_runs": 5, "max_time_s": 0.05, "warmup_max_s": 0.02, "warmup_min_runs": 2, "ci_rel": 0.1}


def build_predictor(root: Path) -> Any:
    """Profile ~200 real kernels into ``root`` and train the device predictor there."""
    from hwlat.devices import get_device
    from hwlat.kernels.export import export_kernel
    from hwlat.predictors.predictor import Predictor
    from hwlat.predictors.training import train
    from hwlat.profiling import profile
    from hwlat.profiling.items import Item
    from hwlat.profiling.sources import cache_dir
    from hwlat.spaces import get_space
    from hwlat.store import ProfileStore

    sp = get_space("ofa_mbv3")
    rng = np.random.default_rng(0)
    kernels: dict[str, Any] = {}
    for r in (128, 176, 224):
        for _ in range(2):
            a = dict(sp.sample(rng), r=r)
            for k in sp.encode(a):
                kernels.setdefault(k.key(), k)
    with pytest.MonkeyPatch.context() as mp:  # kernel exports are cached under the profiles root
        mp.setenv("HWLAT_PROFILES", str(root))
        items = []
        for k in kernels.values():
            p = export_kernel(k, "onnx", cache_dir("kernels", "onnx"))
            items.append(Item(table="kernels", name=f"{k.type}:{p.stem}", file=p, kernel_type=k.type,
                              config=dict(k.config)))
        summary = profile(get_device("local"), items, ProfileStore("local", root=root), measure=QUICK_MEASURE)
        assert summary.error is None and summary.measured == len(items), summary.to_dict()
        train("local", root=root, fast=True)
    return Predictor.load("local", root=root)


_BUILT: dict[str, tuple[Any, Path]] = {}


def session_predictor(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """(predictor, profiles root), built once per test session whichever test module asks first."""
    if "pred" not in _BUILT:
        root = tmp_path_factory.mktemp("oracle_profiles")
        _BUILT["pred"] = (build_predictor(root), root)
    return _BUILT["pred"]


_ORACLES: dict[str, Any] = {}


def shared_oracle(pred: Any, space: str) -> Any:
    """One oracle per space for the session (its lookup table is built once)."""
    from hwlat.oracle import Oracle

    if space not in _ORACLES:
        _ORACLES[space] = Oracle.from_predictor(pred, space)
    return _ORACLES[space]
