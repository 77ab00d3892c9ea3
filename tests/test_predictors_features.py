"""Kernel features: every named feature is filled, and the channel-block features mean what they say."""

from __future__ import annotations

import numpy as np
import pytest

from hwlat.kernels import get
from hwlat.kernels.suites import suite
from hwlat.predictors.features import kernel_feature_dict, kernel_feature_names


def test_every_feature_name_of_every_type_is_produced() -> None:
    # A name the dict never fills is a silent all-zero column; a key with no name is dropped.
    for k in suite("quick", seed=0):
        names = set(kernel_feature_names(k.type))
        d = kernel_feature_dict(k)
        categorical = {n for n in names if "=" in n}
        missing = names - categorical - set(d)
        assert not missing, f"{k.type}: features never computed: {sorted(missing)}"
        extra = {n for n in d if not n.startswith("type=")} - names
        assert not extra, f"{k.type}: features computed but not named: {sorted(extra)}"


@pytest.mark.parametrize(("cfg", "b8", "b16"), [
    ({"cin": 32, "cout": 64, "groups": 1}, 1.0, 1.0),
    ({"cin": 24, "cout": 40, "groups": 1}, 1.0, 0.0),   # 8-aligned only
    ({"cin": 3, "cout": 32, "groups": 1}, 1.0, 1.0),    # narrow input: the blocked path reads it unblocked
    ({"cin": 32, "cout": 36, "groups": 1}, 0.0, 0.0),
    ({"cin": 64, "cout": 64, "groups": 2}, 1.0, 1.0),   # 32 channels per group
    ({"cin": 48, "cout": 48, "groups": 4}, 0.0, 0.0),   # 12 per group
])
def test_conv_blocked_flags(cfg: dict, b8: float, b16: float) -> None:
    k = get("conv2d").make(h=14, w=14, k=3, s=1, residual=0, **cfg)
    d = kernel_feature_dict(k)
    assert (d["blocked8"], d["blocked16"]) == (b8, b16)


def test_depthwise_and_pool_channel_fill() -> None:
    dw = kernel_feature_dict(get("dwconv").make(h=14, w=14, c=24, k=3, s=1, act="relu"))
    assert (dw["blocked8"], dw["blocked16"]) == (1.0, 0.0)
    assert dw["cout_fill16"] == pytest.approx(24 / 32)
    pool = kernel_feature_dict(get("pool").make(h=14, w=14, c=40, k=2, s=2, mode="avg", ceil=0))
    assert (pool["c_mod8"], pool["c_mod16"]) == (1.0, 0.0)
    assert pool["c_fill16"] == pytest.approx(40 / 48)


def test_transpose_and_attention_head_alignment() -> None:
    tr = kernel_feature_dict(get("transpose").make(a=384, b=301))
    assert (tr["a_mod16"], tr["b_mod4"]) == (1.0, 0.0)
    assert tr["b_fill16"] == pytest.approx(301 / 304)
    mha = kernel_feature_dict(get("mha").make(t=197, d=192, heads=16))  # 12-wide heads
    assert mha["log_head_dim"] == pytest.approx(np.log(12))
    assert (mha["hd_mod4"], mha["hd_mod8"], mha["d_mod16"]) == (1.0, 0.0, 1.0)
    assert mha["hd_fill16"] == pytest.approx(12 / 16)
