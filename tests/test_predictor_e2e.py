"""Device predictors end to end on a small *real* profile of the built-in ``local`` device.

One session fixture profiles a handful of quick-suite kernels, six ofa_mbv3 subnets and one zoo
model with onnxruntime (short measurements), into an isolated profiles root; the tests train on
it and check prediction, artifacts, refusals and the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hwlat.errors import PredictorError

TYPES = ("conv_bn_act", "dwconv", "conv2d", "se", "global_pool", "linear", "add")
ZOO = "mobilenet_v3_small"


@pytest.fixture(scope="session")
def profile_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from hwlat.devices import get_device
    from hwlat.kernels.export import export_kernel
    from hwlat.kernels.suites import suite
    from hwlat.profiling import Item, profile
    from hwlat.profiling.sources import space_items, zoo_items
    from hwlat.store import ProfileStore

    root = tmp_path_factory.mktemp("predictor") / "profiles"
    root.mkdir()
    old = os.environ.get("HWLAT_PROFILES")
    os.environ["HWLAT_PROFILES"] = str(root)  # the export caches live under the profiles root
    try:
        kernels = [k for k in suite("quick") if k.type in TYPES]
        items = [Item(table="kernels", name=f"{k.type}:{i}", file=export_kernel(k, "onnx", root / ".cache" / "k"),
                      kernel_type=k.type, config=dict(k.config)) for i, k in enumerate(kernels)]
        items += space_items("ofa_mbv3", 6, "onnxruntime", seed=0)
        items += zoo_items("onnxruntime", [ZOO])
        summary = profile(get_device("local"), items, ProfileStore("local", root=root),
                          measure={"max_time_s": 0.05, "min_runs": 5, "warmup_max_s": 0.05})
        assert summary.error is None and not summary.failed, summary.to_dict()
    finally:
        if old is None:
            os.environ.pop("HWLAT_PROFILES", None)
        else:
            os.environ["HWLAT_PROFILES"] = old
    yield root


@pytest.fixture(scope="session")
def trained(profile_root: Path) -> dict:
    from hwlat.predictors.training import train

    out = {}
    for kind in ("gbdt", "mlp"):
        out[kind] = train("local", kind, root=profile_root, holdout=0.2, min_samples=8, min_subnets=2, fast=True,
                          select_subnet_models=False)
    return out


@pytest.fixture()
def profiles_env(profile_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HWLAT_PROFILES", str(profile_root))
    return profile_root


def _zoo_file(root: Path) -> Path:
    return root / ".cache" / "zoo" / "onnx" / f"{ZOO}.onnx"


def test_training_fits_the_measurements(trained: dict, profile_root: Path) -> None:
    from hwlat.predictors.metrics import spearman
    from hwlat.predictors.training import kernel_data
    from hwlat.store import ProfileStore

    kd = kernel_data(ProfileStore("local", root=profile_root))
    for kind, res in trained.items():
        pred = res.predictor
        m, lo, hi = pred.predict_kernels(kd.kernels)
        assert np.all(lo <= m) and np.all(m <= hi) and np.all(m > 0)
        # kernel latencies span orders of magnitude: a working model ranks them well
        assert spearman(kd.y, m) > 0.8, kind
        man = pred.manifest
        assert man["device"] == "local" and man["kind"] == kind and man["fingerprint_id"]
        assert {"_conv", "dwconv"} <= set(man["kernel_parts"])  # own models above min_samples (conv family)
        assert "se" in man["pooled_types"]  # 6 quick-suite SE kernels: pooled fallback, flagged
        assert "ofa_mbv3" in man["subnet_spaces"]
        assert res.evaluation["summary"]["kernel"]["n"] > 0


def test_predict_inputs_round_trip(trained: dict, profile_root: Path) -> None:
    from hwlat.spaces import get_space
    from hwlat.store import ProfileStore

    pred = trained["gbdt"].predictor
    p = pred.predict(_zoo_file(profile_root))
    assert p.method == "kernel-sum" and p.device == "local" and p.unsupported == []
    assert 0 < p.low_ms <= p.latency_ms <= p.high_ms
    assert len(p.kernels) > 20 and {"type", "config", "ms", "low", "high"} <= set(p.kernels[0])
    measured = float(ProfileStore("local", root=profile_root).models().query("space == 'zoo'")["median_ms"].iloc[0])
    # a few noisy short measurements on a shared machine: only the order of magnitude is checked here
    assert measured / 10 < p.latency_ms < measured * 10, (measured, p.latency_ms, pred.manifest["overhead"])
    d = p.to_dict()
    json.dumps(d)
    sp = get_space("ofa_mbv3")
    arch = sp.sample(np.random.default_rng(123))
    ps = pred.predict(arch, space="ofa_mbv3")
    pk = pred.predict(arch, space="ofa_mbv3", method="kernel-sum")
    assert ps.method == "subnet" and pk.method == "kernel-sum", pred.manifest["n_models"]
    assert pred.predict(sp.encode(arch)).latency_ms == pytest.approx(pk.latency_ms)
    assert pred.predict([k.to_dict() for k in sp.encode(arch)]).latency_ms == pytest.approx(pk.latency_ms)


def test_saved_artifact_gives_identical_predictions(trained: dict, profile_root: Path) -> None:
    from hwlat.kernels.suites import suite
    from hwlat.predictors.predictor import Predictor
    from hwlat.spaces import get_space

    ks = suite("quick", seed=3)
    sp = get_space("ofa_mbv3")
    archs = [sp.sample(np.random.default_rng(i)) for i in range(4)]
    for kind, res in trained.items():
        loaded = Predictor.load("local", kind, root=profile_root)
        for a, b in zip(res.predictor.predict_kernels(ks), loaded.predict_kernels(ks), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6)
        for a in archs:
            x, y = res.predictor.predict(a, space="ofa_mbv3"), loaded.predict(a, space="ofa_mbv3")
            assert (x.latency_ms, x.low_ms, x.high_ms) == pytest.approx((y.latency_ms, y.low_ms, y.high_ms))
        assert loaded.predict(_zoo_file(profile_root)).latency_ms == pytest.approx(
            res.predictor.predict(_zoo_file(profile_root)).latency_ms)
        if kind == "mlp":  # members over 8- and 16-bin encodings with a Huber loss, restored as saved
            part = json.loads((res.directory / "kernel" / "dwconv" / "mlp.json").read_text())
            assert sorted(part["encodings"], key=int) == ["8", "16"] and part["train"]["huber_delta"] == 0.05
            assert loaded.kernel_model.parts["dwconv"].model.bins == (8, 16)
        meta = json.loads((res.directory / "predictor.json").read_text())
        assert meta["training_data_hash"].startswith("sha256:") and meta["library_versions"]["xgboost"]
        assert not list(res.directory.rglob("*.pkl")) and not list(res.directory.rglob("*.pickle"))


def test_out_of_range_and_unseen_types_are_flagged(trained: dict) -> None:
    from hwlat.kernels import get

    pred = trained["gbdt"].predictor
    inside = pred.predict([get("dwconv").make(h=28, w=28, c=64, k=3, s=1, act="relu")])
    big = pred.predict([get("conv_bn_act").make(h=512, w=512, cin=512, cout=512, k=7, s=1, groups=1,
                                                act="relu", residual=0)])
    assert any(o.startswith("conv_bn_act.") for o in big.out_of_range)
    assert not any(o.startswith("conv_bn_act.") for o in inside.out_of_range)
    mha = pred.predict([get("mha").make(t=197, d=192, heads=3)])
    assert any("mha: kernel type not in training data" in o for o in mha.out_of_range)
    assert mha.pooled_types == ["mha"] and mha.kernels[0]["model"] == "_pooled"


def test_interval_widens_for_what_training_never_covered(trained: dict) -> None:
    """A prediction resting on out-of-range or unseen kernels gets at least the novelty half-width;
    one inside the training data keeps the kernel models' own interval."""
    from hwlat.kernels import get
    from hwlat.predictors.whole_model import NOVEL_KERNEL_LOG_HW

    pred = trained["gbdt"].predictor
    inside = pred.predict([get("dwconv").make(h=28, w=28, c=64, k=3, s=1, act="relu")])
    big = pred.predict([get("conv_bn_act").make(h=512, w=512, cin=512, cout=512, k=7, s=1, groups=1,
                                                act="relu", residual=0)])
    mha = pred.predict([get("mha").make(t=197, d=192, heads=3)])
    for p in (big, mha):
        assert np.log(p.high_ms / p.latency_ms) >= NOVEL_KERNEL_LOG_HW - 1e-9
        assert np.log(p.latency_ms / p.low_ms) >= NOVEL_KERNEL_LOG_HW - 1e-9
    if not inside.out_of_range:
        assert np.log(inside.high_ms / inside.latency_ms) < NOVEL_KERNEL_LOG_HW


def test_refuses_other_device_schema_and_fingerprint(trained: dict, profile_root: Path, tmp_path: Path) -> None:
    from hwlat.predictors.predictor import Predictor
    from hwlat.store import ProfileStore

    root = tmp_path / "profiles"
    shutil.copytree(profile_root / "local", root / "local")
    # another device's artifacts copied into this device's folder
    shutil.copytree(root / "local" / "predictors", root / "other" / "predictors")
    with pytest.raises(PredictorError, match="trained for device 'local', not 'other'.*hwlat train other"):
        Predictor.load("other", "gbdt", root=root)
    # another schema version of the manifest, and of one estimator's meta.json
    man = root / "local" / "predictors" / "gbdt" / "predictor.json"
    data = json.loads(man.read_text())
    man.write_text(json.dumps({**data, "schema_version": 99}))
    with pytest.raises(PredictorError, match="schema_version 99.*retrain"):
        Predictor.load("local", "gbdt", root=root)
    man.write_text(json.dumps(data))
    part = root / "local" / "predictors" / "gbdt" / "kernel" / "_pooled" / "meta.json"
    pm = json.loads(part.read_text())
    part.write_text(json.dumps({**pm, "schema_version": 0}))
    with pytest.raises(PredictorError, match="schema_version 0"):
        Predictor.load("local", "gbdt", root=root)
    part.write_text(json.dumps(pm))
    assert Predictor.load("local", "gbdt", root=root).device == "local"
    # the device changed since training: its store's latest fingerprint differs
    ProfileStore("local", root=root).record_fingerprint({"fingerprint_id": "0123456789abcdef"}, "run-x")
    with pytest.raises(PredictorError, match="changed since its predictor was trained.*hwlat train local"):
        Predictor.load("local", "gbdt", root=root)


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HWLAT_PROFILES": str(root)}
    return subprocess.run([sys.executable, "-m", "hwlat", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_cli_predict_json_and_plot(trained: dict, profile_root: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    png = tmp_path / "bd.png"
    r = _cli(profile_root, "predict", str(_zoo_file(profile_root)), "--device", "local", "--kind", "gbdt",
             "--json", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {"latency_ms", "low_ms", "high_ms", "kernels", "out_of_range", "method", "device"} <= set(d)
    assert d["low_ms"] <= d["latency_ms"] <= d["high_ms"] and d["kernels"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the table lists every kernel with its whole config (at 250 columns, one line each); a long model's,
    # its 25 slowest
    monkeypatch.setenv("COLUMNS", "250")
    table = _cli(profile_root, "predict", str(_zoo_file(profile_root)), "--device", "local", "--kind", "gbdt").stdout
    for i, k in enumerate(d["kernels"]):
        assert f"│ {i:<3d}│ {k['type']}" in table and " ".join(f"{a}={b}" for a, b in k["config"].items()) in table
    long = _cli(profile_root, "predict", "efficientnet_b0", "--device", "local", "--kind", "gbdt").stdout
    assert "the 25 slowest of 67 kernels" in long and sum(ln.startswith("│ ") and ln[2:4].strip().isdigit()
                                                          for ln in long.splitlines()) == 25
    r = _cli(profile_root, "predict", "nosuchfile.onnx", "--device", "local")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "not found" in r.stderr
    r = _cli(profile_root, "predict", str(_zoo_file(profile_root)), "--device", "local-2t")
    assert r.returncode != 0 and "hwlat train local-2t" in r.stderr


def test_cli_eval_json_table_and_scatter(trained: dict, profile_root: Path, tmp_path: Path) -> None:
    png = tmp_path / "sc.png"
    r = _cli(profile_root, "eval", "local", "--kind", "gbdt", "--json", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    k = d["summary"]["kernel"]
    assert k["n"] == trained["gbdt"].predictor.manifest["n_kernels"]["holdout"]
    assert {"acc5", "acc10", "rmse", "mape", "spearman", "kendall"} <= set(k)
    # eval reproduces the numbers computed at training time on the same held-out set
    assert k["acc10"] == pytest.approx(trained["gbdt"].evaluation["summary"]["kernel"]["acc10"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = _cli(profile_root, "eval", "local", "--kind", "mlp")
    assert r.returncode == 0 and "held-out accuracy" in r.stdout and "±10%" in r.stdout


def test_subnet_model_is_kept_only_when_it_beats_the_kernel_sum(profile_root: Path, tmp_path: Path) -> None:
    from hwlat.predictors.training import train

    root = tmp_path / "profiles"
    shutil.copytree(profile_root / "local", root / "local")
    res = train("local", "gbdt", root=root, holdout=0.2, min_samples=8, min_subnets=2, fast=True)
    check = res.predictor.manifest["subnet_checks"]["ofa_mbv3"]
    assert check["kept"] == (check["cv_mape_subnet"] < check["mape_kernel_sum"])
    assert ("ofa_mbv3" in res.predictor.subnets) == check["kept"]


def test_excluded_kernels_are_never_trained_on(profile_root: Path, tmp_path: Path) -> None:
    from hwlat.predictors.training import kernel_data, kernel_hash, read_train_keys, train
    from hwlat.store import ProfileStore

    root = tmp_path / "profiles"
    shutil.copytree(profile_root / "local", root / "local")
    kd = kernel_data(ProfileStore("local", root=root))
    dw = {h for k, h in zip(kd.kernels, kd.hashes) if k.type == "dwconv"}
    res = train("local", "gbdt", root=root, holdout=0.0, min_samples=8, min_subnets=50, fast=True,
                exclude_kernels=dw)
    keys = read_train_keys(res.directory)["kernels"]
    assert dw and not dw & keys and len(keys) == len(kd.kernels) - len(dw)
    assert res.predictor.manifest["n_kernels"]["holdout"] == len(dw)
    # excluded kernels are what the held-out evaluation scores
    assert res.evaluation["summary"]["kernel"]["n"] == len(dw)
    assert kernel_hash(kd.kernels[0]) == kd.hashes[0]


def test_conv_family_and_gbdt_ensemble_round_trip(profile_root: Path, tmp_path: Path) -> None:
    """conv2d and conv_bn_act share one model with a roofline each; the non-fast GBDT averages its
    three best CV configs, two subsample seeds each, in log space; both survive save/load unchanged."""
    from hwlat.predictors.kernel_models import FAMILIES, KernelLevelModel
    from hwlat.predictors.training import kernel_data
    from hwlat.store import ProfileStore

    kd = kernel_data(ProfileStore("local", root=profile_root))
    km = KernelLevelModel("gbdt", min_samples=8).fit(kd.kernels, kd.y)
    assert km.source_of("conv2d") == km.source_of("conv_bn_act") == "_conv"
    assert km.source_of("dwconv") == "dwconv" and "conv2d" not in km.parts
    part = km.parts["_conv"]
    assert set(part.meta["roofline"]) == set(FAMILIES["_conv"])
    assert part.meta["roofline"]["conv2d"] != part.meta["roofline"]["conv_bn_act"]
    assert {"type=conv2d", "type=conv_bn_act"} <= set(part.feature_names)

    gb = part.model  # three configs x two subsample seeds
    assert len(gb._means) == 6 and len({json.dumps(m["config"], sort_keys=True) for m in gb.members_}) == 3
    ranked = sorted(gb.cv_results_, key=lambda r: r["cv_rmse_log"])
    assert [m["config"] for m in gb.members_] == [r["config"] for r in ranked[:3] for _ in range(2)]
    assert [m["seed"] for m in gb.members_] == [0, 1] * 3
    import xgboost as xgb

    X = part.meta["X"][:20]
    dm = xgb.DMatrix(X.astype(np.float32))
    np.testing.assert_allclose(gb.predict(X), np.exp(np.mean([b.predict(dm) for b in gb._means], axis=0)),
                               rtol=1e-6)

    convs = [k for k in kd.kernels if k.type in ("conv2d", "conv_bn_act", "dwconv")]
    before = km.predict(convs)
    parts = km.save(tmp_path / "kernel", "local", None)
    again = KernelLevelModel.load(tmp_path / "kernel", "local", "gbdt", parts, km.trained_types, 8)
    after = again.predict(convs)
    for a, b in zip(before[:3], after[:3], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert after[3] == before[3]
    assert len(list((tmp_path / "kernel" / "_conv").glob("gbdt_mean*.ubj"))) == 6
    loaded = again.parts["_conv"].model
    assert (loaded.n_ensemble, loaded.n_seeds, loaded.members_) == (3, 2, gb.members_)

    # too few conv2d samples for a model of their own: no family, conv2d goes to the pooled model
    few = [i for i, k in enumerate(kd.kernels) if k.type != "conv2d"]
    few += [i for i, k in enumerate(kd.kernels) if k.type == "conv2d"][:3]
    km2 = KernelLevelModel("gbdt", min_samples=8, fast=True).fit([kd.kernels[i] for i in few], kd.y[few])
    assert "_conv" not in km2.parts and km2.source_of("conv_bn_act") == "conv_bn_act"
    assert km2.source_of("conv2d") == "_pooled"


def test_cli_out_of_range_warning_says_how_to_measure_that_model(trained: dict, profile_root: Path) -> None:
    """The hint names the profiling command that fits what was predicted: a zoo model, a file, an arch."""
    r = _cli(profile_root, "predict", "efficientnet_b0", "--device", "local", "--kind", "gbdt")
    assert r.returncode == 0, r.stderr
    err = " ".join(r.stderr.split())
    assert "outside the training range" in err and "`hwlat profile local --zoo --model-kernels`" in err
    f = _zoo_file(profile_root)
    big = f.parent / "big copy.onnx"
    shutil.copy(f, big)
    r = _cli(profile_root, "predict", str(big), "--device", "local", "--kind", "gbdt", "--input-shape", "1,3,320,320")
    assert r.returncode == 0, r.stderr
    err = " ".join(r.stderr.split())
    assert "`hwlat profile local --models DIR --model-kernels` (DIR holding 'big copy.onnx')" in err
    # a one-kernel model lies below every kernel count the overhead was fitted on: its own warning
    from conftest import conv_model

    tiny = conv_model(f.parent / "tiny.onnx", 8, 16)
    r = _cli(profile_root, "predict", str(tiny), "--device", "local", "--kind", "gbdt")
    assert r.returncode == 0, r.stderr
    err = " ".join(r.stderr.split())
    assert "whole-model overhead extrapolated (" in err and "1 kernel outside the" in err
    assert "`hwlat profile local --models DIR` (DIR holding tiny.onnx)" in err


def test_damaged_decomposition_cache_is_rebuilt(tmp_path: Path) -> None:
    """A cached kernel list is derived data: a truncated one is decomposed and written again, not a
    crash of `hwlat train`; reading it directly names the file."""
    from hwlat.decompose.records import read_kernel_list, records_dir
    from hwlat.errors import StoreError
    from hwlat.predictors.training import model_kernels

    sha = "ab" * 32
    ks, unsup = model_kernels("zoo", "resnet18", sha, "onnxruntime", tmp_path)
    cache = records_dir(tmp_path, "onnxruntime") / f"resnet18-{sha[:16]}.json"
    assert ks and not unsup and cache.is_file()
    cache.write_text(cache.read_text()[:100])
    with pytest.raises(StoreError, match="resnet18-abababababababab.json is unreadable"):
        read_kernel_list(cache)
    again, unsup = model_kernels("zoo", "resnet18", sha, "onnxruntime", tmp_path)
    assert [k.key() for k in again] == [k.key() for k in ks] and not unsup
    assert [k.key() for k in read_kernel_list(cache)[0]] == [k.key() for k in ks]
