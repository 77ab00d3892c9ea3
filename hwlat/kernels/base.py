"""Kernel: the unit a runtime executes after fusion, and the registry of kernel types.

A kernel is (type, config, input shapes, output shapes). ``config`` holds only plain
ints/floats/strs so it can be hashed, stored as JSON in a profile, and turned into
predictor features. Each kernel *type* lives in one small module under
``hwlat/kernels/`` and registers a :class:`KernelType` with :func:`register`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ConfigValue = int | float | str
Shape = tuple[int, ...]

# Activation names used across kernel configs, decomposition and search spaces.
# leaky_relu is LeakyRelu with alpha 0.01 in built kernels (the latency does not depend on alpha).
ACTIVATIONS: tuple[str, ...] = ("none", "relu", "relu6", "hswish", "hsigmoid", "sigmoid", "swish", "gelu",
                                "tanh", "leaky_relu")


@dataclass(frozen=True)
class Kernel:
    """One fused kernel: what a runtime launches as a unit.

    Equality and hashing use ``type`` and ``config`` (and shapes); ``nodes`` (ONNX node
    names a decomposition grouped into this kernel) is informational only.
    """

    type: str
    config: Mapping[str, ConfigValue]
    inputs: tuple[Shape, ...] = ()
    outputs: tuple[Shape, ...] = ()
    nodes: tuple[str, ...] = field(default=(), compare=False)

    def key(self) -> str:
        """Canonical JSON of type+config: identical for identical kernels."""
        return json.dumps({"type": self.type, "config": dict(sorted(self.config.items()))},
                          sort_keys=True, separators=(",", ":"))

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "config": dict(self.config),
                "inputs": [list(s) for s in self.inputs], "outputs": [list(s) for s in self.outputs],
                "nodes": list(self.nodes)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Kernel:
        return cls(type=d["type"], config=dict(d["config"]),
                   inputs=tuple(tuple(s) for s in d.get("inputs", ())),
                   outputs=tuple(tuple(s) for s in d.get("outputs", ())),
                   nodes=tuple(d.get("nodes", ())))

    def __hash__(self) -> int:  # Mapping is unhashable; hash the canonical key.
        return hash((self.key(), self.inputs, self.outputs))


@dataclass(frozen=True)
class KernelType:
    """A family of kernels: its config fields and the cost model / builders for it.

    fields: ordered config field names with their python type (int, float or str).
    flops: multiply-accumulates counted as 2 FLOPs; params: learned weights (count);
    bytes_read / bytes_written: activation+weight traffic in bytes for float32.
    build_onnx: a standalone ModelProto computing exactly this kernel (inputs are graph
    inputs, weights are initializers). Other exporters (tflite, torchscript) register in
    ``exporters`` under their format name.
    """

    name: str
    fields: Mapping[str, type]
    flops: Callable[[Mapping[str, ConfigValue]], float]
    params: Callable[[Mapping[str, ConfigValue]], float]
    bytes_read: Callable[[Mapping[str, ConfigValue]], float]
    bytes_written: Callable[[Mapping[str, ConfigValue]], float]
    build_onnx: Callable[[Mapping[str, ConfigValue]], Any]
    input_shapes: Callable[[Mapping[str, ConfigValue]], tuple[Shape, ...]]
    output_shapes: Callable[[Mapping[str, ConfigValue]], tuple[Shape, ...]]
    doc: str = ""
    #: torch module computing the same kernel (lazy torch import); used by the tflite,
    #: torchscript and torch-runtime exporters.
    build_torch: Callable[[Mapping[str, ConfigValue]], Any] | None = None
    exporters: dict[str, Callable[[Mapping[str, ConfigValue]], Any]] = field(default_factory=dict)
    #: constraints between fields (ranges, divisibility, allowed strings), run by ``validate``
    #: on the normalised config; raises ValueError naming the offending field.
    check: Callable[[Mapping[str, ConfigValue]], None] | None = None
    #: values of fields that a config may omit (fields added to a type after profiles were stored,
    #: so old rows still validate); ``validate`` fills them in, so normalised configs are complete.
    defaults: Mapping[str, ConfigValue] = field(default_factory=dict)

    def validate(self, config: Mapping[str, ConfigValue]) -> dict[str, ConfigValue]:
        """Return a normalised copy of ``config``; raise ValueError naming a bad field."""
        out: dict[str, ConfigValue] = {}
        for name, typ in self.fields.items():
            if name in config:
                v = config[name]
            elif name in self.defaults:
                v = self.defaults[name]
            else:
                raise ValueError(f"kernel {self.name!r}: missing config field {name!r}")
            if typ is int and (isinstance(v, bool) or (isinstance(v, float) and not v.is_integer())):
                raise ValueError(f"kernel {self.name!r}: field {name!r}={v!r} is not int")
            try:
                out[name] = typ(v)
            except (TypeError, ValueError):
                raise ValueError(f"kernel {self.name!r}: field {name!r}={v!r} is not {typ.__name__}") from None
        extra = set(config) - set(self.fields)
        if extra:
            raise ValueError(f"kernel {self.name!r}: unknown config field(s) {sorted(extra)}")
        if self.check is not None:
            self.check(out)
        return out

    def make(self, **config: ConfigValue) -> Kernel:
        cfg = self.validate(config)
        return Kernel(self.name, cfg, self.input_shapes(cfg), self.output_shapes(cfg))


_REGISTRY: dict[str, KernelType] = {}


def register(kt: KernelType) -> KernelType:
    """Add a kernel type to the registry (called at import of its module)."""
    if kt.name in _REGISTRY and _REGISTRY[kt.name] is not kt:
        raise ValueError(f"kernel type {kt.name!r} registered twice")
    _REGISTRY[kt.name] = kt
    return kt


def get(name: str) -> KernelType:
    """Look up a kernel type by name."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown kernel type {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def names() -> list[str]:
    return sorted(_REGISTRY)
