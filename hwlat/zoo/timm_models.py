"""timm models by name (the ``timm`` extra): import timm, build a model with random weights, export it
to ONNX into the profiles cache.

``timm:NAME`` is how the CLI and :meth:`hwlat.Predictor.predict` name them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from hwlat.errors import ConfigError

if TYPE_CHECKING:
    import onnx
    import torch.nn as nn

PREFIX = "timm:"
INSTALL_HINT = "install it with `pip install 'hwlat[timm]'`"
# torchvision's compiled ops (imported by timm through torchvision) that its Python side registers
# fake kernels for unconditionally; their schemas, so that registration succeeds when the compiled
# library does not load (a torchvision wheel built for another torch). Classification models never
# call them.
_TORCHVISION_OP_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_keep_alive: list[Any] = []  # torch.library.Library objects: their definitions die with them


def import_timm() -> ModuleType:
    """``timm``, imported even when torchvision's compiled ops fail to register; ConfigError naming
    the fix when timm (or torch) is not installed."""
    try:
        return importlib.import_module("timm")
    except ModuleNotFoundError as e:
        missing = e.name or "timm"
        raise ConfigError(f"timm models need the {missing!r} package, which is not installed; {INSTALL_HINT}") from None
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
    define_torchvision_ops()
    forget_modules("timm", "torchvision")
    try:
        return importlib.import_module("timm")
    except RuntimeError as e:
        raise ConfigError(f"timm cannot be imported ({str(e).splitlines()[0][:160]}); reinstall torchvision "
                          f"matching torch, e.g. `pip install -c constraints.txt 'torchvision==0.28.*'`") from None


def tolerate_torchvision() -> None:
    """Make ``import torchvision`` work (when it is installed) even if its compiled ops do not load
    beside this torch; for packages that import it on the side (NNI through pytorch-lightning and
    torchmetrics), never to run its detection ops."""
    try:
        importlib.import_module("torchvision")
    except ImportError:
        return
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
        define_torchvision_ops()
        forget_modules("torchvision")
        importlib.import_module("torchvision")


def forget_modules(*packages: str) -> None:
    """Drop ``packages`` (and their submodules) from ``sys.modules``: what a failed import left half
    done is imported afresh."""
    for m in [m for m in sys.modules if m in packages or m.startswith(tuple(p + "." for p in packages))]:
        del sys.modules[m]


def define_torchvision_ops() -> None:
    """Define the schemas of torchvision's compiled ops that failed to load, so importing its Python
    side succeeds (see :data:`_TORCHVISION_OP_SCHEMAS`)."""
    import torch

    lib = torch.library.Library("torchvision", "FRAGMENT")
    for name, schema in _TORCHVISION_OP_SCHEMAS.items():
        if not hasattr(torch.ops.torchvision, name):
            lib.define(schema)
    _keep_alive.append(lib)


def is_timm_name(model: str) -> bool:
    return model.startswith(PREFIX)


def model_names(pattern: str = "*") -> list[str]:
    """Every timm architecture name matching ``pattern`` (fnmatch), sorted."""
    return list(import_timm().list_models(pattern))


def default_input_shape(name: str) -> tuple[int, int, int, int]:
    """``(1, C, H, W)`` from the model's pretrained config (its default resolution)."""
    timm = import_timm()
    _check_name(timm, name)
    cfg = timm.models.get_pretrained_cfg(name)
    size = tuple(getattr(cfg, "input_size", None) or (3, 224, 224)) if cfg is not None else (3, 224, 224)
    return (1, int(size[0]), int(size[1]), int(size[2]))


def _check_name(timm: ModuleType, name: str) -> None:
    if not timm.is_model(name):
        close = timm.list_models(f"*{name[:6]}*")[:5] if len(name) >= 3 else []
        raise ConfigError(f"timm has no model {name!r}" + (f" (close: {', '.join(close)})" if close else "")
                          + "; list them with `python -c \"import timm; print(timm.list_models())\"`")


def build(name: str, seed: int = 0) -> nn.Module:
    """timm model ``name`` with random weights (``pretrained=False``: no download), in eval mode."""
    import torch

    timm = import_timm()
    _check_name(timm, name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = timm.create_model(name, pretrained=False)
    return m.eval()


def cache_path(name: str, input_shape: Sequence[int], root: str | Path | None = None) -> Path:
    """Where the ONNX export of ``name`` at ``input_shape`` is kept: ``<profiles>/.cache/timm/``."""
    from hwlat.paths import profiles_root

    base = Path(root) if root is not None else profiles_root()
    shape = "x".join(str(int(d)) for d in input_shape)
    return base / ".cache" / "timm" / f"{name}_{shape}.onnx"


def export(name: str, input_shape: Sequence[int] | None = None, root: str | Path | None = None) -> Path:
    """The ONNX file (opset 17) of timm model ``name`` at ``input_shape`` (default: its pretrained
    config's resolution, batch 1), exported once and reused from the profiles cache."""
    import onnx

    shape = tuple(int(d) for d in input_shape) if input_shape is not None else default_input_shape(name)
    path = cache_path(name, shape, root)
    if path.is_file():
        return path
    from hwlat.export.onnx_export import torch_to_onnx

    proto = torch_to_onnx(build(name), shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".onnx.tmp")
    onnx.save(proto, str(tmp))
    tmp.replace(path)  # a half-written cache file would be read as a corrupt model next time
    return path


def load(model: str, input_shape: Sequence[int] | None = None, root: str | Path | None = None
         ) -> tuple[onnx.ModelProto, tuple[int, ...]]:
    """``timm:NAME`` → (its ONNX model, the input shape it was exported for)."""
    import onnx

    name = model[len(PREFIX):] if is_timm_name(model) else model
    if not name:
        raise ConfigError(f"{model!r}: name a timm model after 'timm:', e.g. timm:convnext_atto")
    path = export(name, input_shape, root)
    proto = onnx.load(str(path))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    return proto, tuple(int(d.dim_value) for d in dims)
