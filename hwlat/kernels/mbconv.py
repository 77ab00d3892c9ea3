"""``mbconv``: a whole inverted-bottleneck block (block-level LUT profiling only).

[1x1 expand Conv+BN+act if e > 1] → depthwise kxk Conv+BN+act (stride s) → [SE] → 1x1
project Conv+BN → [Add x if s == 1 and cin == cout]. Expanded width ``cexp = cin·e``. The SE
follows OFA / MobileNetV3: ``cmid = make_divisible(cexp / 4, 8)``, ReLU inside, HardSigmoid
gate. FLOPs are the sum of the parts (conventions of :mod:`hwlat.kernels.common`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hwlat.kernels.base import ACTIVATIONS
from hwlat.kernels.common import (
    ACT_FLOPS,
    conv_out,
    define,
    make_divisible,
    need,
    need_choice,
    need_positive,
    rng_for,
)
from hwlat.kernels.conv import conv_weights
from hwlat.kernels.onnx_graph import Graph
from hwlat.kernels.se import se_flops, se_onnx, se_weights

Cfg = Mapping[str, Any]
SE_ACT, SE_GATE = "relu", "hsigmoid"


def dims(c: Cfg) -> tuple[int, int, int, int]:
    """(cexp, cmid, ho, wo) of an mbconv config."""
    cexp = c["cin"] * c["e"]
    return cexp, make_divisible(cexp / 4, 8), conv_out(c["h"], c["k"], c["s"]), conv_out(c["w"], c["k"], c["s"])


def _residual(c: Cfg) -> bool:
    return c["s"] == 1 and c["cin"] == c["cout"]


def _check(c: Cfg) -> None:
    need_positive("mbconv", c, "h", "w", "cin", "cout", "k", "s", "e")
    need_choice("mbconv", c, "se", (0, 1))
    need_choice("mbconv", c, "act", ACTIVATIONS)
    need(c["k"] % 2 == 1, "mbconv", "k", "must be odd", c)


def _flops(c: Cfg) -> int:
    cin, cout, k, h, w, a = c["cin"], c["cout"], c["k"], c["h"], c["w"], ACT_FLOPS[c["act"]]
    cexp, cmid, ho, wo = dims(c)
    f = h * w * cexp * (2 * cin + 1 + a) if c["e"] > 1 else 0
    f += ho * wo * cexp * (2 * k * k + 1 + a)
    f += se_flops(ho, wo, cexp, cmid, SE_ACT, SE_GATE) if c["se"] else 0
    f += ho * wo * cout * (2 * cexp + 1 + _residual(c))
    return f


def _params(c: Cfg) -> int:
    cin, cout, k = c["cin"], c["cout"], c["k"]
    cexp, cmid, _, _ = dims(c)
    p = cin * cexp + 2 * cexp if c["e"] > 1 else 0
    p += cexp * k * k + 2 * cexp
    p += 2 * cexp * cmid + cmid + cexp if c["se"] else 0
    return p + cexp * cout + 2 * cout


def _weights(c: Cfg) -> dict[str, dict[str, np.ndarray]]:
    rng = rng_for("mbconv", c)
    cexp, cmid, _, _ = dims(c)
    w: dict[str, dict[str, np.ndarray]] = {}
    if c["e"] > 1:
        w["expand"] = conv_weights(rng, c["cin"], cexp, 1, 1)
    w["dw"] = conv_weights(rng, cexp, cexp, c["k"], cexp)
    if c["se"]:
        w["se"] = se_weights(rng, cexp, cmid)
    w["project"] = conv_weights(rng, cexp, c["cout"], 1, 1)
    return w


def _onnx(c: Cfg) -> Any:
    cexp, _, ho, wo = dims(c)
    w = _weights(c)
    g = Graph("mbconv")
    x = g.input("x", (1, c["cin"], c["h"], c["w"]))
    y = x
    if "expand" in w:
        y = g.act(g.bn(g.conv(y, w["expand"]["w"], 1, 1), w["expand"]), c["act"])
    y = g.act(g.bn(g.conv(y, w["dw"]["w"], c["s"], cexp), w["dw"]), c["act"])
    if "se" in w:
        y = se_onnx(g, y, w["se"], SE_ACT, SE_GATE)
    y = g.bn(g.conv(y, w["project"]["w"], 1, 1), w["project"])
    if _residual(c):
        y = g.node("Add", [y, x])
    return g.model(y, (1, c["cout"], ho, wo))


def _torch(c: Cfg) -> Any:
    from hwlat.kernels.torch_ops import MBConv

    cexp, cmid, _, _ = dims(c)
    return MBConv(c["cin"], c["cout"], c["k"], c["s"], cexp, cmid, c["act"], _weights(c))


define("mbconv", {"h": int, "w": int, "cin": int, "cout": int, "k": int, "s": int, "e": int, "se": int,
                  "act": str}, check=_check, flops=_flops, params=_params,
       input_shapes=lambda c: ((1, c["cin"], c["h"], c["w"]),),
       output_shapes=lambda c: ((1, c["cout"], dims(c)[2], dims(c)[3]),),
       build_onnx=_onnx, build_torch=_torch,
       doc="Inverted-bottleneck block (expand, dw, optional SE, project, residual).")
