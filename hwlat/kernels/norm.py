"""Row-wise kernels: ``layernorm`` (LayerNormalization over d of ``[1, t, d]``) and ``softmax``
(over the last axis of ``[1, rows, cols]``).

FLOPs per element: layernorm 7 (mean, centre, square+sum, normalise, scale, shift),
softmax 5 (max, subtract, exp, sum, divide).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hwlat.kernels.common import define, need_positive, rng_for
from hwlat.kernels.onnx_graph import Graph

Cfg = Mapping[str, Any]
LAYERNORM_FLOPS = 7
SOFTMAX_FLOPS = 5


def _ln_weights(c: Cfg) -> dict[str, np.ndarray]:
    rng = rng_for("layernorm", c)
    return {"scale": rng.uniform(0.5, 1.5, c["d"]).astype(np.float32),
            "bias": rng.uniform(-0.1, 0.1, c["d"]).astype(np.float32)}


def _ln_onnx(c: Cfg) -> Any:
    g = Graph("layernorm")
    x = g.input("x", (1, c["t"], c["d"]))
    w = _ln_weights(c)
    y = g.node("LayerNormalization", [x, g.init("ln_scale", w["scale"]), g.init("ln_bias", w["bias"])],
               axis=-1, epsilon=1e-5)
    return g.model(y, (1, c["t"], c["d"]))


def _ln_torch(c: Cfg) -> Any:
    from hwlat.kernels.torch_ops import LayerNorm

    return LayerNorm(c["d"], _ln_weights(c))


define("layernorm", {"t": int, "d": int}, check=lambda c: need_positive("layernorm", c, "t", "d"),
       flops=lambda c: LAYERNORM_FLOPS * c["t"] * c["d"], params=lambda c: 2 * c["d"],
       input_shapes=lambda c: ((1, c["t"], c["d"]),), output_shapes=lambda c: ((1, c["t"], c["d"]),),
       build_onnx=_ln_onnx, build_torch=_ln_torch, doc="LayerNormalization over the last axis.")


def _sm_onnx(c: Cfg) -> Any:
    g = Graph("softmax")
    x = g.input("x", (1, c["rows"], c["cols"]))
    return g.model(g.node("Softmax", [x], axis=-1), (1, c["rows"], c["cols"]))


def _sm_torch(c: Cfg) -> Any:
    from hwlat.kernels.torch_ops import Softmax

    return Softmax()


define("softmax", {"rows": int, "cols": int}, check=lambda c: need_positive("softmax", c, "rows", "cols"),
       flops=lambda c: SOFTMAX_FLOPS * c["rows"] * c["cols"], params=lambda c: 0,
       input_shapes=lambda c: ((1, c["rows"], c["cols"]),),
       output_shapes=lambda c: ((1, c["rows"], c["cols"]),),
       build_onnx=_sm_onnx, build_torch=_sm_torch, doc="Standalone Softmax over the last axis.")
