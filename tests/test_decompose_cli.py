"""`hwlat kernels` command function: table and JSON output on real ONNX files."""

from __future__ import annotations

import json

import onnx
import pytest
import typer
from onnx import TensorProto, helper
from typer.testing import CliRunner

from hwlat.cli.kernels_cmd import kernels_command
from hwlat.errors import ModelFileError, UnsupportedOperatorError
from hwlat.kernels import get

app = typer.Typer()
app.command()(kernels_command)
runner = CliRunner()


def _model(tmp_path, custom: bool) -> str:
    w = helper.make_tensor("w", TensorProto.FLOAT, [8, 3, 3, 3], [0.1] * 216)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["y"])]
    if custom:
        nodes.append(helper.make_node("Frobnicate", ["y"], ["z"], domain="org.acme", name="frob"))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                          [helper.make_tensor_value_info("z" if custom else "y", TensorProto.FLOAT, None)], [w])
    p = tmp_path / ("custom.onnx" if custom else "m.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("org.acme", 1)]),
              str(p))
    return str(p)


def test_json_output(tmp_path) -> None:
    r = runner.invoke(app, [_model(tmp_path, False), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["unsupported"] == []
    assert [k["type"] for k in out["kernels"]] == ["conv_bn_act", "global_pool"]
    k0 = out["kernels"][0]
    assert k0["config"]["act"] == "relu" and k0["outputs"] == [[1, 8, 16, 16]]
    assert k0["flops"] == get("conv_bn_act").flops(k0["config"]) > 2 * 16 * 16 * 8 * 27
    assert out["totals"]["kernels"] == 2


def test_table_lists_kernels_and_unsupported(tmp_path) -> None:
    r = runner.invoke(app, [_model(tmp_path, True)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "conv_bn_act" in r.output and "global_pool" in r.output
    assert "org.acme::Frobnicate" in r.output and "frob" in r.output
    r = runner.invoke(app, [_model(tmp_path, True), "--json"])
    assert json.loads(r.output)["unsupported"][0]["op_type"] == "Frobnicate"


def test_errors_are_hwlat_errors(tmp_path) -> None:
    r = runner.invoke(app, [str(tmp_path / "nope.onnx")])
    assert isinstance(r.exception, ModelFileError) and "not found" in str(r.exception)
    r = runner.invoke(app, [_model(tmp_path, True), "--strict"])
    assert isinstance(r.exception, UnsupportedOperatorError)


@pytest.mark.parametrize("name", ["zoo:mobilenet_v3_small"])
def test_zoo_name(name: str) -> None:
    r = runner.invoke(app, [name, "--json", "--runtime", "tflite"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["runtime"] == "tflite" and out["unsupported"] == [] and len(out["kernels"]) > 40
