"""Model → kernel decomposition: walk an ONNX graph, apply a runtime's fusion rules (docs/kernels.md)."""

from __future__ import annotations

from hwlat.decompose.core import Decomposition, kernels_of
from hwlat.decompose.rules import RuleSet, get_rules, register, runtimes

#: Part of every cached kernel list's key: bump when kernel configs or decompositions change (a new
#: feature alone does not; the cached kernel lists stay valid).
DECOMPOSITION_VERSION = 5

__all__ = ["DECOMPOSITION_VERSION", "Decomposition", "RuleSet", "get_rules", "kernels_of", "register", "runtimes"]
