"""hwlat agent runtime plug-in: TensorFlow Lite / LiteRT interpreter.

Uses ``ai_edge_litert.interpreter`` and falls back to ``tflite_runtime.interpreter``.
Options: threads (num_threads), xnnpack (true default; false uses the builtin kernels
without the default XNNPACK delegate).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

NAME = "tflite"
_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")


def _find_module() -> str | None:
    for mod in _MODULES:
        top = mod.split(".")[0]
        if importlib.util.find_spec(top) is not None:
            return mod
    return None


def _interp_module() -> Any:
    mod = _find_module()
    if mod is None:
        raise RuntimeError("no TFLite interpreter: pip install ai-edge-litert (or tflite-runtime)")
    return importlib.import_module(mod)


def _package(mod: str) -> str:
    return "ai-edge-litert" if mod.startswith("ai_edge_litert") else "tflite-runtime"


def version(options: dict[str, Any]) -> str:
    mod = _find_module()
    if mod is None:
        return "none"
    try:
        from importlib.metadata import version as dist_version

        return f"{_package(mod)} {dist_version(_package(mod))}"
    except Exception:
        m = importlib.import_module(mod.split(".")[0])
        return "{} {}".format(_package(mod), getattr(m, "__version__", "unknown"))


def missing(options: dict[str, Any]) -> list[str]:
    """One line per missing thing; [] when a TFLite interpreter is importable."""
    out = []
    if importlib.util.find_spec("numpy") is None:
        out.append("python package numpy is not installed: pip install numpy")
    if _find_module() is None:
        out.append("no TFLite interpreter: pip install ai-edge-litert (or tflite-runtime on older devices)")
    threads = options.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        out.append(f"tflite option threads={threads!r} must be an integer >= 1")
    if not isinstance(options.get("xnnpack", True), bool):
        out.append("tflite option xnnpack={!r} must be true or false".format(options.get("xnnpack")))
    return out


def fingerprint_extra(options: dict[str, Any]) -> dict[str, Any]:
    return {"provider": "xnnpack" if options.get("xnnpack", True) else "builtin",
            "interpreter": _find_module()}


class Runner:
    """One TFLite Interpreter with fixed random inputs set once."""

    def __init__(self, path: str, options: dict[str, Any], seed: int) -> None:
        import numpy as np
        from hwlat_agent_common import fixed_shape, random_array

        mod = _interp_module()
        kwargs: dict[str, Any] = {"model_path": path}
        threads = options.get("threads")
        if threads is not None:
            kwargs["num_threads"] = int(threads)
        if not options.get("xnnpack", True):
            kwargs["experimental_op_resolver_type"] = mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self.interp = mod.Interpreter(**kwargs)
        details = self.interp.get_input_details()
        resized = False
        for d in details:
            sig = d.get("shape_signature", d["shape"])
            if any(int(x) < 0 for x in sig):
                self.interp.resize_tensor_input(d["index"], fixed_shape(sig))
                resized = True
        self.interp.allocate_tensors()
        if resized:
            details = self.interp.get_input_details()
        rng = np.random.default_rng(seed)
        self.inputs = {}
        for d in details:
            arr = random_array(d["shape"], d["dtype"], rng)
            self.interp.set_tensor(d["index"], arr)
            self.inputs[d["name"]] = list(arr.shape)

    def run_once(self) -> float | None:
        self.interp.invoke()
        return None

    def extra(self) -> dict[str, Any]:
        # The Python interpreter exposes no per-op timings; report the op mix instead.
        ops: dict[str, int] = {}
        try:
            for op in self.interp._get_ops_details():
                ops[op["op_name"]] = ops.get(op["op_name"], 0) + 1
        except Exception:
            ops = {}
        return {"inputs": self.inputs, "ops": ops}

    def close(self) -> None:
        self.interp = None


def open(path: str, options: dict[str, Any], seed: int) -> Runner:  # noqa: A001 - plug-in interface name
    return Runner(path, options, seed)
