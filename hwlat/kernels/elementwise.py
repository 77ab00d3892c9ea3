"""Elementwise kernels: ``add``, ``mul`` (two activations) and standalone ``activation``.

Activations are viewed as ``[1, c, hw]`` (an NCHW map with hw = H·W, or tokens with c = D,
hw = T: same memory traffic). broadcast=1 makes the second operand ``[1, c, 1]`` (the
``[1, C, 1, 1]`` per-channel operand of NCHW maps). FLOPs: 1 per output element for add/mul,
ACT_FLOPS per element for activations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hwlat.kernels.base import ACTIVATIONS, Shape
from hwlat.kernels.common import ACT_FLOPS, define, need, need_choice, need_positive
from hwlat.kernels.onnx_graph import Graph

Cfg = Mapping[str, Any]


def _make_binary(name: str, op: str) -> None:
    def inputs(c: Cfg) -> tuple[Shape, ...]:
        return ((1, c["c"], c["hw"]), (1, c["c"], 1) if c["broadcast"] else (1, c["c"], c["hw"]))

    def check(c: Cfg) -> None:
        need_positive(name, c, "c", "hw")
        need_choice(name, c, "broadcast", (0, 1))

    def build_onnx(c: Cfg) -> Any:
        g = Graph(name)
        a, b = (g.input(n, s) for n, s in zip(("a", "b"), inputs(c), strict=True))
        return g.model(g.node(op, [a, b]), (1, c["c"], c["hw"]))

    def build_torch(c: Cfg) -> Any:
        from hwlat.kernels.torch_ops import Binary

        return Binary(name)

    define(name, {"c": int, "hw": int, "broadcast": int}, check=check,
           flops=lambda c: c["c"] * c["hw"], params=lambda c: 0, input_shapes=inputs,
           output_shapes=lambda c: ((1, c["c"], c["hw"]),), build_onnx=build_onnx,
           build_torch=build_torch,
           doc=f"{op} of two activations not fused into another kernel; broadcast=1: second is [1,c,1].")


_make_binary("add", "Add")
_make_binary("mul", "Mul")


def _act_check(c: Cfg) -> None:
    need_positive("activation", c, "c", "hw")
    need_choice("activation", c, "act", ACTIVATIONS)
    need(c["act"] != "none", "activation", "act", "must not be 'none' (no kernel runs)", c)


def _act_onnx(c: Cfg) -> Any:
    g = Graph("activation")
    x = g.input("x", (1, c["c"], c["hw"]))
    return g.model(g.act(x, c["act"]), (1, c["c"], c["hw"]))


def _act_torch(c: Cfg) -> Any:
    from hwlat.kernels.torch_ops import Act

    return Act(c["act"])


define("activation", {"c": int, "hw": int, "act": str}, check=_act_check,
       flops=lambda c: ACT_FLOPS[c["act"]] * c["c"] * c["hw"], params=lambda c: 0,
       input_shapes=lambda c: ((1, c["c"], c["hw"]),), output_shapes=lambda c: ((1, c["c"], c["hw"]),),
       build_onnx=_act_onnx, build_torch=_act_torch,
       doc="A standalone activation (swish = Sigmoid+Mul, gelu = Erf pattern, relu6 = Clip(0,6)).")
