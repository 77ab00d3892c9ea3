"""TFLite (XNNPACK delegate): as onnxruntime, but the residual Add stays a separate ``add`` kernel."""

from __future__ import annotations

from hwlat.decompose.rules import RuleSet, register
from hwlat.decompose.rules_onnxruntime import PASSES

TFLITE = register(RuleSet("tflite", PASSES, fuse_residual=False, doc="residual Add is its own kernel"))
