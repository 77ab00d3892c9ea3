"""Kernel export registry and its content-addressed cache."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest

import hwlat.kernels as K
from hwlat.errors import ConfigError
from hwlat.kernels import export as ex


def _kernel() -> K.Kernel:
    return K.get("conv_bn_act").make(h=14, w=14, cin=16, cout=32, k=3, s=2, groups=1, act="hswish", residual=0)


def test_onnx_export_writes_hash_named_model(tmp_path: Path) -> None:
    k = _kernel()
    p = ex.export_kernel(k, "onnx", tmp_path / "models")
    assert p.name == hashlib.sha256(k.key().encode()).hexdigest()[:16] + ".onnx"
    onnx.checker.check_model(onnx.load(str(p)))
    sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    assert [tuple(i.shape) for i in sess.get_inputs()] == list(k.inputs)
    assert sorted(x.name for x in p.parent.iterdir()) == [p.name]  # no temp files left


def test_export_is_cached(tmp_path: Path) -> None:
    k = _kernel()
    p = ex.export_kernel(k, "onnx", tmp_path)
    before = p.stat()
    assert ex.export_kernel(K.Kernel(k.type, dict(k.config)), "onnx", tmp_path) == p
    after = p.stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    other = K.get("conv_bn_act").make(**{**k.config, "cout": 24})
    assert ex.export_kernel(other, "onnx", tmp_path) != p


def test_unknown_format_lists_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="onnx"):
        ex.export_kernel(_kernel(), "tensorrt", tmp_path)


def test_new_format_is_one_registration(tmp_path: Path) -> None:
    def write(kernel: K.Kernel, path: Path) -> None:
        path.write_text(json.dumps(kernel.to_dict()))

    ex.register_exporter("test-json", "json", write)
    try:
        assert "test-json" in ex.formats()
        p = ex.export_kernel(_kernel(), "test-json", tmp_path)
        assert p.suffix == ".json" and json.loads(p.read_text())["type"] == "conv_bn_act"
        with pytest.raises(ValueError, match="twice"):
            ex.register_exporter("test-json", "json", write)
    finally:
        ex._EXPORTERS.pop("test-json", None)


def test_invalid_kernel_is_refused_before_writing(tmp_path: Path) -> None:
    bad = K.Kernel("conv2d", {"h": 8, "w": 8, "cin": 16, "cout": 16, "k": 3, "s": 1, "groups": 16, "residual": 0})
    with pytest.raises(ValueError, match="'groups'"):
        ex.export_kernel(bad, "onnx", tmp_path)
    assert list(tmp_path.iterdir()) == []
