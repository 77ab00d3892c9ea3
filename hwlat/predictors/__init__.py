"""Latency predictors: estimators (GBDT, MLP, few-shot transfer), metrics and on-disk artifacts.

Estimators are sklearn-style (``fit(X, y)``, ``predict(X, return_interval=False)``) on plain
numpy arrays of features and latencies in ms; they fit log-latency internally.
"""

from __future__ import annotations

from hwlat.predictors.artifacts import (
    SCHEMA_VERSION,
    PredictorArtifact,
    data_hash,
    load_predictor,
    read_meta,
    save_predictor,
)
from hwlat.predictors.gbdt import GBDTRegressor

# Device predictors (kernel sum + overhead, subnet models, transfer); no torch at import.
from hwlat.predictors.kernel_models import KernelLevelModel, OverheadModel
from hwlat.predictors.metrics import accuracy_within, kendall, mape, report, rmse, spearman
from hwlat.predictors.predictor import Prediction, Predictor, TransferPredictor
from hwlat.predictors.range_check import RangeCheck
from hwlat.predictors.subnet import SubnetModel
from hwlat.predictors.transfer import TransferRegressor, transfer_curve, transfer_features

__all__ = [
    "SCHEMA_VERSION", "GBDTRegressor", "PredictorArtifact", "RangeCheck", "TransferRegressor",
    "accuracy_within", "data_hash", "kendall", "load_predictor", "mape", "read_meta", "report", "rmse",
    "save_predictor", "spearman", "transfer_curve", "transfer_features",
    "KernelLevelModel", "OverheadModel", "Prediction", "Predictor", "SubnetModel", "TransferPredictor",
    "evaluate", "plot_breakdown", "plot_scatter", "train", "train_transfer",
]

_LAZY = {"train": "hwlat.predictors.training", "train_transfer": "hwlat.predictors.training",
         "evaluate": "hwlat.predictors.evaluation", "plot_breakdown": "hwlat.predictors.plots",
         "plot_scatter": "hwlat.predictors.plots"}


def __getattr__(name: str):  # MLPRegressor imports torch: only on first use
    if name == "MLPRegressor":
        from hwlat.predictors.mlp import MLPRegressor
        return MLPRegressor
    if name in _LAZY:  # training/evaluation/plots pull in the store, pandas and matplotlib
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
