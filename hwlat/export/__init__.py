"""Model exporters: torch → ONNX here; other formats (tflite, …) live in sibling modules."""

from __future__ import annotations

from hwlat.export.onnx_export import graph_hash, torch_to_onnx

__all__ = ["graph_hash", "torch_to_onnx"]
