"""A tiny ONNX graph builder used by every kernel type's ``build_onnx``.

It emits exactly the op patterns of docs/kernels.md (e.g. relu6 = ``Clip(0, 6)``, swish =
``Sigmoid`` + ``Mul``, gelu = the ``Erf`` pattern torch exports) so a decomposition of the
built model maps back to the same kernel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hwlat.kernels.base import Shape
from hwlat.kernels.common import IR_VERSION, OPSET

#: negative slope of built ``leaky_relu`` kernels (torch's default; decomposition accepts any alpha)
LEAKY_RELU_ALPHA = 0.01


class Graph:
    """Accumulates nodes, inputs and initializers; ``model()`` returns a checked ModelProto."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def _fresh(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def input(self, name: str, shape: Shape) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        return name

    def init(self, base: str, value: np.ndarray | float | Sequence[int]) -> str:
        """Add an initializer: float arrays/scalars become float32, int lists int64."""
        if isinstance(value, np.ndarray):
            arr = value
        elif isinstance(value, float):
            arr = np.array(value, dtype=np.float32)
        else:
            arr = np.array(list(value), dtype=np.int64)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        name = self._fresh(base)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def node(self, op: str, inputs: Sequence[str], **attrs: object) -> str:
        out = self._fresh(op.lower())
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=self._fresh(op), **attrs))
        return out

    # --- composite patterns -------------------------------------------------------------
    def act(self, x: str, act: str) -> str:
        """Append activation ``act`` (the op pattern of docs/kernels.md) to tensor ``x``."""
        if act == "none":
            return x
        if act == "relu":
            return self.node("Relu", [x])
        if act == "relu6":
            return self.node("Clip", [x, self.init("zero", 0.0), self.init("six", 6.0)])
        if act == "hswish":
            return self.node("HardSwish", [x])
        if act == "hsigmoid":
            return self.node("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)
        if act == "sigmoid":
            return self.node("Sigmoid", [x])
        if act == "swish":
            return self.node("Mul", [x, self.node("Sigmoid", [x])])
        if act == "gelu":  # x * 0.5 * (1 + erf(x / sqrt 2)), as torch exports F.gelu
            e = self.node("Erf", [self.node("Div", [x, self.init("sqrt2", math.sqrt(2.0))])])
            return self.node("Mul", [self.node("Mul", [x, self.node("Add", [e, self.init("one", 1.0)])]),
                                     self.init("half", 0.5)])
        if act == "tanh":
            return self.node("Tanh", [x])
        if act == "leaky_relu":
            return self.node("LeakyRelu", [x], alpha=LEAKY_RELU_ALPHA)
        raise ValueError(f"unknown activation {act!r}")

    def conv(self, x: str, w: np.ndarray, s: int, groups: int, b: np.ndarray | None = None) -> str:
        k = int(w.shape[-1])
        p = k // 2
        ins = [x, self.init("w", w)] + ([self.init("b", b)] if b is not None else [])
        return self.node("Conv", ins, kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p],
                         group=groups, dilations=[1, 1])

    def bn(self, x: str, w: Mapping[str, np.ndarray]) -> str:
        return self.node("BatchNormalization",
                         [x, self.init("bn_scale", w["scale"]), self.init("bn_bias", w["bias"]),
                          self.init("bn_mean", w["mean"]), self.init("bn_var", w["var"])],
                         epsilon=1e-5)

    def model(self, out: str, out_shape: Shape) -> onnx.ModelProto:
        """Finish: rename tensor ``out`` to graph output ``y`` and return the checked model."""
        for n in self.nodes:
            for i, o in enumerate(n.output):
                if o == out:
                    n.output[i] = "y"
            for i, o in enumerate(n.input):
                if o == out:
                    n.input[i] = "y"
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))
        graph = helper.make_graph(self.nodes, self.name, self.inputs, [y], initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  ir_version=IR_VERSION, producer_name="hwlat")
        onnx.checker.check_model(model)
        return model
