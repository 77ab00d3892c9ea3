"""Derived quantities of a kernel, used as predictor features."""

from __future__ import annotations

from hwlat.kernels.base import Kernel, get
from hwlat.kernels.common import numel

DERIVED_FIELDS = ("flops", "params", "bytes_read", "bytes_written", "arithmetic_intensity", "out_numel")


def describe(kernel: Kernel) -> dict[str, float]:
    """flops, params, bytes_read, bytes_written, arithmetic_intensity (FLOPs per byte moved)
    and out_numel (elements of all outputs) of ``kernel``."""
    kt = get(kernel.type)
    cfg = kt.validate(kernel.config)
    flops, br, bw = kt.flops(cfg), kt.bytes_read(cfg), kt.bytes_written(cfg)
    return {
        "flops": flops,
        "params": kt.params(cfg),
        "bytes_read": br,
        "bytes_written": bw,
        "arithmetic_intensity": flops / max(br + bw, 1.0),
        "out_numel": float(sum(numel(s) for s in kt.output_shapes(cfg))),
    }
