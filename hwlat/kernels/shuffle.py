"""Data-movement kernels: ``channel_shuffle`` (Reshape→Transpose→Reshape) and ``transpose``
(``[1, a, b] -> [1, b, a]``). FLOPs: 0 (copies)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hwlat.kernels.common import define, need, need_positive
from hwlat.kernels.onnx_graph import Graph

Cfg = Mapping[str, Any]


def _cs_check(c: Cfg) -> None:
    need_positive("channel_shuffle", c, "h", "w", "c")
    need(c["groups"] >= 2, "channel_shuffle", "groups", "must be >= 2", c)
    need(c["c"] % c["groups"] == 0, "channel_shuffle", "groups", f"must divide c={c['c']}", c)


def _cs_onnx(c: Cfg) -> Any:
    n, g_, h, w = c["c"], c["groups"], c["h"], c["w"]
    g = Graph("channel_shuffle")
    x = g.input("x", (1, n, h, w))
    y = g.node("Reshape", [x, g.init("shape5", [1, g_, n // g_, h, w])])
    y = g.node("Transpose", [y], perm=[0, 2, 1, 3, 4])
    return g.model(g.node("Reshape", [y, g.init("shape4", [1, n, h, w])]), (1, n, h, w))


def _cs_torch(c: Cfg) -> Any:
    from hwlat.kernels.torch_ops import ChannelShuffle

    return ChannelShuffle(c["groups"])


define("channel_shuffle", {"h": int, "w": int, "c": int, "groups": int}, check=_cs_check,
       flops=lambda c: 0, params=lambda c: 0,
       input_shapes=lambda c: ((1, c["c"], c["h"], c["w"]),),
       output_shapes=lambda c: ((1, c["c"], c["h"], c["w"]),),
       build_onnx=_cs_onnx, build_torch=_cs_torch, doc="ShuffleNet channel shuffle.")


def _t_onnx(c: Cfg) -> Any:
    g = Graph("transpose")
    x = g.input("x", (1, c["a"], c["b"]))
    return g.model(g.node("Transpose", [x], perm=[0, 2, 1]), (1, c["b"], c["a"]))


def _t_torch(c: Cfg) -> Any:
    from hwlat.kernels.torch_ops import Transpose

    return Transpose()


define("transpose", {"a": int, "b": int}, check=lambda c: need_positive("transpose", c, "a", "b"),
       flops=lambda c: 0, params=lambda c: 0,
       input_shapes=lambda c: ((1, c["a"], c["b"]),), output_shapes=lambda c: ((1, c["b"], c["a"]),),
       build_onnx=_t_onnx, build_torch=_t_torch, doc="Standalone Transpose [1,a,b] -> [1,b,a].")
