"""Dense kernels: ``linear`` (constant weight) and ``matmul`` (two activations).

linear: m == 1 builds ``Gemm`` on ``[1, cin]`` (a classifier head); m > 1 builds ``MatMul`` on
``[1, m, cin]`` + ``Add`` bias (token layers as torch exports them); then the activation.
FLOPs: 2·m·cin·cout + m·cout (bias) + ACT_FLOPS·m·cout. matmul: 2·b·m·k·n.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hwlat.kernels.base import ACTIVATIONS, Shape
from hwlat.kernels.common import ACT_FLOPS, define, he, need_choice, need_positive, rng_for
from hwlat.kernels.onnx_graph import Graph

Cfg = Mapping[str, Any]


def _lin_in(c: Cfg) -> Shape:
    return (1, c["cin"]) if c["m"] == 1 else (1, c["m"], c["cin"])


def _lin_out(c: Cfg) -> Shape:
    return (1, c["cout"]) if c["m"] == 1 else (1, c["m"], c["cout"])


def _lin_weights(c: Cfg) -> dict[str, np.ndarray]:
    rng = rng_for("linear", c)
    w = he(rng, (c["cout"], c["cin"]), c["cin"])
    return {"w": w, "b": rng.uniform(-0.1, 0.1, c["cout"]).astype(np.float32)}


def _lin_check(c: Cfg) -> None:
    need_positive("linear", c, "m", "cin", "cout")
    need_choice("linear", c, "act", ACTIVATIONS)


def _lin_onnx(c: Cfg) -> Any:
    g = Graph("linear")
    x = g.input("x", _lin_in(c))
    w = _lin_weights(c)
    if c["m"] == 1:
        y = g.node("Gemm", [x, g.init("w", w["w"]), g.init("b", w["b"])], transB=1)
    else:
        y = g.node("Add", [g.node("MatMul", [x, g.init("w", np.ascontiguousarray(w["w"].T))]),
                           g.init("b", w["b"])])
    return g.model(g.act(y, c["act"]), _lin_out(c))


def _lin_torch(c: Cfg) -> Any:
    from hwlat.kernels.torch_ops import Linear

    return Linear(c["cin"], c["cout"], c["act"], _lin_weights(c))


define("linear", {"m": int, "cin": int, "cout": int, "act": str}, check=_lin_check,
       flops=lambda c: c["m"] * c["cout"] * (2 * c["cin"] + 1 + ACT_FLOPS[c["act"]]),
       params=lambda c: c["cin"] * c["cout"] + c["cout"],
       input_shapes=lambda c: (_lin_in(c),), output_shapes=lambda c: (_lin_out(c),),
       build_onnx=_lin_onnx, build_torch=_lin_torch,
       doc="Gemm / MatMul with constant weight [+Add bias] [+activation]; m = tokens.")


def _mm_onnx(c: Cfg) -> Any:
    g = Graph("matmul")
    a = g.input("a", (c["b"], c["m"], c["k"]))
    b = g.input("b", (c["b"], c["k"], c["n"]))
    return g.model(g.node("MatMul", [a, b]), (c["b"], c["m"], c["n"]))


def _mm_torch(c: Cfg) -> Any:
    from hwlat.kernels.torch_ops import MatMul

    return MatMul()


define("matmul", {"b": int, "m": int, "k": int, "n": int},
       check=lambda c: need_positive("matmul", c, "b", "m", "k", "n"),
       flops=lambda c: 2 * c["b"] * c["m"] * c["k"] * c["n"], params=lambda c: 0,
       input_shapes=lambda c: ((c["b"], c["m"], c["k"]), (c["b"], c["k"], c["n"])),
       output_shapes=lambda c: ((c["b"], c["m"], c["n"]),),
       build_onnx=_mm_onnx, build_torch=_mm_torch,
       doc="MatMul of two activations [b,m,k] x [b,k,n] outside an attention pattern.")
