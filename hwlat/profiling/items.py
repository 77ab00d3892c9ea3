"""Measurement items: what a profiling run measures, and the keys that make re-runs resumable."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwlat.errors import ModelFileError

#: model file formats each runtime runs, and how to produce them
FORMATS: dict[str, tuple[str, str]] = {
    "onnxruntime": (".onnx", "export from torch with `torch.onnx.export` or hwlat.export.torch_to_onnx"),
    "tensorrt": (".onnx", "export from torch with `torch.onnx.export` or hwlat.export.torch_to_onnx"),
    "tflite": (".tflite", "convert a torch module with litert-torch (hwlat.export.tflite_export)"),
    "benchmark_model": (".tflite", "convert a torch module with litert-torch (hwlat.export.tflite_export)"),
    "tflm": (".tflite", "convert a torch module with litert-torch, int8-quantized (hwlat.export.tflite_export)"),
    "torch": (".pt2", "save a `torch.export.export(model, args)` program with `torch.export.save`"),
}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


@dataclass
class Item:
    """One thing to measure: a kernel model or a whole model file."""

    table: str  # "kernels" | "models"
    name: str
    file: Path
    kernel_type: str | None = None
    config: dict[str, Any] | None = None
    space: str | None = None
    arch: Any = None
    _sha: str | None = field(default=None, repr=False)
    #: Writes ``file`` again when it is not there: set for exports hwlat makes itself (kernels,
    #: subnets, zoo models), whose files the export cache releases once they are measured.
    export: Callable[[], object] | None = field(default=None, repr=False, compare=False)

    @property
    def sha256(self) -> str:
        if self._sha is None:
            self._sha = file_sha256(self.ensure_file())
        return self._sha

    def ensure_file(self) -> Path:
        """The item's file, exported again first if the export cache released it."""
        if self.export is not None and not self.file.is_file():
            self.export()
        return self.file

    @property
    def fmt(self) -> str:
        return self.file.suffix.lstrip(".").lower()

    def identity(self) -> dict[str, Any]:
        """What makes two items the same measurement target."""
        if self.table == "kernels":
            return {"kernel_type": self.kernel_type, "config": self.config, "fmt": self.fmt}
        return {"file_sha256": self.sha256}

    def key(self, runtime: str, runtime_version: str, options: dict[str, Any]) -> str:
        material = {"table": self.table, "id": self.identity(), "runtime": runtime,
                    "runtime_version": runtime_version, "options": options}
        return hashlib.sha256(canonical_json(material).encode()).hexdigest()[:24]


def check_format(path: Path, runtime: str, device_name: str) -> None:
    """Refuse a model file the device's runtime cannot run, saying which format is needed."""
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist")
    if not path.is_file():
        raise ModelFileError(f"{path} is not a file")
    want, how = FORMATS.get(runtime, ("", ""))
    if want and path.suffix.lower() != want:
        raise ModelFileError(f"device {device_name!r} runs {runtime}, which needs a {want} file, not {path.name}; {how}")
    if want == ".onnx":
        validate_onnx(path)


def validate_onnx(path: Path) -> None:
    """Cheap host-side check that ``path`` is a loadable ONNX model."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001  (protobuf raises DecodeError and friends)
        raise ModelFileError(f"{path} is not a valid ONNX model ({type(e).__name__}); is it truncated?") from None
    if not model.graph.node:
        raise ModelFileError(f"{path} is not a valid ONNX model (empty graph)")


def model_item(path: Path, space: str | None = None, arch: Any = None) -> Item:
    return Item(table="models", name=path.name, file=path, space=space, arch=arch)


def items_from_dir(folder: Path, runtime: str) -> list[Item]:
    """Every model file in ``folder`` (recursively) in the device runtime's format."""
    suffix = FORMATS.get(runtime, (".onnx", ""))[0]
    return [model_item(p) for p in sorted(folder.rglob(f"*{suffix}")) if p.is_file()]
