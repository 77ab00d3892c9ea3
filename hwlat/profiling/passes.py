"""Repeated measurement passes: every item measured ``passes`` times, minutes apart, in a new order.

A shared host (cloud vCPUs, a phone under thermal or governor control) switches between speed
states every few hundred milliseconds; one short measurement lands in one state. Spreading an
item's measurements over passes decorrelates them, and the ``floor_ms`` training target (the
lowest time over all passes) then reproduces: on this project's 2-vCPU VM, kernels re-measured
within ±10 % 67 % of the time with one pass's median, 93 % with the floor of two passes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from hwlat.devices import Device
from hwlat.profiling.items import Item
from hwlat.profiling.runner import RunSummary, profile
from hwlat.store import ProfileStore

Runner = Callable[[Device, list[Item], ProfileStore, bool], RunSummary]


def _default_runner(measure: dict[str, Any] | None) -> Runner:
    def run(dev: Device, items: list[Item], store: ProfileStore, force: bool) -> RunSummary:
        return profile(dev, items, store, force=force, measure=measure)
    return run


def stored_counts(store: ProfileStore) -> Counter[str]:
    """How many rows each item key has in the store (kernels and models)."""
    c: Counter[str] = Counter()
    for df in (store.kernels(latest=False, expand=False), store.models(latest=False)):
        if len(df):
            c.update(df["item_key"].astype(str))
    return c


def profile_passes(device: Device, items: list[Item], store: ProfileStore | None = None, *, passes: int = 2,
                   seed: int = 0, measure: dict[str, Any] | None = None,
                   runner: Runner | None = None) -> list[RunSummary]:
    """Measure ``items`` until each has ``passes`` stored rows; pass p measures, in a shuffled
    order, the items with fewer than p rows. Resumable like :func:`profile`: an interrupted pass
    continues where it stopped. Stops at the first pass that ends with an error."""
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    store = store or ProfileStore(device.name)
    run = runner or _default_runner(measure)
    out: list[RunSummary] = []
    first = run(device, items, store, False)  # pass 1: whatever is not stored yet
    out.append(first)
    if first.error or passes == 1:
        return out
    fp = first.fingerprint or store.latest_fingerprint() or {}
    rv, opts = str(fp.get("runtime_version", "")), device.runtime_options()
    keyed = [(it, it.key(device.runtime, rv, opts)) for it in items]
    for p in range(2, passes + 1):
        counts = stored_counts(store)
        todo = [it for it, k in keyed if counts.get(k, 0) < p]
        if not todo:
            continue
        order = np.random.default_rng(seed + p).permutation(len(todo))
        s = run(device, [todo[i] for i in order], store, True)
        out.append(s)
        if s.error:
            break
    return out
