"""Shared arithmetic for kernel types: output sizes, activation costs, seeded weights.

Cost conventions (all kernel modules follow them):

* FLOPs: one multiply-accumulate = 2 FLOPs. A bias add, a folded BatchNorm (scale+shift
  folded into the conv weight and bias, as runtimes do) and a residual ``Add`` cost 1 FLOP per
  output element. Activations cost :data:`ACT_FLOPS` per element (a rough count of the
  elementwise ops of each formula). Pools count one FLOP per window element; copies
  (transpose, shuffle, concat) count 0.
* params: learned weights as torch counts them (conv/linear weight + bias, BatchNorm weight +
  bias; running statistics are buffers, not params).
* bytes_read: float32 bytes of the kernel's external inputs plus its params; bytes_written:
  float32 bytes of its outputs. Intermediates of fused kernels (mha, mbconv) are not counted.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from hwlat.kernels.base import ACTIVATIONS, ConfigValue, KernelType, Shape, register

#: Approximate FLOPs per element of each activation (ops in its formula).
ACT_FLOPS: dict[str, int] = {
    "none": 0,
    "relu": 1,  # max
    "relu6": 2,  # min, max
    "hsigmoid": 3,  # mul, add, clip
    "hswish": 4,  # hsigmoid + mul
    "sigmoid": 4,  # neg, exp, add, div
    "swish": 5,  # sigmoid + mul
    "gelu": 8,  # div, erf (~4), add, mul, mul
    "tanh": 5,  # exp-based: ~ sigmoid + scale
    "leaky_relu": 2,  # mul, max
}
assert set(ACT_FLOPS) == set(ACTIVATIONS)

BYTES = 4  # float32

#: ONNX opset and IR version of every built model (IR 8 = the IR that introduced opset 17,
#: loadable by old onnxruntime builds on devices).
OPSET = 17
IR_VERSION = 8


def conv_out(size: int, k: int, s: int) -> int:
    """Output size of a conv with "same-style" padding ``k // 2``."""
    return (size + 2 * (k // 2) - k) // s + 1


def pool_out(size: int, k: int, s: int, ceil: int = 0) -> int:
    """Output size of a pool with padding ``p = (k - 1) // 2``: ``floor`` (ceil=0) or ``ceil`` (ceil=1,
    torch ``ceil_mode=True`` / ONNX ``ceil_mode=1``) of ``(size + 2p - k) / s``, plus one. As torch and
    onnxruntime do, a ceil-mode window that would start in the right padding is dropped."""
    p = (k - 1) // 2
    if not ceil:
        return (size + 2 * p - k) // s + 1
    out = -(-(size + 2 * p - k) // s) + 1
    if (out - 1) * s >= size + p:
        out -= 1
    return out


def make_divisible(v: float, divisor: int = 8, min_val: int | None = None) -> int:
    """Round channels to a multiple of ``divisor`` (the MobileNet/OFA rule)."""
    min_val = divisor if min_val is None else min_val
    new_v = max(min_val, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # never round down by more than 10 %
        new_v += divisor
    return new_v


def numel(shape: Shape) -> int:
    return math.prod(shape)


def shapes_bytes(shapes: tuple[Shape, ...]) -> int:
    return BYTES * sum(numel(s) for s in shapes)


def rng_for(type_name: str, cfg: Mapping[str, ConfigValue]) -> np.random.Generator:
    """Deterministic generator for a kernel's weights, from its canonical key."""
    key = json.dumps({"type": type_name, "config": dict(sorted(cfg.items()))}, sort_keys=True,
                     separators=(",", ":"))
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    return np.random.default_rng(seed)


def he(rng: np.random.Generator, shape: Shape, fan_in: int) -> np.ndarray:
    """He-uniform float32 weights: keeps activations O(1) through the kernel."""
    bound = math.sqrt(6.0 / max(fan_in, 1))
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def bn_weights(rng: np.random.Generator, c: int) -> dict[str, np.ndarray]:
    """BatchNorm scale, bias, running mean and running var (var kept away from 0)."""
    return {
        "scale": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "bias": rng.uniform(-0.1, 0.1, c).astype(np.float32),
        "mean": rng.uniform(-0.1, 0.1, c).astype(np.float32),
        "var": rng.uniform(0.5, 1.5, c).astype(np.float32),
    }


def need(cond: bool, kernel: str, field: str, why: str, cfg: Mapping[str, Any]) -> None:
    """Raise ValueError naming ``field`` when ``cond`` is false."""
    if not cond:
        raise ValueError(f"kernel {kernel!r}: field {field!r}={cfg.get(field)!r} {why}")


def need_positive(kernel: str, cfg: Mapping[str, Any], *fields: str) -> None:
    for f in fields:
        need(int(cfg[f]) >= 1, kernel, f, "must be >= 1", cfg)


def need_choice(kernel: str, cfg: Mapping[str, Any], field: str, choices: tuple[ConfigValue, ...]) -> None:
    need(cfg[field] in choices, kernel, field, f"must be one of {', '.join(map(str, choices))}", cfg)


def define(
    name: str,
    fields: Mapping[str, type],
    *,
    check: Callable[[Mapping[str, Any]], None],
    flops: Callable[[Mapping[str, Any]], float],
    params: Callable[[Mapping[str, Any]], float],
    input_shapes: Callable[[Mapping[str, Any]], tuple[Shape, ...]],
    output_shapes: Callable[[Mapping[str, Any]], tuple[Shape, ...]],
    build_onnx: Callable[[Mapping[str, Any]], Any],
    build_torch: Callable[[Mapping[str, Any]], Any],
    doc: str,
    defaults: Mapping[str, ConfigValue] | None = None,
) -> KernelType:
    """Create and register a kernel type whose functions all see a validated config.

    bytes_read / bytes_written follow the module-level convention (inputs + params, outputs).
    ``defaults``: values of fields a config may omit (see :attr:`KernelType.defaults`).
    """
    unknown = set(defaults or {}) - set(fields)
    if unknown:
        raise ValueError(f"kernel type {name!r}: defaults for unknown field(s) {sorted(unknown)}")
    holder: list[KernelType] = []

    def v(fn: Callable[[Mapping[str, Any]], Any]) -> Callable[[Mapping[str, ConfigValue]], Any]:
        def wrapped(cfg: Mapping[str, ConfigValue]) -> Any:
            return fn(holder[0].validate(cfg))
        wrapped.__name__ = f"{name}_{getattr(fn, '__name__', 'fn')}"
        wrapped.__doc__ = fn.__doc__
        return wrapped

    def bytes_read(cfg: Mapping[str, Any]) -> float:
        return float(shapes_bytes(input_shapes(cfg)) + BYTES * params(cfg))

    def bytes_written(cfg: Mapping[str, Any]) -> float:
        return float(shapes_bytes(output_shapes(cfg)))

    kt = KernelType(
        name=name, fields=dict(fields), check=check,
        flops=v(lambda c: float(flops(c))), params=v(lambda c: float(params(c))),
        bytes_read=v(bytes_read), bytes_written=v(bytes_written),
        build_onnx=v(build_onnx), build_torch=v(lambda c: build_torch(c).eval()),
        input_shapes=v(input_shapes), output_shapes=v(output_shapes), doc=doc, defaults=dict(defaults or {}),
    )
    holder.append(kt)
    return register(kt)
