"""Kernel exporters by format name, and a content-addressed export cache.

``export_kernel(kernel, "onnx", out_dir)`` writes ``<hash>.onnx`` (hash = first 16 hex digits
of sha256 of ``kernel.key()``) unless it already exists. Adding a format (``tflite``,
``torchscript``) is one :func:`register_exporter` call with a ``write(kernel, path)``
function. A kernel type may override a format through ``KernelType.exporters[fmt]``: a
function ``config -> bytes`` of the file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hwlat.errors import ConfigError
from hwlat.kernels.base import Kernel, get


@dataclass(frozen=True)
class Exporter:
    """A file format: its extension and a function writing one kernel to a path."""

    fmt: str
    ext: str
    write: Callable[[Kernel, Path], None]


_EXPORTERS: dict[str, Exporter] = {}


def register_exporter(fmt: str, ext: str, write: Callable[[Kernel, Path], None]) -> Exporter:
    """Register a format; ``write(kernel, path)`` must create ``path``."""
    if fmt in _EXPORTERS:
        raise ValueError(f"exporter {fmt!r} registered twice")
    _EXPORTERS[fmt] = Exporter(fmt, ext, write)
    return _EXPORTERS[fmt]


def formats() -> list[str]:
    return sorted(_EXPORTERS)


def exporter(fmt: str) -> Exporter:
    try:
        return _EXPORTERS[fmt]
    except KeyError:
        raise ConfigError(f"unknown kernel export format {fmt!r}; known: {', '.join(formats())}") from None


def kernel_hash(kernel: Kernel) -> str:
    """Stable 16-hex-digit id of a kernel (type + config; shapes and node names ignored)."""
    return hashlib.sha256(kernel.key().encode()).hexdigest()[:16]


def export_path(kernel: Kernel, fmt: str, out_dir: str | Path) -> Path:
    return Path(out_dir) / f"{kernel_hash(kernel)}.{exporter(fmt).ext}"


def export_kernel(kernel: Kernel, fmt: str, out_dir: str | Path) -> Path:
    """Write ``kernel`` in format ``fmt`` under ``out_dir`` (cached by kernel hash); return the path."""
    ex = exporter(fmt)
    path = export_path(kernel, fmt, out_dir)
    if path.exists():
        return path
    kt = get(kernel.type)
    kt.validate(kernel.config)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write to a private name, then rename: concurrent exporters never see a partial file.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.{ex.ext}")
    try:
        if fmt in kt.exporters:
            tmp.write_bytes(kt.exporters[fmt](kernel.config))
        else:
            ex.write(kernel, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write_onnx(kernel: Kernel, path: Path) -> None:
    import onnx

    onnx.save_model(get(kernel.type).build_onnx(kernel.config), str(path))


register_exporter("onnx", "onnx", _write_onnx)


def _example_inputs(kernel: Kernel) -> tuple:
    import torch

    gen = torch.Generator().manual_seed(0)
    return tuple(torch.rand(*s, generator=gen) * 2 - 1 for s in get(kernel.type).input_shapes(kernel.config))


def _write_pt2(kernel: Kernel, path: Path) -> None:
    """``torch.export`` program (what the torch runtime's agent plug-in loads)."""
    import torch

    module = get(kernel.type).build_torch(kernel.config)
    torch.export.save(torch.export.export(module, _example_inputs(kernel)), str(path))


def _write_torchscript(kernel: Kernel, path: Path) -> None:
    import torch

    module = get(kernel.type).build_torch(kernel.config)
    torch.jit.save(torch.jit.trace(module, _example_inputs(kernel)), str(path))


register_exporter("pt2", "pt2", _write_pt2)
register_exporter("torchscript", "pt", _write_torchscript)
