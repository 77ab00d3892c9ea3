"""``batchnorm``: a standalone inference BatchNormalization over ``[1, c, h, w]`` (one not folded into
a preceding conv, e.g. in pre-activation networks).

onnxruntime runs it as its own ``BatchNormalization`` op; TFLite converts it to ``MUL`` + ``ADD`` with
per-channel constants, which the kernel's tflite export (from the torch builder) contains too.
FLOPs: 2 per element (scale and shift, as runtimes fold the statistics); params: scale + bias
(running statistics are buffers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hwlat.kernels.common import bn_weights, define, need_positive, rng_for
from hwlat.kernels.onnx_graph import Graph

Cfg = Mapping[str, Any]
BN_FLOPS = 2


def _weights(c: Cfg) -> dict[str, np.ndarray]:
    return bn_weights(rng_for("batchnorm", c), c["c"])


def _shape(c: Cfg) -> tuple[int, int, int, int]:
    return (1, c["c"], c["h"], c["w"])


def _onnx(c: Cfg) -> Any:
    g = Graph("batchnorm")
    x = g.input("x", _shape(c))
    return g.model(g.bn(x, _weights(c)), _shape(c))


def _torch(c: Cfg) -> Any:
    from hwlat.kernels.torch_ops import BatchNorm

    return BatchNorm(c["c"], _weights(c))


define("batchnorm", {"h": int, "w": int, "c": int},
       check=lambda c: need_positive("batchnorm", c, "h", "w", "c"),
       flops=lambda c: BN_FLOPS * c["c"] * c["h"] * c["w"], params=lambda c: 2 * c["c"],
       input_shapes=lambda c: (_shape(c),), output_shapes=lambda c: (_shape(c),),
       build_onnx=_onnx, build_torch=_torch,
       doc="Standalone inference BatchNormalization (not folded into a conv).")
