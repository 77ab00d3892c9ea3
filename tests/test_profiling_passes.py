"""Repeated measurement passes on the real ``local`` device and the ``floor_ms`` target."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hwlat.devices import get_device
from hwlat.kernels.export import export_kernel
from hwlat.kernels.suites import suite
from hwlat.predictors.training import kernel_data
from hwlat.profiling import Item
from hwlat.profiling.passes import profile_passes, stored_counts, unconfirmed_floors
from hwlat.store import ProfileStore

MEASURE = {"max_time_s": 0.05, "min_runs": 5, "warmup_max_s": 0.02}


def _items(tmp: Path, n: int = 3) -> list[Item]:
    ks = [k for k in suite("quick") if k.type in ("add", "activation")][:n]
    return [Item(table="kernels", name=f"{k.type}:{i}", file=export_kernel(k, "onnx", tmp / "k"),
                 kernel_type=k.type, config=dict(k.config)) for i, k in enumerate(ks)]


def test_every_item_gets_one_row_per_pass_and_a_rerun_measures_nothing(tmp_path: Path) -> None:
    store = ProfileStore("local", root=tmp_path / "profiles")
    items = _items(tmp_path)
    # an item listed twice (a suite kernel that is also a subnet's kernel) is measured once per pass
    runs = profile_passes(get_device("local"), items + items[:1], store, passes=3, measure=MEASURE)
    assert len(runs) == 3 and all(r.error is None and not r.failed for r in runs)
    assert [r.measured for r in runs] == [3, 3, 3]
    counts = stored_counts(store)
    assert len(counts) == 3 and set(counts.values()) == {3}
    again = profile_passes(get_device("local"), items, store, passes=3, measure=MEASURE)
    assert [r.measured for r in again] == [0]  # all stored: nothing left for passes 2 and 3

    # floor_ms is the lowest min_ms over every row; median_ms comes from the latest row only
    df = store.kernels(latest=False, expand=False)
    floor = kernel_data(store, "floor_ms")
    latest = kernel_data(store, "median_ms")
    assert len(floor.y) == len(latest.y) == 3
    assert np.isclose(sorted(floor.y), sorted(df.groupby("item_key")["min_ms"].min())).all()
    lat = dict(zip(latest.hashes, latest.y))
    assert all(y <= lat[h] for h, y in zip(floor.hashes, floor.y))


def test_passes_must_be_positive(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(ValueError, match="passes"):
        profile_passes(get_device("local"), [], ProfileStore("local", root=tmp_path), passes=0)
    with pytest.raises(ValueError, match="confirm"):
        profile_passes(get_device("local"), [], ProfileStore("local", root=tmp_path), confirm=0.0)


def test_confirm_remeasures_only_items_whose_floor_is_not_confirmed(tmp_path: Path) -> None:
    dev = get_device("local")
    store = ProfileStore("local", root=tmp_path / "profiles")
    items = _items(tmp_path, n=4)
    profile_passes(dev, items, store, passes=2, measure=MEASURE)
    keys = set(stored_counts(store))
    assert len(keys) == 4
    # a tolerance this tight leaves (almost) every floor unconfirmed; whatever is open after pass 2
    # is exactly what pass 3 measures, and nothing gets more than max_passes rows
    open_after_2 = unconfirmed_floors(store, keys, 1e-6)
    runs = profile_passes(dev, items, store, passes=2, confirm=1e-6, max_passes=3, measure=MEASURE)
    counts = stored_counts(store)
    assert runs[0].measured == 0 and runs[1].measured == len(open_after_2)
    assert {k for k, c in counts.items() if c == 3} == open_after_2
    assert max(counts.values()) <= 3
    # raising max_passes later resumes exactly the items still open at the old limit
    open_after_3 = unconfirmed_floors(store, keys, 1e-6)
    runs = profile_passes(dev, items, store, passes=2, confirm=1e-6, max_passes=4, measure=MEASURE)
    assert runs[0].measured == 0 and sum(r.measured for r in runs[1:]) == len(open_after_3) > 0
    assert {k for k, c in stored_counts(store).items() if c == 4} == open_after_3
    # a loose tolerance confirms every floor: no extra pass at all
    before = dict(stored_counts(store))
    runs = profile_passes(dev, items, store, passes=2, confirm=10.0, max_passes=5, measure=MEASURE)
    assert [r.measured for r in runs] == [0] and dict(stored_counts(store)) == before
    # a floor seen once is never confirmed
    assert unconfirmed_floors(store, {"no-such-item"}, 10.0) == {"no-such-item"}


def test_train_targets_the_floor_by_default_once_the_store_is_profiled_in_passes(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    import pytest

    from hwlat.errors import PredictorError
    from hwlat.predictors.training import resolve_target

    root = tmp_path / "profiles"
    store = ProfileStore("local", root=root)
    ks = [k for k in suite("quick") if k.type in ("add", "activation")][:8]
    items = [Item(table="kernels", name=f"{k.type}:{i}", file=export_kernel(k, "onnx", tmp_path / "k"),
                  kernel_type=k.type, config=dict(k.config)) for i, k in enumerate(ks)]
    assert resolve_target(store) == "median_ms"  # empty store
    profile_passes(get_device("local"), items, store, passes=1, measure=MEASURE)
    assert resolve_target(store) == "median_ms"
    profile_passes(get_device("local"), items[:3], store, passes=2, measure=MEASURE)
    assert resolve_target(store) == "median_ms"  # 3 of 8 items in two passes: still mostly single
    profile_passes(get_device("local"), items, store, passes=2, measure=MEASURE)
    assert resolve_target(store) == "floor_ms"
    assert resolve_target(store, "min_ms") == "min_ms"  # an explicit target wins
    with pytest.raises(PredictorError, match="fastest"):
        resolve_target(store, "fastest")

    env = {**os.environ, "HWLAT_PROFILES": str(root)}
    r = subprocess.run([sys.executable, "-m", "hwlat", "train", "local", "--fast", "--holdout", "0", "--json"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    manifest = json.loads(r.stdout)["manifest"]
    assert manifest["target"] == "floor_ms"
    # the host drift behind the floors is recorded (fitted on every row: each item has two or more)
    assert manifest["host_drift"]["rows"] == len(store.kernels(latest=False, expand=False)) >= 16
