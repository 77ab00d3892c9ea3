"""A model with operators no kernel covers is never a plain answer: warning + widened interval,
``--strict`` / ``strict=True`` refuse it, and the Oracle refuses it by default. Also ``timm:NAME``
models end to end. Predictors are trained on the real ``local`` profile of test_predictor_e2e."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch
import torch.nn as nn

# the session fixtures that profile and train on `local` (imported so they are defined here too)
from test_predictor_e2e import profile_root, trained  # noqa: F401

from hwlat.errors import UnsupportedOperatorError, UnsupportedOperatorWarning


class CumSumNet(nn.Module):
    """Conv → CumSum (no kernel type covers it) → pool → linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(3, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.c(x)).cumsum(1)
        return self.fc(y.mean((2, 3)))


@pytest.fixture(scope="module")
def cumsum_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hwlat.export import torch_to_onnx

    p = tmp_path_factory.mktemp("unsupported") / "cumsum.onnx"
    torch_to_onnx(CumSumNet(), (1, 3, 32, 32), p)
    return p


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HWLAT_PROFILES": str(root)}
    return subprocess.run([sys.executable, "-m", "hwlat", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_unsupported_operators_warn_and_widen_the_interval(trained: dict, cumsum_onnx: Path) -> None:  # noqa: F811
    from hwlat.decompose import kernels_of

    pred = trained["gbdt"].predictor
    dec = kernels_of(cumsum_onnx)
    assert [u["op_type"] for u in dec.unsupported] == ["CumSum"]
    with pytest.warns(UnsupportedOperatorWarning, match="CumSum x1.*cover 80 %"):
        p = pred.predict(cumsum_onnx)
    # Conv+Relu, ReduceMean, Gemm: 4 nodes in kernels, CumSum 1: 4 of 5 operators
    assert p.unsupported == ["CumSum x1"] and p.coverage == pytest.approx(0.8)
    assert p.coverage_basis == "ONNX operators (count)"
    plain = pred.predict(list(dec.kernels))  # the same kernels without the missing operator
    assert plain.unsupported == [] and plain.coverage == 1.0
    assert p.latency_ms == pytest.approx(plain.latency_ms) and p.low_ms == pytest.approx(plain.low_ms)
    assert p.high_ms == pytest.approx(plain.high_ms / 0.8)
    with pytest.raises(UnsupportedOperatorError, match="CumSum x1.*cover 80 %.*hwlat kernels") as e:
        pred.predict(cumsum_onnx, strict=True)
    assert e.value.operators == ["CumSum"] and "\n" not in str(e.value)


def test_oracle_refuses_unsupported_operators_by_default(trained: dict) -> None:  # noqa: F811
    from hwlat.oracle import Oracle

    pred = trained["gbdt"].predictor
    net = CumSumNet()
    with pytest.raises(UnsupportedOperatorError, match="CumSum"):
        Oracle.from_predictor(pred, space="ofa_mbv3").predict(net, (1, 3, 32, 32))
    lenient = Oracle.from_predictor(pred, space="ofa_mbv3", strict=False)
    with pytest.warns(UnsupportedOperatorWarning, match="CumSum"):
        m, lo, hi = lenient.predict(net, (1, 3, 32, 32))
    assert 0 < lo <= m < hi


def test_cli_strict_refuses_and_json_carries_the_coverage(trained: dict, profile_root: Path,  # noqa: F811
                                                          cumsum_onnx: Path) -> None:
    r = _cli(profile_root, "predict", str(cumsum_onnx), "--device", "local", "--kind", "gbdt", "--strict")
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "CumSum x1" in r.stderr and "hwlat kernels" in r.stderr
    r = _cli(profile_root, "predict", str(cumsum_onnx), "--device", "local", "--kind", "gbdt", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["unsupported"] == ["CumSum x1"] and d["coverage"] == pytest.approx(0.8)
    assert d["unsupported_share"] == pytest.approx(0.2) and d["coverage_basis"] == "ONNX operators (count)"
    r = _cli(profile_root, "predict", str(cumsum_onnx), "--device", "local", "--kind", "gbdt")
    assert r.returncode == 0 and "WARNING: incomplete prediction" in r.stderr and "CumSum x1" in r.stderr


def test_cli_predicts_a_timm_model_by_name(trained: dict, profile_root: Path,  # noqa: F811
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("timm") is None:
        pytest.skip("timm is not installed (pip install 'hwlat[timm]')")
    r = _cli(profile_root, "predict", "timm:convnext_atto", "--input", "1x3x224x224", "--device", "local",
             "--kind", "gbdt", "--json", "--strict")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["unsupported"] == [] and d["coverage"] == 1.0 and d["latency_ms"] > 0
    assert {"layernorm", "dwconv", "linear"} <= {k["type"] for k in d["kernels"]}
    export = profile_root / ".cache" / "timm" / "convnext_atto_1x3x224x224.onnx"
    assert onnx.load(str(export)).opset_import[0].version == 17  # exported once into the profiles cache
    # the Python equivalent reads the cached export
    monkeypatch.setenv("HWLAT_PROFILES", str(profile_root))
    p = trained["gbdt"].predictor.predict("timm:convnext_atto", input_shape=(1, 3, 224, 224), strict=True)
    assert p.latency_ms == pytest.approx(d["latency_ms"])
    r = _cli(profile_root, "predict", "timm:convnext_nosuch", "--device", "local", "--kind", "gbdt")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "timm has no model 'convnext_nosuch'" in r.stderr
