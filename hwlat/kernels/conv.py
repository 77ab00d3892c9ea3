"""Convolution kernels: ``conv2d``, ``conv_bn_act`` and ``dwconv``.

Built graph: ``Conv`` (no bias) → ``BatchNormalization`` → [``Add`` residual] → activation.
The residual operand is a second graph input of the output's shape (a shortcut activation).
FLOPs: 2·MACs + 1 per output for the folded BN bias, + 1 per output for the residual add,
+ ACT_FLOPS per output for the activation (see :mod:`hwlat.kernels.common`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hwlat.kernels.base import ACTIVATIONS, Shape
from hwlat.kernels.common import (
    ACT_FLOPS,
    bn_weights,
    conv_out,
    define,
    he,
    need,
    need_choice,
    need_positive,
    rng_for,
)
from hwlat.kernels.onnx_graph import Graph

Cfg = Mapping[str, Any]


def conv_weights(rng: np.random.Generator, cin: int, cout: int, k: int, groups: int) -> dict[str, np.ndarray]:
    """Conv weight ``[cout, cin/groups, k, k]`` plus BatchNorm parameters."""
    fan_in = cin // groups * k * k
    return {"w": he(rng, (cout, cin // groups, k, k), fan_in), **bn_weights(rng, cout)}


def _parts(name: str, c: Cfg) -> tuple[int, int, int, int, int, str, int]:
    """(cin, cout, k, s, groups, act, residual) of any conv-family config."""
    if name == "dwconv":
        return c["c"], c["c"], c["k"], c["s"], c["c"], c["act"], 0
    return c["cin"], c["cout"], c["k"], c["s"], c["groups"], c.get("act", "none"), c["residual"]


def _out_shape(name: str, c: Cfg) -> Shape:
    cin, cout, k, s, *_ = _parts(name, c)
    return (1, cout, conv_out(c["h"], k, s), conv_out(c["w"], k, s))


def _make(name: str, fields: dict[str, type], extra_check: Any, doc: str) -> None:
    def check(c: Cfg) -> None:
        need_positive(name, c, *[f for f, t in fields.items() if t is int and f != "residual"])
        cin, cout, k, s, groups, act, residual = _parts(name, c)
        if "act" in c:
            need_choice(name, c, "act", ACTIVATIONS)
        if name != "dwconv":
            need_choice(name, c, "residual", (0, 1))
            need(cin % groups == 0, name, "groups", f"must divide cin={cin}", c)
            need(cout % groups == 0, name, "groups", f"must divide cout={cout}", c)
            need(not (groups > 1 and groups == cin == cout), name, "groups",
                 "== cin == cout is a depthwise conv: use kernel type 'dwconv'", c)
        extra_check(c)

    def inputs(c: Cfg) -> tuple[Shape, ...]:
        x = (1, _parts(name, c)[0], c["h"], c["w"])
        return (x, _out_shape(name, c)) if _parts(name, c)[6] else (x,)

    def outputs(c: Cfg) -> tuple[Shape, ...]:
        return (_out_shape(name, c),)

    def flops(c: Cfg) -> float:
        cin, cout, k, s, groups, act, residual = _parts(name, c)
        _, _, ho, wo = _out_shape(name, c)
        out = cout * ho * wo
        return 2 * out * (cin // groups) * k * k + out * (1 + residual + ACT_FLOPS[act])

    def params(c: Cfg) -> float:
        cin, cout, k, s, groups, *_ = _parts(name, c)
        return cout * (cin // groups) * k * k + 2 * cout

    def weights(c: Cfg) -> dict[str, np.ndarray]:
        cin, cout, k, s, groups, *_ = _parts(name, c)
        return conv_weights(rng_for(name, c), cin, cout, k, groups)

    def build_onnx(c: Cfg) -> Any:
        cin, cout, k, s, groups, act, residual = _parts(name, c)
        g = Graph(name)
        x = g.input("x", inputs(c)[0])
        w = weights(c)
        y = g.bn(g.conv(x, w["w"], s, groups), w)
        if residual:
            y = g.node("Add", [y, g.input("r", _out_shape(name, c))])
        return g.model(g.act(y, act), _out_shape(name, c))

    def build_torch(c: Cfg) -> Any:
        from hwlat.kernels.torch_ops import ConvBN

        cin, cout, k, s, groups, act, residual = _parts(name, c)
        return ConvBN(cin, cout, k, s, groups, act, bool(residual), weights(c))

    define(name, fields, check=check, flops=flops, params=params, input_shapes=inputs,
           output_shapes=outputs, build_onnx=build_onnx, build_torch=build_torch, doc=doc)


def _no_extra(c: Cfg) -> None:
    return None


def _act_not_none(c: Cfg) -> None:
    need(c["act"] != "none", "conv_bn_act", "act", "must not be 'none' (use kernel type 'conv2d')", c)


_make("conv2d", {"h": int, "w": int, "cin": int, "cout": int, "k": int, "s": int, "groups": int,
                 "residual": int}, _no_extra,
      "Conv [+BN] [+Add residual], no activation; not depthwise.")
_make("conv_bn_act", {"h": int, "w": int, "cin": int, "cout": int, "k": int, "s": int, "groups": int,
                      "act": str, "residual": int}, _act_not_none,
      "Conv [+BN] [+Add residual] + activation (act != none); not depthwise.")
_make("dwconv", {"h": int, "w": int, "c": int, "k": int, "s": int, "act": str}, _no_extra,
      "Depthwise Conv (groups == cin == cout) [+BN] [+activation].")
