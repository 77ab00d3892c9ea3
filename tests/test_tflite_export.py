"""Torch → .tflite with litert-torch (float, channel-last I/O) and int8 PTQ, through the kernel cache."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("litert_torch", reason="litert-torch is not installed")
pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")

import hwlat.kernels as K  # noqa: E402
from hwlat.errors import ConfigError  # noqa: E402
from hwlat.export.tflite_export import export_kernels, torch_to_tflite  # noqa: E402


def _interp(path: Path):  # type: ignore[no-untyped-def]
    from ai_edge_litert import interpreter

    it = interpreter.Interpreter(model_path=str(path))
    it.allocate_tensors()
    return it


def test_float_kernel_matches_torch_and_is_cached(tmp_path: Path) -> None:
    import torch

    kt = K.get("conv_bn_act")
    k = kt.make(h=8, w=8, cin=8, cout=16, k=3, s=2, groups=1, act="relu6", residual=0)
    [res] = export_kernels([k], tmp_path, workers=1)
    assert res.error is None and res.path is not None and res.path.suffix == ".tflite" and not res.cached
    it = _interp(res.path)
    ops = {d["op_name"] for d in it._get_ops_details()}
    assert "CONV_2D" in ops and "TRANSPOSE" not in ops  # channel-last I/O: no layout ops around the kernel
    [inp], [out] = it.get_input_details(), it.get_output_details()
    assert list(inp["shape"]) == [1, 8, 8, 8] and list(out["shape"]) == [1, 4, 4, 16]  # NHWC
    x = np.random.default_rng(0).uniform(-1, 1, size=(1, 8, 8, 8)).astype(np.float32)
    it.set_tensor(inp["index"], x)
    it.invoke()
    y = it.get_tensor(out["index"])
    with torch.no_grad():
        ref = kt.build_torch(k.config)(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    t0 = time.perf_counter()
    [again] = export_kernels([k, k], tmp_path, workers=2)[:1]
    assert again.cached and again.path == res.path and time.perf_counter() - t0 < 1.0


def test_int8_module_has_int8_io_and_all_ops_quantized(tmp_path: Path) -> None:
    import torch

    class AddSoftmax(torch.nn.Module):
        def forward(self, a, b):  # type: ignore[no-untyped-def]
            return torch.softmax(a + b, dim=-1)

    p = torch_to_tflite(AddSoftmax(), [(1, 8, 32), (1, 8, 32)], tmp_path / "m.tflite", quantize="int8")
    it = _interp(p)
    assert [d["dtype"] for d in it.get_input_details()] == [np.int8, np.int8]
    assert it.get_output_details()[0]["dtype"] == np.int8
    ops = [d["op_name"] for d in it._get_ops_details() if d["op_name"] != "DELEGATE"]  # XNNPACK's node
    assert ops == ["ADD", "SOFTMAX"]  # no float islands (DEQUANTIZE/QUANTIZE) an MCU build would lack
    assert p.stat().st_size < 4096


def test_bad_quantization_mode(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="int8"):
        export_kernels([K.get("softmax").make(rows=2, cols=4)], tmp_path, quantize="int4")
