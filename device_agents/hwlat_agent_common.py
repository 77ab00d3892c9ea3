"""Helpers shared by the runtime plug-ins: fixed random inputs and nvidia-smi readings.

Ships to the device next to ``hwlat_agent.py``; standard library only (numpy is imported
lazily by the caller's runtime, which always brings it). Python >= 3.8.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

# Dtype names as runtimes spell them -> numpy dtype names.
ONNX_TYPE_TO_NUMPY = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(bfloat16)": "float32",  # numpy has no bfloat16; ORT rejects float32 for it -> item error
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16",
    "tensor(uint16)": "uint16", "tensor(int32)": "int32", "tensor(uint32)": "uint32",
    "tensor(int64)": "int64", "tensor(uint64)": "uint64", "tensor(bool)": "bool",
}


def fixed_shape(shape: Any) -> list[int]:
    """A concrete shape: dynamic dims (None, strings, symbols, negatives) become 1."""
    out = []
    for d in (() if shape is None else shape):
        try:
            v = int(d)
        except (TypeError, ValueError):
            v = 1
        out.append(v if v > 0 else 1)
    return out


def random_array(shape: Any, dtype: Any, rng: Any) -> Any:
    """Seeded input: floats ~ U(-1, 1), ints in [0, 10), bools 50/50 (agent protocol step 1)."""
    import numpy as np

    dt = np.dtype(dtype)
    shp = fixed_shape(shape)
    if dt.kind == "f":
        return rng.uniform(-1.0, 1.0, size=shp).astype(dt)
    if dt.kind in "iu":
        return rng.integers(0, 10, size=shp).astype(dt)
    if dt.kind == "b":
        return rng.integers(0, 2, size=shp).astype(bool)
    raise ValueError(f"unsupported input dtype {dt}")


def nvidia_smi(index: int = 0) -> dict[str, Any]:
    """GPU name, driver and clocks from nvidia-smi; {} when it is absent or fails."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return {}
    fields = ["name", "driver_version", "clocks.sm", "clocks.mem", "clocks.max.sm", "clocks.max.mem",
              "memory.total", "temperature.gpu"]
    try:
        out = subprocess.run([exe, "--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits",
                              "-i", str(int(index))], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {}
    if out.returncode != 0 or not out.stdout.strip():
        return {}
    vals = [v.strip() for v in out.stdout.strip().splitlines()[0].split(",")]
    if len(vals) != len(fields):
        return {}
    info = dict(zip(fields, vals))  # noqa: B905 - strict= needs Python 3.10; lengths checked above

    def num(key: str) -> float | None:
        try:
            return float(info[key])
        except (KeyError, ValueError):
            return None

    return {
        "gpu_name": info["name"],
        "gpu_driver": info["driver_version"],
        "gpu_max_clocks_mhz": {"sm": num("clocks.max.sm"), "mem": num("clocks.max.mem")},
        "gpu_clocks": {"sm": num("clocks.sm"), "mem": num("clocks.mem")},
        "gpu_mem_total_mb": num("memory.total"),
        "gpu_temp_c": num("temperature.gpu"),
    }
