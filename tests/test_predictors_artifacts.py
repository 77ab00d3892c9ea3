"""Predictor artifacts: round trips, schema and device refusals, training-range flags."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwlat.errors import PredictorError
from hwlat.predictors.artifacts import SCHEMA_VERSION, data_hash, load_predictor, read_meta, save_predictor
from hwlat.predictors.gbdt import GBDTRegressor
from hwlat.predictors.help_data import arch_features, default_data_dir, load_help
from hwlat.predictors.range_check import RangeCheck
from hwlat.predictors.transfer import TransferRegressor, transfer_features


@pytest.fixture(scope="module")
def ofa() -> tuple[np.ndarray, list[str], np.ndarray]:
    if not (default_data_dir() / "ofa_latency_ms.csv").is_file():
        pytest.skip(f"HELP data not found at {default_data_dir()} (expected ../shared/data/help beside the repo)")
    data = load_help("ofa", nrows=400)
    X, names = arch_features("ofa", data.archs)
    return X, names, data.latency["v100_1"].to_numpy()


@pytest.fixture(scope="module")
def gbdt_dir(ofa, tmp_path_factory) -> Path:
    X, names, y = ofa
    model = GBDTRegressor(configs=({"max_depth": 4, "eta": 0.2},), n_folds=3).fit(X[:300], y[:300])
    d = tmp_path_factory.mktemp("pred") / "v100_1-gbdt"
    save_predictor(d, model, device="v100_1", feature_names=names, X_train=X[:300], y_train=y[:300],
                   fingerprint_id="fp-test", metrics={"spearman": 0.9})
    return d


def test_gbdt_round_trip_identical(ofa, gbdt_dir) -> None:
    X, names, y = ofa
    art = load_predictor(gbdt_dir, expected_device="v100_1")
    assert art.kind == "gbdt" and art.device == "v100_1" and art.feature_names == names
    meta = art.meta
    assert meta["schema_version"] == SCHEMA_VERSION and meta["fingerprint_id"] == "fp-test"
    assert meta["training_data_hash"] == data_hash(X[:300], y[:300]) and meta["n_train"] == 300
    assert "xgboost" in meta["library_versions"] and meta["created_at"]
    assert sorted(p.name for p in gbdt_dir.iterdir()) == sorted(["meta.json", *meta["model_files"]])
    fresh = GBDTRegressor.load(gbdt_dir)
    for model in (art, fresh):
        a = model.predict(X[300:], return_interval=True)
        b = load_predictor(gbdt_dir).predict(X[300:], return_interval=True)
        for u, v in zip(a, b, strict=True):
            np.testing.assert_array_equal(u, v)
    assert not any(p.suffix in (".pkl", ".pickle", ".joblib") for p in gbdt_dir.iterdir())


@pytest.mark.parametrize("bins", [(), (4, 8)])
def test_mlp_round_trip_identical(ofa, tmp_path, bins) -> None:
    from hwlat.predictors.mlp import MLPRegressor

    X, names, y = ofa
    model = MLPRegressor(hidden=(32,), n_models=3, max_epochs=30, bins=bins,
                         huber_delta=0.05 if bins else None).fit(X[:300], y[:300])
    save_predictor(tmp_path / "p", model, device="v100_1", feature_names=names, X_train=X[:300], y_train=y[:300])
    art = load_predictor(tmp_path / "p")
    before = model.predict(X[300:], return_interval=True)
    after = art.predict(X[300:], return_interval=True)
    for u, v in zip(before, after, strict=True):
        np.testing.assert_array_equal(u, v)
    meta = json.loads((tmp_path / "p" / "mlp.json").read_text())
    assert meta["architecture"]["hidden"] == [32] and meta["architecture"]["bins"] == list(bins)
    assert sorted(meta["encodings"], key=int) == [str(b) for b in bins]
    # members take turns over the encodings: 4, 8, 4 bins (their first layers are that wide)
    widths = [net[0].in_features for net in art.model._nets]
    assert widths == ([X.shape[1]] * 3 if not bins else
                      [art.model._inputs[b][0].n_out for b in (4, 8, 4)])


def test_transfer_round_trip_identical(ofa, tmp_path) -> None:
    X, names, y = ofa
    src = np.stack([y * 1.3, np.sqrt(y)], axis=1)  # stand-in "source devices": transforms of a real column
    Xt = transfer_features(src, X)
    model = TransferRegressor(2).fit(Xt[:50], y[:50])
    save_predictor(tmp_path / "t", model, device="v100_1", feature_names=["s0", "s1", *names],
                   X_train=Xt[:50], y_train=y[:50])
    np.testing.assert_array_equal(load_predictor(tmp_path / "t").predict(Xt), model.predict(Xt))


def test_schema_version_refused(gbdt_dir, tmp_path) -> None:
    import shutil

    d = tmp_path / "old"
    shutil.copytree(gbdt_dir, d)
    meta = json.loads((d / "meta.json").read_text())
    meta["schema_version"] = SCHEMA_VERSION + 1
    (d / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(PredictorError, match=r"schema_version 2.*retrain it with `hwlat train v100_1`") as e:
        load_predictor(d)
    assert "\n" not in str(e.value)


def test_device_mismatch_refused(gbdt_dir) -> None:
    with pytest.raises(PredictorError, match=r"'v100_1', not 'pixel4'.*hwlat train pixel4"):
        load_predictor(gbdt_dir, expected_device="pixel4")
    assert read_meta(gbdt_dir)["device"] == "v100_1"


def test_missing_and_corrupt_artifacts(tmp_path, gbdt_dir) -> None:
    import shutil

    with pytest.raises(PredictorError, match="no predictor at"):
        load_predictor(tmp_path / "nothing")
    d = tmp_path / "broken"
    shutil.copytree(gbdt_dir, d)
    (d / "gbdt_mean.ubj").write_bytes(b"\x00garbage")
    with pytest.raises(PredictorError, match="unreadable"):
        load_predictor(d)


def test_gbdt_member_files_old_layout_and_escapes(ofa, gbdt_dir, tmp_path) -> None:
    """A single-booster model saved before ensembles still loads; a member file name in the
    metadata that points outside the folder is refused."""
    import shutil

    X, _, _ = ofa
    d = tmp_path / "old"
    shutil.copytree(gbdt_dir, d)
    meta = json.loads((d / "gbdt.json").read_text())
    assert meta["mean_files"] == ["gbdt_mean.ubj"] and len(meta["members"]) == 1
    for k in ("mean_files", "members"):
        meta.pop(k)
    (d / "gbdt.json").write_text(json.dumps(meta))
    old = GBDTRegressor.load(d)
    np.testing.assert_array_equal(old.predict(X[:50]), GBDTRegressor.load(gbdt_dir).predict(X[:50]))
    assert (old.n_ensemble, old.n_seeds, len(old.members_)) == (1, 1, 1)
    meta["mean_files"] = ["../gbdt_mean.ubj"]
    (d / "gbdt.json").write_text(json.dumps(meta))
    with pytest.raises(PredictorError, match="bad model file name"):
        GBDTRegressor.load(d)


def test_out_of_range_flagging(ofa, gbdt_dir) -> None:
    X, names, _ = ofa
    art = load_predictor(gbdt_dir)
    assert art.out_of_range(X[:300]) == []
    q = X[300:301].copy()
    r_col = names.index("r")
    q[0, r_col] = 512.0  # resolution far above OFA's 128..224 training range
    assert art.out_of_range(q) == ["r"]
    rc = RangeCheck(["a", "b"]).fit(np.array([[0.0, 1.0], [1.0, 2.0]]))
    assert rc.out_of_range(np.array([[0.5, 1.5], [-0.1, 2.0]])) == ["a"]
    assert rc.out_of_range(np.array([[np.nan, 1.5]])) == ["a"]
    assert RangeCheck.from_dict(rc.to_dict()).out_of_range(np.array([[1.0, 2.0000001]])) == ["b"]
