"""hwlat agent runtime plug-in: PyTorch eager (or torch.compile) on a torch.export program.

Loads a ``.pt2`` written by ``torch.export.save`` with ``torch.export.load`` and runs
``program.module()`` under ``torch.inference_mode()``.
Options: threads (torch.set_num_threads; inter-op threads 1), device ("cpu" default, "cuda",
"cuda:N"), compile (false default; true wraps the module with torch.compile).
On CUDA each run is timed with CUDA events (the agent's warm-up runs first, then each run
records start/end events and synchronizes), so the figure is device time.
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Any

NAME = "torch"


def _device(options: dict[str, Any]) -> str:
    return str(options.get("device") or "cpu")


def version(options: dict[str, Any]) -> str:
    import torch

    return str(torch.__version__)


def missing(options: dict[str, Any]) -> list[str]:
    """One line per missing thing; [] when torch can run with these options."""
    out = []
    for mod in ("numpy", "torch"):
        if importlib.util.find_spec(mod) is None:
            out.append(f"python package {mod} is not installed: pip install {mod}")
    if out:
        return out
    import torch

    dev = _device(options)
    if dev.startswith("cuda"):
        if not torch.cuda.is_available():
            out.append(f"torch {torch.__version__} has no usable CUDA device (CPU-only build or no GPU/driver)")
        else:
            idx = int(dev.split(":", 1)[1]) if ":" in dev else 0
            if idx >= torch.cuda.device_count():
                out.append(f"torch device {dev} does not exist ({torch.cuda.device_count()} CUDA devices)")
    elif dev != "cpu":
        out.append(f"torch option device={dev!r} is not supported (use cpu or cuda[:N])")
    if options.get("compile") and not hasattr(torch, "compile"):
        out.append(f"torch {torch.__version__} has no torch.compile (needs torch >= 2.0)")
    if not hasattr(torch, "export") or not hasattr(getattr(torch, "export", None), "load"):
        out.append(f"torch {torch.__version__} has no torch.export.load (needs torch >= 2.1)")
    threads = options.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        out.append(f"torch option threads={threads!r} must be an integer >= 1")
    return out


def fingerprint_extra(options: dict[str, Any]) -> dict[str, Any]:
    import torch

    dev = _device(options)
    extra: dict[str, Any] = {"provider": dev, "compile": bool(options.get("compile", False))}
    if options.get("threads") is None:
        extra["threads"] = torch.get_num_threads()
    if dev.startswith("cuda") and torch.cuda.is_available():
        from hwlat_agent_common import nvidia_smi

        idx = int(dev.split(":", 1)[1]) if ":" in dev else 0
        info = nvidia_smi(idx)
        info.setdefault("gpu_name", torch.cuda.get_device_name(idx))
        info["cuda_runtime"] = torch.version.cuda
        extra.update(info)
    return extra


def _user_input_specs(ep: Any) -> list[tuple[list[int], Any]]:
    """(shape, dtype) of each user input; symbolic dims -> max(1, their lower bound)."""
    import torch

    user = list(ep.graph_signature.user_inputs)
    nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    specs = []
    for name in user:
        val = nodes[name].meta.get("val") if name in nodes else None
        if val is None or not hasattr(val, "shape"):
            raise RuntimeError(f"program input {name} is not a tensor; only tensor inputs are supported")
        shape = []
        for d in val.shape:
            if isinstance(d, torch.SymInt):
                rng = ep.range_constraints.get(d.node.expr)
                lower = getattr(rng, "lower", 1) if rng is not None else 1
                try:
                    lower = int(lower)
                except (TypeError, ValueError):
                    lower = 1
                shape.append(max(1, lower))
            else:
                shape.append(int(d))
        specs.append((shape, val.dtype))
    return specs


class Runner:
    """One exported program, its module and fixed random inputs on the target device."""

    def __init__(self, path: str, options: dict[str, Any], seed: int) -> None:
        import numpy as np
        import torch
        from hwlat_agent_common import random_array

        threads = options.get("threads")
        if threads is not None:
            torch.set_num_threads(int(threads))
        # Only settable before the first parallel work; a second open() keeps the first setting.
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
        self.device = torch.device(_device(options))
        self.cuda = self.device.type == "cuda"
        ep = torch.export.load(path)
        rng = np.random.default_rng(seed)
        self.inputs = []
        for shape, dtype in _user_input_specs(ep):
            np_dtype = torch.empty((), dtype=dtype).numpy().dtype if dtype != torch.bfloat16 else np.float32
            arr = random_array(shape, np_dtype, rng)
            self.inputs.append(torch.from_numpy(arr).to(dtype=dtype, device=self.device))
        module = ep.module()
        if self.cuda:
            module = module.to(self.device)
        if options.get("compile"):
            module = torch.compile(module)
        self.module = module
        self.compiled = bool(options.get("compile"))
        self._torch = torch
        if self.cuda:
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(self.device)

    def run_once(self) -> float | None:
        torch = self._torch
        with torch.inference_mode():
            if self.cuda:
                self._start.record()
                self.module(*self.inputs)
                self._end.record()
                self._end.synchronize()
                return float(self._start.elapsed_time(self._end))
            self.module(*self.inputs)
        return None

    def extra(self) -> dict[str, Any]:
        return {"inputs": [list(t.shape) for t in self.inputs], "device": str(self.device),
                "compile": self.compiled, "timer": "cuda_events" if self.cuda else "perf_counter"}

    def close(self) -> None:
        self.module = None
        self.inputs = []
        if self.cuda:
            self._torch.cuda.synchronize(self.device)


def open(path: str, options: dict[str, Any], seed: int) -> Runner:  # noqa: A001 - plug-in interface name
    return Runner(path, options, seed)
