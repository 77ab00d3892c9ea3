"""Search spaces: canonical forms, accepted encodings, error messages, samplers, features."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwlat.errors import EncodingError
from hwlat.spaces import get_space, space_names
from hwlat.spaces._common import cost_totals

HELP = Path("/work/shared/data/help")
SPACES = ["ofa_mbv3", "ofa_resnet50", "nb201", "fbnet", "vit"]


def test_builtins_registered() -> None:
    assert set(SPACES) <= set(space_names())


def test_import_does_not_need_torch() -> None:
    code = "import sys, hwlat.spaces; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", SPACES)
def test_sampler_deterministic_and_canonical(name: str) -> None:
    sp = get_space(name)
    a = [sp.sample(np.random.default_rng(5)) for _ in range(2)]
    b = [sp.sample(np.random.default_rng(5)) for _ in range(2)]
    assert a == b
    many = [sp.sample(np.random.default_rng(i)) for i in range(20)]
    assert len({sp.key(x) for x in many}) > 10  # really random
    for x in many:
        assert sp.canonical(x) == x
        assert sp.key(sp.canonical(x)) == sp.key(x)


@pytest.mark.parametrize("name", SPACES)
def test_features_shape_and_totals(name: str) -> None:
    sp = get_space(name)
    archs = [sp.sample(np.random.default_rng(100 + i)) for i in range(6)]
    names = sp.feature_names()
    assert len(set(names)) == len(names)
    feats = sp.features_batch(archs)
    assert feats.shape == (6, len(names)) and np.isfinite(feats).all()
    for a, f in zip(archs, feats):
        np.testing.assert_allclose(sp.features(a), f)
        i = names.index("total_flops")
        np.testing.assert_allclose(f[i:i + 4], cost_totals(sp.encode(a)), rtol=1e-9)
    assert not np.allclose(feats[0], feats[1])


# ---- ofa_mbv3 -----------------------------------------------------------------------------------
def _mbv3_raw() -> dict:
    rng = np.random.default_rng(0)
    return {"ks": [int(x) for x in rng.choice([3, 5, 7], 20)], "e": [int(x) for x in rng.choice([3, 4, 6], 20)],
            "d": [2, 3, 4, 2, 3], "r": 160}


def test_mbv3_inactive_blocks_masked_and_forms_equal() -> None:
    sp = get_space("ofa_mbv3")
    raw = _mbv3_raw()
    c = sp.canonical(raw)
    assert c["ks"][2:4] == [0, 0] and c["e"][2:4] == [0, 0] and c["ks"][4:7] != [0, 0, 0] and c["ks"][7] == 0
    other = dict(raw, ks=list(raw["ks"]), e=list(raw["e"]))
    other["ks"][3] = 7 if raw["ks"][3] != 7 else 3  # an inactive block: any value
    other["e"][19] = 6 if raw["e"][19] != 6 else 4
    forms = [other, dict(raw, r=[160]), {**{k: v for k, v in raw.items() if k != "r"}, "image_size": 160},
             dict(raw, wid=1.0), dict(raw, ks="-".join(map(str, raw["ks"]))), c]
    assert all(sp.key(f) == sp.key(raw) for f in forms)
    assert sp.key(dict(raw, wid=1.2)) != sp.key(raw)
    assert sp.encode(other) == sp.encode(raw)


def test_mbv3_dynast_index_vector() -> None:
    sp = get_space("ofa_mbv3")
    raw = dict(_mbv3_raw(), r=224)
    vec = [[3, 5, 7].index(k) for k in raw["ks"]] + [[3, 4, 6].index(e) for e in raw["e"]]
    vec += [[2, 3, 4].index(d) for d in raw["d"]]
    assert sp.canonical(vec) == sp.canonical(raw)
    assert sp.canonical(np.asarray(vec + [160])) == sp.canonical(dict(raw, r=160))
    assert sp.canonical(sp.to_index_vector(raw)) == sp.canonical(raw)


@pytest.mark.parametrize("mutate, msg", [
    (lambda a: a["ks"].__setitem__(3, 4) or a.__setitem__("d", [4, 4, 4, 4, 4]), '"ks"[3]=4 not in {3,5,7}'),
    (lambda a: a["e"].__setitem__(0, 5), '"e"[0]=5 not in {3,4,6}'),
    (lambda a: a.__setitem__("d", [2, 3, 5, 2, 2]), '"d"[2]=5 not in {2,3,4}'),
    (lambda a: a.__setitem__("r", 130), '"r"=130 not in'),
    (lambda a: a.__setitem__("ks", a["ks"][:19]), "'ks' has 19 entries"),
    (lambda a: a.__setitem__("wid", 1.1), '"wid"=1.1'),
    (lambda a: a.__setitem__("foo", 1), "unknown field(s) ['foo']"),
    (lambda a: a.pop("d"), "missing field 'd'"),
])
def test_mbv3_bad_encodings_name_the_field(mutate, msg: str) -> None:
    sp = get_space("ofa_mbv3")
    a = _mbv3_raw()
    mutate(a)
    with pytest.raises(EncodingError) as ei:
        sp.canonical(a)
    assert msg in str(ei.value) and str(ei.value).startswith("ofa_mbv3:")
    with pytest.raises(EncodingError):
        sp.features_batch([a])


def test_mbv3_features_batch_fast_path_and_help_rows() -> None:
    sp = get_space("ofa_mbv3")
    archs = [sp.sample(np.random.default_rng(i)) for i in range(50)]
    raw = [dict(a, ks=[k or 3 for k in a["ks"]], e=[e or 6 for e in a["e"]]) for a in archs]  # junk inactive
    np.testing.assert_allclose(sp.features_batch(raw), sp.features_batch(archs))
    arr = np.asarray([a["ks"] + a["e"] + a["d"] + [a["r"]] for a in raw])
    np.testing.assert_allclose(sp.features_batch(arr), sp.features_batch(archs))
    if (HELP / "ofa_latency_ms.csv").exists():
        with open(HELP / "ofa_latency_ms.csv") as f:
            rows = [r for _, r in zip(range(200), csv.DictReader(f))]
        help_archs = [{"ks": r["ks"], "e": r["e"], "d": r["d"], "r": int(r["r"])} for r in rows]
        feats = sp.features_batch(help_archs)
        assert feats.shape == (200, len(sp.feature_names()))
        assert sp.canonical(help_archs[0])["r"] == int(rows[0]["r"])


# ---- ofa_resnet50 -------------------------------------------------------------------------------
def test_resnet50_canonical_masks_inactive() -> None:
    sp = get_space("ofa_resnet50")
    a = {"d": [1, 0, 2, 1, 0], "e": [0.25] * 18, "w": [0, 1, 2, 2, 1, 0], "r": [192]}
    c = sp.canonical(a)
    assert c["d"][0] == 0  # stem residual off unless d[0] == 2, as in OFA
    assert c["e"][:4] == [0.25, 0.25, 0, 0] and c["e"][4:8] == [0.25] * 4 and c["e"][8:14] == [0.25] * 5 + [0]
    b = dict(a, d=[0, 0, 2, 1, 0], e=[0.25, 0.25, 0.35, 0.2] + [0.25] * 13 + [0.35], r=192)
    assert sp.key(a) == sp.key(b)
    with pytest.raises(EncodingError, match=r'"e"\[0\]=0.3 not in'):
        sp.canonical(dict(a, e=[0.3] + [0.25] * 17))
    with pytest.raises(EncodingError, match=r'"w"\[5\]=3 not in'):
        sp.canonical(dict(a, w=[0, 0, 0, 0, 0, 3]))


# ---- nb201 --------------------------------------------------------------------------------------
S1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_nb201_equivalent_encodings() -> None:
    sp = get_space("nb201")
    assert sp.canonical(S1) == S1
    assert sp.canonical([3, 3, 4, 1, 3, 1]) == S1
    nni = {"0_1": "conv_3x3", "0_2": "conv_3x3", "1_2": "avg_pool_3x3", "0_3": "skip_connect",
           "1_3": "conv_3x3", "2_3": "skip_connect"}
    assert sp.canonical(nni) == S1
    assert sp.canonical({f"cell/{k[2]}_{k[0]}": v for k, v in nni.items()}) == S1


def test_nb201_dead_edges_become_none() -> None:
    sp = get_space("nb201")
    # node 2 never reaches the output: edges 0->2 and 1->2 are dead
    s = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    assert sp.canonical(s) == "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    # node 1 is always zero (0->1 none): its outgoing edges are dead
    s2 = "|none~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|skip_connect~2|"
    assert sp.canonical(s2) == "|none~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|skip_connect~2|"
    assert sp.encode(s2) == sp.encode(sp.canonical(s2))
    dead = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|"
    assert sp.canonical(dead) == "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    n_live = len({sp.canonical(list(np.random.default_rng(i).integers(0, 5, 6))) for i in range(3000)})
    assert n_live < 3000


def test_nb201_bad_and_index_table(tmp_path: Path) -> None:
    sp = get_space("nb201")
    with pytest.raises(EncodingError, match="edge 1->2.*'conv_5x5' not in"):
        sp.canonical(S1.replace("avg_pool_3x3~1", "conv_5x5~1"))
    with pytest.raises(EncodingError, match=r"ops\[2\]=7 not in 0..4"):
        sp.canonical([1, 1, 7, 1, 1, 1])
    with pytest.raises(EncodingError, match="missing edge"):
        sp.canonical({"0_1": "none"})
    from hwlat.spaces.nb201 import NB201Space

    own = NB201Space()
    with pytest.raises(EncodingError, match="no index table is loaded"):
        own.canonical(0)
    table = tmp_path / "idx.txt"
    table.write_text(S1 + "\n" + "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|\n")
    assert own.load_index_table(table) == 2
    assert own.canonical(0) == S1 and own.canonical(np.int64(1)).endswith("skip_connect~0|none~1|none~2|")
    with pytest.raises(EncodingError, match="index 2 not in 0..1"):
        own.canonical(2)
    if (HELP / "nb201_latency_ms.csv").exists():
        help_sp = NB201Space()
        assert help_sp.load_index_table(HELP / "nb201_latency_ms.csv") == 15625
        assert help_sp.canonical(1) == S1


# ---- fbnet --------------------------------------------------------------------------------------
def test_fbnet_encodings_and_help_rows() -> None:
    sp = get_space("fbnet")
    idx = [7, 8, 1, 8, 4, 8, 8, 8, 7, 4, 1, 4, 7, 3, 2, 7, 3, 2, 4, 2, 4, 5]
    names = sp.canonical(idx)
    assert names[:3] == ["k5_e6", "skip", "k3_e1_g2"]
    assert sp.canonical("-".join(map(str, idx))) == names == sp.canonical("-".join(names))
    assert sp.canonical({"op_idx_list": idx}) == names == sp.canonical({"arch_str": names})
    with pytest.raises(EncodingError, match=r"layer\[4\]=9 not in 0..8"):
        sp.canonical(idx[:4] + [9] + idx[5:])
    with pytest.raises(EncodingError, match=r"layer\[0\]='k7_e6' not in"):
        sp.canonical(["k7_e6"] + names[1:])
    if (HELP / "fbnet_latency_ms.csv").exists():
        with open(HELP / "fbnet_latency_ms.csv") as f:
            for _, r in zip(range(100), csv.DictReader(f)):
                assert sp.canonical(r["op_idx_list"]) == r["arch_str"].split("-")


# ---- vit ----------------------------------------------------------------------------------------
def test_vit_equivalent_encodings_and_errors() -> None:
    sp = get_space("vit")
    a = {"embed_dim": 192, "depth": 2, "num_heads": [3, 4, 4], "mlp_ratio": [4, 3.5, 4], "r": 224}
    c = sp.canonical(a)
    assert c == {"embed_dim": 192, "depth": 2, "num_heads": [3, 4], "mlp_dim": [768, 672], "r": 224}
    assert sp.key({"embed_dim": 192, "layer_num": [2], "num_heads": [3, 4], "mlp_dim": [768, 672]}) == sp.key(a)
    dyn = {"num_layers": 2, "num_attention_heads": [12, 8] + [6] * 10, "vit_intermediate_sizes": [3072] * 12}
    assert sp.canonical(dyn) == {"embed_dim": 768, "depth": 2, "num_heads": [12, 8], "mlp_dim": [3072, 3072],
                                 "r": 224}
    with pytest.raises(EncodingError, match=r'"num_heads"\[1\]=0 not in'):
        sp.canonical(dict(a, num_heads=[3, 0]))
    with pytest.raises(EncodingError, match="'num_heads' has 1 entries for depth 2"):
        sp.canonical(dict(a, num_heads=[3]))
    with pytest.raises(EncodingError, match=r'"r"=200 must be a multiple of 16'):
        sp.canonical(dict(a, r=200))
