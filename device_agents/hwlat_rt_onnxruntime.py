"""hwlat agent runtime plug-in: ONNX Runtime.

Options: threads (intra-op threads; inter-op is 1 and execution sequential), provider
(CPUExecutionProvider, CUDAExecutionProvider, TensorrtExecutionProvider, ...; default CPU),
graph_optimization ("all" default, "extended", "basic", "disable"), device_id (GPU index, 0).
On GPU providers inputs and outputs stay on the device (io_binding) and every run ends
with a synchronize, so the agent's wall-clock timing is the real latency.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

NAME = "onnxruntime"
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
_OPT_LEVELS = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC",
               "disable": "ORT_DISABLE_ALL"}


def _provider(options: dict[str, Any]) -> str:
    return str(options.get("provider") or "CPUExecutionProvider")


def version(options: dict[str, Any]) -> str:
    import onnxruntime as ort

    return str(ort.__version__)


def missing(options: dict[str, Any]) -> list[str]:
    """One line per missing thing; [] when ONNX Runtime can run with these options."""
    out = []
    for mod, pkg in (("numpy", "numpy"), ("onnxruntime", "onnxruntime (or onnxruntime-gpu)")):
        if importlib.util.find_spec(mod) is None:
            out.append(f"python package {mod} is not installed: pip install {pkg.split()[0]}")
    if out:
        return out
    import onnxruntime as ort

    prov = _provider(options)
    avail = ort.get_available_providers()
    if prov not in avail:
        hint = " (install onnxruntime-gpu)" if prov in GPU_PROVIDERS else ""
        out.append("onnxruntime {} has no {}{}; available: {}".format(ort.__version__, prov, hint, ", ".join(avail)))
    level = options.get("graph_optimization", "all")
    if level not in _OPT_LEVELS:
        out.append("onnxruntime option graph_optimization={!r} is not one of {}".format(level, ", ".join(_OPT_LEVELS)))
    threads = options.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 0):
        out.append(f"onnxruntime option threads={threads!r} must be a non-negative integer")
    return out


def fingerprint_extra(options: dict[str, Any]) -> dict[str, Any]:
    prov = _provider(options)
    extra: dict[str, Any] = {"provider": prov, "graph_optimization": options.get("graph_optimization", "all")}
    if prov in GPU_PROVIDERS:
        from hwlat_agent_common import nvidia_smi

        extra.update(nvidia_smi(int(options.get("device_id", 0))))
    return extra


class Runner:
    """One InferenceSession with fixed random inputs."""

    def __init__(self, path: str, options: dict[str, Any], seed: int) -> None:
        import numpy as np
        import onnxruntime as ort
        from hwlat_agent_common import ONNX_TYPE_TO_NUMPY, random_array

        so = ort.SessionOptions()
        so.log_severity_level = 3
        threads = options.get("threads")
        if threads is not None:
            so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                              _OPT_LEVELS[options.get("graph_optimization", "all")])
        prov = _provider(options)
        self.gpu = prov in GPU_PROVIDERS
        dev_id = int(options.get("device_id", 0))
        if prov == "TensorrtExecutionProvider":
            # Engine cache inside the run directory: the agent writes nothing outside it.
            cache = os.path.join(os.getcwd(), ".cache", "trt")
            os.makedirs(cache, exist_ok=True)
            providers: list[Any] = [(prov, {"device_id": dev_id, "trt_engine_cache_enable": True,
                                            "trt_engine_cache_path": cache}),
                                    ("CUDAExecutionProvider", {"device_id": dev_id}), "CPUExecutionProvider"]
        elif self.gpu:
            providers = [(prov, {"device_id": dev_id}), "CPUExecutionProvider"]
        else:
            providers = [prov] if prov == "CPUExecutionProvider" else [prov, "CPUExecutionProvider"]
        self.sess = ort.InferenceSession(path, sess_options=so, providers=providers)
        used = self.sess.get_providers()
        # ORT silently falls back to CPU when a GPU library fails to load: refuse that.
        if not used or used[0] != prov:
            raise RuntimeError("onnxruntime did not enable {} (session uses {})".format(prov, ", ".join(used)))
        rng = np.random.default_rng(seed)
        self.feeds = {}
        for inp in self.sess.get_inputs():
            dt = ONNX_TYPE_TO_NUMPY.get(inp.type)
            if dt is None:
                raise RuntimeError(f"input {inp.name} has unsupported type {inp.type}")
            self.feeds[inp.name] = random_array(inp.shape, dt, rng)
        self.binding = None
        if self.gpu:
            self.binding = self.sess.io_binding()
            self._dev_inputs = {}
            for name, arr in self.feeds.items():
                val = ort.OrtValue.ortvalue_from_numpy(arr, "cuda", dev_id)
                self._dev_inputs[name] = val
                self.binding.bind_ortvalue_input(name, val)
            for out in self.sess.get_outputs():
                self.binding.bind_output(out.name, "cuda", dev_id)
        self.providers = used

    def run_once(self) -> float | None:
        if self.binding is not None:
            self.binding.synchronize_inputs()
            self.sess.run_with_iobinding(self.binding)
            self.binding.synchronize_outputs()
        else:
            self.sess.run(None, self.feeds)
        return None

    def extra(self) -> dict[str, Any]:
        return {"providers": list(self.providers),
                "inputs": {k: list(v.shape) for k, v in self.feeds.items()}}

    def close(self) -> None:
        self.binding = None
        self.sess = None


def open(path: str, options: dict[str, Any], seed: int) -> Runner:  # noqa: A001 - plug-in interface name
    return Runner(path, options, seed)
