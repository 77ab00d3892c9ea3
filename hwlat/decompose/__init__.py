"""Model → kernel decomposition: walk an ONNX graph, apply a runtime's fusion rules (docs/kernels.md)."""

from __future__ import annotations

from hwlat.decompose.core import Decomposition, kernels_of
from hwlat.decompose.rules import RuleSet, get_rules, register, runtimes

__all__ = ["Decomposition", "RuleSet", "get_rules", "kernels_of", "register", "runtimes"]
