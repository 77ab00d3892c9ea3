"""Host-speed drift estimated from repeated passes (hwlat.store.drift), and its use for floors.

The estimator is checked on rows built with a known drift, so the answer is known exactly;
training on real measurements records the fitted drift in the predictor's manifest
(tests/test_profiling_passes.py).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from hwlat.store import HostDrift, with_floor

T0 = dt.datetime(2026, 11, 24, 20, 0, tzinfo=dt.timezone.utc)


def _rows(n_items: int, passes: int, speed: dict[int, float], start_min: float = 0.0, pass_min: float = 10.0,
          base_ms: float = 1.0, prefix: str = "k", seed: int = 0) -> pd.DataFrame:
    """Rows of ``n_items`` items, each measured once per pass; pass ``p`` runs ``speed[p]`` times slower."""
    rng = np.random.default_rng(seed)
    effect = base_ms * np.exp(rng.uniform(-0.5, 0.5, n_items))
    rows = []
    for p in range(passes):
        for i in range(n_items):
            t = T0 + dt.timedelta(minutes=start_min + p * pass_min + pass_min * i / n_items)
            rows.append({"item_key": f"{prefix}{i}", "min_ms": effect[i] * speed.get(p, 1.0) * (1 + rng.uniform(0, 0.002)),
                         "finished_at": t.isoformat().replace("+00:00", "Z")})
    return pd.DataFrame(rows)


def test_a_slow_pass_is_found_and_divided_out_of_the_floor() -> None:
    rows = _rows(200, 4, {0: 1.05})  # the first pass ran 5 % slow, the other three at the usual speed
    drift = HostDrift().fit(rows)
    f = drift.factor(rows)
    first = rows.index < 200
    assert np.allclose(f[first], 1.05, atol=0.006) and np.allclose(f[~first], 1.0, atol=0.006)
    summary = drift.summary()
    assert summary["rows"] == 800 and summary["classes"]["2"]["p95_pct"] > 4.0


def test_a_fast_last_pass_no_longer_sets_the_floors() -> None:
    """Floors taken over passes where the last ran 4 % fast are 4 % low without the correction."""
    rows = _rows(200, 3, {2: 0.96})
    latest = rows.drop_duplicates("item_key", keep="last")
    true = rows[rows.index < 200].set_index("item_key")["min_ms"]
    raw = with_floor(latest, rows).set_index("item_key")["floor_ms"]
    fixed = with_floor(latest, rows, HostDrift().fit(rows)).set_index("item_key")["floor_ms"]
    assert np.median(raw / true) < 0.965
    assert abs(np.median(fixed / true) - 1.0) < 0.005


def test_sparse_bins_single_rows_and_missing_times_are_left_as_measured() -> None:
    few = _rows(5, 3, {0: 1.2})  # 5 items: no bin reaches MIN_ROWS repeated rows
    assert np.all(HostDrift().fit(few).factor(few) == 1.0)
    once = _rows(300, 1, {0: 1.2})  # measured once each: no drift can be told from item effects
    drift = HostDrift().fit(once)
    assert drift.n_rows == 0 and not drift.table and np.all(drift.factor(once) == 1.0)
    rows = _rows(200, 3, {0: 1.05})
    drift = HostDrift().fit(rows)
    undated = rows.assign(finished_at=None)
    assert np.all(drift.factor(undated) == 1.0)
    assert HostDrift().fit(undated).n_rows == 0


def test_disjoint_campaigns_keep_their_own_level() -> None:
    """Items profiled a day apart share no item, so nothing ties their levels: no shift is invented,
    while each campaign's own slow pass is still found."""
    a = _rows(150, 3, {1: 1.04}, prefix="a", seed=1)
    b = _rows(150, 3, {0: 0.97}, start_min=24 * 60, prefix="b", seed=2, base_ms=0.8)
    rows = pd.concat([a, b], ignore_index=True)
    f = HostDrift().fit(rows).factor(rows)
    in_a, in_b = rows.index < len(a), rows.index >= len(a)
    pass_of = np.concatenate([np.repeat(np.arange(3), 150)] * 2)
    assert np.allclose(f[in_a & (pass_of == 1)], 1.04, atol=0.006)
    assert np.allclose(f[in_a & (pass_of != 1)], 1.0, atol=0.006)
    assert np.allclose(f[in_b & (pass_of == 0)], 0.97, atol=0.006)
    assert np.allclose(f[in_b & (pass_of != 0)], 1.0, atol=0.006)


def test_size_classes_drift_separately() -> None:
    """Large working sets slow down more than small ones in the same minutes."""
    small = _rows(150, 3, {0: 1.01}, base_ms=0.01, prefix="s", seed=3)
    large = _rows(150, 3, {0: 1.06}, base_ms=5.0, prefix="l", seed=4)
    rows = pd.concat([small, large], ignore_index=True)
    f = HostDrift().fit(rows).factor(rows)
    first = np.concatenate([np.arange(len(small)) < 150, np.arange(len(large)) < 150])
    is_small = rows["item_key"].str.startswith("s").to_numpy()
    assert np.allclose(f[first & is_small], 1.01, atol=0.005)
    assert np.allclose(f[first & ~is_small], 1.06, atol=0.006)


def test_rows_that_agree_only_because_the_host_was_fast_do_not_confirm_a_floor(tmp_path) -> None:
    """Confirmation judges the minima the floor is taken from: drift-corrected ones."""
    from hwlat.profiling.passes import unconfirmed_floors
    from hwlat.store import ProfileStore

    # pass 1 ran 2.5 % slow, pass 2 4 % fast: raw, the two lowest minima (passes 0 and 2) are 4 %
    # apart; corrected, all three agree
    rows = _rows(200, 3, {1: 1.025, 2: 0.96})
    store = ProfileStore("drifty", root=tmp_path)
    store.append("kernels", [{**r, "median_ms": r["min_ms"] * 1.01, "mean_ms": r["min_ms"] * 1.01,
                              "kernel_type": "add", "config": "{}"} for r in rows.to_dict("records")])
    keys = set(rows["item_key"])
    assert unconfirmed_floors(store, keys, 0.03) == set()
    assert unconfirmed_floors(store, keys, 0.0) == keys  # the tolerance still applies
    raw = rows.groupby("item_key")["min_ms"].apply(lambda v: sorted(v)[1] / sorted(v)[0] - 1)
    assert (raw > 0.03).all()  # what the uncorrected minima would have said


def test_a_later_campaign_is_tied_to_the_store_through_its_anchors() -> None:
    """A day later 400 new items are measured while the host runs 6 % slow, with 100 stored items
    re-measured among them (anchors). The new items' floors must come out on the store's scale, not
    6 % high; the new rows outnumber the anchors 4 to 1 in every bin, which a few rounds of
    alternating medians leave only partly corrected."""
    old = _rows(300, 3, {}, prefix="k", seed=5)
    rng = np.random.default_rng(6)
    anchor = rng.choice(300, 100, replace=False)
    new_effect = np.exp(rng.uniform(-0.5, 0.5, 400))
    day = T0 + dt.timedelta(days=1)
    later = []
    for p in range(3):
        batch = [(f"n{i}", new_effect[i]) for i in range(400)]
        batch += [(f"k{i}", float(old[old["item_key"] == f"k{i}"]["min_ms"].min())) for i in anchor]
        # shuffled as profile_passes shuffles them: anchors land in every 2-min bin of the pass
        for pos, j in enumerate(rng.permutation(len(batch))):
            key, ms = batch[j]
            t = day + dt.timedelta(minutes=p * 10 + 10 * pos / len(batch))
            later.append({"item_key": key, "min_ms": ms * 1.06 * (1 + rng.uniform(0, 0.002)),
                          "finished_at": t.isoformat().replace("+00:00", "Z")})
    rows = pd.concat([old, pd.DataFrame(later)], ignore_index=True)
    latest = rows.drop_duplicates("item_key", keep="last")
    floors = with_floor(latest, rows, HostDrift().fit(rows)).set_index("item_key")["floor_ms"]
    true_old = old.groupby("item_key")["min_ms"].min()
    ratio_old = np.median(floors[true_old.index] / true_old)
    ratio_new = np.median(floors[[f"n{i}" for i in range(400)]].to_numpy() / new_effect)
    assert abs(ratio_new / ratio_old - 1.0) < 0.006
    raw = with_floor(latest, rows).set_index("item_key")["floor_ms"]
    assert np.median(raw[[f"n{i}" for i in range(400)]].to_numpy() / new_effect) > 1.055  # uncorrected


def _shuffled(n_items: int, passes: int, start_min: float, prefix: str, seed: int, level: float = 1.0,
              sigma: float = 0.03, slow_share: float = 0.2) -> pd.DataFrame:
    """A campaign on a host with no drift: ``passes`` passes of 10 min, each in a new order, every
    row's ``min_ms`` = the item's effect x ``level`` x log-normal noise, and ``slow_share`` of rows
    caught in a slow speed state (x 1.3-1.9, as a tiny kernel on a shared VM)."""
    rng = np.random.default_rng(seed)
    effect = np.exp(rng.uniform(-4.0, 2.0, n_items))  # 0.02-7 ms: every size class
    rows = []
    for p in range(passes):
        for pos, i in enumerate(rng.permutation(n_items)):
            t = T0 + dt.timedelta(minutes=start_min + p * 10 + 10 * pos / n_items)
            slow = rng.uniform(1.3, 1.9) if rng.random() < slow_share else 1.0
            rows.append({"item_key": f"{prefix}{i}", "finished_at": t.isoformat().replace("+00:00", "Z"),
                         "min_ms": effect[i] * level * slow * np.exp(rng.normal(0, sigma))})
    return pd.DataFrame(rows)


def test_pure_noise_in_disconnected_campaigns_gives_factors_of_exactly_one() -> None:
    """Two campaigns a day apart, sharing no item, on a host with no drift (the second one 8 %
    slower all day, which nothing in the store can tell from the items being slower): every bin
    is fitted, none is corrected, no level is moved."""
    for seed in range(4):
        a = _shuffled(400, 3, 0.0, "a", seed)
        b = _shuffled(400, 3, 24 * 60, "b", seed + 100, level=1.08)
        rows = pd.concat([a, b], ignore_index=True)
        drift = HostDrift().fit(rows)
        assert len(drift.table) >= 40  # most 2-min bins of both campaigns fitted, in three classes
        assert sum(v["solved"] == 2 for v in drift.components.values()) >= 2  # one component per campaign
        assert np.all(drift.factor(rows) == 1.0), drift.summary()
        assert drift.trusted


def test_a_slowdown_in_one_campaign_is_found_there_only() -> None:
    """The same two campaigns with the first one's second pass 5 % slow: found in that pass (within
    1 point), and the second campaign, not tied to the first, keeps factors of exactly 1."""
    a = _shuffled(400, 3, 0.0, "a", 7)
    t = pd.to_datetime(a["finished_at"], format="ISO8601")
    late = t >= pd.Timestamp(T0 + dt.timedelta(minutes=10))
    early = t < pd.Timestamp(T0 + dt.timedelta(minutes=20))
    in_pass = (late & early).to_numpy()
    a.loc[in_pass, "min_ms"] *= 1.05
    b = _shuffled(400, 3, 24 * 60, "b", 8)
    rows = pd.concat([a, b], ignore_index=True)
    f = HostDrift().fit(rows).factor(rows)
    in_a = np.arange(len(rows)) < len(a)
    assert abs(np.median(f[in_a][in_pass]) / np.median(f[in_a][~in_pass]) - 1.05) < 0.01
    assert np.all(f[~in_a] == 1.0)


def test_an_implausible_fit_falls_back_to_no_correction_with_a_warning(tmp_path, caplog) -> None:
    """A host 40 % slower for a whole pass is beyond what a drift correction should mend: the fit
    is not trusted, divides nothing out, and training says so."""
    import logging

    from hwlat.predictors.training import host_drift
    from hwlat.store import ProfileStore

    rows = _rows(200, 3, {1: 1.4})
    drift = HostDrift().fit(rows)
    assert drift.table and not drift.trusted and "beyond" in drift.reason
    assert np.all(drift.factor(rows) == 1.0)
    assert drift.summary()["trusted"] is False

    store = ProfileStore("drifty", root=tmp_path)
    store.append("kernels", [{**r, "median_ms": r["min_ms"] * 1.01, "mean_ms": r["min_ms"] * 1.01,
                              "kernel_type": "add", "config": "{}"} for r in rows.to_dict("records")])
    with caplog.at_level(logging.WARNING, logger="hwlat.predictors.training"):
        assert not host_drift(store).trusted
    said = [r.getMessage() for r in caplog.records]
    assert any("not trusted" in m and "hwlat doctor drifty" in m for m in said)


def test_a_table_that_invents_drift_is_not_trusted() -> None:
    """A table claiming 15 % in one pass of a steady store (within the plausible spread) spreads
    each item's rows apart when divided out, and disagrees with the rows' own median ratios."""
    rows = _rows(200, 3, {})
    fitted = HostDrift().fit(rows)
    assert fitted.trusted and np.allclose(fitted.factor(rows), 1.0, atol=0.003)
    invented = HostDrift(table={k: (np.log(1.15) if i % 3 == 0 else 0.0)
                                for i, k in enumerate(sorted(fitted.table))})
    assert not invented.assess(rows) and not invented.trusted
    assert "spreads" in invented.reason or "disagree" in invented.reason
    assert np.all(invented.factor(rows) == 1.0)
