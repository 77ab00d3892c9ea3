"""Adaptive sampling rounds on real measurements (local onnxruntime agent): planning, tagging, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from hwlat.devices import get_device
from hwlat.kernels.base import Kernel, get
from hwlat.profiling import profile
from hwlat.profiling.adaptive import adaptive_round, allocate, is_adaptive, load_plan, pick_anchors, plan_path
from hwlat.profiling.sources import items_for_kernels
from hwlat.store import ProfileStore

HWLAT = [sys.executable, "-m", "hwlat"]


def hwlat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*HWLAT, *args], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def _base_kernels() -> list[Kernel]:
    # `add`: 20 sizes within ±10 % of each other, so any sane predictor is within ±10 %.
    # `mul`: 20 sizes spread over two decades, so each held-out one lies between far neighbours.
    add = [get("add").make(c=c, hw=hw, broadcast=0) for c in (96, 104, 112, 120, 128)
           for hw in (3136, 3249, 3364, 3481)]
    mul = [get("mul").make(c=int(c), hw=3136, broadcast=0) for c in np.geomspace(8, 1024, 20).round()]
    assert len({k.key() for k in mul}) == 20
    return add + mul


def test_allocate_follows_error_mass() -> None:
    assert allocate({"a": 0, "b": 10, "c": 30}, 20) == {"a": 0, "b": 6, "c": 14}  # 3 each, then 14 by 1:3 (tie to c)
    assert sum(allocate({"a": 1, "b": 2, "c": 50}, 9).values()) == 9
    assert allocate({"a": 1, "b": 2, "c": 50}, 9)["a"] == 3  # at least a few for any type with errors
    assert allocate({"a": 5, "b": 9}, 1) == {"a": 0, "b": 1}
    assert allocate({"a": 0, "b": 0}, 10) == {"a": 0, "b": 0}
    # the CI case that tied the round test below at n=10; n=20 keeps the order
    assert allocate({"add": 13, "mul": 20}, 10) == {"add": 5, "mul": 5}
    assert allocate({"add": 13, "mul": 20}, 20) == {"add": 9, "mul": 11}


def test_adaptive_round_measures_where_the_predictor_errs(hwlat_home: Path) -> None:
    dev = get_device("local")
    base = _base_kernels()
    # 0.2 s per item: with 0.05 s a host speed switch during the run left `add` sizes >10 % apart
    # (CI once saw 45 % of them within ±10 %, which tied the allocation this test checks).
    s = profile(dev, items_for_kernels(base, dev.runtime), measure={"max_time_s": 0.2})
    assert s.ok and s.measured == 40

    # 20 new kernels, not 10: after 3 each, 10 leaves 4 to split by error mass, and a noisy `add`
    # (CI once had 13 of 20 outside ±10 % vs mul's 20) then ties 5 vs 5 by largest remainder.
    plan = adaptive_round(ProfileStore("local"), n=20, seed=0, runtime=dev.runtime)
    rep = {r.kernel_type: r for r in plan.report}
    assert rep["add"].rows == rep["mul"].rows == 20
    assert rep["mul"].acc10 is not None and rep["add"].acc10 is not None
    assert rep["mul"].acc10 < rep["add"].acc10 and rep["mul"].new > rep["add"].new
    assert len(plan.kernels) == 20 and sum(r.new for r in plan.report) == 20
    base_keys = {k.key() for k in base}
    keys = [k.key() for k in plan.kernels]
    assert len(set(keys)) == 20 and not set(keys) & base_keys
    assert all(get(k.type).make(**k.config) == k for k in plan.kernels)

    # the CLI measures exactly that plan (same store, same seed), tagged as adaptive round 1
    args = ("profile", "local", "--adaptive", "1", "--adaptive-size", "20", "--max-time", "0.05", "--passes", "1",
            "--json")
    r = hwlat(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    (rnd,) = out["adaptive"]
    assert rnd["round"] == 1 and rnd["planned"] == 20 and rnd["measured"] == 20 and not rnd["failed"]
    assert {t["kernel_type"]: t["new"] for t in rnd["types"]} == {"add": rep["add"].new, "mul": rep["mul"].new}
    df = ProfileStore("local").kernels(expand=False)
    tagged = df[df["extra"].map(is_adaptive)]
    assert len(df) == 60 and len(tagged) == 20
    tags = [json.loads(e) for e in tagged["extra"]]  # the agent's own extras stay next to the tags
    assert all(t["source"] == "adaptive" and t["round"] == 1 and t["seed"] == 0 and "providers" in t for t in tags)
    stored = {get(t).make(**json.loads(c)).key() for t, c in zip(tagged["kernel_type"], tagged["config"])}
    assert stored == set(keys)
    assert (tagged["median_ms"] > 0).all() and not df[~df["extra"].map(is_adaptive)]["extra"].map(is_adaptive).any()

    # resumable: the same command re-plans the same kernels and measures nothing
    # resumable: the round's plan was saved, and the same command reads it back and measures
    # nothing, even after other measurements changed the floors a fresh plan would start from
    saved = plan_path(ProfileStore("local"), 0, 1)
    assert [k.key() for k in load_plan(saved)[0].kernels] == keys
    again_mul = [k for k in base if k.type == "mul"][::4]
    assert profile(dev, items_for_kernels(again_mul, dev.runtime), force=True,
                   measure={"max_time_s": 0.05}).measured == 5
    r = hwlat(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    again = json.loads(r.stdout)["adaptive"][0]
    assert again["resumed"] and again["planned"] == 20 and again["measured"] == 0 and again["skipped"] == 20
    assert "--adaptive 2 or more adds rounds" in " ".join(r.stderr.split())  # how to get new rounds instead
    assert len(ProfileStore("local").kernels()) == 60

    # a damaged plan file: one line naming it and what to do, and nothing measured or lost
    saved.write_text('{"round": 1, "kernels": [')
    r = hwlat(*args)
    assert r.returncode != 0 and str(saved) in " ".join(r.stderr.split()) and "delete it" in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 3, r.stderr
    assert len(ProfileStore("local").kernels(latest=False)) == 65


def test_adaptive_plans_on_floors_in_passes_and_never_on_excluded_kernels(hwlat_home: Path) -> None:
    from hwlat.predictors.training import kernel_hash
    from hwlat.profiling.passes import profile_passes, stored_counts

    dev = get_device("local")
    base = _base_kernels()
    profile_passes(dev, items_for_kernels(base, dev.runtime), passes=2, measure={"max_time_s": 0.05})
    store = ProfileStore("local")
    plan = adaptive_round(store, n=10, seed=0, runtime=dev.runtime, target="floor_ms")
    rep = {r.kernel_type: r for r in plan.report}
    assert rep["mul"].rows == rep["add"].rows == 20 and rep["mul"].new > 0
    # a benchmark's held-out kernels never steer the plan: with every mul excluded, mul gets nothing
    held = {kernel_hash(k) for k in base if k.type == "mul"}
    plan = adaptive_round(store, n=10, seed=0, runtime=dev.runtime, target="floor_ms", exclude_kernels=held)
    rep = {r.kernel_type: r for r in plan.report}
    assert rep["mul"].rows == 0 and rep["mul"].new == 0 and "needs" in rep["mul"].note
    assert not {kernel_hash(k) for k in plan.kernels} & held
    # anchors (stored kernels measured again beside a round) are never excluded ones either
    ks, keys = pick_anchors(store, 8, seed=0, round_index=1, runtime=dev.runtime, target="floor_ms",
                            exclude_kernels=held)
    assert len(ks) == len(set(keys)) == 8 and all(k.type == "add" for k in ks)
    assert pick_anchors(store, 8, seed=0, round_index=1, runtime=dev.runtime, target="floor_ms")[1] != keys

    # the CLI measures adaptive rounds in passes too: every new kernel gets 2 rows, and by default
    # a quarter of the round's size of stored kernels is measured again in both passes, untagged
    before = stored_counts(store)
    r = hwlat("profile", "local", "--adaptive", "1", "--adaptive-size", "6", "--passes", "2", "--confirm", "0",
              "--max-time", "0.05", "--json")  # --confirm 0: exactly two passes, no confirmation
    assert r.returncode == 0, r.stderr[-2000:]
    (rnd,) = json.loads(r.stdout)["adaptive"]
    assert rnd["anchors"] == 2 and rnd["measured"] == 6 + 2 and not rnd["failed"]
    df = store.kernels(latest=False, expand=False)
    tagged = df[df["extra"].map(is_adaptive)]
    counts = stored_counts(store)
    assert len(set(tagged["item_key"])) == 6 and all(counts[k] == 2 for k in set(tagged["item_key"]))
    again = {k for k, n in before.items() if counts[k] == n + 2}
    assert len(again) == 2 and all(counts[k] == n for k, n in before.items() if k not in again)
    assert not df[df["item_key"].isin(again)]["extra"].map(is_adaptive).any()


def test_adaptive_cli_errors_are_one_line(hwlat_home: Path) -> None:
    r = hwlat("profile", "local", "--adaptive", "1", "--types", "add,nope")
    assert r.returncode != 0 and "unknown kernel type(s) nope" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = hwlat("profile", "--all", "--adaptive", "1")
    assert r.returncode != 0 and "one device at a time" in r.stderr
    r = hwlat("profile", "local", "--adaptive", "1", "--passes", "1", "--anchors", "0.5")
    assert r.returncode != 0 and "--anchors needs --passes" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = hwlat("profile", "local", "--suite", "quick", "--passes", "1", "--anchors", "0.5")
    assert r.returncode != 0 and "--anchors needs --passes" in r.stderr
