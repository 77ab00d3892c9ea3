"""Fleet profiling and Oracle searches on a real local Ray cluster (issue 34).

* three local devices profiled in parallel as Ray tasks, one Ray worker SIGKILLed mid-campaign, then
  the fleet run again: every kernel stored exactly once per device;
* the driver itself SIGKILLed mid-fleet (``hwlat profile --all --engine ray`` as a process), then
  re-run: the same audit (slow);
* a Ray Tune search with Optuna's sampler whose trials all meet the Oracle's budget, computed in the
  workers from the pickled Oracle (its lookup tables; the predictor is not loaded there).
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

if os.environ.get("CI"):  # CI installs Ray (.ci/run): a missing Ray there is a failure, not a skip
    import ray
else:
    ray = pytest.importorskip("ray", reason="Ray not installed (pip install -c constraints.txt -e '.[ray]')")

import faultlib as fl  # noqa: E402
from oracle_support import session_predictor  # noqa: E402

from hwlat.devices import Device, get_device  # noqa: E402
from hwlat.errors import ConfigError  # noqa: E402
from hwlat.profiling.fleet_ray import ItemsCampaign, device_resource, fleet_resources, profile_fleet  # noqa: E402

TYPES = ["conv2d", "linear"]  # 20 kernels of the quick suite
MEASURE = {"min_runs": 5, "max_time_s": 0.2, "warmup_max_s": 0.02, "warmup_min_runs": 2, "ci_rel": 0.1}
FLEET = ("local", "local-2t", "lab-3")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local Ray cluster with several workers and one resource per fleet device."""
    ray.init(address="local", num_cpus=3, resources=fleet_resources(FLEET), include_dashboard=False,
             log_to_driver=False)
    yield
    ray.shutdown()


def _expected_names(device: Device) -> set[str]:
    from hwlat.profiling.sources import kernel_items

    return {it.name for it in kernel_items("quick", device.runtime, types=TYPES)}


def _audit(profiles: Path, device: Device) -> dict[str, Any]:
    """Rows, duplicates (by row_id and by item_key), names and temp files of one device's store."""
    from hwlat.store import ProfileStore

    st = ProfileStore(device.name, root=profiles)
    raw = [pq.read_table(p).to_pandas() for p in st.parts("kernels")]

    df = pd.concat(raw, ignore_index=True) if raw else pd.DataFrame({"row_id": [], "item_key": [], "name": []})
    return {"rows": len(df), "row_id_dups": int(df["row_id"].duplicated().sum()),
            "key_dups": int(df["item_key"].duplicated().sum()), "names": set(df["name"]),
            "tmp": sorted(p.name for p in (profiles / device.name).rglob(".tmp-*"))}


def _worker_of(workdir: Path) -> tuple[int, int] | None:
    """(Ray worker pid, agent pid) of the campaign whose device agent runs under ``workdir``."""
    for agent in fl.agent_pids(workdir):
        parent = fl._ppid(agent)
        if parent is not None:
            return parent, agent
    return None


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def test_fleet_on_ray_worker_killed_then_rerun(ray_cluster: None, hwlat_home: Path, tmp_path: Path) -> None:
    work = tmp_path / "work-3"
    (hwlat_home / "devices.toml").write_text(f'[devices.lab-3]\ntransport = "local"\nworkdir = "{work}"\n')
    devices = [get_device(n) for n in FLEET]
    campaign = ItemsCampaign(suite="quick", types=TYPES, measure=MEASURE)
    expected = {d.name: _expected_names(d) for d in devices}
    assert all(len(v) == 20 for v in expected.values())

    # the fleet runs in a thread of this process (the driver) while the test kills a worker
    import threading

    out: dict[str, Any] = {}
    t = threading.Thread(target=lambda: out.setdefault("res", profile_fleet(devices, campaign)))
    t.start()
    killed: tuple[int, int] | None = None
    rows_at_kill = 0
    overlap: list[int] = []  # agents of the retry seen while the dead worker's agent still ran
    deadline = time.monotonic() + 240
    while t.is_alive() and time.monotonic() < deadline:
        if killed is None:
            rows = fl.stored_count(hwlat_home, "lab-3", "kernels")
            found = _worker_of(work) if rows >= 2 else None
            if found and rows < 18:
                worker, agent = found
                assert Path(f"/proc/{worker}/cmdline").read_bytes().startswith(b"ray::"), "not a Ray worker"
                os.kill(worker, signal.SIGKILL)
                killed, rows_at_kill = (worker, agent), rows
        elif _alive(killed[1]):
            overlap += [p for p in fl.agent_pids(work) if p != killed[1]]
        time.sleep(0.02)
    t.join(timeout=10)
    assert not t.is_alive(), "the fleet run did not finish"
    assert killed is not None, "the lab-3 campaign ended before its Ray worker could be killed"
    res = {r["device"]: r for r in out["res"]}
    # Ray retried the dead worker's campaign, which went on from the stored rows
    assert all(r["error"] is None and not r["failed"] for r in res.values()), res
    assert res["lab-3"]["skipped"] >= rows_at_kill and res["lab-3"]["measured"] + res["lab-3"]["skipped"] == 20
    # the dead worker's agent did not measure the device beside the retry (Ray ends a dead worker's
    # process group; a surviving agent would also die at its next write to the closed pipe)
    assert not overlap and not _alive(killed[1]), f"two agents measured lab-3 at once: {overlap}"

    again = {r["device"]: r for r in profile_fleet(devices, campaign)}
    assert all(r["measured"] == 0 and r["skipped"] == 20 and r["error"] is None for r in again.values()), again
    for d in devices:
        a = _audit(hwlat_home, d)
        assert (a["rows"], a["row_id_dups"], a["key_dups"], a["tmp"]) == (20, 0, 0, []), (d.name, a)
        assert a["names"] == expected[d.name], d.name


def test_fleet_needs_the_device_resource(ray_cluster: None, hwlat_home: Path) -> None:
    """A cluster that does not declare a device's resource is refused up front (a task asking for it
    would wait forever), with the ray start line that declares it."""
    dev = get_device("local-torch")
    with pytest.raises(ConfigError) as e:
        profile_fleet([dev], ItemsCampaign(suite="quick", types=TYPES, measure=MEASURE))
    msg = str(e.value)
    assert device_resource("local-torch") in msg and "ray start" in msg and "\n" not in msg


def test_a_campaign_that_raises_is_reported_per_device(ray_cluster: None, hwlat_home: Path) -> None:
    """An exception in a campaign (not an HwlatError) becomes that device's one-line error."""
    res = profile_fleet([get_device("local")], ItemsCampaign(suite="no-such-suite"))
    assert len(res) == 1 and res[0]["device"] == "local" and res[0]["measured"] == 0
    err = res[0]["error"]
    assert "'local'" in err and "ValueError: unknown kernel suite 'no-such-suite'" in err and "\n" not in err


def test_device_resources_are_distinct_and_safe() -> None:
    names = ["rpi 4", "rpi_4", "board $(x)", "phone `y`", "jetson's"]
    res = [device_resource(n) for n in names]
    assert len(set(res)) == len(names)
    assert all(r.startswith("hwlat_dev_") and all(c.isalnum() or c in "_.-" for c in r) for r in res)


@pytest.mark.slow
def test_fleet_cli_driver_killed_then_rerun(tmp_path: Path) -> None:
    """`hwlat profile --all --engine ray` SIGKILLed mid-fleet, then run again to completion."""
    home = fl.Home(tmp_path)
    names = ["lab-a", "lab b", "lab;c"]
    home.write_devices({n: {"transport": "local", "workdir": str(tmp_path / f"work-{i}")} for i, n in enumerate(names)})
    args = ("profile", "--all", "--engine", "ray", "--suite", "quick", "--types", ",".join(TYPES), "--passes", "1",
            "--max-time", "0.2", "--json")
    proc = fl.start_hwlat(home, *args)
    session: list[int] = []
    try:
        deadline = time.monotonic() + 200
        while proc.poll() is None and time.monotonic() < deadline:
            if fl.stored_count(home.profiles, names[0], "kernels") >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the fleet run ended before the kill: {proc.communicate()[1][-500:]}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        # Ray's own daemons of the dead driver (they run in its session): ended here by pid
        time.sleep(3)
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if os.getsid(int(d.name)) == proc.pid:
                        session.append(int(d.name))
                except OSError:
                    pass
        fl.kill_pids(session)
    assert not fl.agent_pids(tmp_path), "device agents outlived the dead driver"
    p = fl.hwlat(home, *args, timeout=400)
    assert p.returncode == 0, p.stderr[-1500:]
    res = {r["device"]: r for r in json.loads(p.stdout[p.stdout.index("["):])}
    assert set(res) == set(names) and sum(r["skipped"] for r in res.values()) > 0
    for n in names:
        a = _audit(home.profiles, Device(name=n))
        assert (a["rows"], a["row_id_dups"], a["key_dups"], a["tmp"]) == (20, 0, 0, []), (n, a)


# ---------------------------------------------------------------- the Oracle in distributed searches


def test_oracle_pickles_its_tables_not_the_predictor(tmp_path_factory: pytest.TempPathFactory) -> None:
    import cloudpickle
    import numpy as np

    from hwlat.oracle import Oracle
    from hwlat.oracle.portable import LazyPredictor

    _, root = session_predictor(tmp_path_factory)
    for space in ("ofa_mbv3", "fbnet", "nb201"):
        o = Oracle("local", space=space, root=root)
        rng = np.random.default_rng(1)
        archs = [o.sample(rng) for _ in range(20)]
        want = o.predict_batch(archs)
        blob = pickle.dumps(o)
        # what travels is the lookup tables plus a few KB: not the predictor, not the query cache
        t = o.table
        tables = sum(a.nbytes for a in [*getattr(t, "block", {}).values(), *getattr(t, "fixed", {}).values()]
                     ) if space == "ofa_mbv3" else (t.layer.nbytes + t.fixed.nbytes if t is not None else 0)
        whole = len(cloudpickle.dumps(o.predictor))
        assert len(blob) < tables + 30_000 < whole + tables, (space, len(blob), tables, whole)
        w = pickle.loads(blob)
        assert isinstance(w.predictor, LazyPredictor)
        for a, m in zip(archs, want[0]):
            assert w(a) == pytest.approx(float(m), rel=1e-12)
        got = w.predict_batch(archs)
        for x, y in zip(got, want):
            np.testing.assert_allclose(x, y, rtol=1e-12)
        # the table path answers without the predictor; other spaces load it in the worker, lazily
        assert (w.predictor._loaded is None) == (o.mode == "table"), space
        # a worker's oracle pickles small again (nested tasks)
        assert len(pickle.dumps(w)) < tables + 30_000


def test_ray_tune_search_respects_the_oracle_budget(ray_cluster: None, tmp_path: Path,
                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    from hwlat.adapters.ray_tune import run_search
    from hwlat.oracle import Oracle

    _, root = session_predictor(tmp_path_factory)
    oracle = Oracle("local", space="ofa_mbv3", root=root, upper=True)
    b = oracle.bounds()
    budget = b.min_ms + 0.3 * (b.max_ms - b.min_ms)  # most random subnets are over it
    results = run_search(oracle, budget, num_samples=8, max_concurrent=2, seed=0, storage_path=str(tmp_path))
    assert len(results) == 8
    for r in results:
        arch = json.loads(r["arch"])
        assert r["latency_ms"] <= budget
        # the worker's answer is the driver's: same tables, same overhead fit
        assert oracle.constraint_value(arch) == pytest.approx(r["latency_ms"], rel=1e-12)
        assert r["pid"] != os.getpid() and r["predictor_loaded"] is False
    assert any(r["repair_steps"] > 0 for r in results), "the budget never bound: the test would not see a repair"
    suggested_over = [oracle.constraint_value(r["config"]) > budget for r in results]
    assert sum(suggested_over) == sum(r["repair_steps"] > 0 for r in results)
