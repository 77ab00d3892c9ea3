"""`hwlat transfer` end to end on two real local devices: ``local`` (onnxruntime, 1 thread) is the
trained source, ``local-2t`` (onnxruntime, 2 threads) the new device measured by the command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

TYPES = ("conv_bn_act", "dwconv", "conv2d", "se", "global_pool", "linear", "add")
FAST = {"max_time_s": 0.05, "min_runs": 5, "warmup_max_s": 0.05}


@pytest.fixture(scope="module")
def source_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A profiles root whose ``local`` has a GBDT trained on real quick-suite kernels and subnets."""
    from hwlat.devices import get_device
    from hwlat.kernels.export import export_kernel
    from hwlat.kernels.suites import suite
    from hwlat.predictors.training import train
    from hwlat.profiling import Item, profile
    from hwlat.profiling.sources import space_items
    from hwlat.store import ProfileStore

    root = tmp_path_factory.mktemp("transfer") / "profiles"
    root.mkdir()
    old = os.environ.get("HWLAT_PROFILES")
    os.environ["HWLAT_PROFILES"] = str(root)  # the export caches live under the profiles root
    try:
        kernels = [k for k in suite("quick") if k.type in TYPES]
        items = [Item(table="kernels", name=f"{k.type}:{i}", file=export_kernel(k, "onnx", root / ".cache" / "k"),
                      kernel_type=k.type, config=dict(k.config)) for i, k in enumerate(kernels)]
        items += space_items("ofa_mbv3", 6, "onnxruntime", seed=0)
        summary = profile(get_device("local"), items, ProfileStore("local", root=root), measure=FAST)
        assert summary.error is None and not summary.failed, summary.to_dict()
        train("local", "gbdt", root=root, holdout=0.0, min_samples=8, min_subnets=2, fast=True,
              select_subnet_models=False)
    finally:
        if old is None:
            os.environ.pop("HWLAT_PROFILES", None)
        else:
            os.environ["HWLAT_PROFILES"] = old
    yield root


def _hwlat(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HWLAT_PROFILES": str(root), "HWLAT_DEVICES": str(root / "devices.toml")}
    return subprocess.run([sys.executable, "-m", "hwlat", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def _transfer(root: Path, samples: int) -> dict:
    # pool seed 0: the fixture's 6 subnets are the pool's first 6, already exported (~5 s each)
    r = _hwlat(root, "transfer", "local-2t", "--from", "local", "--samples", str(samples), "--space", "ofa_mbv3",
               "--pool", "12", "--seed", "0", "--no-zoo", "--max-time", "0.05", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_transfer_measures_fits_and_serves_predict_and_oracle(source_root: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from hwlat.store import ProfileStore

    first = _transfer(source_root, 5)
    assert first["n_models"] == 5 and first["sources"] == ["local"]
    assert set(first["cv"]) >= {"acc10", "mape", "spearman", "interval_coverage"}
    assert Path(first["directory"], "predictor.json").is_file()
    chosen5 = json.loads(Path(first["directory"], "predictor.json").read_text())["selection"]["chosen"]
    keys5 = set(ProfileStore("local-2t", root=source_root).models()["item_key"])

    # More samples later: the 5 stored models are kept and only the 2 new ones are measured.
    second = _transfer(source_root, 7)
    manifest = json.loads(Path(second["directory"], "predictor.json").read_text())
    key = lambda c: json.dumps(c, sort_keys=True)  # noqa: E731
    assert {key(c) for c in manifest["selection"]["chosen"]} >= {key(c) for c in chosen5}
    models = ProfileStore("local-2t", root=source_root).models(latest=False)
    assert len(models) == 7 and keys5 <= set(models["item_key"])

    # The saved predictor serves `hwlat predict`, hwlat.Predictor.load and hwlat.Oracle alike.
    arch = manifest["selection"]["chosen"][0]["arch"]
    r = _hwlat(source_root, "predict", json.dumps(arch), "--space", "ofa_mbv3", "--device", "local-2t", "--json")
    assert r.returncode == 0, r.stderr
    cli = json.loads(r.stdout)
    assert cli["kind"] == "transfer" and cli["low_ms"] <= cli["latency_ms"] <= cli["high_ms"]

    monkeypatch.setenv("HWLAT_PROFILES", str(source_root))
    import hwlat

    pred = hwlat.Predictor.load("local-2t", kind="transfer")
    assert type(pred).__name__ == "MultiTransferPredictor"
    p = pred.predict(arch, space="ofa_mbv3")
    assert p.latency_ms == pytest.approx(cli["latency_ms"], rel=1e-9)
    oracle = hwlat.Oracle(device="local-2t", space="ofa_mbv3", kind="transfer")
    assert oracle(arch) == pytest.approx(p.latency_ms, rel=1e-6)

    # It predicts local-2t, not local: on the measured models it is closer than the source as is.
    from hwlat.predictors.training import model_data

    md = model_data(ProfileStore("local-2t", root=source_root), "onnxruntime", target=manifest["target"])
    got = pred.predict_models(md.spaces, md.archs, md.kernels)[0]
    src = pred.source.predict_models(md.spaces, md.archs, md.kernels)[0]
    assert np.mean(np.abs(np.log(got / md.y))) < np.mean(np.abs(np.log(src / md.y)))


def test_transfer_refuses_bad_sources(source_root: Path) -> None:
    r = _hwlat(source_root, "transfer", "local-2t", "--samples", "5")
    assert r.returncode != 0 and "--from" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = _hwlat(source_root, "transfer", "local-2t", "--from", "local-torch", "--samples", "5")
    assert r.returncode != 0 and "local-torch" in r.stderr and "hwlat train" in r.stderr


@pytest.mark.slow
def test_transfer_from_help_tables_serves_its_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HELP's public NB201 table as the sources of ``local`` (measured here: 4 NB201 subnets)."""
    from hwlat.predictors.help_data import default_data_dir

    if not (default_data_dir() / "nb201_latency_ms.csv").is_file():
        pytest.skip(f"HELP data not found at {default_data_dir()} (expected ../shared/data/help beside the repo)")
    root = tmp_path / "profiles"
    root.mkdir()
    r = _hwlat(root, "transfer", "local", "--from-help", str(default_data_dir()), "--space", "nb201",
               "--help-devices", "1080ti_1,silver_4114,pixel3", "--samples", "4", "--pool", "30",
               "--max-time", "0.05", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["n_models"] == 4 and res["sources"][:3] == ["help:1080ti_1", "help:silver_4114", "help:pixel3"]
    assert not list(root.rglob("*latency_ms.csv"))  # the tables are read, never copied

    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    r = _hwlat(root, "predict", arch, "--space", "nb201", "--device", "local", "--json")
    assert r.returncode == 0, r.stderr
    cli = json.loads(r.stdout)
    assert cli["kind"] == "transfer" and cli["low_ms"] <= cli["latency_ms"] <= cli["high_ms"]
    r = _hwlat(root, "predict", arch, "--space", "ofa_mbv3", "--device", "local")
    assert r.returncode != 0 and "nb201" in r.stderr and len(r.stderr.strip().splitlines()) == 1

    monkeypatch.setenv("HWLAT_PROFILES", str(root))
    import hwlat

    oracle = hwlat.Oracle(device="local", space="nb201", kind="transfer")
    assert oracle(arch) == pytest.approx(cli["latency_ms"], rel=1e-9)
    # a cell of three 3x3 convs costs more than one of skips and pools, on any device
    cheap = "|skip_connect~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|skip_connect~1|avg_pool_3x3~2|"
    assert oracle(cheap) < oracle(arch)
