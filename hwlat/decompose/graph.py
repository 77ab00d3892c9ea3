"""An ONNX graph prepared for pattern matching: loaded, validated, batch fixed to 1, shapes inferred,
with producer/consumer maps and the set of *static* tensors (constants and shape arithmetic)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper, shape_inference

from hwlat.errors import ModelFileError

MAX_ELEMENTS = 2**31
Shape = tuple[int, ...]


def load_model(model: Any, input_shape: Sequence[int] | None = None) -> tuple[onnx.ModelProto, str]:
    """Return ``(a private ModelProto copy, a short name for messages)`` for a path, bytes, ModelProto
    or torch module (then ``input_shape`` is required and the module is exported)."""
    if isinstance(model, onnx.ModelProto):
        m = onnx.ModelProto()
        m.CopyFrom(model)
        return m, model.graph.name or "model"
    if isinstance(model, (bytes, bytearray, memoryview)):
        return _parse(bytes(model), "model bytes"), "model bytes"
    if isinstance(model, (str, Path)):
        p = Path(model)
        if not p.is_file():
            raise ModelFileError(f"model file {str(p)!r} not found; give the path of an .onnx file")
        try:
            data = p.read_bytes()
        except OSError as e:
            raise ModelFileError(f"model file {str(p)!r} cannot be read ({e.strerror}); check its permissions") from None
        return _parse(data, repr(str(p)), base_dir=p.parent), repr(p.name)
    if _is_torch_module(model):
        if input_shape is None:
            raise ModelFileError(f"torch module {type(model).__name__}: input_shape is required (e.g. (1, 3, 224, 224))")
        from hwlat.export.onnx_export import torch_to_onnx

        return torch_to_onnx(model, input_shape), type(model).__name__
    raise ModelFileError(f"cannot decompose a {type(model).__name__}; give an ONNX path, bytes, ModelProto or torch module")


def _is_torch_module(obj: Any) -> bool:
    try:
        import torch.nn as nn
    except ImportError:
        return False
    return isinstance(obj, nn.Module)


def _parse(data: bytes, name: str, base_dir: Path | None = None) -> onnx.ModelProto:
    if not data:
        raise ModelFileError(f"{name} is empty; re-export the model")
    m = onnx.ModelProto()
    try:
        m.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{name} is not a valid ONNX file (truncated or corrupt: {str(e).splitlines()[0]}); "
                             "re-export it") from None
    if not m.HasField("graph") or len(m.graph.node) == 0:
        raise ModelFileError(f"{name} holds no ONNX graph (truncated or not an ONNX file); re-export it")
    return m


class Graph:
    """Nodes in execution (file) order with the lookups the matchers need."""

    def __init__(self, model: onnx.ModelProto, name: str = "model") -> None:
        self.name = name
        self.model = _prepare(model, name)
        g = self.model.graph
        self.nodes: list[onnx.NodeProto] = list(g.node)
        self.inits: dict[str, onnx.TensorProto] = {t.name: t for t in g.initializer}
        self.graph_inputs = [i.name for i in g.input if i.name not in self.inits]
        self.graph_outputs = {o.name for o in g.output}
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(self.nodes):
            for o in n.output:
                if o:
                    self.producer[o] = i
            for t in dict.fromkeys(n.input):
                if t:
                    self.consumers.setdefault(t, []).append(i)
        self.shapes: dict[str, Shape] = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            s = _static_shape(vi.type)
            if s is not None:
                self.shapes[vi.name] = s
        for t in g.initializer:
            self.shapes[t.name] = tuple(int(d) for d in t.dims)
        self._const_cache: dict[str, np.ndarray | None] = {}
        self.static = self._static_tensors()
        self._check_wiring()
        self._check_sizes()

    # ---- lookups -------------------------------------------------------------------------------
    def shape(self, t: str) -> Shape | None:
        return self.shapes.get(t)

    def is_static(self, t: str) -> bool:
        """Constant or computed only from constants / tensor shapes (folded before execution)."""
        return t == "" or t in self.static

    def const(self, t: str) -> np.ndarray | None:
        """Value of an initializer or ``Constant`` output, else None."""
        if t in self._const_cache:
            return self._const_cache[t]
        v: np.ndarray | None = None
        try:
            if t in self.inits:
                v = numpy_helper.to_array(self.inits[t])
            elif t in self.producer and self.nodes[self.producer[t]].op_type == "Constant":
                n = self.nodes[self.producer[t]]
                for a in n.attribute:
                    if a.name == "value":
                        v = numpy_helper.to_array(a.t)
                    elif a.name in ("value_float", "value_int", "value_floats", "value_ints"):
                        v = np.array(onnx.helper.get_attribute_value(a))
        except Exception:  # external data that is not there, exotic dtype: treat as unknown
            v = None
        self._const_cache[t] = v
        return v

    def scalar(self, t: str) -> float | None:
        v = self.const(t)
        if v is None or v.size != 1:
            return None
        return float(v.reshape(-1)[0])

    def only_consumer(self, t: str) -> int | None:
        """The one node reading ``t`` (``t`` not a graph output), else None."""
        c = self.consumers.get(t, [])
        if len(c) != 1 or t in self.graph_outputs:
            return None
        return c[0]

    def consumer_set(self, t: str) -> set[int]:
        return set(self.consumers.get(t, []))

    def op(self, i: int) -> str:
        return self.nodes[i].op_type

    def dyn_inputs(self, i: int) -> list[str]:
        """Inputs of node ``i`` that are activations (not static)."""
        return [t for t in self.nodes[i].input if t and not self.is_static(t)]

    def attr(self, i: int, name: str, default: Any = None) -> Any:
        for a in self.nodes[i].attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    def node_name(self, i: int) -> str:
        n = self.nodes[i]
        return n.name or f"{n.op_type}_{i}"

    # ---- construction helpers ------------------------------------------------------------------
    def _static_tensors(self) -> set[str]:
        static = set(self.inits)
        for n in self.nodes:
            outs = [o for o in n.output if o]
            if n.op_type in ("Constant", "Shape", "Size") and n.domain in ("", "ai.onnx"):
                static.update(outs)
                continue
            if n.input and all((t == "" or t in static) for t in n.input) and n.domain in ("", "ai.onnx"):
                static.update(outs)
        return static

    def _check_wiring(self) -> None:
        known = set(self.inits) | {i.name for i in self.model.graph.input}
        for i, n in enumerate(self.nodes):
            for t in n.input:
                if t and t not in known:
                    raise ModelFileError(f"{self.name}: node {self.node_name(i)!r} reads tensor {t!r} that no earlier "
                                         "node produces (truncated or corrupt file, or nodes not in topological "
                                         "order); re-export the model")
            known.update(o for o in n.output if o)
        for o in self.graph_outputs:
            if o not in known:
                raise ModelFileError(f"{self.name}: graph output {o!r} is produced by no node (truncated or "
                                     "corrupt file); re-export the model")

    def _check_sizes(self) -> None:
        for t, s in self.shapes.items():
            n = 1
            for d in s:
                n *= max(int(d), 0)
            if n > MAX_ELEMENTS:
                raise ModelFileError(f"{self.name}: tensor {t!r} has shape {list(s)} ({n:.3g} elements > 2^31); "
                                     "give a smaller input shape")


def _static_shape(t: onnx.TypeProto) -> Shape | None:
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in t.tensor_type.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(int(d.dim_value))
    return tuple(dims)


def _prepare(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """Fix symbolic / zero dims of graph inputs to 1, refuse absurd inputs, infer shapes."""
    g = model.graph
    if not any(o.domain in ("", "ai.onnx") for o in model.opset_import):
        raise ModelFileError(f"{name} declares no ONNX opset (truncated or corrupt file); re-export the model")
    inits = {t.name for t in g.initializer}
    for vi in g.input:
        if vi.name in inits or not vi.type.HasField("tensor_type"):
            continue
        n = 1
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value") or d.dim_value <= 0:
                d.Clear()
                d.dim_value = 1
            n *= d.dim_value
        if n > MAX_ELEMENTS:
            dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
            raise ModelFileError(f"{name}: input {vi.name!r} declares shape {dims} ({n:.3g} elements > 2^31); "
                                 "give a smaller input shape")
    # Symbolic intermediate shapes (the old batch dim) would conflict with re-inference; fully static
    # ones stay (they are all we know past a custom operator).
    keep = [vi for vi in g.value_info if _static_shape(vi.type) is not None]
    del g.value_info[:]
    g.value_info.extend(keep)
    for vo in g.output:
        if vo.type.HasField("tensor_type") and _static_shape(vo.type) is None:
            vo.type.tensor_type.ClearField("shape")
    model = _infer(model, name)
    # Each fold can only evaluate shape arithmetic whose inputs' shapes are known; the shapes it
    # reveals (past a TF-'same' Pad, say) make the next Pad's arithmetic evaluable: repeat.
    for _ in range(_FOLD_MAX_ROUNDS):
        if not _fold_static_frontier(model):
            break
        model = _infer(model, name)
    return model


def _infer(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    try:
        return shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception as e:  # onnx raises several types (InferenceError, ValidationError, RuntimeError)
        raise ModelFileError(f"{name}: shape inference failed ({str(e).splitlines()[0][:200]}); "
                             "check the model with onnx.checker") from None


_FOLD_MAX_ELEMENTS = 1 << 20
_FOLD_MAX_ROUNDS = 512  # Swin-V2-CR: three rounds per block (its pads depend on the block before)
_FOLDED = "__hwlat_folded"
_FOLD_ONE_BY_ONE = 256  # tensors evaluated one at a time when evaluating them together failed
# Inputs that ONNX shape inference reads by value (the output shape depends on them), per operator.
_VALUE_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Pad": (1, 2, 3), "Expand": (1,), "Tile": (1,), "Resize": (1, 2, 3), "Upsample": (1,),
    "Slice": (1, 2, 3, 4), "ConstantOfShape": (0,), "Range": (0, 1, 2), "Split": (1,), "Unsqueeze": (1,),
    "Squeeze": (1,), "ReduceMean": (1,), "ReduceSum": (1,), "ReduceMax": (1,), "ReduceMin": (1,),
    "ReduceL2": (1,), "ReduceProd": (1,), "TopK": (1,), "OneHot": (1,), "CenterCropPad": (1,)}


def _fold_static_frontier(model: onnx.ModelProto) -> bool:
    """When shape inference left activation shapes unknown because a shape-computing subgraph was too
    much for it (e.g. ``Where`` in torch's ``expand`` export), evaluate the constant / shape-derived
    tensors that activations read and feed them in as ``Constant`` nodes. Returns True if it changed
    the graph. Best effort: on any evaluation problem the shapes just stay unknown."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    shapes: dict[str, Shape] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        s = _static_shape(vi.type)
        if s is not None:
            shapes[vi.name] = s
    nodes = list(g.node)
    static: set[str] = set(inits)
    static_nodes: list[int] = []
    for i, n in enumerate(nodes):
        if n.domain not in ("", "ai.onnx"):
            continue
        if (n.op_type == "Constant" or (n.op_type == "Shape" and n.input[0] in shapes)
                or (n.input and all(t == "" or t in static for t in n.input))):
            static.update(o for o in n.output if o)
            static_nodes.append(i)
    static_set = set(static_nodes)
    dynamic = [i for i in range(len(nodes)) if i not in static_set]
    if all(o in shapes for i in dynamic for o in nodes[i].output if o):
        return False
    # Only what shape inference reads by value (pads, target shapes, axes …) or does not know the
    # shape of, for nodes whose output shapes are unknown: a weight-standardised conv weight has a
    # known shape and need not be computed.
    frontier = sorted({t for i in dynamic if not all(o in shapes for o in nodes[i].output if o)
                       for k, t in enumerate(nodes[i].input)
                       if t in static and t not in inits and not t.endswith(_FOLDED)
                       and (k in _VALUE_INPUTS.get(nodes[i].op_type, ()) or t not in shapes)})
    if not frontier:
        return False

    def from_shape(i: int) -> bool:
        return nodes[i].op_type == "Shape" and nodes[i].input[0] in shapes

    producer = {o: i for i in static_nodes for o in nodes[i].output if o}

    def evaluate(targets: list[str]) -> list[Any] | None:
        needed_nodes: set[int] = set()
        todo = [producer[t] for t in targets if t in producer]
        while todo:  # only the targets' ancestors: an unrelated node the evaluator lacks must not stop it
            i = todo.pop()
            if i in needed_nodes:
                continue
            needed_nodes.add(i)
            if not from_shape(i):
                todo.extend(producer[t] for t in nodes[i].input if t in producer)
        sub: list[onnx.NodeProto] = []
        for i in sorted(needed_nodes):
            n = nodes[i]
            if from_shape(i):  # value known from the inferred shape of its input
                full = np.array(shapes[n.input[0]], dtype=np.int64)
                start = int(onnx.helper.get_attribute_value(a) if (a := _find_attr(n, "start")) else 0)
                end_a = _find_attr(n, "end")
                end = int(onnx.helper.get_attribute_value(end_a)) if end_a else len(full)
                sub.append(onnx.helper.make_node("Constant", [], [n.output[0]],
                                                 value=numpy_helper.from_array(full[start:end])))
            else:
                sub.append(n)
        try:
            from onnx.reference import ReferenceEvaluator

            needed = {t for n in sub for t in n.input if t in inits}
            graph = onnx.helper.make_graph(sub, "static", [],
                                           [onnx.helper.make_empty_tensor_value_info(t) for t in targets],
                                           initializer=[inits[t] for t in sorted(needed)])
            m = onnx.helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
            return list(ReferenceEvaluator(m).run(None, {}))
        except Exception:
            return None

    values = evaluate(frontier)
    if values is None:  # one tensor the evaluator cannot compute must not keep the others unknown
        values = [(v[0] if (v := evaluate([t])) is not None else None) for t in frontier[:_FOLD_ONE_BY_ONE]]
    renamed: dict[str, str] = {}
    new_consts = []
    shaped = False
    for t, value in zip(frontier, values, strict=False):
        if value is None:
            continue
        v = np.asarray(value)
        if v.size > _FOLD_MAX_ELEMENTS:
            if t not in shapes and v.dtype.kind in "fiub":  # a big computed weight: its shape is what is missing
                g.value_info.append(onnx.helper.make_tensor_value_info(
                    t, onnx.helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape)))
                shaped = True
            continue
        renamed[t] = f"{t}{_FOLDED}"
        new_consts.append(onnx.helper.make_node("Constant", [], [renamed[t]], value=numpy_helper.from_array(v),
                                                name=renamed[t]))
    if not renamed:
        return shaped
    for i in dynamic:
        n = nodes[i]
        for k, t in enumerate(n.input):
            if t in renamed:
                n.input[k] = renamed[t]
    del g.node[:]
    g.node.extend(new_consts + nodes)
    return True


def _find_attr(n: onnx.NodeProto, name: str) -> onnx.AttributeProto | None:
    return next((a for a in n.attribute if a.name == name), None)
