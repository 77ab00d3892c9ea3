"""The shared profile store on a real S3-compatible server (moto's ``moto_server``, a separate process
on 127.0.0.1 started here): concurrent writer processes, a writer killed holding the lease, a real
profiling campaign into it and its rerun, and the DuckDB query the docs show."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if not os.environ.get("CI"):  # CI installs s3fs and moto[server] (.ci/run): there a missing one fails
    pytest.importorskip("s3fs", reason="s3fs not installed (pip install -e '.[store]')")
    pytest.importorskip("moto.server", reason="moto[server] not installed (the S3-compatible test server)")

from conftest import model_folder  # noqa: E402

from hwlat.store.shared import SharedProfileStore, open_store  # noqa: E402

BUCKET = "hwlat-team"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A moto S3 server process; yields storage options that reach it."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start: {log.read_text()[-500:]}") from None
                time.sleep(0.1)
        opts = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "test", "secret": "test"}
        import s3fs

        s3fs.S3FileSystem(**opts).mkdir(BUCKET)
        yield opts
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _row(i: int) -> dict[str, Any]:
    return {"item_key": f"k{i:03d}", "run_id": "r", "name": f"kernel {i}", "median_ms": 1.0 + i, "min_ms": 1.0 + i,
            "mean_ms": 1.0 + i, "runs": 10, "finished_at": f"2026-01-01T00:00:{i % 60:02d}Z", "kernel_type": "conv2d",
            "config": "{}"}


WRITER = textwrap.dedent("""
    import json, random, sys
    from hwlat.store.shared import SharedProfileStore
    url, opts, seed, n, lease = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    st = SharedProfileStore("board", url, opts, lease_s=lease)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    wrote = 0
    for i in order:
        row = {"item_key": f"k{i:03d}", "run_id": f"w{seed}", "name": f"kernel {i}", "median_ms": 1.0 + i,
               "min_ms": 1.0 + i, "mean_ms": 1.0 + i, "runs": 10, "finished_at": "2026-01-01T00:00:00Z",
               "kernel_type": "conv2d", "config": "{}"}
        wrote += st.append("kernels", [row])
    print(wrote)
""")


def _writers(url: str, opts: dict[str, Any], n_writers: int, n_rows: int, lease: float = 60.0
             ) -> list[subprocess.Popen]:
    import json

    return [subprocess.Popen([sys.executable, "-c", WRITER, url, json.dumps(opts), str(seed), str(n_rows), str(lease)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for seed in range(n_writers)]


def _raw(st: SharedProfileStore, table: str = "kernels") -> Any:
    import pandas as pd

    tabs = [st._read_part(p).to_pandas() for p in st.parts(table)]
    return pd.concat(tabs, ignore_index=True) if tabs else pd.DataFrame({"row_id": [], "item_key": []})


def test_concurrent_writers_store_each_item_once(s3: dict[str, Any]) -> None:
    """Three processes append the same 20 items in different orders at once: each item is written by
    exactly one of them, and the store holds it once."""
    url = f"s3://{BUCKET}/concurrent"
    procs = _writers(url, s3, 3, 20)
    wrote = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-1500:]
        wrote.append(int(out.split()[-1]))
    st = SharedProfileStore("board", url, s3)
    df = _raw(st)
    assert sum(wrote) == 20 and len(df) == 20, (wrote, len(df))
    assert not df["row_id"].duplicated().any() and not df["item_key"].duplicated().any()
    assert sorted(st.measured_keys("kernels")) == [f"k{i:03d}" for i in range(20)]
    assert not st.fs.exists(st._lock_key()), "a writer left its lease behind"
    st.compact()
    assert len(st.parts("kernels")) == 1 and len(st.kernels()) == 20


def test_writer_killed_holding_the_lease(s3: dict[str, Any]) -> None:
    """A writer SIGKILLed while it holds the lease blocks the others only until the lease expires;
    then exactly one of two waiting writers takes it over and nothing is lost or doubled."""
    url = f"s3://{BUCKET}/killed"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import json, sys, time
        from hwlat.store.shared import SharedProfileStore
        st = SharedProfileStore("board", sys.argv[1], json.loads(sys.argv[2]), lease_s=3.0)
        with st.lock():
            print("held", flush=True)
            time.sleep(600)
    """), url, __import__("json").dumps(s3)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    st = SharedProfileStore("board", url, s3, lease_s=3.0)
    assert st.fs.exists(st._lock_key()), "the dead writer's lease should still be there"
    t0 = time.monotonic()
    procs = _writers(url, s3, 2, 8, lease=3.0)
    wrote = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-1500:]
        wrote.append(int(out.split()[-1]))
    assert time.monotonic() - t0 >= 2.0  # they waited for the stale lease to expire
    df = _raw(st)
    assert sum(wrote) == 8 and len(df) == 8 and not df["item_key"].duplicated().any(), (wrote, len(df))


def test_lease_renewed_before_a_write_or_the_write_refused(s3: dict[str, Any]) -> None:
    """A holder whose lease runs low renews it and writes; one whose lease another writer took over
    writes nothing (a one-line StoreError), so the two never write under one lease."""
    from hwlat.errors import StoreError

    url = f"s3://{BUCKET}/renew"
    a = SharedProfileStore("board", url, s3, lease_s=1.5)
    with a.lock():
        time.sleep(1.1)  # under a third of the lease left: the append renews it first
        assert a.append("kernels", [_row(0)]) == 1
        assert a._lease is not None and a._lease[1] - time.monotonic() > 1.0
    b = SharedProfileStore("board", url, s3, lease_s=1.5)
    with a.lock():
        time.sleep(1.7)  # expired: b takes it over
        with b.lock():
            assert b.append("kernels", [_row(1)]) == 1
            with pytest.raises(StoreError, match="lost the lease") as e:
                a.append("kernels", [_row(2)])
            assert "\n" not in str(e.value)
    assert sorted(SharedProfileStore("board", url, s3).measured_keys("kernels")) == ["k000", "k001"]


def test_profile_campaign_into_the_shared_store_then_rerun(s3: dict[str, Any], hwlat_home: Path,
                                                           tmp_path: Path) -> None:
    """A real campaign on the local device writes to S3; the same campaign again measures nothing."""
    from hwlat.devices import get_device
    from hwlat.profiling import profile
    from hwlat.profiling.items import items_from_dir

    dev = get_device("local")
    files = model_folder(tmp_path / "models", 6)
    items = items_from_dir(tmp_path / "models", dev.runtime)
    st = open_store("local", f"s3://{BUCKET}/team", s3)
    assert isinstance(st, SharedProfileStore)
    fast = {"min_runs": 5, "max_time_s": 0.05, "warmup_max_s": 0.02, "warmup_min_runs": 2, "ci_rel": 0.1}
    first = profile(dev, items, st, measure=fast)
    assert first.error is None and first.measured == len(files), first.to_dict()
    again = profile(dev, items, open_store("local", f"s3://{BUCKET}/team", s3), measure=fast)
    assert again.error is None and again.measured == 0 and again.skipped == len(files)
    df = _raw(st, "models")
    assert len(df) == len(files) and not df["file_sha256"].duplicated().any()
    assert st.latest_fingerprint() is not None and len(st.fingerprints()) == 1
    assert len(st.models()) == len(files)


def test_only_s3_urls_and_folders() -> None:
    from hwlat.errors import ConfigError
    from hwlat.store import ProfileStore

    assert isinstance(open_store("dev", "/mnt/lab/profiles"), ProfileStore)
    assert isinstance(open_store("dev", "file:///mnt/lab/profiles"), ProfileStore)
    with pytest.raises(ConfigError, match="gs:// is not supported"):
        SharedProfileStore("dev", "gs://bucket/profiles")


def test_duckdb_query_from_the_docs(hwlat_home: Path) -> None:
    """docs/scale.md's query over a store folder (the same SQL reads s3:// with DuckDB's httpfs)."""
    duckdb = pytest.importorskip("duckdb", reason="duckdb not installed")
    from hwlat.store import ProfileStore

    for dev in ("board-a", "board-b"):
        ProfileStore(dev, root=hwlat_home).append("kernels", [_row(i) for i in range(5)])
        ProfileStore(dev, root=hwlat_home).append("kernels", [{**_row(1), "median_ms": 0.5,
                                                               "finished_at": "2026-02-01T00:00:00Z"}], force=True)
    sql = (Path(__file__).resolve().parents[1] / "docs" / "scale.md").read_text().split("```sql", 1)[1].split("```")[0]
    got = duckdb.sql(sql.replace("profiles/", f"{hwlat_home}/")).df()
    assert len(got) == 2 * 5  # one row per device and kernel: the latest
    assert sorted(got.loc[got["item_key"] == "k001", "median_ms"]) == [0.5, 0.5]


@pytest.mark.slow
def test_ray_fleet_writes_the_shared_store(s3: dict[str, Any], hwlat_home: Path, tmp_path: Path) -> None:
    """Two devices profiled as Ray tasks straight into the S3 store, then again: nothing measured twice."""
    ray = pytest.importorskip("ray", reason="Ray not installed (pip install -e '.[ray]')")
    from hwlat.devices import get_device
    from hwlat.profiling.fleet_ray import ItemsCampaign, fleet_resources, profile_fleet

    model_folder(tmp_path / "models", 5)
    devices = [get_device("local"), get_device("local-2t")]
    url = f"s3://{BUCKET}/fleet"
    campaign = ItemsCampaign(models=str(tmp_path / "models"), store=url, storage_options=s3,
                             measure={"min_runs": 5, "max_time_s": 0.05, "warmup_max_s": 0.02, "ci_rel": 0.1})
    ray.init(address="local", num_cpus=2, resources=fleet_resources([d.name for d in devices]), include_dashboard=False,
             log_to_driver=False)
    try:
        first = profile_fleet(devices, campaign)
        again = profile_fleet(devices, campaign)
    finally:
        ray.shutdown()
    assert [r["measured"] for r in first] == [5, 5] and [r["error"] for r in first] == [None, None], first
    assert [(r["measured"], r["skipped"]) for r in again] == [(0, 5), (0, 5)], again
    for d in devices:
        df = _raw(SharedProfileStore(d.name, url, s3), "models")
        assert len(df) == 5 and not df["item_key"].duplicated().any()
    assert not (hwlat_home / "local").exists(), "rows went to the local profiles root, not the shared store"
