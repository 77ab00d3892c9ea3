"""``patch_embed``: the ViT patch embedding, a Conv with kernel = stride = p, no padding, bias.

It is its own type because its padding (none) breaks the "same-style" rule of the conv family.
FLOPs: 2·MACs + 1 per output for the bias.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hwlat.kernels.base import Shape
from hwlat.kernels.common import define, he, need, need_positive, rng_for
from hwlat.kernels.onnx_graph import Graph

Cfg = Mapping[str, Any]
FIELDS = {"h": int, "w": int, "cin": int, "cout": int, "p": int}


def _out(c: Cfg) -> Shape:
    return (1, c["cout"], c["h"] // c["p"], c["w"] // c["p"])


def _check(c: Cfg) -> None:
    need_positive("patch_embed", c, *FIELDS)
    need(c["h"] >= c["p"] and c["w"] >= c["p"], "patch_embed", "p", "must not exceed h and w", c)


def _weights(c: Cfg) -> dict[str, Any]:
    rng = rng_for("patch_embed", c)
    fan_in = c["cin"] * c["p"] * c["p"]
    return {"w": he(rng, (c["cout"], c["cin"], c["p"], c["p"]), fan_in),
            "b": (rng.standard_normal(c["cout"]) * 0.01).astype("float32")}


def _flops(c: Cfg) -> float:
    out = c["cout"] * (c["h"] // c["p"]) * (c["w"] // c["p"])
    return 2 * out * c["cin"] * c["p"] * c["p"] + out


def _params(c: Cfg) -> float:
    return c["cout"] * c["cin"] * c["p"] * c["p"] + c["cout"]


def _build_onnx(c: Cfg) -> Any:
    g = Graph("patch_embed")
    x = g.input("x", (1, c["cin"], c["h"], c["w"]))
    w = _weights(c)
    p = c["p"]
    y = g.node("Conv", [x, g.init("w", w["w"]), g.init("b", w["b"])], kernel_shape=[p, p], strides=[p, p],
               pads=[0, 0, 0, 0], group=1, dilations=[1, 1])
    return g.model(y, _out(c))


def _build_torch(c: Cfg) -> Any:
    import torch
    from torch import nn

    w = _weights(c)
    conv = nn.Conv2d(c["cin"], c["cout"], c["p"], c["p"])
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w["w"]))
        conv.bias.copy_(torch.from_numpy(w["b"]))
    return conv


define("patch_embed", FIELDS, check=_check, flops=_flops, params=_params,
       input_shapes=lambda c: ((1, c["cin"], c["h"], c["w"]),), output_shapes=lambda c: (_out(c),),
       build_onnx=_build_onnx, build_torch=_build_torch,
       doc="ViT patch embedding: Conv k=s=p, no padding, with bias.")
