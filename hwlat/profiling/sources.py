"""Where profiling items come from: a folder of models, a kernel suite, a search space, the zoo."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hwlat.export.formats import export_module, format_for
from hwlat.paths import profiles_root
from hwlat.profiling.items import Item

Tick = Callable[[int, int], None]


def cache_dir(kind: str, fmt: str) -> Path:
    """Exported models are cached by content key under ``<profiles>/.cache``."""
    return profiles_root() / ".cache" / kind / fmt


def kernel_items(suite: str, runtime: str, seed: int = 0, tick: Tick | None = None) -> list[Item]:
    """Items for every kernel of a benchmark suite (``quick``, ``standard``, ``full``)."""
    from hwlat.kernels.export import export_kernel
    from hwlat.kernels.suites import suite as make_suite

    fmt = format_for(runtime)
    kernels = make_suite(suite, seed=seed)
    out = []
    for i, k in enumerate(kernels):
        path = export_kernel(k, fmt, cache_dir("kernels", fmt))
        out.append(Item(table="kernels", name=f"{k.type}:{path.stem}", file=path,
                        kernel_type=k.type, config=dict(k.config)))
        if tick:
            tick(i + 1, len(kernels))
    return out


def space_items(space_name: str, samples: int, runtime: str, seed: int = 0,
                tick: Tick | None = None) -> list[Item]:
    """Items for ``samples`` distinct random subnets of a search space (exported once, cached)."""
    from hwlat.spaces import get_space

    space = get_space(space_name)
    fmt = format_for(runtime)
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    out = []
    tries = 0
    while len(out) < samples and tries < samples * 20:
        tries += 1
        arch = space.canonical(space.sample(rng))
        key = space.key(arch)
        if key in seen:
            continue
        seen.add(key)
        digest = hashlib.sha256(f"{space_name}:{key}".encode()).hexdigest()[:16]
        path = cache_dir(f"spaces/{space_name}", fmt) / f"{space_name}-{digest}.{fmt}"
        if not path.exists():
            export_module(space.build(arch), space.input_shape(arch), fmt, path)
        out.append(Item(table="models", name=path.name, file=path, space=space_name, arch=arch))
        if tick:
            tick(len(out), samples)
    return out


def zoo_items(runtime: str, names: list[str] | None = None, tick: Tick | None = None) -> list[Item]:
    """Items for the model zoo (classic networks written in code)."""
    from hwlat import zoo

    fmt = format_for(runtime)
    names = names or zoo.names()
    out = []
    for i, name in enumerate(names):
        path = cache_dir("zoo", fmt) / f"{name}.{fmt}"
        if not path.exists():
            module, shape = zoo.get(name)
            export_module(module, shape, fmt, path)
        out.append(Item(table="models", name=name, file=path, space="zoo", arch=name))
        if tick:
            tick(i + 1, len(names))
    return out
