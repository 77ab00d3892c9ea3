"""``mha``: the attention core on projected q, k, v (each ``[1, t, d]``).

Graph: per operand Reshape ``[1, t, heads, d/heads]`` → Transpose (k to ``[1, h, dh, t]``),
``MatMul(q, kᵀ)`` → ``Mul`` (1/√dh) → ``Softmax`` → ``MatMul(·, v)`` → Transpose → Reshape
``[1, t, d]``. QKV and output projections are separate ``linear`` kernels.
FLOPs: 2·t²·d (q kᵀ) + 2·t²·d (· v) + heads·t²·(1 scale + 5 softmax).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hwlat.kernels.common import define, need, need_positive
from hwlat.kernels.norm import SOFTMAX_FLOPS
from hwlat.kernels.onnx_graph import Graph

Cfg = Mapping[str, Any]


def _check(c: Cfg) -> None:
    need_positive("mha", c, "t", "d", "heads")
    need(c["d"] % c["heads"] == 0, "mha", "heads", f"must divide d={c['d']}", c)


def _onnx(c: Cfg) -> Any:
    t, d, h = c["t"], c["d"], c["heads"]
    dh = d // h
    g = Graph("mha")
    split = g.init("heads_shape", [1, t, h, dh])
    q, k, v = (g.node("Reshape", [g.input(n, (1, t, d)), split]) for n in ("q", "k", "v"))
    q = g.node("Transpose", [q], perm=[0, 2, 1, 3])
    k = g.node("Transpose", [k], perm=[0, 2, 3, 1])
    v = g.node("Transpose", [v], perm=[0, 2, 1, 3])
    s = g.node("Mul", [g.node("MatMul", [q, k]), g.init("scale", 1.0 / math.sqrt(dh))])
    o = g.node("MatMul", [g.node("Softmax", [s], axis=-1), v])
    o = g.node("Transpose", [o], perm=[0, 2, 1, 3])
    return g.model(g.node("Reshape", [o, g.init("out_shape", [1, t, d])]), (1, t, d))


def _torch(c: Cfg) -> Any:
    from hwlat.kernels.torch_ops import MHA

    return MHA(c["heads"], c["d"])


define("mha", {"t": int, "d": int, "heads": int}, check=_check,
       flops=lambda c: 4 * c["t"] ** 2 * c["d"] + c["heads"] * c["t"] ** 2 * (1 + SOFTMAX_FLOPS),
       params=lambda c: 0,
       input_shapes=lambda c: ((1, c["t"], c["d"]),) * 3, output_shapes=lambda c: ((1, c["t"], c["d"]),),
       build_onnx=_onnx, build_torch=_torch,
       doc="Attention core softmax(q kᵀ/√dh) v with head reshapes/transposes.")
