"""ofa_proxyless: canonical forms, accepted encodings, error messages, features, and the contract
``encode(arch) == kernels_of(build(arch), input_shape(arch)).kernels``."""

from __future__ import annotations

import numpy as np
import pytest

from hwlat.errors import EncodingError
from hwlat.spaces import get_space
from hwlat.spaces._common import cost_totals

NAME = "ofa_proxyless"


def _raw() -> dict:
    rng = np.random.default_rng(0)
    return {"ks": [int(x) for x in rng.choice([3, 5, 7], 21)], "e": [int(x) for x in rng.choice([3, 4, 6], 21)],
            "d": [2, 3, 4, 2, 3], "r": 160}


def test_registered_and_sampler_deterministic() -> None:
    sp = get_space(NAME)
    a = [sp.sample(np.random.default_rng(5)) for _ in range(2)]
    assert a == [sp.sample(np.random.default_rng(5)) for _ in range(2)]
    many = [sp.sample(np.random.default_rng(i)) for i in range(20)]
    assert len({sp.key(x) for x in many}) == 20
    for x in many:
        assert sp.canonical(x) == x and len(x["ks"]) == 21 and len(x["d"]) == 5 and "wid" not in x
        assert x["ks"][20] in (3, 5, 7)  # the last-stage block is always active
    assert sp.encode(many[0]) == sp.encode(many[0])


def test_inactive_blocks_masked_and_forms_equal() -> None:
    sp = get_space(NAME)
    raw = _raw()
    c = sp.canonical(raw)
    assert c["ks"][2:4] == [0, 0] and c["e"][2:4] == [0, 0] and 0 not in c["ks"][4:7] and c["ks"][7] == 0
    assert c["ks"][20] == raw["ks"][20] and c["e"][20] == raw["e"][20]
    other = dict(raw, ks=list(raw["ks"]), e=list(raw["e"]))
    other["ks"][3] = 7 if raw["ks"][3] != 7 else 3  # an inactive block: any value
    other["e"][19] = 6 if raw["e"][19] != 6 else 4
    forms = [other, dict(raw, r=[160]), {**{k: v for k, v in raw.items() if k != "r"}, "image_size": 160},
             dict(raw, wid=1.3), dict(raw, width_mult=1.3), dict(raw, ks="-".join(map(str, raw["ks"]))),
             dict(raw, d=raw["d"] + [1]), dict(raw, d=raw["d"] + [4]),  # OFA's 6th depth, clamped to 1
             dict(raw, e=np.asarray(raw["e"])), c]
    assert all(sp.key(f) == sp.key(raw) for f in forms)
    assert sp.key(dict(raw, wid=1.0)) != sp.key(raw) and sp.canonical(dict(raw, wid=1.0))["wid"] == 1.0
    assert sp.encode(other) == sp.encode(raw)
    # DyNAS-T's 20-entry lists leave the last block at OFA's default k=7, e=6
    last76 = dict(raw, ks=raw["ks"][:20] + [7], e=raw["e"][:20] + [6])
    assert sp.key(dict(raw, ks=raw["ks"][:20], e=raw["e"][:20])) == sp.key(last76)


def test_dynast_index_vector() -> None:
    sp = get_space(NAME)
    raw = dict(_raw(), r=224)
    raw["ks"][20], raw["e"][20] = 7, 6
    vec = [[3, 5, 7].index(k) for k in raw["ks"][:20]] + [[3, 4, 6].index(e) for e in raw["e"][:20]]
    vec += [[2, 3, 4].index(d) for d in raw["d"]]
    assert sp.canonical(vec) == sp.canonical(raw)
    assert sp.canonical(np.asarray(vec + [160])) == sp.canonical(dict(raw, r=160))
    v45 = sp.to_index_vector(raw)  # inactive blocks get index 0
    assert len(v45) == 45 and v45[40:] == vec[40:] and sp.canonical(v45) == sp.canonical(raw)
    other = dict(raw, ks=raw["ks"][:20] + [3], r=132)  # last block not 7/6: the 47-int form
    v47 = sp.to_index_vector(other)
    assert len(v47) == 48 and sp.canonical(v47) == sp.canonical(other)
    with pytest.raises(EncodingError, match=r"index vector\[40\] \('d'\[0\]\) = 3"):
        sp.canonical(vec[:40] + [3] + vec[41:])
    with pytest.raises(EncodingError, match="45 ints"):
        sp.canonical(vec[:44])


@pytest.mark.parametrize("mutate, msg", [
    (lambda a: a["ks"].__setitem__(3, 4) or a.__setitem__("d", [4, 4, 4, 4, 4]), '"ks"[3]=4 not in {3,5,7}'),
    (lambda a: a["e"].__setitem__(0, 5), '"e"[0]=5 not in {3,4,6}'),
    (lambda a: a["ks"].__setitem__(20, 0), '"ks"[20]=0 not in {3,5,7}'),
    (lambda a: a.__setitem__("d", [2, 3, 5, 2, 2]), '"d"[2]=5 not in {2,3,4}'),
    (lambda a: a.__setitem__("d", [2, 3, 4, 2, 2, 0]), '"d"[5]=0 not in {1,2,3,4}'),
    (lambda a: a.__setitem__("d", [2, 3]), "'d' has 2 entries"),
    (lambda a: a.__setitem__("r", 130), '"r"=130 not in'),
    (lambda a: a.__setitem__("ks", a["ks"][:19]), "'ks' has 19 entries; expected 21"),
    (lambda a: a.__setitem__("e", "3-x-4"), "\"e\"[1]='x' is not an integer"),
    (lambda a: a.__setitem__("wid", 1.2), '"wid"=1.2 not in {1.0,1.3}'),
    (lambda a: a.__setitem__("foo", 1), "unknown field(s) ['foo']"),
    (lambda a: a.pop("ks"), "missing field 'ks'"),
])
def test_bad_encodings_name_the_field(mutate, msg: str) -> None:
    sp = get_space(NAME)
    a = _raw()
    mutate(a)
    with pytest.raises(EncodingError) as ei:
        sp.canonical(a)
    assert msg in str(ei.value) and str(ei.value).startswith(f"{NAME}:")
    with pytest.raises(EncodingError):
        sp.features_batch([a])


def test_features_vectorised_and_totals() -> None:
    sp = get_space(NAME)
    archs = [sp.sample(np.random.default_rng(100 + i)) for i in range(6)]
    archs[1] = dict(archs[1], wid=1.0)
    names = sp.feature_names()
    assert len(set(names)) == len(names)
    feats = sp.features_batch(archs)
    assert feats.shape == (6, len(names)) and np.isfinite(feats).all()
    i = names.index("total_flops")
    for a, f in zip(archs, feats):
        np.testing.assert_allclose(sp.features(a), f)
        np.testing.assert_allclose(f[i:i + 4], cost_totals(sp.encode(a)), rtol=1e-9)
        blocks = sp.encode(a)[3:-3]  # stage flops sum to the blocks' flops
        np.testing.assert_allclose(f[names.index("stage0_flops"):names.index("stage5_flops") + 1].sum(),
                                   cost_totals(blocks)[0], rtol=1e-9)
    assert not np.allclose(feats[0], feats[2])
    # raw dicts with junk in inactive blocks and the (N, 48) value array give the same features
    raw = [dict(a, ks=[k or 3 for k in a["ks"]], e=[e or 6 for e in a["e"]]) for a in archs]
    np.testing.assert_allclose(sp.features_batch(raw), feats)
    same_wid = [a for a in raw if "wid" not in a]
    arr = np.asarray([a["ks"] + a["e"] + a["d"] + [a["r"]] for a in same_wid])
    np.testing.assert_allclose(sp.features_batch(arr), sp.features_batch(same_wid))


def test_encode_structure_follows_ofa() -> None:
    """Spot checks of OFA's ProxylessNAS layout (w1.3: 40/24/32/56/104/128/248/416/1664)."""
    sp = get_space(NAME)
    a = {"ks": [7] * 21, "e": [6] * 21, "d": [4] * 5, "r": 224}
    ks = sp.encode(a)
    assert len(ks) == 3 + 21 * 3 + 3
    assert ks[0].type == "conv_bn_act" and ks[0].config["cout"] == 40 and ks[0].config["act"] == "relu6"
    assert ks[2].type == "conv2d" and ks[2].config["cout"] == 24 and ks[2].config["residual"] == 0  # no shortcut
    convs = [k for k in ks if k.type == "conv2d"]
    assert sorted({k.config["cout"] for k in convs}) == [24, 32, 56, 104, 128, 248, 416]
    assert sum(k.config["residual"] for k in convs) == 15  # 5 stages × 3 non-first blocks
    assert all(k.config["act"] == "relu6" for k in ks if k.type == "dwconv")
    assert not any(k.type == "se" for k in ks)
    assert ks[-3].config["cin"] == 416 and ks[-3].config["cout"] == 1664 and ks[-3].config["h"] == 7
    assert sp.encode(dict(a, wid=1.0))[-1].config["cin"] == 1280


def _check(arch: object) -> None:
    from hwlat.decompose import kernels_of

    sp = get_space(NAME)
    dec = kernels_of(sp.build(arch), sp.input_shape(arch))
    assert dec.unsupported == [], dec.unsupported
    got = [(k.type, dict(k.config), k.inputs, k.outputs) for k in dec.kernels]
    want = [(k.type, dict(k.config), k.inputs, k.outputs) for k in sp.encode(arch)]
    if got != want:
        diff = next(i for i, (g, w) in enumerate(zip(got + [None] * 999, want + [None] * 999)) if g != w)
        raise AssertionError(f"{sp.key(arch)}: kernel {diff} differs: decomposed "
                             f"{got[diff] if diff < len(got) else None} vs encoded "
                             f"{want[diff] if diff < len(want) else None} ({len(got)} vs {len(want)} kernels)")


def test_encode_equals_decomposition() -> None:
    sp = get_space(NAME)
    rng = np.random.default_rng(2024)
    for i in range(8):  # small resolutions: the structure is what is checked; 132/140 give odd sizes
        a = dict(sp.sample(rng), r=int(rng.choice([128, 132, 140])))
        _check(dict(a, wid=1.0) if i % 4 == 3 else a)


@pytest.mark.slow
def test_encode_equals_decomposition_100() -> None:
    sp = get_space(NAME)
    rng = np.random.default_rng(7)
    extremes = [{"ks": [7] * 21, "e": [6] * 21, "d": [4] * 5, "r": 224},
                {"ks": [3] * 21, "e": [3] * 21, "d": [2] * 5, "r": 128, "wid": 1.0}]
    for i in range(100):
        a = sp.sample(rng)
        _check(dict(a, wid=1.0) if i % 4 == 3 else a)
    for a in extremes:
        _check(a)


def test_build_forward_runs() -> None:
    import torch

    sp = get_space(NAME)
    a = dict(sp.sample(np.random.default_rng(3)), r=128)
    m = sp.build(a)
    assert not m.training
    with torch.no_grad():
        y = m(torch.randn(sp.input_shape(a)))
    assert y.shape == (1, 1000) and torch.isfinite(y).all()
