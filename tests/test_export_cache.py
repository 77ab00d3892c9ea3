"""The export cache: profiling releases exported models once measured, a re-run knows them without
exporting, a forced re-measure exports them again (the same bytes), training decomposes a released
zoo model as before, and `hwlat cache` shows and clears what is kept. Real exports, real agent runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hwlat import ProfileStore
from hwlat.profiling.export_cache import MARKER, release_exports, released_sha, usage
from hwlat.profiling.items import file_sha256
from hwlat.profiling.sources import kernel_items, space_items

HWLAT = [sys.executable, "-m", "hwlat"]


def hwlat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*HWLAT, *args], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def _exports(root: Path) -> list[Path]:
    return [f for kind in ("kernels", "spaces", "zoo") for f in (root / ".cache" / kind).rglob("*")
            if f.is_file() and not f.name.endswith(MARKER)]


def test_released_items_keep_their_keys_and_export_again_identically(hwlat_home: Path) -> None:
    subnets = space_items("ofa_mbv3", 2, "onnxruntime", seed=3)
    kernels = kernel_items("quick", "onnxruntime", types={"conv2d"})[:3]
    shas = {it.name: file_sha256(it.file) for it in subnets}
    assert all(it.file.is_file() for it in subnets + kernels)

    files, size = release_exports()
    assert files >= 5 and size > 0 and _exports(hwlat_home) == []
    assert all(released_sha(it.file) == shas[it.name] for it in subnets)

    again = space_items("ofa_mbv3", 2, "onnxruntime", seed=3)
    # the store key is known from the marker: nothing is exported to learn it
    assert {it.name: it.sha256 for it in again} == shas and _exports(hwlat_home) == []
    for it in again:  # seeded by the content key: exported again byte for byte
        assert file_sha256(it.ensure_file()) == shas[it.name]
    k = kernel_items("quick", "onnxruntime", types={"conv2d"})[:3]
    assert [i.file for i in k] == [i.file for i in kernels] and not any(i.file.is_file() for i in k)
    assert k[0].ensure_file().is_file()


def test_profile_releases_exports_and_resumes_without_them(hwlat_home: Path) -> None:
    args = ["profile", "local", "--space", "ofa_mbv3", "--samples", "2", "--seed", "4", "--max-time", "0.05",
            "--passes", "1"]
    first = hwlat(*args, "--json")
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads(first.stdout[first.stdout.index("{"):])["measured"] == 2
    assert _exports(hwlat_home) == []  # released when the command ended
    markers = sorted((hwlat_home / ".cache" / "spaces").rglob(f"*{MARKER}"))
    assert len(markers) == 2
    rows = len(ProfileStore("local").models(latest=False))

    rerun = hwlat(*args, "--json")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = json.loads(rerun.stdout[rerun.stdout.index("{"):])
    assert summary["measured"] == 0 and summary["skipped"] == 2

    forced = hwlat(*args, "--json", "--force")  # must export both again to measure them
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert json.loads(forced.stdout[forced.stdout.index("{"):])["measured"] == 2
    df = ProfileStore("local").models(latest=False)
    assert len(df) > rows and df.groupby("item_key")["file_sha256"].nunique().eq(1).all()
    assert df["item_key"].nunique() == 2 and _exports(hwlat_home) == []


def test_training_decomposes_a_released_zoo_model_as_before(hwlat_home: Path) -> None:
    from hwlat.predictors.training import _zoo_kernels
    from hwlat.profiling.sources import zoo_items

    (it,) = zoo_items("onnxruntime", ["mobilenet_v3_small"])
    sha = it.sha256
    from_file = _zoo_kernels(it.name, sha, "onnxruntime", hwlat_home)
    release_exports()
    for f in (hwlat_home / ".cache" / "decomp").rglob("*.json"):
        f.unlink()  # decompose again, now from the export made again in a scratch folder
    released = _zoo_kernels(it.name, sha, "onnxruntime", hwlat_home)
    assert [k.key() for k in released[0]] == [k.key() for k in from_file[0]] and len(from_file[0]) > 10
    assert released[1] == from_file[1] and not it.file.exists()


def test_cache_command_shows_and_clears(hwlat_home: Path) -> None:
    space_items("ofa_mbv3", 1, "onnxruntime", seed=5)
    kernel_items("quick", "onnxruntime", types={"conv2d"})
    release_exports()
    space_items("ofa_mbv3", 1, "onnxruntime", seed=6)  # one kept file beside the released ones

    r = hwlat("cache", "show", "--json")
    assert r.returncode == 0, r.stderr
    shown = {k["kind"]: k for k in json.loads(r.stdout)["kinds"]}
    held = {u.kind: u for u in usage()}
    assert set(shown) == {"kernels", "spaces"} == set(held)
    assert shown["spaces"]["files"] == 1 and shown["spaces"]["released"] == 1 and shown["spaces"]["bytes"] > 10**6
    assert shown["kernels"]["files"] == 0 and shown["kernels"]["released"] == held["kernels"].released > 0

    table = hwlat("cache")  # the bare command shows the table
    assert table.returncode == 0 and "spaces" in table.stdout and "released" in table.stdout

    bad = hwlat("cache", "clear", "--kind", "nope")
    assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0
    assert bad.stderr.startswith("hwlat: error: --kind nope") and "kernels, spaces" in bad.stderr

    r = hwlat("cache", "clear", "--kind", "spaces", "--json")
    assert r.returncode == 0, r.stderr
    assert [c["kind"] for c in json.loads(r.stdout)["cleared"]] == ["spaces"]
    assert not (hwlat_home / ".cache" / "spaces").exists() and (hwlat_home / ".cache" / "kernels").is_dir()
    assert hwlat("cache", "clear").returncode == 0 and usage() == []


def test_released_tflite_kernel_is_converted_again_on_demand(hwlat_home: Path) -> None:
    pytest.importorskip("litert_torch", reason="litert-torch is not installed")
    from hwlat.kernels import get
    from hwlat.profiling.sources import items_for_kernels

    kernel = get("add").make(c=8, hw=64, broadcast=0)
    (it,) = items_for_kernels([kernel], "tflite")
    assert it.file.is_file() and it.file.suffix == ".tflite"
    release_exports()
    (again,) = items_for_kernels([kernel], "tflite")  # released: no conversion until it is measured
    assert again.file == it.file and not again.file.exists()
    assert again.ensure_file().is_file() and again.file.stat().st_size > 0
