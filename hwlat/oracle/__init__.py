"""Latency oracle for NAS search loops: ``hwlat.Oracle`` (ms; cached; vectorised; exact bounds;
differentiable surrogate). Adapters for searchers live in :mod:`hwlat.adapters`."""

from __future__ import annotations

from hwlat.oracle.models import AGGREGATES, KernelSumModel, LatencyModel, PredictorModel, as_latency_model
from hwlat.oracle.oracle import Bounds, InfeasibleBudgetError, Oracle

__all__ = ["AGGREGATES", "Bounds", "InfeasibleBudgetError", "KernelSumModel", "LatencyModel", "Oracle",
           "PredictorModel", "as_latency_model"]
