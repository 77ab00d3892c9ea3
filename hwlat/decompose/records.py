"""Kernel lists kept on disk as JSON: decompositions cached for training, and the kernel lists of
profiled model files."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwlat.errors import StoreError
from hwlat.kernels.base import Kernel


def records_dir(root: Path, runtime: str) -> Path:
    """The folder under a profiles root that holds ``runtime``'s kernel lists."""
    return root / ".cache" / "decomp" / runtime


def read_kernel_list(path: Path) -> tuple[list[Kernel], list[dict[str, Any]]]:
    """(kernels, unsupported operators) written by :func:`write_kernel_list`.

    Raises :class:`~hwlat.errors.StoreError` naming the file when it cannot be read or holds no
    kernel list (truncated by a full disk, edited by hand).
    """
    try:
        d = json.loads(path.read_text())
        return [Kernel.from_dict(k) for k in d["kernels"]], [dict(u) for u in d["unsupported"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise StoreError(f"kernel list {path} is unreadable ({type(e).__name__}: {e})") from None


def readable_kernel_list(path: Path) -> bool:
    """Whether ``path`` holds a kernel list :func:`read_kernel_list` can read."""
    try:
        read_kernel_list(path)
    except StoreError:
        return False
    return True


def write_kernel_list(path: Path, kernels: Sequence[Kernel], unsupported: Sequence[dict[str, Any]]) -> None:
    """Write a kernel list atomically; several writers of one path (devices profiled in parallel)
    each replace it whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps({"kernels": [k.to_dict() for k in kernels], "unsupported": list(unsupported)}))
    os.replace(tmp, path)
