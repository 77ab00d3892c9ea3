"""torch → ONNX export (fast legacy TorchScript exporter, dynamo fallback) and a structural graph hash."""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import numpy_helper

from hwlat.errors import ModelFileError

if TYPE_CHECKING:  # torch is optional at import time
    import torch.nn as nn

OPSET = 17
# Integer tensors up to this many elements (shape constants, axes) and float scalars (clip bounds,
# scales) are hashed by value; anything else (weights, biases) only by dtype and shape: latency does
# not depend on weight values, and random inits must hash equal.
_HASH_VALUE_MAX_ELEMENTS = 64
_INT_TYPES = {onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.INT8, onnx.TensorProto.UINT8,
              onnx.TensorProto.INT16, onnx.TensorProto.BOOL}


def torch_to_onnx(module: nn.Module, input_shape: Sequence[int], path: str | Path | None = None) -> onnx.ModelProto:
    """Export ``module`` (put in eval mode, so BatchNorm folds into Conv) for one input of ``input_shape``.

    Uses ``torch.onnx.export(dynamo=False, opset_version=17, do_constant_folding=True)``; falls back to
    the dynamo exporter when the legacy one is unavailable. Writes ``path`` too when given.
    """
    import torch

    shape = tuple(int(d) for d in input_shape)
    if not shape or any(d <= 0 for d in shape):
        raise ModelFileError(f"input shape {shape} is invalid; give positive dims such as 1,3,224,224")
    was_training = module.training
    module.eval()
    try:
        x = torch.zeros(shape, dtype=torch.float32)
        model = _export_legacy(module, x)
        if model is None:
            model = _export_dynamo(module, x)
    finally:
        module.train(was_training)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(path))
    return model


def _export_legacy(module: nn.Module, x: object) -> onnx.ModelProto | None:
    import torch

    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (x,), buf, dynamo=False, opset_version=OPSET, do_constant_folding=True,
                              input_names=["input"], output_names=["output"])
    except (TypeError, ImportError, NotImplementedError, AttributeError) as e:
        # TypeError: no ``dynamo`` kwarg / legacy path removed in this torch; others: exporter missing.
        if "dynamo" in str(e) or isinstance(e, (ImportError, NotImplementedError, AttributeError)):
            return None
        raise
    return onnx.load_from_string(buf.getvalue())


def _export_dynamo(module: nn.Module, x: object) -> onnx.ModelProto:
    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(module, (x,), dynamo=True, opset_version=OPSET, optimize=True, verbose=False,
                                 input_names=["input"], output_names=["output"])
    return prog.model_proto


def graph_hash(model: onnx.ModelProto) -> str:
    """sha256 of the graph *structure*: ops, attributes, wiring, shapes, small constants.

    Tensor names are replaced by their order of first appearance and large weights by their dtype and
    shape, so two exports of the same architecture hash equal whatever the weights or naming.
    """
    g = model.graph
    names: dict[str, int] = {}

    def nid(name: str) -> str:
        if name == "":
            return "-"
        if name not in names:
            names[name] = len(names)
        return f"t{names[name]}"

    h = hashlib.sha256()

    def put(*parts: object) -> None:
        h.update(repr(parts).encode())
        h.update(b"\n")

    opsets = sorted((o.domain, o.version) for o in model.opset_import)
    put("opset", opsets)
    for vi in g.input:
        put("in", nid(vi.name), _type_repr(vi.type))
    inits = sorted(g.initializer, key=lambda t: t.name)
    init_repr = {t.name: _tensor_repr(t) for t in inits}
    for node in g.node:
        for i in node.input:
            if i in init_repr and i not in names:
                put("init", nid(i), init_repr[i])
        attrs = [(a.name, _attr_repr(a)) for a in sorted(node.attribute, key=lambda a: a.name)]
        put("node", node.domain, node.op_type, [nid(i) for i in node.input], [nid(o) for o in node.output], attrs)
    for vi in g.output:
        put("out", nid(vi.name), _type_repr(vi.type))
    return h.hexdigest()


def _type_repr(t: onnx.TypeProto) -> tuple[object, ...]:
    if not t.HasField("tensor_type"):
        return ("other",)
    tt = t.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim)
    return (tt.elem_type, dims)


def _tensor_repr(t: onnx.TensorProto) -> tuple[object, ...]:
    n = int(np.prod(t.dims)) if len(t.dims) else 1
    if n <= 1 or (t.data_type in _INT_TYPES and n <= _HASH_VALUE_MAX_ELEMENTS):
        try:
            return (t.data_type, tuple(t.dims), numpy_helper.to_array(t).tobytes())
        except Exception:  # external data or exotic dtype: fall back to the structural part
            pass
    return (t.data_type, tuple(t.dims))


def _attr_repr(a: onnx.AttributeProto) -> object:
    if a.type == onnx.AttributeProto.TENSOR:
        return _tensor_repr(a.t)
    if a.type == onnx.AttributeProto.GRAPH:
        sub = onnx.ModelProto(graph=a.g)
        return graph_hash(sub)
    if a.type == onnx.AttributeProto.GRAPHS:
        return tuple(graph_hash(onnx.ModelProto(graph=sg)) for sg in a.graphs)
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, list):
        return tuple(v)
    return v
