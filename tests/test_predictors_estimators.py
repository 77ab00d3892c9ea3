"""GBDT / MLP / transfer estimators on a small real slice of the HELP NB201 latency table."""

from __future__ import annotations

import numpy as np
import pytest

from hwlat.predictors.gbdt import GBDTRegressor
from hwlat.predictors.help_data import arch_features, default_data_dir, load_help
from hwlat.predictors.metrics import report
from hwlat.predictors.transfer import TransferRegressor, transfer_curve, transfer_features

FAST_CONFIGS = ({"max_depth": 4, "eta": 0.1}, {"max_depth": 6, "eta": 0.1})


@pytest.fixture(scope="module")
def nb201() -> tuple[np.ndarray, object]:
    if not (default_data_dir() / "nb201_latency_ms.csv").is_file():
        pytest.skip(f"HELP data not found at {default_data_dir()} (expected ../shared/data/help beside the repo)")
    data = load_help("nb201", nrows=1500)
    X, _ = arch_features("nb201", data.archs)
    return X, data.latency


def _split(n: int, n_train: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    idx = np.random.default_rng(seed).permutation(n)
    return idx[:n_train], idx[n_train:]


def test_gbdt_fits_real_latencies(nb201) -> None:
    X, lat = nb201
    y = lat["titan_rtx_256"].to_numpy()
    tr, te = _split(len(y), 800)
    model = GBDTRegressor(configs=FAST_CONFIGS, n_folds=3, budget_s=20).fit(X[tr], y[tr])
    assert len(model.cv_results_) >= 1 and model.n_rounds_ >= 10
    mean, low, high = model.predict(X[te], return_interval=True)
    r = report(y[te], mean)
    assert r["spearman"] > 0.95 and r["acc10"] > 0.8, r
    assert np.all(low <= mean) and np.all(mean <= high)
    assert np.mean((y[te] >= low) & (y[te] <= high)) > 0.5  # a 90 % band should cover most points
    np.testing.assert_array_equal(model.predict(X[te]), mean)


def test_mlp_fits_real_latencies(nb201) -> None:
    from hwlat.predictors.mlp import MLPRegressor

    X, lat = nb201
    y = lat["fpga"].to_numpy()
    tr, te = _split(len(y), 800)
    model = MLPRegressor(hidden=(64, 64), n_models=3, max_epochs=150, patience=15).fit(X[tr], y[tr])
    mean, low, high = model.predict(X[te], return_interval=True)
    r = report(y[te], mean)
    assert r["spearman"] > 0.95 and r["acc10"] > 0.7, r
    assert np.all(low <= mean) and np.all(mean <= high) and np.any(high > low)
    assert all(1 <= e <= 150 for e in model.epochs_)
    # far outside the training data the members are bounded: finite, within Z_MAX label SDs
    from hwlat.predictors.mlp import Z_MAX

    far = model.predict(np.full((2, X.shape[1]), 1e6), return_interval=True)
    assert all(np.all(np.isfinite(v)) for v in far)
    assert np.all(np.abs(np.log(far[0]) - model.y_mean_) <= Z_MAX * model.y_std_ + 1e-9)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="> 0"):
        GBDTRegressor().fit(np.ones((10, 2)), np.r_[np.ones(9), 0.0])
    with pytest.raises(ValueError, match="2-D"):
        GBDTRegressor().fit(np.ones(10), np.ones(10))


def test_transfer_with_10_samples_beats_the_best_single_source(nb201) -> None:
    X, lat = nb201
    sources = ["1080ti_1", "1080ti_32", "silver_4114", "samsung_a50", "pixel3"]
    S = lat[sources].to_numpy()
    y = lat["gold_6226"].to_numpy()
    idx = np.random.default_rng(3).choice(len(y), 10, replace=False)
    Xt = transfer_features(S, X)
    model = TransferRegressor(len(sources)).fit(Xt[idx], y[idx])
    mean, low, high = model.predict(Xt, return_interval=True)
    assert np.all(low <= mean) and np.all(mean <= high)
    rho = report(y, mean)["spearman"]
    # A transfer that only rescales one source cannot do better than that source's own ranking.
    best_single = max(report(y, S[:, j])["spearman"] for j in range(len(sources)))
    assert rho > 0.9 and rho >= best_single - 0.02, (rho, best_single)


def test_transfer_curve_improves_with_more_samples(nb201) -> None:
    X, lat = nb201
    S = lat[["1080ti_1", "silver_4114", "pixel3"]].to_numpy()
    rows = transfer_curve(S, X, lat["raspi4"].to_numpy(), ns=(10, 100), seeds=(0, 1), score_on="rest")
    assert [(r["n_samples"], r["seed"]) for r in rows] == [(10, 0), (10, 1), (100, 0), (100, 1)]
    at10 = np.mean([r["spearman"] for r in rows if r["n_samples"] == 10])
    at100 = np.mean([r["spearman"] for r in rows if r["n_samples"] == 100])
    assert at100 > at10 - 0.01 and at100 > 0.85, (at10, at100)
    assert all(r["n_eval"] == len(X) - r["n_samples"] for r in rows)


def test_transfer_residual_never_extrapolates_past_its_training_residuals() -> None:
    rng = np.random.default_rng(5)
    src = rng.uniform(1.0, 10.0, 30)
    arch = rng.normal(size=(30, 3))
    y = 1.5 * src * np.exp(0.1 * arch[:, 0])  # a residual the arch features explain
    model = TransferRegressor(1).fit(transfer_features(src, arch), y)
    assert model._res is not None and np.isfinite(model.res_bound_)
    far = transfer_features(np.array([5.0]), np.array([[1e4, -1e4, 1e4]]))
    base = np.exp(np.log(5.0) * model.coef_[0] + model.intercept_)
    assert abs(np.log(model.predict(far)[0] / base)) <= model.res_bound_ + 1e-9


def test_calibration_quantiles_follow_split_conformal() -> None:
    from hwlat.predictors.calibration import calibration, widen

    assert calibration(np.zeros(19)) is None  # too few errors to trust a 5 % tail
    e = np.linspace(-1.0, 1.0, 201)
    cal = calibration(e)
    assert cal is not None and cal["n"] == 201
    # finite-sample correction: at least 90 % of the errors fall inside, never fewer
    inside = np.mean((e >= cal["q_lo"]) & (e <= cal["q_hi"]))
    assert 0.9 <= inside <= 0.93, inside
    # one-sided errors never put the mean outside its own interval
    assert calibration(np.linspace(0.1, 0.5, 50))["q_lo"] == 0.0
    mean = np.array([1.0, 2.0])
    _, lo, hi = widen(mean, mean * 0.99, mean * 5.0, cal)
    np.testing.assert_allclose(lo, mean * np.exp(cal["q_lo"]))  # widened where the band was narrower
    np.testing.assert_allclose(hi, mean * 5.0)  # kept where the estimator's own band is wider


@pytest.mark.parametrize("kind", ["gbdt", "mlp"])
def test_intervals_cover_held_out_latencies(nb201, kind: str, tmp_path) -> None:
    """The nominal 90 % interval, fitted on 300 archs, covers ≥ 80 % of 1,200 unseen ones (before
    calibration: GBDT quantile trees ~74 %, MLP ensemble spread ~50 % on the kernel suite)."""
    from hwlat.predictors.mlp import MLPRegressor

    X, lat = nb201
    y = lat["pixel3"].to_numpy()
    tr, te = _split(len(y), 300, seed=1)
    if kind == "gbdt":
        model = GBDTRegressor(configs=FAST_CONFIGS, n_folds=3, budget_s=20).fit(X[tr], y[tr])
    else:
        model = MLPRegressor(hidden=(64, 64), n_models=3, max_epochs=150, patience=15).fit(X[tr], y[tr])
    assert model.calibration_ is not None and model.calibration_["n"] >= 20
    mean, low, high = model.predict(X[te], return_interval=True)
    coverage = float(np.mean((y[te] >= low) & (y[te] <= high)))
    assert coverage >= 0.8, coverage
    # and the calibration survives save/load
    model.save(tmp_path)
    again = type(model).load(tmp_path)
    assert again.calibration_ == model.calibration_
    _, low2, high2 = again.predict(X[te], return_interval=True)
    np.testing.assert_allclose(low2, low, rtol=1e-5)
    np.testing.assert_allclose(high2, high, rtol=1e-5)


def test_overhead_fit_on_one_space_does_not_wreck_small_models_and_flags_them() -> None:
    """Real data (tests/data/overhead_quickstart.json): fitted on ofa_mbv3 subnets, whose kernel
    counts barely vary, an unbounded fit took c = -0.47 ms and predicted small nets 60-88 % too fast."""
    import json
    from pathlib import Path

    from hwlat.predictors.kernel_models import OverheadModel

    d = json.loads((Path(__file__).parent / "data" / "overhead_quickstart.json").read_text())

    def cols(rows: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(np.array([r[k] for r in rows], dtype=float) for k in ("kernel_sum_ms", "n_kernels",
                                                                              "measured_ms"))
    S, N, y = cols(d["fit"])
    ov = OverheadModel().fit(S, N, y)
    assert ov.c >= 0.0
    fit_err = ov.predict(S, N) / y - 1
    assert np.mean(np.abs(fit_err) <= 0.1) >= 0.8  # the bound costs the space itself little
    s, n, ys = cols(d["small"])
    err = ov.predict(s, n) / ys - 1
    assert np.median(np.abs(err)) < 0.2 and np.mean(np.abs(err) <= 0.25) >= 0.7, np.round(err, 2)
    # the small nets lie outside the sums and counts the fit saw, and say so; the fit's own models do not
    assert all(any("kernels outside the 23-" in f for f in ov.out_of_range(a, int(b))) for a, b in zip(s, n))
    assert not any(ov.out_of_range(a, int(b)) for a, b in zip(S, N))
    back = OverheadModel.from_dict(json.loads(json.dumps(ov.to_dict())))
    assert back.out_of_range(float(s[0]), int(n[0])) == ov.out_of_range(float(s[0]), int(n[0]))
    old = {k: v for k, v in ov.to_dict().items() if k not in ("s_range", "n_range")}  # an older manifest
    assert OverheadModel.from_dict(old).out_of_range(float(s[0]), int(n[0])) == []
