"""Pooling kernels: ``pool`` (MaxPool / AveragePool) and ``global_pool``.

Padding is ``p = (k - 1) // 2`` on every side. ``ceil`` (default 0) selects the output-size rounding:
``out = floor_or_ceil((in + 2p - k) / s) + 1`` (ONNX ``ceil_mode``, torch ``ceil_mode=True``); a
ceil-mode window past the input is partial and averages only the elements it covers. AveragePool
excludes padding from the count (ONNX default; with p == 0 both count modes give the same numbers).
FLOPs: one per window element per output (compare or add); global pools one per input element.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hwlat.kernels.base import Shape
from hwlat.kernels.common import define, need, need_choice, need_positive, pool_out
from hwlat.kernels.onnx_graph import Graph

Cfg = Mapping[str, Any]
MODES = ("max", "avg")


def _out(c: Cfg) -> Shape:
    k, s, ceil = c["k"], c["s"], c["ceil"]
    return (1, c["c"], pool_out(c["h"], k, s, ceil), pool_out(c["w"], k, s, ceil))


def _check(c: Cfg) -> None:
    need_positive("pool", c, "h", "w", "c", "k", "s")
    need_choice("pool", c, "mode", MODES)
    need_choice("pool", c, "ceil", (0, 1))
    k, s, p = c["k"], c["s"], (c["k"] - 1) // 2
    need(min(c["h"], c["w"]) + 2 * p >= k, "pool", "k", f"is larger than the padded input "
         f"{c['h']}x{c['w']}", c)
    if c["ceil"]:
        for size in (c["h"], c["w"]):
            # torch and onnxruntime drop a last window starting in the padding, ONNX shape inference
            # does not: such configs have no agreed output shape
            last = -(-(size + 2 * p - k) // s) * s
            need(last < size + p, "pool", "ceil", f"makes the last window start in the padding at size "
                 f"{size} (k={k}, s={s}); use ceil=0", c)


def _onnx(c: Cfg) -> Any:
    g = Graph("pool")
    x = g.input("x", (1, c["c"], c["h"], c["w"]))
    k, s, p = c["k"], c["s"], (c["k"] - 1) // 2
    op = "MaxPool" if c["mode"] == "max" else "AveragePool"
    ceil = {"ceil_mode": 1} if c["ceil"] else {}  # ceil=0 models stay as before the field existed
    return g.model(g.node(op, [x], kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p], **ceil), _out(c))


def _torch(c: Cfg) -> Any:
    from hwlat.kernels.torch_ops import Pool

    return Pool(c["k"], c["s"], c["mode"], bool(c["ceil"]))


define("pool", {"h": int, "w": int, "c": int, "k": int, "s": int, "mode": str, "ceil": int}, check=_check,
       flops=lambda c: c["k"] * c["k"] * _out(c)[1] * _out(c)[2] * _out(c)[3], params=lambda c: 0,
       input_shapes=lambda c: ((1, c["c"], c["h"], c["w"]),), output_shapes=lambda c: (_out(c),),
       build_onnx=_onnx, build_torch=_torch, defaults={"ceil": 0},
       doc="MaxPool / AveragePool (mode max/avg), padding (k-1)//2, ceil=1: ceil-mode output size.")


def _g_check(c: Cfg) -> None:
    need_positive("global_pool", c, "h", "w", "c")
    need_choice("global_pool", c, "mode", MODES)


def _g_onnx(c: Cfg) -> Any:
    g = Graph("global_pool")
    x = g.input("x", (1, c["c"], c["h"], c["w"]))
    op = "GlobalMaxPool" if c["mode"] == "max" else "GlobalAveragePool"
    return g.model(g.node(op, [x]), (1, c["c"], 1, 1))


def _g_torch(c: Cfg) -> Any:
    from hwlat.kernels.torch_ops import GlobalPool

    return GlobalPool(c["mode"])


define("global_pool", {"h": int, "w": int, "c": int, "mode": str}, check=_g_check,
       flops=lambda c: c["h"] * c["w"] * c["c"], params=lambda c: 0,
       input_shapes=lambda c: ((1, c["c"], c["h"], c["w"]),),
       output_shapes=lambda c: ((1, c["c"], 1, 1),),
       build_onnx=_g_onnx, build_torch=_g_torch,
       doc="GlobalAveragePool / GlobalMaxPool over H, W (output [1, c, 1, 1]).")
