"""The whole-model stage: family labels, the held-out-family choice, per-space overheads, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwlat.predictors.whole_model import MIN_FAMILIES, fit_stage, model_family


def test_model_family_groups_what_belongs_together() -> None:
    assert model_family("ofa_mbv3-1234", "ofa_mbv3", {"ks": [3]}) == "space:ofa_mbv3"
    assert model_family("resnet18", "zoo", "resnet18") == model_family("resnet50", "zoo", "resnet50") == "resnet"
    assert model_family("mobilenet_v3_small", "zoo", "mobilenet_v3_small") == "mobilenet_v3"
    assert model_family("mobilenet_v2", "zoo", "mobilenet_v2") == "mobilenet_v2"
    assert model_family("mynet_a.onnx", None) == model_family("mynet_b.onnx", None) == "mynet"
    assert model_family("convnext-0123456789ab.onnx", None) != model_family("mynet_a.onnx", None)


def _data(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Three families whose whole models take exactly their kernel sum (±2 % noise), and one search
    space whose subnets run 12 % faster than theirs (the case the issue measured)."""
    fams, spaces, S, N, y = [], [], [], [], []
    for fam in ("alpha", "beta", "gamma"):
        for _ in range(6):
            s = float(rng.uniform(0.5, 20.0))
            fams.append(fam), spaces.append(None), S.append(s), N.append(int(rng.integers(5, 120)))
            y.append(s * float(rng.normal(1.0, 0.02)))
    for _ in range(30):
        s = float(rng.uniform(2.0, 6.0))
        fams.append("space:ofa_mbv3"), spaces.append("ofa_mbv3"), S.append(s), N.append(int(rng.integers(50, 60)))
        y.append(0.88 * s * float(rng.normal(1.0, 0.01)))
    F = np.c_[np.log(S), np.log(N)]
    return np.array(S), np.array(N, dtype=float), F, np.array(y), fams, spaces


def test_one_space_does_not_set_the_scale_of_other_families() -> None:
    S, N, F, y, fams, spaces = _data(np.random.default_rng(0))
    st = fit_stage(S, N, F, y, fams, spaces, residual=False)
    assert st.report["chosen"] == "plain", st.report
    foreign = np.array([s is None for s in spaces])
    rel = st.overhead.predict(S[foreign], N[foreign]) / y[foreign] - 1
    assert np.all(np.abs(rel) < 0.08)
    # the space's own subnets keep their in-distribution fit
    sp = st.space_overhead["ofa_mbv3"]
    own = ~foreign
    assert np.median(np.abs(sp.predict(S[own], N[own]) / y[own] - 1)) < 0.02
    # the interval of a foreign model is as wide as held-out-family errors were
    assert st.overhead.q_hi - st.overhead.q_lo > 0.02


def test_a_learned_overhead_is_kept_where_it_carries_over() -> None:
    rng = np.random.default_rng(1)
    S = rng.uniform(0.5, 20.0, 40)
    N = rng.integers(5, 120, 40).astype(float)
    y = (0.9 * S + 0.004 * N) * rng.normal(1.0, 0.01, 40)  # every family has the same overhead
    fams = [f"fam{i % 5}" for i in range(40)]
    st = fit_stage(S, N, np.c_[np.log(S)], y, fams, [None] * 40, residual=False)
    assert st.report["chosen"] == "affine", st.report
    assert abs(st.overhead.a - 0.9) < 0.05


def test_too_few_families_fall_back_to_the_plain_sum() -> None:
    S, N, F, y, fams, spaces = _data(np.random.default_rng(2))
    keep = np.array([f in ("alpha", "space:ofa_mbv3") for f in fams])
    st = fit_stage(S[keep], N[keep], F[keep], y[keep], [f for f, k in zip(fams, keep) if k],
                   [s for s, k in zip(spaces, keep) if k], residual=False)
    assert MIN_FAMILIES > 2
    assert st.report["chosen"] == "plain" and "cannot be checked" in st.report["reason"]
    assert (st.overhead.a, st.overhead.b, st.overhead.c) == (1.0, 0.0, 0.0)


def test_space_overhead_survives_save_and_load(tmp_path: pytest.TempPathFactory) -> None:
    from hwlat.predictors.kernel_models import OverheadModel
    from hwlat.predictors.predictor import Predictor

    S, N, F, y, fams, spaces = _data(np.random.default_rng(3))
    st = fit_stage(S, N, F, y, fams, spaces, residual=False)
    manifest = json.loads(json.dumps({"space_overhead": {k: v.to_dict() for k, v in st.space_overhead.items()}}))
    p = Predictor("local", "gbdt", manifest, None, st.overhead)  # type: ignore[arg-type]
    assert p.overhead_for("ofa_mbv3").a == pytest.approx(st.space_overhead["ofa_mbv3"].a)
    assert p.overhead_for("nb201") is p.overhead and p.overhead_for(None) is p.overhead
    assert isinstance(p.overhead_for("ofa_mbv3"), OverheadModel)


def test_novelty_widening_grows_with_the_share_of_unseen_time() -> None:
    from hwlat.predictors.whole_model import NOVEL_STAGE_LOG_HW, widen_for_novelty

    assert widen_for_novelty(10.0, 9.5, 10.5, 0.0, False) == (9.5, 10.5)
    widths = [widen_for_novelty(10.0, 9.5, 10.5, s, False) for s in (0.25, 0.5, 1.0)]
    assert all(a[1] < b[1] and a[0] > b[0] for a, b in zip(widths, widths[1:]))
    lo, hi = widen_for_novelty(10.0, 10.0, 10.0, 0.0, True)
    assert np.log(hi / 10.0) == pytest.approx(NOVEL_STAGE_LOG_HW)
    assert np.log(10.0 / lo) == pytest.approx(NOVEL_STAGE_LOG_HW)


def _context_data(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Six families whose networks differ from their kernel sum the way the corpus did on ``local``:
    −6 µs per kernel, +50 µs per MB of weights beyond 4 MB, −30 µs per MB of spatial activations."""
    n = 60
    S = rng.uniform(1.0, 20.0, n)
    N = rng.integers(20, 160, n).astype(float)
    C = np.c_[rng.uniform(1.0, 50.0, n), rng.uniform(0.0, 40.0, n)]
    y = (S - 0.006 * N + 0.05 * np.maximum(C[:, 0] - 4.0, 0) - 0.03 * C[:, 1]) * rng.normal(1.0, 0.01, n)
    keep = y > 0.3 * S
    fams = [f"fam{i % 6}" for i in range(int(keep.sum()))]
    return S[keep], N[keep], C[keep], y[keep], fams


def test_context_overhead_is_chosen_where_weights_and_activations_explain_the_gap() -> None:
    S, N, C, y, fams = _context_data(np.random.default_rng(4))
    st = fit_stage(S, N, np.c_[np.log(S)], y, fams, [None] * len(y), C=C, residual=False)
    assert st.report["chosen"].startswith("context@"), st.report
    ov = st.overhead
    assert ov.has_context and ov.cache_mb == pytest.approx(4.0)
    assert ov.d_w == pytest.approx(0.05, rel=0.15) and ov.d_a == pytest.approx(-0.03, rel=0.15)
    rel = ov.predict(S, N, C) / y - 1
    assert np.mean(np.abs(rel) <= 0.05) > 0.9
    # without its context an overhead fit that has one must not answer
    with pytest.raises(ValueError, match="context"):
        ov.predict(S, N)
    # and it survives the manifest
    from hwlat.predictors.kernel_models import OverheadModel

    back = OverheadModel.from_dict(json.loads(json.dumps(ov.to_dict())))
    assert np.allclose(back.predict(S, N, C), ov.predict(S, N, C))


def test_context_overhead_is_not_kept_where_it_does_not_help() -> None:
    rng = np.random.default_rng(5)
    S = rng.uniform(0.5, 20.0, 40)
    N = rng.integers(5, 120, 40).astype(float)
    C = np.c_[rng.uniform(1.0, 50.0, 40), rng.uniform(0.0, 40.0, 40)]
    y = S * rng.normal(1.0, 0.02, 40)  # the plain sum is right; the context is noise
    st = fit_stage(S, N, np.c_[np.log(S)], y, [f"f{i % 5}" for i in range(40)], [None] * 40, C=C, residual=False)
    assert st.report["chosen"] == "plain", st.report
    assert not st.overhead.has_context


def test_context_features_of_real_kernels() -> None:
    from hwlat.kernels.base import get
    from hwlat.predictors.features import context_features

    conv = get("conv_bn_act").make(h=56, w=56, cin=64, cout=64, k=3, s=1, groups=1, act="relu", residual=0)
    lin = get("linear").make(m=16, cin=512, cout=1024, act="none")
    w_conv, a_conv = context_features([conv])
    w_lin, a_lin = context_features([lin])
    assert w_conv == pytest.approx(64 * 64 * 9 * 4 / 1e6, rel=0.05)  # float32 weights (+ bias)
    assert a_conv == pytest.approx(2 * 64 * 56 * 56 * 4 / 1e6, rel=0.05)  # input read + output written
    assert w_lin == pytest.approx(512 * 1024 * 4 / 1e6, rel=0.05) and a_lin == 0.0  # tokens: not spatial
    assert np.allclose(context_features([conv, lin]), [w_conv + w_lin, a_conv])
