"""Kernel suites and adaptive sampling: determinism, coverage, sizes, realistic distributions."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import hwlat.kernels as K
from hwlat.kernels.derived import DERIVED_FIELDS, describe
from hwlat.kernels.sampling import COMMON_RES, adaptive_sample, estimate_ms
from hwlat.kernels.suites import SUITES, suite


@pytest.fixture(scope="module")
def standard() -> list[K.Kernel]:
    return suite("standard")


def _keys(ks: list[K.Kernel]) -> list[str]:
    return [k.key() for k in ks]


def test_quick_covers_every_type_within_size_and_cost() -> None:
    q = suite("quick")
    assert 120 <= len(q) <= 160
    assert set(k.type for k in q) == set(K.names())
    assert len(set(_keys(q))) == len(q)
    assert max(estimate_ms(k) for k in q) <= SUITES["quick"].max_ms


def test_suites_are_deterministic_per_seed() -> None:
    assert _keys(suite("quick", seed=0)) == _keys(suite("quick", seed=0))
    assert _keys(suite("quick", seed=1)) == _keys(suite("quick", seed=1))
    assert _keys(suite("quick", seed=0)) != _keys(suite("quick", seed=1))


def test_standard_and_full_sizes(standard: list[K.Kernel]) -> None:
    assert 1500 <= len(standard) <= 2500
    assert len(set(_keys(standard))) == len(standard)
    assert set(k.type for k in standard) == set(K.names())
    full = suite("full")
    assert len(full) >= 3 * len(standard) and len(set(_keys(full))) == len(full)


def test_standard_configs_look_like_real_networks(standard: list[K.Kernel]) -> None:
    convs = [k.config for k in standard if k.type in ("conv2d", "conv_bn_act")]
    hs = Counter(c["h"] for c in convs)
    common = sum(n for h, n in hs.items() if h in COMMON_RES) / len(convs)
    assert 0.4 < common < 0.95  # mostly the usual resolutions, some odd ones
    assert min(hs) >= 7 and max(hs) <= 224
    assert {c["k"] for c in convs} == {1, 3, 5, 7} and {c["s"] for c in convs} == {1, 2}
    ch = [c["cout"] for c in convs]
    assert 0.6 < np.mean([c % 8 == 0 for c in ch]) < 1.0
    assert min(ch) >= 8 and max(ch) <= 2048  # 2048: the ResNet-50 last-stage 1x1 expand (grid)
    mb = [k.config for k in standard if k.type == "mbconv"]
    assert {c["e"] for c in mb} >= {3, 4, 6} and {c["se"] for c in mb} == {0, 1}
    mha = [k.config for k in standard if k.type == "mha"]
    assert any(c["t"] == 197 for c in mha) and all(c["d"] % c["heads"] == 0 for c in mha)


def test_unknown_suite_is_named() -> None:
    with pytest.raises(ValueError, match="'huge'"):
        suite("huge")


def _differs(a: dict, b: dict) -> int:
    return sum(a[f] != b[f] for f in a)


def test_adaptive_sample_perturbs_the_worst_configs() -> None:
    kt = K.get("conv_bn_act")
    cfgs = [dict(h=7, w=7, cin=512, cout=512, k=3, s=1, groups=1, act="relu", residual=0),
            dict(h=112, w=112, cin=16, cout=16, k=3, s=1, groups=1, act="relu6", residual=0),
            dict(h=28, w=28, cin=128, cout=256, k=1, s=1, groups=1, act="hswish", residual=0),
            dict(h=14, w=14, cin=256, cout=256, k=5, s=2, groups=1, act="swish", residual=1)]
    errs = [0.01, -0.6, 0.02, 0.03]  # sign is ignored: config 1 is the worst
    new = adaptive_sample("conv_bn_act", cfgs, errs, 20, np.random.default_rng(0))
    assert len(new) == 20
    keys = {kt.make(**c).key() for c in cfgs}
    assert not keys & set(_keys(new)) and len(set(_keys(new))) == 20
    for k in new:
        kt.validate(k.config)
        assert k.type == "conv_bn_act"
        # 1-3 fields perturbed (w follows h on square maps): nearer config 1 than any other
        assert 1 <= _differs(dict(k.config), cfgs[1]) <= 4
        assert _differs(dict(k.config), cfgs[1]) <= min(_differs(dict(k.config), c) for c in cfgs)
    again = adaptive_sample(kt, [kt.make(**c) for c in cfgs], errs, 20, np.random.default_rng(0))
    assert _keys(again) == _keys(new)


def test_adaptive_sample_checks_lengths() -> None:
    with pytest.raises(ValueError, match="rel_errors"):
        adaptive_sample("add", [dict(c=8, hw=49, broadcast=0)], [0.1, 0.2], 3, np.random.default_rng(0))


def test_describe_gives_feature_quantities() -> None:
    k = K.get("linear").make(m=197, cin=768, cout=3072, act="gelu")
    d = describe(k)
    assert tuple(d) == DERIVED_FIELDS
    assert d["out_numel"] == 197 * 3072 and d["params"] == 768 * 3072 + 3072
    assert d["arithmetic_intensity"] > 50  # a big GEMM is compute-bound
    assert describe(K.get("transpose").make(a=768, b=196))["arithmetic_intensity"] == 0
