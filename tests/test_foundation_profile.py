"""End to end: models → agent (local and over a real sshd) → profile store, resumable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import model_folder, write_devices
from proc_util import kill_agents

from hwlat import ProfileStore

HWLAT = [sys.executable, "-m", "hwlat"]


def hwlat(*args: str, check: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    p = subprocess.run([*HWLAT, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise AssertionError(f"hwlat {' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return p


def _ssh_device(hwlat_home: Path, sshd, name: str = "sshbox", **over) -> str:
    write_devices(hwlat_home / "devices.toml", {name: sshd.device_table(**over)})
    return name


def test_measure_local_json(hwlat_home: Path, tmp_path: Path) -> None:
    small, big = model_folder(tmp_path / "m", 2)[0], model_folder(tmp_path / "m2", 36)[-1]
    out = [json.loads(hwlat("measure", str(p), "--device", "local", "--json", check=True).stdout) for p in (small, big)]
    for o in out:
        assert o["device"] == "local" and o["runs"] >= 10 and o["median_ms"] > 0
        assert o["runtime"] == "onnxruntime" and o["cached"] is False
    assert out[1]["median_ms"] > 2 * out[0]["median_ms"]  # 32ch 32x32 conv vs 4ch 8x8
    again = json.loads(hwlat("measure", str(small), "--device", "local", "--json", check=True).stdout)
    assert again["cached"] is True and again["median_ms"] == out[0]["median_ms"]
    forced = json.loads(hwlat("measure", str(small), "--device", "local", "--json", "--force", check=True).stdout)
    assert forced["cached"] is False and forced["run_id"] != out[0]["run_id"]
    df = ProfileStore("local").models(latest=False)
    assert len(df) == 3 and df["row_id"].is_unique


def test_profile_folder_local_then_skip(hwlat_home: Path, tmp_path: Path) -> None:
    paths = model_folder(tmp_path / "models", 5)
    hwlat("profile", "--passes", "1", "local", "--models", str(tmp_path / "models"), "--max-time", "0.3", check=True)
    df = ProfileStore("local").models()
    assert sorted(df["name"]) == sorted(p.name for p in paths)
    assert (df["runtime_version"] != "").all() and df["fingerprint_id"].str.len().min() > 0
    for c in ("median_ms", "mean_ms", "std_ms", "min_ms", "p10_ms", "p90_ms", "runs", "converged", "started_at"):
        assert df[c].notna().all(), c
    assert (df["min_ms"] <= df["p10_ms"]).all() and (df["p10_ms"] <= df["median_ms"]).all()
    assert (df["median_ms"] <= df["p90_ms"]).all()
    r = hwlat("profile", "--passes", "1", "local", "--models", str(tmp_path / "models"), "--json", check=True)
    summary = json.loads(r.stdout[r.stdout.index("{"):])
    assert summary["measured"] == 0 and summary["skipped"] == 5
    fps = json.loads((hwlat_home / "local" / "device.json").read_text())["fingerprints"]
    assert len(fps) == 1 and fps[0]["fingerprint"]["runtime"] == "onnxruntime" and len(fps[0]["runs"]) == 2


@pytest.mark.ssh
def test_profile_over_ssh(hwlat_home: Path, tmp_path: Path, sshd) -> None:
    name = _ssh_device(hwlat_home, sshd)
    paths = model_folder(tmp_path / "models", 4)
    r = hwlat("profile", "--passes", "1", name, "--models", str(tmp_path / "models"), "--max-time", "0.3")
    assert r.returncode != 0 and "unknown SSH host key" in r.stderr and "hwlat devices trust" in r.stderr
    assert len(r.stderr.strip().splitlines()[-1]) > 0
    assert not (hwlat_home / name / "models").exists()  # refused before anything was written
    hwlat("devices", "trust", name, "--yes", check=True)
    chk = json.loads(hwlat("devices", "check", name, "--json", check=True).stdout)
    assert chk["ok"] and chk["fingerprint"]["runtime"] == "onnxruntime"
    hwlat("profile", "--passes", "1", name, "--models", str(tmp_path / "models"), "--max-time", "0.3", check=True)
    df = ProfileStore(name).models()
    assert sorted(df["name"]) == sorted(p.name for p in paths)
    assert (df["median_ms"] > 0).all() and (df["runs"] >= 10).all()


@pytest.mark.ssh
def test_changed_host_key_refused(hwlat_home: Path, tmp_path: Path, sshd) -> None:
    name = _ssh_device(hwlat_home, sshd)
    hwlat("devices", "trust", name, "--yes", check=True)
    try:
        sshd.restart(new_host_key=True)
        r = hwlat("devices", "check", name)
        assert r.returncode != 0 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in r.stderr
        r = hwlat("devices", "trust", name, "--yes")
        assert r.returncode != 0 and "--replace" in r.stderr
        hwlat("devices", "trust", name, "--yes", "--replace", check=True)
        assert hwlat("devices", "check", name).returncode == 0
    finally:
        pass


def _kill_midway_then_resume(hwlat_home: Path, tmp_path: Path, device: str, workdir: Path, n: int = 10) -> None:
    folder = tmp_path / "models"
    model_folder(folder, n, heavy=True)
    env = dict(os.environ)
    proc = subprocess.Popen([*HWLAT, "profile", "--passes", "1", device, "--models", str(folder), "--max-time", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    store = ProfileStore(device)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(store.read("models")) >= 3:
            break
        time.sleep(0.1)
    killed = kill_agents(workdir)
    assert killed >= 1, "agent was not running when we tried to kill it"
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "agent" in err.strip().splitlines()[-1]
    before = store.read("models")
    assert 3 <= len(before) < n
    r = hwlat("profile", "--passes", "1", device, "--models", str(folder), "--max-time", "0.3", check=True)
    after = store.read("models")
    assert len(after) == n and after["item_key"].is_unique and after["name"].is_unique
    assert set(before["row_id"]) <= set(after["row_id"])  # rows measured before the kill are kept as they were
    assert r.returncode == 0


def test_kill_agent_local_then_resume(hwlat_home: Path, tmp_path: Path) -> None:
    work = tmp_path / "devwork"
    write_devices(hwlat_home / "devices.toml", {"loc": {"transport": "local", "workdir": str(work)}})
    _kill_midway_then_resume(hwlat_home, tmp_path, "loc", work)


@pytest.mark.ssh
def test_kill_agent_ssh_then_resume(hwlat_home: Path, tmp_path: Path, sshd) -> None:
    work = tmp_path / "remote work"  # a space in the path: remote commands must quote it
    name = _ssh_device(hwlat_home, sshd, "ssh box; $(touch pwned)", workdir=str(work))
    hwlat("devices", "trust", name, "--yes", check=True)
    _kill_midway_then_resume(hwlat_home, tmp_path, name, work)
    assert not Path("pwned").exists() and not (work / "pwned").exists()
    assert list(work.iterdir()) == []  # run directories removed


def test_profile_model_kernels(hwlat_home: Path, tmp_path: Path) -> None:
    """--model-kernels measures each distinct kernel of the folder's models alone: the store's new kernel
    rows are exactly `hwlat kernels` of the model, and a second run measures nothing."""
    from hwlat import zoo
    from hwlat.export.formats import export_module
    from hwlat.predictors.features import kernels_from_rows

    folder = tmp_path / "models"
    export_module(*zoo.get("mobilenet_v3_small"), "onnx", folder / "mnv3s.onnx")
    r = hwlat("profile", "--passes", "1", "local", "--model-kernels", "--suite", "quick")
    assert r.returncode != 0 and "--model-kernels needs --models DIR or --zoo" in r.stderr
    r = hwlat("profile", "--passes", "1", "local", "--models", str(folder), "--model-kernels", "--max-time", "0.05", "--json",
              check=True)
    summary = json.loads(r.stdout[r.stdout.index("{"):])
    want = {json.dumps(k, sort_keys=True) for k in
            ({"type": k["type"], "config": k["config"]}
             for k in json.loads(hwlat("kernels", str(folder / "mnv3s.onnx"), "--json", check=True).stdout)["kernels"])}
    st = ProfileStore("local")
    got = {k.key() for k in kernels_from_rows(list(st.kernels()["kernel_type"]), list(st.kernels()["config"]))}
    assert got == {json.dumps(json.loads(w), sort_keys=True, separators=(",", ":")) for w in want}
    assert list(st.models()["name"]) == ["mnv3s.onnx"]
    assert summary["measured"] == len(want) + 1 and not summary["failed"]
    again = hwlat("profile", "--passes", "1", "local", "--models", str(folder), "--model-kernels", "--json", check=True).stdout
    assert json.loads(again[again.index("{"):])["measured"] == 0


def test_model_kernels_of_non_onnx_files_come_from_their_onnx_export(hwlat_home: Path, tmp_path: Path) -> None:
    """A .tflite (or .pt2) model is decomposed from the ONNX export beside it; one without is reported,
    with what to do, and the rest still gets its kernels."""
    from conftest import conv_model

    from hwlat.decompose import kernels_of
    from hwlat.profiling.items import Item
    from hwlat.profiling.sources import model_kernel_items

    conv_model(tmp_path / "a.onnx", 8, 16)
    (tmp_path / "a.tflite").write_bytes(b"not read: its kernels come from a.onnx")
    (tmp_path / "b.tflite").write_bytes(b"no ONNX export beside it")
    items = [Item(table="models", name=n, file=tmp_path / n) for n in ("a.tflite", "b.tflite")]
    found, skipped = model_kernel_items(items, "onnxruntime")
    want = kernels_of(tmp_path / "a.onnx").kernels
    assert [(it.kernel_type, it.config) for it in found] == [(k.type, dict(k.config)) for k in want]
    assert [m for m, _ in skipped] == ["b.tflite"] and "b.onnx" in skipped[0][1]


def test_profiled_model_files_become_whole_model_training_data(hwlat_home: Path, tmp_path: Path) -> None:
    """`profile --models DIR` and `measure FILE` keep each file's kernel list (by content), so training
    fits the whole-model overhead on the user's own networks too; a file profiled without one is
    reported with what to do."""
    from hwlat.decompose import kernels_of
    from hwlat.predictors.training import model_data
    from hwlat.profiling.items import file_sha256
    from hwlat.profiling.sources import file_kernels_path

    files = model_folder(tmp_path / "m", 3)
    single = model_folder(tmp_path / "one", 5)[-1]
    hwlat("profile", "--passes", "1", "local", "--models", str(tmp_path / "m"), "--max-time", "0.05", check=True)
    hwlat("measure", str(single), "--device", "local", "--max-time", "0.05", check=True)
    md = model_data(ProfileStore("local"), "onnxruntime")
    assert sorted(md.names) == sorted(p.name for p in [*files, single]) and md.spaces == [None] * 4
    for name, ks in zip(md.names, md.kernels, strict=True):
        f = next(p for p in [*files, single] if p.name == name)
        assert [k.key() for k in ks] == [k.key() for k in kernels_of(f).kernels] and ks
    # without its recorded kernel list a file is skipped, and the note says how to record it
    file_kernels_path(file_sha256(files[0]), "onnxruntime").unlink()
    md = model_data(ProfileStore("local"), "onnxruntime")
    assert files[0].name not in md.names and len(md.names) == 3
    why = dict(md.skipped)[files[0].name]
    assert "hwlat profile local --models DIR" in why and "not measured again" in why
    again = hwlat("profile", "--passes", "1", "local", "--models", str(tmp_path / "m"), "--json", check=True).stdout
    assert json.loads(again[again.index("{"):])["measured"] == 0
    assert files[0].name in model_data(ProfileStore("local"), "onnxruntime").names
    # a damaged record skips only its model, with a note naming the file; profiling again rewrites it
    record = file_kernels_path(file_sha256(files[1]), "onnxruntime")
    record.write_text(record.read_text()[:40])
    md = model_data(ProfileStore("local"), "onnxruntime")
    assert sorted(md.names) == sorted(p.name for p in [files[0], files[2], single])
    why = dict(md.skipped)[files[1].name]
    assert str(record) in why and "unreadable" in why and "hwlat profile local --models DIR" in why
    hwlat("profile", "--passes", "1", "local", "--models", str(tmp_path / "m"), check=True)
    assert files[1].name in model_data(ProfileStore("local"), "onnxruntime").names
