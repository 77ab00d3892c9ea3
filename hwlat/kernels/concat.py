"""``concat``: Concat of n_inputs activations along one axis.

The axis is viewed as ``[outer, size_i, inner]``; the ``cout`` output positions are split as
evenly as possible, the first ``cout % n_inputs`` inputs one larger. FLOPs: 0 (a copy).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hwlat.kernels.base import Shape
from hwlat.kernels.common import define, need, need_positive
from hwlat.kernels.onnx_graph import Graph

Cfg = Mapping[str, Any]


def split_sizes(cout: int, n: int) -> list[int]:
    """Sizes of the n parts along the concat axis."""
    return [cout // n + (1 if i < cout % n else 0) for i in range(n)]


def _inputs(c: Cfg) -> tuple[Shape, ...]:
    return tuple((c["outer"], s, c["inner"]) for s in split_sizes(c["cout"], c["n_inputs"]))


def _check(c: Cfg) -> None:
    need_positive("concat", c, "outer", "cout", "inner")
    need(c["n_inputs"] >= 2, "concat", "n_inputs", "must be >= 2", c)
    need(c["cout"] >= c["n_inputs"], "concat", "cout", f"must be >= n_inputs={c['n_inputs']}", c)


def _onnx(c: Cfg) -> Any:
    g = Graph("concat")
    xs = [g.input(f"x{i}", s) for i, s in enumerate(_inputs(c))]
    return g.model(g.node("Concat", xs, axis=1), (c["outer"], c["cout"], c["inner"]))


def _torch(c: Cfg) -> Any:
    from hwlat.kernels.torch_ops import Concat

    return Concat()


define("concat", {"outer": int, "cout": int, "inner": int, "n_inputs": int}, check=_check,
       flops=lambda c: 0, params=lambda c: 0, input_shapes=_inputs,
       output_shapes=lambda c: ((c["outer"], c["cout"], c["inner"]),),
       build_onnx=_onnx, build_torch=_torch, doc="Concat of activations along an axis.")
