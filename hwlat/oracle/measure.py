"""Check an oracle against reality: measure archs on the device, and a FLOPs-based accuracy stand-in
for example searches (no accuracy predictor ships with hwlat)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: settings for the check measurements: converge to ±2 % within 1 s per subnet
CHECK_MEASURE = {"max_time_s": 1.0, "min_runs": 10}


def flops_proxy(space: Any, archs: Sequence[Any] | np.ndarray) -> np.ndarray:
    """log10 of the arch's FLOPs (the space's cost model): a monotone *stand-in* for accuracy, since
    within a supernet bigger subnets are usually more accurate. Not an accuracy predictor."""
    from hwlat.oracle.encodings import normalize

    names = space.feature_names()
    if not isinstance(archs, np.ndarray):  # flat samples etc. → canonical; int value arrays go as they are
        archs = [space.canonical(normalize(space.name, a)) for a in archs]
    F = space.features_batch(archs)
    return np.log10(np.maximum(F[:, names.index("total_flops")], 1.0))


def measure_archs(device_name: str, space: Any, archs: Sequence[Any], *, root: str | Path | None = None,
                  measure: dict[str, Any] | None = None, target: str = "median_ms",
                  passes: int | None = None) -> np.ndarray:
    """Export each arch to the device's format and profile it there; returns ms per arch of the
    statistic ``target`` (use the oracle's :attr:`Oracle.target`, what its predictor learned):
    ``median_ms``, ``min_ms``, or ``floor_ms`` (lowest time over ``passes`` passes, default 2).

    Measurements go to a temporary store (or ``root``) so checking an oracle never mixes its rows into
    the device's training profile.
    """
    from hwlat.devices import get_device
    from hwlat.export.formats import format_for
    from hwlat.profiling.items import Item
    from hwlat.profiling.sources import subnet_file
    from hwlat.store import ProfileStore

    dev = get_device(device_name)
    fmt = format_for(dev.runtime)
    base = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="hwlat-oracle-check-"))
    items = []
    for a in archs:
        canon = space.canonical(a)
        path = subnet_file(space, canon, fmt, base / "models")
        items.append(Item(table="models", name=path.name, file=path, space=space.name, arch=canon))
    store = ProfileStore(dev.name, root=base / "profiles")
    from hwlat.profiling.passes import profile_passes

    if target not in ("median_ms", "min_ms", "floor_ms"):
        raise ValueError(f"unknown statistic {target!r}; use median_ms, min_ms or floor_ms")
    runs = profile_passes(dev, items, store, passes=(passes or 2) if target == "floor_ms" else (passes or 1),
                          measure={**CHECK_MEASURE, **(measure or {})})
    if runs[-1].error:
        from hwlat.errors import DeviceError

        raise DeviceError(f"measuring {len(items)} subnets on {dev.name!r} failed: {runs[-1].error}")
    if target == "floor_ms":
        df = store.models(latest=False).groupby("name")["min_ms"].min()
    else:
        df = store.models().set_index("name")[target]
    return np.array([float(df.loc[it.name]) if it.name in df.index else np.nan for it in items])
