"""Export a torch module to the file format a runtime runs (onnx, tflite, pt2)."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hwlat.errors import ConfigError

RUNTIME_FORMAT = {"onnxruntime": "onnx", "tensorrt": "onnx", "tflite": "tflite", "benchmark_model": "tflite",
                  "tflm": "tflite_int8", "torch": "pt2"}
#: file name suffix of each format (the int8 one still ends in .tflite: TFLM loads it)
SUFFIX = {"onnx": "onnx", "tflite": "tflite", "tflite_int8": "int8.tflite", "pt2": "pt2"}


def format_for(runtime: str) -> str:
    try:
        return RUNTIME_FORMAT[runtime]
    except KeyError:
        raise ConfigError(f"no model format known for runtime {runtime!r}") from None


def export_seeded(build: Callable[[], Any], input_shape: tuple[int, ...], fmt: str, path: Path, key: str) -> Path:
    """:func:`export_module` of ``build()``, built under a torch seed derived from ``key``.

    A model's identity in the store is its file's sha256, so random weight inits would make each fresh
    export of the same subnet a new item (and move it across the held-out split).
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(hashlib.sha256(key.encode()).hexdigest()[:8], 16))
        return export_module(build(), input_shape, fmt, path)


def export_module(module: Any, input_shape: tuple[int, ...], fmt: str, path: Path) -> Path:
    """Write ``module`` (eval mode, input of ``input_shape``) to ``path`` in ``fmt``; atomic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    if fmt == "pt2":
        tmp = tmp.with_suffix(".pt2")  # torch.export.save insists on the suffix
    try:
        if fmt == "onnx":
            from hwlat.export.onnx_export import torch_to_onnx

            torch_to_onnx(module, input_shape, tmp)
        elif fmt == "pt2":
            import torch

            module = module.eval()
            ep = torch.export.export(module, (torch.randn(*input_shape),))
            torch.export.save(ep, str(tmp))
        elif fmt in ("tflite", "tflite_int8"):
            from hwlat.export.tflite_export import torch_to_tflite

            torch_to_tflite(module, input_shape, tmp, quantize="int8" if fmt == "tflite_int8" else None)
        else:
            raise ConfigError(f"unknown export format {fmt!r}; use onnx, tflite or pt2")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
