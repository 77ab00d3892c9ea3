"""Search space protocol and registry.

A search space turns an architecture *encoding* (a dict, a string, an index vector …) into:
a canonical form (the cache key), a kernel list (without torch), a torch module, and a
fixed-length feature vector for subnet-level predictors. Adding a space is one module that
subclasses :class:`SearchSpace` and calls :func:`register`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

from hwlat.kernels.base import Kernel

if TYPE_CHECKING:  # torch is optional at import time
    import torch.nn as nn

Arch = Any  # dict / str / sequence, per space


class SearchSpace(ABC):
    """One NAS search space."""

    name: str = ""
    #: True when the space is a CNN over images (used for whole-model evaluation splits).
    is_cnn: bool = True

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Arch:
        """Draw one random architecture (already canonical)."""

    @abstractmethod
    def canonical(self, arch: Arch) -> Arch:
        """Validate and normalise ``arch``: equivalent encodings give equal results,
        inactive choices are masked. Raises ``hwlat.errors.EncodingError`` naming the bad field."""

    @abstractmethod
    def encode(self, arch: Arch) -> list[Kernel]:
        """Kernel list of ``arch`` for ``runtime='onnxruntime'`` fusion, in execution order,
        equal to ``hwlat.kernels_of(self.build(arch), self.input_shape(arch))`` — computed
        without torch or ONNX."""

    @abstractmethod
    def build(self, arch: Arch) -> nn.Module:
        """A torch module (eval mode, random weights) of ``arch``."""

    @abstractmethod
    def input_shape(self, arch: Arch) -> tuple[int, ...]:
        """Input tensor shape, batch 1 (e.g. ``(1, 3, r, r)``)."""

    @abstractmethod
    def features(self, arch: Arch) -> np.ndarray:
        """Fixed-length float vector for subnet-level predictors (encoding + aggregates)."""

    @abstractmethod
    def feature_names(self) -> list[str]:
        """Names matching :meth:`features`, same length."""

    def key(self, arch: Arch) -> str:
        """Canonical JSON string of the canonical arch (stable cache/store key)."""
        return json.dumps(self.canonical(arch), sort_keys=True, separators=(",", ":"))

    def features_batch(self, archs: list[Arch]) -> np.ndarray:
        """Stacked features; spaces override this with a vectorised version."""
        return np.stack([self.features(a) for a in archs])


_REGISTRY: dict[str, SearchSpace] = {}


def register(space: SearchSpace) -> SearchSpace:
    _REGISTRY[space.name] = space
    return space


def get_space(name: str) -> SearchSpace:
    """Look up a registered search space by name (imports the built-in ones first)."""
    import hwlat.spaces  # noqa: F401  (registers built-ins)

    try:
        return _REGISTRY[name]
    except KeyError:
        from hwlat.errors import ConfigError

        raise ConfigError(f"unknown search space {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def space_names() -> list[str]:
    import hwlat.spaces  # noqa: F401

    return sorted(_REGISTRY)
