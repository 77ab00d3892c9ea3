"""hwlat: hardware-aware latency profiler and predictor for neural networks.

Flow: devices → profiling (agent on the device) → store → kernels/decompose/spaces →
predictors → oracle → adapters for NAS searchers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from hwlat.devices import Device, get_device, load_devices
from hwlat.errors import HwlatError
from hwlat.store import ProfileStore

if TYPE_CHECKING:
    from hwlat.decompose import kernels_of
    from hwlat.oracle import Oracle
    from hwlat.predictors import Predictor

_LAZY = {"kernels_of": "hwlat.decompose", "Predictor": "hwlat.predictors", "Oracle": "hwlat.oracle",
         "get_space": "hwlat.spaces"}


def __getattr__(name: str) -> Any:
    """Heavy parts (onnx graph walking, xgboost, torch) load on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hwlat' has no attribute {name!r}")


__all__ = ["Device", "HwlatError", "Oracle", "Predictor", "ProfileStore", "get_device", "get_space",
           "kernels_of", "load_devices", "__version__"]
