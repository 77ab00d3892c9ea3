"""Repeated measurement passes: every item measured ``passes`` times, minutes apart, in a new order.

A shared host (cloud vCPUs, a phone under thermal or governor control) switches between speed
states every few hundred milliseconds; one short measurement lands in one state. Spreading an
item's measurements over passes decorrelates them, and the ``floor_ms`` training target (the
lowest time over all passes) then reproduces: on this project's 2-vCPU VM, kernels re-measured
within ±10 % 67 % of the time with one pass's median, 93 % with the floor of two passes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np

from hwlat.devices import Device
from hwlat.profiling.items import Item
from hwlat.profiling.runner import RunSummary, profile
from hwlat.store import HostDrift, ProfileStore

Runner = Callable[[Device, list[Item], ProfileStore, bool], RunSummary]


def _keyed(device: Device, items: list[Item], fingerprint: dict[str, Any]) -> list[tuple[Item, str]]:
    rv, opts = str(fingerprint.get("runtime_version", "")), device.runtime_options()
    return [(it, it.key(device.runtime, rv, opts)) for it in items]


def _pass(device: Device, keyed: list[tuple[Item, str]], anchors: list[Item], p: int, store: ProfileStore,
          run: Runner, seed: int) -> RunSummary | None:
    """Pass ``p``: the items short of ``p`` rows, in a new order, with ``anchors`` shuffled among
    them (None: nothing to measure)."""
    counts = stored_counts(store)
    todo = [it for it, k in keyed if counts.get(k, 0) < p]
    if not todo:
        return None
    todo += anchors
    order = np.random.default_rng(seed + p).permutation(len(todo))
    return run(device, [todo[i] for i in order], store, True)


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


def unconfirmed_floors(store: ProfileStore, keys: Collection[str], within: float) -> set[str]:
    """Keys (of ``keys``) whose floor is not confirmed: fewer than two stored rows, or the two
    lowest per-row ``min_ms`` more than ``within`` (relative) apart. The minima are taken as the
    floor takes them, with the host's speed drift divided out (:class:`hwlat.store.HostDrift`), so
    two rows that agree only because both ran while the host was fast do not confirm a floor."""
    kernels = store.kernels(latest=False, expand=False)
    drift = HostDrift().fit(kernels)
    lows: dict[str, list[float]] = {}
    for df in (kernels, store.models(latest=False)):
        if len(df):
            mins = df["min_ms"].astype(float).to_numpy() / drift.factor(df)
            for k, v in zip(df["item_key"].astype(str), mins, strict=True):
                lows.setdefault(k, []).append(float(v))
    out = set()
    for k in keys:
        v = sorted(lows.get(k, []))
        if len(v) < 2 or v[1] > v[0] * (1.0 + within):
            out.add(k)
    return out


#: Share of a campaign's new items measured again among them as anchors, on a store that
#: already holds kernels (as adaptive rounds do: ``hwlat.profiling.adaptive.ANCHOR_SHARE``).
ANCHOR_SHARE = 0.25


def store_anchors(device: Device, items: Sequence[Item], store: ProfileStore, *, share: float = ANCHOR_SHARE,
                  seed: int = 0) -> list[Item]:
    """Stored kernels to measure again among a new campaign's ``items`` (:func:`profile_passes`'s
    ``anchors``): ``share`` of the items not stored yet, spread over the drift fit's size classes
    (:func:`hwlat.profiling.adaptive.pick_anchors`). Without them the drift fit has nothing tying
    the campaign's host speed to the store's, and its items keep whatever level the host had that
    hour. Empty when the store holds no kernels, nothing is new, or ``share`` is 0. Kernels a
    ``hwlat train`` at its default hold-out share scores on are never picked: re-measuring one
    would lower the label it is scored on."""
    from hwlat.predictors.training import is_holdout, kernel_hash
    from hwlat.profiling.adaptive import pick_anchors
    from hwlat.profiling.sources import items_for_kernels

    if share <= 0 or not items:
        return []
    fp = store.latest_fingerprint()
    if not fp:
        return []
    keys = {k for _, k in _keyed(device, list(items), fp)}
    counts = stored_counts(store)
    new = sum(counts.get(k, 0) == 0 for k in keys)
    if not new:
        return []
    # Round index past any adaptive round: no stored row is left out, and the draw is its own.
    rnd = 1 << 30
    rows = store.kernels(latest=True, expand=False)
    held: set[str] = set()  # at `hwlat train`'s default --holdout 0.2
    for t, c in zip(rows.get("kernel_type", []), rows.get("config", []), strict=True):
        h = _hash_of(str(t), str(c), kernel_hash)
        if h and is_holdout(h, 0.2):
            held.add(h)
    kernels, anchor_keys = pick_anchors(store, round(share * new) + len(keys & set(counts)), seed=seed,
                                        round_index=rnd, runtime=device.runtime, target="floor_ms",
                                        exclude_kernels=held)
    # stored items of this campaign are measured by it anyway; anchors are the other stored ones
    picked = [k for k, key in zip(kernels, anchor_keys, strict=True) if key not in keys][:round(share * new)]
    return items_for_kernels(picked, device.runtime) if picked else []


def _hash_of(kernel_type: str, config: str, kernel_hash: Callable[[Any], str]) -> str | None:
    import json

    from hwlat.kernels.base import get

    try:
        return kernel_hash(get(kernel_type).make(**json.loads(config)))
    except (KeyError, ValueError, TypeError):
        return None


def profile_passes(device: Device, items: list[Item], store: ProfileStore | None = None, *, passes: int = 2,
                   seed: int = 0, measure: dict[str, Any] | None = None, runner: Runner | None = None,
                   confirm: float | None = None, max_passes: int | None = None,
                   anchors: Sequence[Item] = ()) -> list[RunSummary]:
    """Measure ``items`` until each has ``passes`` stored rows; pass p measures, in a shuffled
    order, the items with fewer than p rows. Resumable like :func:`profile`: an interrupted pass
    continues where it stopped. Stops at the first pass that ends with an error.

    ``confirm``: then keep measuring, one more pass at a time up to ``max_passes`` stored rows
    (default ``passes + 3``), only the items whose floor is not yet confirmed by a second pass
    (:func:`unconfirmed_floors`: the two lowest pass minima more than ``confirm`` apart). On the
    2-vCPU VM 12 % of kernels were still unconfirmed at 5 % after 3 passes; confirmed floors are the
    ones that reproduce.

    ``anchors``: items already in the store, measured once more in each of the first ``passes``
    passes that has new work, shuffled among it. :class:`hwlat.store.HostDrift` ties a run's host
    speed to the store's only through items measured in both, so new items measured alone would
    keep whatever level the host had that hour.
    """
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    if confirm is not None and confirm <= 0:
        raise ValueError(f"confirm must be > 0 (a relative tolerance such as 0.05), got {confirm}")
    limit = max(passes, max_passes if max_passes is not None else passes + 3)
    store = store or ProfileStore(device.name)
    run = runner or _default_runner(measure)
    out: list[RunSummary] = []
    stored_fp = store.latest_fingerprint() if anchors else None
    ride = list(anchors) if stored_fp else []  # anchors need the stored keys to tell new items apart
    if stored_fp:
        first = _pass(device, _keyed(device, items, stored_fp), ride, 1, store, run, seed)
    else:
        first = run(device, items, store, False)  # pass 1: whatever is not stored yet
    if first is None:
        first = RunSummary(device=device.name, run_id="", skipped=len(items))
    out.append(first)
    if first.error or (passes == 1 and confirm is None):
        return out
    keyed = _keyed(device, items, first.fingerprint or store.latest_fingerprint() or {})
    last = limit if confirm is not None else passes
    for p in range(2, last + 1):
        if p <= passes:
            s = _pass(device, keyed, ride, p, store, run, seed)
        else:  # confirmation: only what is still short of p rows and unconfirmed
            counts = stored_counts(store)
            open_keys = unconfirmed_floors(store, {k for _, k in keyed}, confirm or 0.0)
            if not any(counts.get(k, 0) < last for k in open_keys):
                break  # every floor confirmed, or at the pass limit
            # Items an earlier run already took to p rows wait for a later p, so a raised
            # max_passes resumes them instead of stopping here.
            s = _pass(device, [(it, k) for it, k in keyed if k in open_keys], [], p, store, run, seed)
        if s is None:
            continue
        out.append(s)
        if s.error:
            break
    return out
