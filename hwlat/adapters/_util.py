"""Optional imports with a clear error naming the package to install."""

from __future__ import annotations

import importlib
from typing import Any


def require(module: str, package: str | None = None, why: str = "") -> Any:
    """Import ``module`` or raise ImportError saying which package to ``pip install``.

    A searcher that imports torchvision (NNI does) still imports when torchvision's compiled ops do
    not load beside this torch (the wheel the ``timm`` extra installs): its detection ops are never
    called by a latency search, so their schemas are defined empty and the import retried."""
    from hwlat.zoo.timm_models import tolerate_torchvision

    try:
        tolerate_torchvision()
        return importlib.import_module(module)
    except ImportError as e:
        pkg = package or module.split(".")[0]
        extra = f" ({why})" if why else ""
        raise ImportError(f"this hwlat adapter needs the {pkg!r} package{extra}: pip install {pkg} "
                          f"[import of {module!r} failed: {e}]") from e
