"""Model zoo: reference torch models (random init, eval mode) for latency work, without torchvision.

``get(name) -> (module, input_shape)``; ``names()``. Builders import torch lazily.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from hwlat.errors import ConfigError

if TYPE_CHECKING:
    import torch.nn as nn

IMAGE_224 = (1, 3, 224, 224)

# name -> (module, builder function, input shape)
_ENTRIES: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "resnet18": ("hwlat.zoo.resnet", "resnet18", IMAGE_224),
    "resnet50": ("hwlat.zoo.resnet", "resnet50", IMAGE_224),
    "mobilenet_v2": ("hwlat.zoo.mobilenet", "mobilenet_v2", IMAGE_224),
    "mobilenet_v3_large": ("hwlat.zoo.mobilenet", "mobilenet_v3_large", IMAGE_224),
    "mobilenet_v3_small": ("hwlat.zoo.mobilenet", "mobilenet_v3_small", IMAGE_224),
    "efficientnet_b0": ("hwlat.zoo.efficientnet", "efficientnet_b0", IMAGE_224),
    "mnasnet1_0": ("hwlat.zoo.mnasnet", "mnasnet1_0", IMAGE_224),
    "vit_tiny": ("hwlat.zoo.vit", "vit_tiny", IMAGE_224),
}


def names() -> list[str]:
    """Names of the zoo models."""
    return list(_ENTRIES)


def register(name: str, module: str, builder: str, input_shape: tuple[int, ...]) -> None:
    """Add a model: ``module.builder()`` must return an ``nn.Module``."""
    _ENTRIES[name] = (module, builder, tuple(input_shape))


def input_shape(name: str) -> tuple[int, ...]:
    return _entry(name)[2]


def get(name: str, seed: int = 0) -> tuple[nn.Module, tuple[int, ...]]:
    """``(module in eval mode with random weights, input shape)`` of zoo model ``name``."""
    import torch

    mod, fn, shape = _entry(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = getattr(importlib.import_module(mod), fn)()
    return m.eval(), shape


def _entry(name: str) -> tuple[str, str, tuple[int, ...]]:
    try:
        return _ENTRIES[name]
    except KeyError:
        raise ConfigError(f"unknown zoo model {name!r}; known: {', '.join(_ENTRIES)}") from None
