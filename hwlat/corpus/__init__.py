"""Model corpus: random variants of real architecture families, in plain torch (nn-Meter's model generator).

``sample(family, seed) -> ModelSpec`` draws one variant (a JSON-serialisable config), ``build(spec)`` makes
the torch module, ``export(spec)`` the ONNX model. A family is one module in ``hwlat/corpus/archs/``
that calls :func:`register_family` with a sampler and a builder; ``families()`` lists them.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwlat.errors import ConfigError

if TYPE_CHECKING:
    import onnx
    import torch.nn as nn

Config = dict[str, Any]
#: (rng, input resolution) → the family's config; everything ``build`` needs besides the resolution
SampleFn = Callable[[np.random.Generator, int], Config]
#: (config, input resolution) → module; weights come from the torch seed :func:`build` sets
BuildFn = Callable[[Config, int], "nn.Module"]

#: input resolutions of convolutional families (nn-Meter and the real networks use 96–224)
CONV_RESOLUTIONS = (96, 112, 128, 144, 160, 176, 192, 208, 224)


@dataclass(frozen=True)
class Family:
    name: str
    sample: SampleFn
    build: BuildFn
    resolutions: tuple[int, ...]
    doc: str


@dataclass(frozen=True)
class ModelSpec:
    """One corpus model: plain data, so it can be stored with a measurement and rebuilt later."""

    family: str
    name: str
    input_shape: tuple[int, ...]
    config: Config = field(hash=False)
    seed: int = 0

    @property
    def resolution(self) -> int:
        return int(self.input_shape[-1])

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "name": self.name, "input_shape": list(self.input_shape),
                "config": self.config, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        shape = tuple(int(v) for v in d["input_shape"])
        return cls(str(d["family"]), str(d["name"]), shape, dict(d["config"]), int(d.get("seed", 0)))


_FAMILIES: dict[str, Family] = {}


def register_family(name: str, sample_fn: SampleFn, build_fn: BuildFn,
                    resolutions: Sequence[int] = CONV_RESOLUTIONS, doc: str = "") -> Family:
    """Add a family; its module in ``hwlat/corpus/archs/`` calls this on import."""
    fam = Family(name, sample_fn, build_fn, tuple(int(r) for r in resolutions), doc)
    _FAMILIES[name] = fam
    return fam


def families() -> list[str]:
    """Names of every registered family, sorted."""
    _load()
    return sorted(_FAMILIES)


def get_family(name: str) -> Family:
    _load()
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ConfigError(f"unknown corpus family {name!r}; known: {', '.join(sorted(_FAMILIES))}") from None


def sample(family: str, seed: int, resolution: int | None = None) -> ModelSpec:
    """The variant of ``family`` drawn with ``seed`` (the same spec for the same seed, on any machine).

    ``resolution`` fixes the input size instead of drawing it (tests use small inputs); it must be a
    multiple of 32 of at least 64 so every family's strides and windows divide it.
    """
    fam = get_family(family)
    # the family name salts the stream, so seed 0 of two families are not correlated draws
    rng = np.random.default_rng([int(seed), zlib.crc32(family.encode())])
    if resolution is None:
        r = int(rng.choice(fam.resolutions))
    else:
        if resolution < 64 or resolution % 32:
            raise ConfigError(f"resolution {resolution}: use a multiple of 32, at least 64")
        r = int(resolution)
    cfg = _plain(fam.sample(rng, r))
    shape = (1, 3, r, r)
    return ModelSpec(family, f"{family}-{_digest(family, cfg, shape)[:12]}", shape, cfg, int(seed))


def build(spec: ModelSpec) -> nn.Module:
    """The torch module of ``spec`` in eval mode, weights seeded by its name (the same file on export)."""
    import torch

    fam = get_family(spec.family)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(hashlib.sha256(spec.name.encode()).hexdigest()[:8], 16))
        module = fam.build(spec.config, spec.resolution)
    return module.eval()


def export(spec: ModelSpec, path: str | Path | None = None) -> onnx.ModelProto:
    """``spec`` exported to ONNX with the project's exporter (opset 17); written to ``path`` when given."""
    from hwlat.export import torch_to_onnx

    return torch_to_onnx(build(spec), spec.input_shape, path)


def balanced(names: Sequence[str], samples: int, seed: int = 0, resolution: int | None = None) -> list[ModelSpec]:
    """``samples`` distinct specs spread evenly over the families ``names``, in round-robin order.

    The k-th model of a family is drawn with ``seed + k``, so asking for more samples keeps the
    models already drawn (a profiling run extended later resumes instead of starting over).
    ``resolution``: as for :func:`sample` (drawn per model when None).
    """
    for n in names:
        get_family(n)
    out: list[ModelSpec] = []
    seen: set[str] = set()
    next_k = dict.fromkeys(names, 0)
    misses = 0
    while len(out) < samples and misses < 20 * max(samples, 1):
        fam = names[len(out) % len(names)] if names else None
        if fam is None:
            break
        spec = sample(fam, seed + next_k[fam], resolution)
        next_k[fam] += 1
        if spec.name in seen:  # a small family's draws can repeat
            misses += 1
            continue
        seen.add(spec.name)
        out.append(spec)
    return out


def _digest(family: str, cfg: Config, shape: tuple[int, ...]) -> str:
    material = json.dumps([family, cfg, list(shape)], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


def _plain(obj: Any) -> Any:
    """numpy scalars and tuples → JSON types, so a spec round-trips through JSON unchanged."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _load() -> None:
    # each module in archs/ registers its family on import (a subpackage named families/ would
    # replace the families() function as an attribute of this package once imported)
    import hwlat.corpus.archs as pkg

    for m in pkgutil.iter_modules(pkg.__path__):
        if not m.name.startswith("_"):
            importlib.import_module(f"hwlat.corpus.archs.{m.name}")


__all__ = ["CONV_RESOLUTIONS", "Family", "ModelSpec", "balanced", "build", "export", "families", "get_family",
           "register_family", "sample"]
