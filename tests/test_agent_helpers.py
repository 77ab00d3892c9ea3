"""Shared helpers for the device-agent tests: tiny real models and a real agent subprocess.

No tests here; the test_agent_*.py files import it.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

AGENT_DIR = Path(__file__).resolve().parent.parent / "device_agents"
EVENTS = {"hello", "fingerprint", "result", "error", "done", "check"}

# Small budgets so a run takes well under a second per item on a loaded 2-core box.
FAST_MEASURE: dict[str, Any] = {"warmup_min_runs": 2, "warmup_max_runs": 50, "warmup_max_s": 0.05,
                                "min_runs": 10, "max_runs": 2000, "max_time_s": 0.3,
                                "ci_rel": 0.02, "confidence": 0.95, "seed": 0}


def make_rundir(tmp_path: Path) -> Path:
    """A run directory holding a copy of the agent files, as the host ships them."""
    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    for f in glob.glob(str(AGENT_DIR / "*.py")):
        shutil.copy(f, run)
    return run


def make_conv_onnx(path: Path, channels: int, hw: int, k: int = 3, dynamic_batch: bool = True) -> Path:
    """A single Conv (channels -> channels, kxk, same padding) ONNX model."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(1).standard_normal((channels, channels, k, k)).astype(np.float32)
    shape = ["N" if dynamic_batch else 1, channels, hw, hw]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["y"], pads=[k // 2] * 4)], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_matmul_onnx(path: Path, m: int, k: int, n: int) -> Path:
    """x[m,k] @ W[k,n] + relu, as an ONNX model."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(2).standard_normal((k, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_fc_tflite(path: Path, k: int, n: int, batch: int = 1) -> Path:
    """A single FULLY_CONNECTED TFLite flatbuffer, built with LiteRT's schema (no TensorFlow)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    buffers = [s.BufferT()]  # buffer 0 is the conventional empty buffer

    def buf(arr: np.ndarray) -> int:
        b = s.BufferT()
        b.data = bytearray(arr.tobytes())
        buffers.append(b)
        return len(buffers) - 1

    def tensor(name: str, shape: list[int], buffer: int = 0) -> Any:
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, s.TensorType.FLOAT32, buffer
        return t

    rng = np.random.default_rng(3)
    tensors = [tensor("x", [batch, k]), tensor("w", [n, k], buf(rng.standard_normal((n, k)).astype(np.float32))),
               tensor("b", [n], buf(np.zeros(n, np.float32))), tensor("y", [batch, n])]
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType = s.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = s.FullyConnectedOptionsT()
    sg = s.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators, sg.name = tensors, [0], [3], [op], "main"
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [sg], buffers
    model.description = "hwlat agent test"
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    path.write_bytes(b.Output())
    return path


def write_manifest(run: Path, runtime: str, items: list[tuple[str, str]], options: dict[str, Any] | None = None,
                   measure: dict[str, Any] | None = None, name: str = "manifest.json") -> Path:
    man = {"protocol_version": 1, "run_id": "test-run", "runtime": runtime,
           "runtime_options": options if options is not None else {"threads": 1},
           "measure": dict(FAST_MEASURE, **(measure or {})),
           "items": [{"id": i, "file": f} for i, f in items]}
    path = run / name
    path.write_text(json.dumps(man))
    return path


def run_agent(run: Path, *args: str, timeout: float = 180) -> tuple[int, list[dict[str, Any]], str]:
    """Run the copied agent in `run` (isolated mode: hwlat cannot be imported by accident).

    Returns (exit code, events, stderr); fails the test if stdout holds anything but events.
    """
    proc = subprocess.run([sys.executable, "-I", "hwlat_agent.py", *args], cwd=str(run),
                          capture_output=True, text=True, timeout=timeout,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    events = []
    for line in proc.stdout.splitlines():
        obj = json.loads(line)  # a non-JSON line is a protocol violation
        assert isinstance(obj, dict) and obj.get("event") in EVENTS, line
        events.append(obj)
    return proc.returncode, events, proc.stderr


def check_stats(stats: dict[str, Any], measure: dict[str, Any]) -> None:
    """Sanity of one result's statistics, incl. the converged flag recomputed from the CI rule."""
    for key in ("median_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "p10_ms", "p90_ms", "ci_low_ms",
                "ci_high_ms", "runs", "warmup_runs", "converged", "measure_s"):
        assert key in stats, key
    assert 0 <= stats["min_ms"] <= stats["p10_ms"] <= stats["median_ms"] <= stats["p90_ms"] <= stats["max_ms"]
    assert stats["min_ms"] <= stats["ci_low_ms"] <= stats["median_ms"] <= stats["ci_high_ms"] <= stats["max_ms"]
    assert stats["min_ms"] <= stats["mean_ms"] <= stats["max_ms"]
    assert stats["std_ms"] >= 0
    assert measure["min_runs"] <= stats["runs"] <= measure["max_runs"]
    assert measure["warmup_min_runs"] <= stats["warmup_runs"] <= measure["warmup_max_runs"]
    med, rel = stats["median_ms"], measure["ci_rel"]
    within = stats["ci_low_ms"] >= med * (1 - rel) and stats["ci_high_ms"] <= med * (1 + rel)
    assert stats["converged"] == within
    if not stats["converged"]:  # it may only stop unconverged at a cap
        assert stats["runs"] == measure["max_runs"] or stats["measure_s"] >= measure["max_time_s"]
