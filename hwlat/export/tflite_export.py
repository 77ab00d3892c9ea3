"""Torch → ``.tflite`` with litert-torch, optional full-int8 post-training quantization.

* Float: ``litert_torch.convert``. 4-D inputs/outputs are exported channel-last (NHWC) by
  default so the graph holds no layout TRANSPOSE ops around the kernel being measured.
* int8 (for MCUs / TFLM): the float model is quantized with ``ai-edge-quantizer``
  (``static_wi8_ai8``: int8 weights, activations *and* graph inputs/outputs) calibrated on
  seeded U(-1, 1) inputs. litert-torch's own PT2E quantizer only annotates conv/linear and
  leaves ADD/SOFTMAX/POOL in float, which TFLM-on-MCU builds rarely carry; ai-edge-quantizer
  comes with litert-torch and needs no TensorFlow.

Kernels export through the content-addressed cache of :mod:`hwlat.kernels.export` (formats
``tflite`` and ``tflite_int8``, registered on import); :func:`export_kernels` fills it in
parallel with a process pool.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwlat.errors import ConfigError, HwlatError, ModelFileError
from hwlat.kernels.base import Kernel, get
from hwlat.kernels.export import export_kernel, export_path, exporter, register_exporter

Shape = tuple[int, ...]
QUANT_MODES = (None, "int8")
CALIB_SAMPLES = 8


def _shapes(input_shapes: Shape | Sequence[Shape]) -> list[Shape]:
    """Accept one shape ``(1, 3, 8, 8)`` or a sequence of shapes."""
    seq = list(input_shapes)
    if seq and all(isinstance(d, int) for d in seq):
        return [tuple(int(d) for d in seq)]
    return [tuple(int(d) for d in s) for s in seq]


def _require_litert() -> Any:
    try:
        import litert_torch
    except ImportError as e:
        raise ConfigError(f"tflite export needs litert-torch ({e}): pip install litert-torch "
                          "--constraint <(echo torch==2.13.0)") from None
    return litert_torch


def _convert_float(module: Any, shapes: list[Shape], channel_last: bool, seed: int) -> bytes:
    import torch

    litert_torch = _require_litert()
    module = module.eval()
    cl_args = [i for i, s in enumerate(shapes) if len(s) == 4] if channel_last else []
    g = torch.Generator().manual_seed(seed)
    sample = tuple(torch.rand(*((s[0], s[2], s[3], s[1]) if i in cl_args else s), generator=g) * 2 - 1
                   for i, s in enumerate(shapes))
    if cl_args:
        with torch.no_grad():
            probe = module(*(t.permute(0, 3, 1, 2) if i in cl_args else t for i, t in enumerate(sample)))
        outs = probe if isinstance(probe, (tuple, list)) else (probe,)
        cl_outs = [i for i, o in enumerate(outs) if getattr(o, "dim", lambda: 0)() == 4]
        module = litert_torch.to_channel_last_io(module, args=cl_args, outputs=cl_outs)
    with tempfile.TemporaryDirectory(prefix="hwlat-tflite-") as tmp:
        out = Path(tmp) / "m.tflite"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            litert_torch.convert(module, sample).export(str(out))
        return out.read_bytes()


def _quantize_int8(float_model: bytes, seed: int, samples: int = CALIB_SAMPLES) -> bytes:
    import numpy as np
    from ai_edge_litert import interpreter as litert_interp
    from ai_edge_quantizer import quantizer, recipe

    interp = litert_interp.Interpreter(model_content=float_model)
    sigs = interp.get_signature_list()
    key = next(iter(sigs))
    details = interp.get_signature_runner(key).get_input_details()
    rng = np.random.default_rng(seed)
    calib = {key: [{name: rng.uniform(-1.0, 1.0, size=d["shape"]).astype(np.float32)
                    for name, d in details.items()} for _ in range(samples)]}
    with tempfile.TemporaryDirectory(prefix="hwlat-tflite-") as tmp:
        src = Path(tmp) / "float.tflite"
        src.write_bytes(float_model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qt = quantizer.Quantizer(str(src))
            qt.load_quantization_recipe(recipe.static_wi8_ai8())
            result = qt.calibrate(calib, num_threads=1)
            q = qt.quantize(result, enable_progress_report=False)
    if not q.quantized_model:
        raise ModelFileError("ai-edge-quantizer produced no int8 model")
    return bytes(q.quantized_model)


def torch_to_tflite(module: Any, input_shapes: Shape | Sequence[Shape], path: str | Path, *,
                    quantize: str | None = None, channel_last: bool = True, seed: int = 0) -> Path:
    """Export ``module`` (batch-1 inputs of ``input_shapes``, NCHW for 4-D) to ``path``.

    quantize: None (float32) or ``"int8"`` (full-integer PTQ incl. int8 graph I/O).
    channel_last: export 4-D inputs/outputs as NHWC (what TFLite kernels use natively).
    Writes atomically; raises ModelFileError naming the failing step.
    """
    if quantize not in QUANT_MODES:
        raise ConfigError(f"unknown tflite quantization {quantize!r}; use none or int8")
    path = Path(path)
    shapes = _shapes(input_shapes)
    try:
        data = _convert_float(module, shapes, channel_last, seed)
    except HwlatError:
        raise
    except Exception as e:
        raise ModelFileError(f"litert-torch cannot convert {type(module).__name__} with inputs {shapes}: "
                             f"{type(e).__name__}: {e}") from None
    if quantize == "int8":
        try:
            data = _quantize_int8(data, seed)
        except HwlatError:
            raise
        except Exception as e:
            raise ModelFileError(f"int8 quantization of {type(module).__name__} failed: "
                                 f"{type(e).__name__}: {e}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _kernel_writer(quantize: str | None):  # type: ignore[no-untyped-def]
    def write(kernel: Kernel, path: Path) -> None:
        kt = get(kernel.type)
        if kt.build_torch is None:
            raise ConfigError(f"kernel type {kernel.type!r} has no torch builder: cannot export it to tflite")
        cfg = kt.validate(kernel.config)
        torch_to_tflite(kt.build_torch(cfg), kt.input_shapes(cfg), path, quantize=quantize)

    return write


def fmt_for(quantize: str | None) -> str:
    """Kernel export format name: ``tflite`` or ``tflite_int8``."""
    if quantize not in QUANT_MODES:
        raise ConfigError(f"unknown tflite quantization {quantize!r}; use none or int8")
    return "tflite" if quantize is None else "tflite_int8"


@dataclass(frozen=True)
class ExportOutcome:
    """One kernel's export: the file, or the one-line reason it failed."""

    kernel: Kernel
    path: Path | None
    error: str | None = None
    cached: bool = False


def _export_one(kernel_dict: dict[str, Any], fmt: str, out_dir: str) -> tuple[str | None, str | None]:
    try:
        return str(export_kernel(Kernel.from_dict(kernel_dict), fmt, out_dir)), None
    except HwlatError as e:
        return None, str(e)
    except Exception as e:  # one bad kernel must not sink the batch
        return None, " ".join(f"{type(e).__name__}: {e}".split())[:500]


def export_kernels(kernels: Iterable[Kernel], out_dir: str | Path, *, quantize: str | None = None,
                   workers: int | None = None) -> list[ExportOutcome]:
    """Export kernels to ``out_dir`` (cached by kernel hash: existing files are not redone).

    Conversions run in ``workers`` (default: min(2, cpus)) worker processes
    (``python -m hwlat.export.tflite_export``), each taking a share of the kernels and paying
    litert-torch's ~3 s import once; subprocesses rather than multiprocessing so callers need
    no ``__main__`` guard. Results keep input order; failures carry a one-line reason.
    """
    fmt = fmt_for(quantize)
    out_dir = Path(out_dir)
    kernels = list(kernels)
    outcomes: list[ExportOutcome | None] = [None] * len(kernels)
    todo: list[int] = []
    for i, k in enumerate(kernels):
        p = export_path(k, fmt, out_dir)
        if p.exists():
            outcomes[i] = ExportOutcome(k, p, None, cached=True)
        else:
            todo.append(i)
    # identical kernels in one batch: export once
    first: dict[Path, int] = {}
    for i in todo:
        first.setdefault(export_path(kernels[i], fmt, out_dir), i)
    unique = sorted(first.values())
    n = max(1, min(workers or min(2, os.cpu_count() or 1), len(unique)))
    results: dict[int, tuple[str | None, str | None]] = {}
    if len(unique) == 1 or n == 1:
        for i in unique:
            results[i] = _export_one(kernels[i].to_dict(), fmt, str(out_dir))
    elif unique:
        results = _run_workers([unique[w::n] for w in range(n)], kernels, fmt, out_dir)
    for i in todo:
        p, err = results[first[export_path(kernels[i], fmt, out_dir)]]
        outcomes[i] = ExportOutcome(kernels[i], Path(p) if p else None, err)
    return [o for o in outcomes if o is not None]


def _run_workers(shares: list[list[int]], kernels: list[Kernel], fmt: str,
                 out_dir: Path) -> dict[int, tuple[str | None, str | None]]:
    results: dict[int, tuple[str | None, str | None]] = {}
    with tempfile.TemporaryDirectory(prefix="hwlat-tflite-jobs-") as tmp:
        procs = []
        for w, share in enumerate(shares):
            job = Path(tmp) / f"job{w}.json"
            job.write_text(json.dumps({"fmt": fmt, "out_dir": str(out_dir),
                                       "kernels": [kernels[i].to_dict() for i in share]}))
            log = (Path(tmp) / f"job{w}.log").open("wb")
            proc = subprocess.Popen([sys.executable, "-m", "hwlat.export.tflite_export", str(job)],
                                    stdout=log, stderr=subprocess.STDOUT)
            procs.append((share, job, proc, log))
        for share, job, proc, log in procs:
            proc.wait()
            log.close()
            res_file = job.with_suffix(".out.json")
            if res_file.exists():
                pairs = json.loads(res_file.read_text())
                for i, (p, err) in zip(share, pairs, strict=True):
                    results[i] = (p, err)
            else:
                tail = " ".join(Path(log.name).read_text(errors="replace").split())[-300:]
                for i in share:
                    results[i] = (None, f"tflite export worker died (exit {proc.returncode}): {tail}")
    return results


def _worker_main(job_path: str) -> int:
    import hwlat.kernels  # noqa: F401  (registers the kernel types in this fresh process)

    job = json.loads(Path(job_path).read_text())
    out = [_export_one(k, job["fmt"], job["out_dir"]) for k in job["kernels"]]
    Path(job_path).with_suffix(".out.json").write_text(json.dumps(out))
    return 0


def _register() -> None:
    for q in QUANT_MODES:
        fmt = fmt_for(q)
        try:
            exporter(fmt)
        except ConfigError:
            register_exporter(fmt, "tflite" if q is None else "int8.tflite", _kernel_writer(q))


_register()


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1]))
