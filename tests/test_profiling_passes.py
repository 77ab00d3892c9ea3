"""Repeated measurement passes on the real ``local`` device and the ``floor_ms`` target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hwlat.devices import get_device
from hwlat.kernels.export import export_kernel
from hwlat.kernels.suites import suite
from hwlat.predictors.training import kernel_data
from hwlat.profiling import Item
from hwlat.profiling.passes import profile_passes, stored_counts, unconfirmed_floors
from hwlat.store import HostDrift, ProfileStore
from hwlat.store.drift import _bins

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


# ---- a store grown over two campaigns on the real `local` host (issue 31) --------------------------

#: Time bin for the drift fit on these ~1-min campaigns: the default 2-min bins would hold one or
#: two bins, too few for a factor to be fitted (and so for the assertions to mean anything).
_BIN_S = 20.0


def _two_campaigns(root: Path) -> tuple[ProfileStore, list[Item], set[str]]:
    """The quick suite in confirmed passes (as the quickstart profiles it), then 120 more suite
    kernels in confirmed passes on the same store, with anchors picked by
    :func:`store_anchors`. Returns the store, the anchors and campaign 2's run ids."""
    from hwlat.profiling.passes import store_anchors
    from hwlat.profiling.sources import items_for_kernels, kernel_items

    dev = get_device("local")
    store = ProfileStore("local", root=root)
    profile_passes(dev, kernel_items("quick", dev.runtime), store, passes=2, confirm=0.03, max_passes=3,
                   measure=MEASURE)
    quick = {k.key() for k in suite("quick")}
    more = [k for k in suite("standard") if k.key() not in quick][::16][:120]
    items = items_for_kernels(more, dev.runtime)
    anchors = store_anchors(dev, items, store)
    runs = profile_passes(dev, items, store, passes=2, confirm=0.03, max_passes=3, measure=MEASURE,
                          anchors=anchors)
    assert all(r.error is None for r in runs)
    return store, anchors, {r.run_id for r in runs if r.run_id}


def _steady(rows: pd.DataFrame) -> HostDrift:
    """Every factor the default fit and a 20-s fit give the rows is within ±1.5 %; the 20-s fit,
    which has bins to judge, is returned."""
    for drift in (HostDrift(), HostDrift(bin_s=_BIN_S)):
        drift.fit(rows)
        assert drift.trusted, drift.reason
        assert np.all(np.abs(drift.factor(rows) - 1.0) <= 0.015), (drift.bin_s, drift.summary())
    return drift


def _slowdown_recovered(rows: pd.DataFrame, second: set[str]) -> float:
    """Rows of the middle 20-s bin of campaign 2 made 10 % slower: the fitted step between that bin
    and campaign 2's others, less the step the rows had before (fitted without the significance
    gate, so the host's own drift there is counted), over the size classes where the slowdown
    was found. In the others the fit must claim nothing at all."""
    b = _bins(rows, _BIN_S)
    in_second = rows["run_id"].isin(second).to_numpy()
    span = np.unique(b[in_second])
    slow = b == span[len(span) // 2]
    slowed = rows.assign(min_ms=np.where(slow, rows["min_ms"] * 1.10, rows["min_ms"]))
    drift = HostDrift(bin_s=_BIN_S).fit(slowed)
    assert drift.trusted, drift.reason
    own = HostDrift(bin_s=_BIN_S, alpha=1.0).fit(rows)
    cls = drift._classes(slowed)
    # the classes whose campaign-2 bins got factors (a two-bin component may put the step on
    # either side: it is centred on the bin with more rows)
    found = {c for (c, x), v in drift.table.items() if x in span and v != 0.0}
    fitted = np.array([(int(c), int(x)) in drift.table for c, x in zip(cls, b, strict=True)])
    in_found = np.isin(cls, list(found)) & in_second & fitted
    judged = (slow & in_second & fitted).sum()  # slowed rows in bins with enough tied rows to fit
    assert judged >= 40 and (in_found & slow).sum() >= 0.6 * judged  # found for most of them
    assert np.all(drift.factor(slowed)[~np.isin(cls, list(found))] == 1.0)

    def step(d: HostDrift, r: pd.DataFrame) -> float:
        lf = np.log(d.factor(r))
        return float(lf[in_found & slow].mean() - lf[in_found & ~slow].mean())

    return float(np.expm1(step(drift, slowed) - step(own, rows)))


# Needs a host that stays in one speed state for the minute the two campaigns take: on the 2-vCPU
# VM it failed 2 of 4 runs (a 20-s bin really ran 7 % slow, and the fit rightly said so), so it is
# not part of the default run.
@pytest.mark.slow
def test_two_campaigns_on_a_steady_host_fit_no_drift_and_a_known_slowdown_is_recovered(
        tmp_path: Path) -> None:
    """Issue 31: on a real store of two campaigns every fitted factor is within ±1.5 % (a fit once
    invented -57 to +24 % on such a store), and 10 % added to part of campaign 2 comes back
    within 1 point."""
    store, anchors, second = _two_campaigns(tmp_path / "profiles")
    rows = store.kernels(latest=False, expand=False).reset_index(drop=True)
    # anchors: a quarter of the new kernels, stored ones only, spread over the size classes, and
    # each measured again in campaign 2
    keys = set(rows.loc[rows["run_id"].isin(second), "item_key"])
    first = set(rows.loc[~rows["run_id"].isin(second), "item_key"])
    anchor_keys = keys & first
    assert len(anchors) == 30 and len(anchor_keys) == 30
    assert len(set(HostDrift()._classes(rows[rows["item_key"].isin(anchor_keys)]))) >= 3

    fine = _steady(rows)
    assert len(fine.table) >= 6 and sum(v["solved"] for v in fine.components.values()) >= 3  # bins judged
    recovered = _slowdown_recovered(rows, second)
    assert abs(recovered - 0.10) <= 0.01, recovered


def _hwlat(root: Path, *args: str) -> dict:
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "HWLAT_PROFILES": str(root)}
    r = subprocess.run([sys.executable, "-m", "hwlat", *args, "--json"], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_profile_defaults_to_confirmed_passes_and_a_later_campaign_measures_anchors(tmp_path: Path) -> None:
    """`hwlat profile` with no protocol options measures in passes with confirmation; a second
    campaign on the store re-measures stored kernels among its new ones; --passes 1 asks for less."""
    root = tmp_path / "profiles"
    out = _hwlat(root, "profile", "local", "--suite", "quick", "--types", "add,activation,mul",
                 "--max-time", "0.05")
    assert len(out["passes"]) >= 2
    store = ProfileStore("local", root=root)
    first = dict(stored_counts(store))
    assert len(first) == 18 and min(first.values()) >= 2 and max(first.values()) <= 4

    out = _hwlat(root, "profile", "local", "--suite", "quick", "--types", "softmax,transpose,concat,se",
                 "--max-time", "0.05")
    counts = stored_counts(store)
    new = set(counts) - set(first)
    assert len(new) == 24 and min(counts[k] for k in new) >= 2
    remeasured = {k for k in first if counts[k] > first[k]}
    assert len(remeasured) == round(0.25 * 24)  # the anchors, each measured in both passes
    assert all(counts[k] == first[k] + 2 for k in remeasured)

    _hwlat(root, "profile", "local", "--suite", "quick", "--types", "pool", "--max-time", "0.05",
           "--passes", "1")
    single = set(stored_counts(store)) - set(counts)
    assert len(single) == 6 and all(stored_counts(store)[k] == 1 for k in single)
    assert dict((k, v) for k, v in stored_counts(store).items() if k in counts) == dict(counts)  # no anchors


def test_doctor_reports_reproducibility_drift_and_speed_states(tmp_path: Path) -> None:
    root = tmp_path / "profiles"
    store = ProfileStore("local", root=root)
    profile_passes(get_device("local"), _items(tmp_path, n=8), store, passes=2, measure=MEASURE)
    profile_passes(get_device("local"), _items(tmp_path, n=10)[8:], store, passes=1, measure=MEASURE)
    report = _hwlat(root, "doctor", "local", "--measure")
    rep = report["reproducibility"]
    repeated = {k for k, c in stored_counts(store).items() if c >= 2}
    assert rep["items"] == 10 and rep["repeated"] == len(repeated) == 8 and rep["once"] == 2
    assert rep["reproduce"] == 8 - len(unconfirmed_floors(store, repeated, 0.03))
    assert report["drift"]["trusted"] is True and "classes" in report["drift"]
    probe = report["speed_states"]
    assert probe["windows"] == 8 and len(probe["median_us"]) == 8 and probe["median_us"][0] > 0
    assert probe["switches"] == (probe["spread"] > 0.15)
    assert report["advice"] and all(isinstance(a, str) and a for a in report["advice"])
    assert len(ProfileStore("local", root=root).kernels(latest=False, expand=False)) == 18  # probe stores nothing
