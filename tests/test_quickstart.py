"""`hwlat quickstart`, the README's first command, end to end on the real `local` device (small)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hwlat.store import ProfileStore

ARGS = ("quickstart", "--subnets", "8", "--subnet-kernels", "2", "--zoo", "mobilenet_v3_small", "--corpus", "4",
        "--kind", "gbdt", "--passes", "2", "--max-passes", "3", "--max-time", "0.05", "--json")


def _quickstart(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HWLAT_PROFILES": str(root)}
    return subprocess.run([sys.executable, "-m", "hwlat", *ARGS], capture_output=True, text=True, env=env, timeout=600)


def test_quickstart_profiles_in_passes_trains_and_predicts_a_zoo_model(tmp_path: Path) -> None:
    root = tmp_path / "profiles"
    r = _quickstart(root)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["target"] == "floor_ms"
    assert len(out["passes"]) >= 2 and all(p["error"] is None and not p["failed"] for p in out["passes"])

    store = ProfileStore("local", root=root)
    kernels = store.kernels(latest=False, expand=False)
    counts = kernels.groupby("item_key").size()
    assert counts.min() >= 2 and counts.max() <= 3  # two passes, confirmation up to --max-passes
    assert out["passes"][0]["planned"] >= len(counts) + len(store.models())  # an item listed twice runs once
    # the subnets' own kernels are in the store beside the quick suite's
    from hwlat.profiling.items import canonical_json
    from hwlat.profiling.sources import _sample_archs, subnet_kernels
    from hwlat.spaces import get_space

    sub = subnet_kernels("ofa_mbv3", _sample_archs(get_space("ofa_mbv3"), 2, 0), "onnxruntime")
    stored = {(t, c) for t, c in zip(kernels["kernel_type"], kernels["config"], strict=True)}
    assert all((k.type, canonical_json(dict(k.config))) in stored for k in sub)

    ev = out["evaluation"]["gbdt"]
    assert ev["kernel"]["n"] > 0 and 0.0 <= ev["kernel"]["acc10"] <= 1.0 and ev["model_default"]["n"] > 0
    (shown,) = out["zoo_prediction"]
    models = store.models(latest=False)
    floor = float(models.loc[models["name"] == "mobilenet_v3_small", "min_ms"].min())
    assert shown["statistic"] == "floor_ms" and abs(shown["measured_ms"] - floor) < 1e-9
    assert shown["low_ms"] <= shown["predicted_ms"] <= shown["high_ms"]
    assert abs(shown["error"] - (shown["predicted_ms"] / floor - 1.0)) < 1e-9
    assert all(Path(p, "predictor.json").is_file() for p in out["predictors"])
    # four corpus networks of four families, measured whole, join the whole-model stage's check
    assert models.loc[models["space"].isna(), "name"].nunique() == 4  # model files: the corpus networks
    lofo = out["leave_one_family_out"]["gbdt"]
    assert lofo["families"] >= 5 and 0.0 <= lofo["within_10"] <= 1.0
    assert lofo["stage"] in ("plain", "affine", "plain+residual", "affine+residual")

    # resumable: a second run measures nothing new and keeps every row
    before = len(kernels) + len(models)
    r2 = _quickstart(root)
    assert r2.returncode == 0, r2.stderr[-2000:]
    out2 = json.loads(r2.stdout)
    assert out2["profile"]["measured"] == 0 and out2["profile"]["skipped"] == out["passes"][0]["planned"]
    after = len(store.kernels(latest=False, expand=False)) + len(store.models(latest=False))
    assert after >= before
    # both runs released their exported models when they ended: markers keep the items' keys
    assert not list((root / ".cache").rglob("*.onnx")) and list((root / ".cache").rglob("*.onnx.sha256"))
