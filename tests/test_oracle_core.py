"""Oracle against a real predictor trained on a small real profile of the local device."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from oracle_support import session_predictor, shared_oracle

from hwlat.errors import ConfigError, PredictorError
from hwlat.oracle import InfeasibleBudgetError, Oracle
from hwlat.spaces import get_space


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    return session_predictor(tmp_path_factory)


@pytest.fixture(scope="session")
def pred(trained: tuple[Any, Path]) -> Any:
    return trained[0]


@pytest.mark.parametrize("space", ["ofa_mbv3", "fbnet", "nb201", "ofa_resnet50", "vit"])
def test_matches_predictor_kernel_sum(pred: Any, space: str) -> None:
    """Table sums / cached encodings give exactly the predictor's own kernel-sum prediction."""
    o = shared_oracle(pred, space)
    sp = get_space(space)
    rng = np.random.default_rng(3)
    archs = [sp.sample(rng) for _ in range(4 if space in ("vit", "ofa_resnet50") else 12)]
    for a in archs:
        want = pred.predict(a, space=space, method="kernel-sum")
        m, lo, hi = o.predict(a)
        assert m == pytest.approx(want.latency_ms, rel=1e-9)
        assert lo == pytest.approx(want.low_ms, rel=1e-6) and hi == pytest.approx(want.high_ms, rel=1e-6)
        assert lo <= m <= hi and o.std(a) >= 0
    np.testing.assert_allclose(o.batch(archs), [o(a) for a in archs], rtol=1e-12)
    assert o.mode == ("table" if space in ("ofa_mbv3", "fbnet") else "kernels")


def test_batch_forms_agree(pred: Any) -> None:
    o = shared_oracle(pred, "ofa_mbv3")
    sp = get_space("ofa_mbv3")
    rng = np.random.default_rng(4)
    archs = [sp.sample(rng) for _ in range(50)]
    ref = o.batch(archs)
    values = np.array([a["ks"] + a["e"] + a["d"] + [a["r"]] for a in archs])
    idx = np.array([sp.to_index_vector(a)[:45] + [a["r"]] for a in archs])
    np.testing.assert_allclose(o.batch(values), ref, rtol=1e-12)
    np.testing.assert_allclose(o.batch(idx), ref, rtol=1e-12)
    np.testing.assert_allclose(o.batch([list(v) for v in idx]), ref, rtol=1e-12)
    mixed = [dict(a, r=[a["r"]], wid=None) for a in archs]
    np.testing.assert_allclose(o.batch(mixed), ref, rtol=1e-12)
    assert o.violation_batch(archs, float(np.median(ref))).shape == (50,)
    assert o.feasible_batch(archs, float(ref.max())).all()


def test_exact_bounds_mbv3(pred: Any) -> None:
    o = shared_oracle(pred, "ofa_mbv3")
    b = o.bounds()
    assert b.exact and b.min_ms < b.max_ms
    assert o(b.argmin) == pytest.approx(b.min_ms) and o(b.argmax) == pytest.approx(b.max_ms)
    sp = get_space("ofa_mbv3")
    rng = np.random.default_rng(5)
    lat = o.batch([sp.sample(rng) for _ in range(5000)])
    assert b.min_ms <= lat.min() and lat.max() <= b.max_ms
    # the documented search never beats the exact bound (it may only match it)
    from hwlat.oracle.bounds import searched_bounds

    s = searched_bounds(o, n_samples=64)
    assert s.min_ms >= b.min_ms - 1e-9 and s.max_ms <= b.max_ms + 1e-9
    b160 = o.bounds(r=160)
    assert b160.fixed == {"r": 160} and b160.argmin["r"] == 160 and b.min_ms <= b160.min_ms


def test_exact_bounds_fbnet_brute_force_per_layer(pred: Any) -> None:
    o = shared_oracle(pred, "fbnet")
    b = o.bounds()
    assert b.exact
    # every single-layer change of the argmin is slower or equal, of the argmax faster or equal
    base_min, base_max = b.argmin, b.argmax
    cands_min, cands_max = [], []
    for i in range(22):
        for op in range(9):
            a = list(base_min)
            a[i] = get_space("fbnet").canonical([op] * 22)[0]
            cands_min.append(a)
            c = list(base_max)
            c[i] = a[i]
            cands_max.append(c)
    assert o.batch(cands_min).min() >= b.min_ms - 1e-9
    assert o.batch(cands_max).max() <= b.max_ms + 1e-9


def _within(seconds: float, fn: Any) -> Any:
    """Run ``fn`` in a thread; fail (instead of hanging) if it takes longer than ``seconds``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001  (re-raised below in the test thread)
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"did not finish within {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.mark.parametrize("space", ["ofa_mbv3", "nb201"])
def test_infeasible_budget_is_a_clear_error(pred: Any, space: str) -> None:
    o = shared_oracle(pred, space)
    start = time.monotonic()
    b = _within(60, o.bounds)
    with pytest.raises(InfeasibleBudgetError, match=r"infeasible .* fastest arch is predicted at"):
        _within(10, lambda: o.check_budget(b.min_ms * 0.5))
    assert time.monotonic() - start < 60
    assert o.check_budget(b.max_ms).max_ms == b.max_ms
    with pytest.raises(ConfigError, match="positive finite"):
        o.check_budget(float("nan"))
    with pytest.raises(ConfigError, match="not a number"):
        o.check_budget("fast")


def test_cache_hits_and_violation(pred: Any) -> None:
    o = Oracle.from_predictor(pred, "fbnet", cache_size=4)
    sp = get_space("fbnet")
    rng = np.random.default_rng(6)
    archs = [sp.sample(rng) for _ in range(6)]
    for a in archs:
        o(a)
    assert o.cache_info()["misses"] == 6 and o.cache_info()["size"] == 4  # LRU evicts the oldest
    o(archs[-1])
    assert o.cache_info()["hits"] == 1
    lat = o(archs[0])
    assert o.violation(archs[0], lat + 1.0) == pytest.approx(-1.0)
    assert o.feasible(archs[0], lat) and not o.feasible(archs[0], lat * 0.99)


def test_torch_module_and_onnx_file(pred: Any, tmp_path: Path) -> None:
    """An nn.Module / ONNX file goes through decomposition and matches the arch's own prediction."""
    from hwlat.export import torch_to_onnx

    o = shared_oracle(pred, "nb201")
    sp = get_space("nb201")
    arch = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
    model = sp.build(arch)
    lat_mod = o(model, input_shape=sp.input_shape(arch))
    assert lat_mod == pytest.approx(o(arch), rel=1e-9)
    path = tmp_path / "cell.onnx"
    torch_to_onnx(model, sp.input_shape(arch), path)
    assert o(str(path)) == pytest.approx(lat_mod, rel=1e-9)
    assert o.cache_info()["graph_hits"] >= 1  # same graph hash as the module's export
    with pytest.raises(ConfigError, match="input_shape"):
        o(model)


def test_differentiable_surrogate(pred: Any) -> None:
    import torch

    o = shared_oracle(pred, "ofa_mbv3")
    rng = np.random.default_rng(7)
    logits = {k: torch.tensor(rng.normal(size=s), dtype=torch.float64, requires_grad=True)
              for k, s in (("ks", (20, 3)), ("e", (20, 3)), ("d", (5, 3)), ("r", (25,)))}

    def f(lg: dict[str, Any]) -> Any:
        return o.torch_expected_latency({k: torch.softmax(v, dim=-1) for k, v in lg.items()})

    val = f(logits)
    val.backward()
    eps = 1e-6
    for name in ("ks", "d", "r"):
        for idx in [(0, 1), (7, 2), (3, 0)] if name != "r" else [(0,), (12,), (24,)]:
            if name == "d" and idx[0] >= 5:
                continue
            plus = {k: v.detach().clone() for k, v in logits.items()}
            minus = {k: v.detach().clone() for k, v in logits.items()}
            plus[name][idx] += eps
            minus[name][idx] -= eps
            fd = (f(plus) - f(minus)).item() / (2 * eps)
            assert logits[name].grad[idx].item() == pytest.approx(fd, rel=1e-5, abs=1e-9)
    # one-hot probabilities give exactly the arch's (affine) latency
    sp = get_space("ofa_mbv3")
    arch = sp.sample(rng)
    oh = {"ks": np.zeros((20, 3)), "e": np.zeros((20, 3)), "d": np.zeros((5, 3)), "r": arch["r"]}
    for i in range(20):
        oh["ks"][i, (3, 5, 7).index(arch["ks"][i]) if arch["ks"][i] else 0] = 1
        oh["e"][i, (3, 4, 6).index(arch["e"][i]) if arch["e"][i] else 0] = 1
    for s in range(5):
        oh["d"][s, arch["d"][s] - 2] = 1
    assert o.torch_expected_latency(oh).item() == pytest.approx(o(arch), rel=1e-9)
    # FBNet: (22, 9) probabilities
    fb = shared_oracle(pred, "fbnet")
    p = torch.full((22, 9), 1 / 9, dtype=torch.float64, requires_grad=True)
    ev = fb.torch_expected_latency(p)
    ev.backward()
    fb_lat = fb.batch([[op] * 22 for op in range(9)])
    assert fb_lat.min() <= ev.item() <= fb_lat.max()
    assert p.grad is not None and p.grad.shape == (22, 9)
    with pytest.raises(ConfigError, match="lookup-table path"):
        shared_oracle(pred, "nb201").torch_expected_latency(p)


def test_oracle_loads_device_predictor(trained: tuple[Any, Path]) -> None:
    pred, root = trained
    o = Oracle("local", space="fbnet", root=root)
    a = get_space("fbnet").sample(np.random.default_rng(8))
    assert o(a) == pytest.approx(Oracle.from_predictor(pred, "fbnet")(a), rel=1e-12)
    with pytest.raises(PredictorError, match="no subnet predictor for space 'fbnet'"):
        Oracle("local", space="fbnet", root=root, method="subnet")
    with pytest.raises(PredictorError, match="hwlat train"):
        Oracle("local", space="fbnet", root=root / "empty")


def test_residual_predictor_exact_per_arch_or_additive_tables(pred: Any) -> None:
    """A predictor with a whole-model residual: the oracle is exact per arch by default, and with
    residual=False answers from the lookup tables exactly as the predictor without its residual."""
    import copy

    from hwlat.kernels.base import names
    from hwlat.predictors.artifacts import PredictorArtifact
    from hwlat.predictors.features import model_feature_names
    from hwlat.predictors.kernel_models import fit_residual, whole_model_parts
    from hwlat.predictors.range_check import RangeCheck

    sp = get_space("ofa_mbv3")
    rng = np.random.default_rng(11)
    archs = [sp.sample(rng) for _ in range(30)]
    lists = [sp.encode(a) for a in archs]
    kms = [pred.predict_kernels(ks, return_interval=False) for ks in lists]
    _, _, F = whole_model_parts(lists, kms, names())
    ratio = 1.0 + 0.2 * (F[:, 0] - F[:, 0].mean()) / (np.ptp(F[:, 0]) + 1e-9)  # a smooth size-dependent bias
    est = fit_residual(F, ratio)
    fn = model_feature_names(names())
    with_res = copy.copy(pred)
    with_res.residual = PredictorArtifact(est, {"kind": est.kind, "feature_names": fn}, RangeCheck(fn).fit(F))

    exact = Oracle.from_predictor(with_res, "ofa_mbv3")
    fast = Oracle.from_predictor(with_res, "ofa_mbv3", residual=False)
    assert exact.mode == "archs" and fast.mode == "table"
    for a in archs[:5]:
        assert exact(a) == pytest.approx(with_res.predict(a, space="ofa_mbv3", method="kernel-sum").latency_ms,
                                         rel=1e-9)
        assert fast(a) == pytest.approx(pred.predict(a, space="ofa_mbv3", method="kernel-sum").latency_ms,
                                        rel=1e-9)
    assert not np.allclose(exact.batch(archs[:5]), fast.batch(archs[:5]))
    # value arrays (what the pymoo adapter passes) mean the same on the per-arch path as on the tables
    X = np.array([a["ks"] + a["e"] + a["d"] + [int(np.atleast_1d(a["r"])[0])] for a in archs[:5]])
    np.testing.assert_allclose(exact.batch(X), exact.batch(archs[:5]), rtol=1e-12)
    np.testing.assert_allclose(fast.batch(X), fast.batch(archs[:5]), rtol=1e-12)


def test_measuring_archs_uses_the_profiled_subnet_files(hwlat_home: Path, tmp_path: Path) -> None:
    """``measure_archs`` measures the very files profiling stores for those subnets (same name and
    bytes, so the same store item), in its own store: the device's profile gets no rows."""
    from hwlat.oracle.measure import measure_archs
    from hwlat.profiling.sources import space_items
    from hwlat.store import ProfileStore

    sp = get_space("nb201")
    items = space_items("nb201", 2, "onnxruntime", seed=5)
    archs = [it.arch for it in items]
    ms = measure_archs("local", sp, archs, root=tmp_path / "check", target="floor_ms", passes=2,
                       measure={"max_time_s": 0.2})
    assert ms.shape == (2,) and np.isfinite(ms).all() and (ms > 0).all()
    checked = ProfileStore("local", root=tmp_path / "check" / "profiles").models(latest=False)
    assert sorted(checked["name"]) == sorted([it.name for it in items] * 2)
    for it in items:
        assert (tmp_path / "check" / "models" / it.name).read_bytes() == it.file.read_bytes()
        rows = checked[checked["name"] == it.name]
        assert float(rows["min_ms"].min()) == pytest.approx(float(ms[archs.index(it.arch)]))
    assert not len(ProfileStore("local").models(latest=False))
