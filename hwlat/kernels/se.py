"""``se``: squeeze-and-excitation, GlobalAveragePool → Conv1x1(c→cmid) [+act] → Conv1x1(cmid→c)
→ gate (HardSigmoid/Sigmoid) → Mul(x).

FLOPs: h·w·c (pool) + 2·c·cmid + cmid (conv1) + ACT·cmid + 2·cmid·c + c (conv2) + GATE·c
+ h·w·c (the scaling Mul).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hwlat.kernels.base import ACTIVATIONS
from hwlat.kernels.common import ACT_FLOPS, define, he, need_choice, need_positive, rng_for
from hwlat.kernels.onnx_graph import Graph

Cfg = Mapping[str, Any]
GATES = ("hsigmoid", "sigmoid")


def se_weights(rng: np.random.Generator, c: int, cmid: int) -> dict[str, np.ndarray]:
    return {"w1": he(rng, (cmid, c, 1, 1), c), "b1": rng.uniform(-0.1, 0.1, cmid).astype(np.float32),
            "w2": he(rng, (c, cmid, 1, 1), cmid), "b2": rng.uniform(-0.1, 0.1, c).astype(np.float32)}


def se_onnx(g: Graph, x: str, w: Mapping[str, np.ndarray], act: str, gate: str) -> str:
    """Append the SE pattern on tensor ``x`` to graph ``g``; returns the scaled tensor."""
    s = g.act(g.conv(g.node("GlobalAveragePool", [x]), w["w1"], 1, 1, w["b1"]), act)
    return g.node("Mul", [x, g.act(g.conv(s, w["w2"], 1, 1, w["b2"]), gate)])


def se_flops(h: int, w: int, c: int, cmid: int, act: str, gate: str) -> int:
    return (2 * h * w * c + cmid * (2 * c + 1 + ACT_FLOPS[act]) + c * (2 * cmid + 1 + ACT_FLOPS[gate]))


def _check(c: Cfg) -> None:
    need_positive("se", c, "h", "w", "c", "cmid")
    need_choice("se", c, "act", ACTIVATIONS)
    need_choice("se", c, "gate", GATES)


def _onnx(c: Cfg) -> Any:
    g = Graph("se")
    x = g.input("x", (1, c["c"], c["h"], c["w"]))
    y = se_onnx(g, x, se_weights(rng_for("se", c), c["c"], c["cmid"]), c["act"], c["gate"])
    return g.model(y, (1, c["c"], c["h"], c["w"]))


def _torch(c: Cfg) -> Any:
    from hwlat.kernels.torch_ops import SE

    return SE(c["c"], c["cmid"], c["act"], c["gate"], se_weights(rng_for("se", c), c["c"], c["cmid"]))


define("se", {"h": int, "w": int, "c": int, "cmid": int, "act": str, "gate": str}, check=_check,
       flops=lambda c: se_flops(c["h"], c["w"], c["c"], c["cmid"], c["act"], c["gate"]),
       params=lambda c: 2 * c["c"] * c["cmid"] + c["cmid"] + c["c"],
       input_shapes=lambda c: ((1, c["c"], c["h"], c["w"]),),
       output_shapes=lambda c: ((1, c["c"], c["h"], c["w"]),),
       build_onnx=_onnx, build_torch=_torch, doc="Squeeze-and-excitation block with gate and Mul(x).")
