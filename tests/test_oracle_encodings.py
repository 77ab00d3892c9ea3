"""Every encoding the oracle accepts lands on one cache entry; bad ones name the field."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from oracle_support import session_predictor

from hwlat.errors import EncodingError
from hwlat.oracle import Oracle
from hwlat.spaces import get_space


@pytest.fixture(scope="session")
def pred(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return session_predictor(tmp_path_factory)[0]


def _one_entry(o: Oracle, forms: list[Any]) -> float:
    o.clear_cache()
    vals = [o(f) for f in forms]
    info = o.cache_info()
    assert info["size"] == 1, info
    assert info["misses"] == 1 and info["hits"] == len(forms) - 1, info
    assert len(set(vals)) == 1
    return vals[0]


def test_ofa_mbv3_forms(pred: Any) -> None:
    o = Oracle.from_predictor(pred, "ofa_mbv3")
    sp = get_space("ofa_mbv3")
    a = sp.sample(np.random.default_rng(1))
    a["d"][0] = 2  # stage 0 has inactive blocks 2, 3
    a = sp.canonical(a)
    raw = dict(a, ks=[k or 7 for k in a["ks"]], e=[x or 6 for x in a["e"]])  # OFA leaves junk in inactive slots
    idx = sp.to_index_vector(a)
    flat = {f"ks_{i}": v for i, v in enumerate(raw["ks"])} | {f"e/{i}": v for i, v in enumerate(raw["e"])} \
        | {f"d[{i}]": v for i, v in enumerate(a["d"])} | {"r": a["r"]}
    forms = [
        a, raw, dict(raw, r=[a["r"]]), {"ks": raw["ks"], "e": raw["e"], "d": a["d"], "image_size": a["r"]},
        dict(raw, wid=None), dict(raw, wid=1.0), {**raw, "r": np.int64(a["r"])},
        {"ks": tuple(raw["ks"]), "e": np.array(raw["e"]), "d": "-".join(map(str, a["d"])), "r": a["r"]},
        idx + ([] if a["r"] != 224 else [224]), np.array(idx[:45] + [a["r"]]), flat,
        {"wid": None, "ks": raw["ks"], "e": raw["e"], "d": a["d"], "r": [a["r"]]},  # DyNAS-T's subnet_sample
    ]
    _one_entry(o, forms)
    assert o.canonical(raw) == a
    wide = dict(a, wid=1.2)
    assert o(wide) > o(a)  # the width-1.2 supernet is another table
    assert o.key(wide) != o.key(a)


def test_resnet50_forms(pred: Any) -> None:
    o = Oracle.from_predictor(pred, "ofa_resnet50")
    sp = get_space("ofa_resnet50")
    a = sp.canonical({"d": [0, 1, 0, 2, 0], "e": [0.25] * 18, "w": [1, 2, 0, 1, 2, 0], "r": 160})
    es = (0.2, 0.25, 0.35)
    vec = [1, 1, 0, 2, 0] + [es.index(x) if x else 1 for x in [0.25] * 18] + [1, 2, 0, 1, 2, 0] + [160]
    flat = {f"d_{i}": v for i, v in enumerate(a["d"])} | {f"e_{i}": 0.25 for i in range(18)} \
        | {f"w_{i}": v for i, v in enumerate(a["w"])} | {"r": 160}
    _one_entry(o, [a, dict(a, e=[0.25] * 18), vec, np.array(vec), flat, dict(a, r=[160])])
    with pytest.raises(EncodingError, match=r"index vector\[28\] \('w'\[5\]\) = 3"):
        o(vec[:28] + [3, 160])


def test_nb201_forms(pred: Any) -> None:
    o = Oracle.from_predictor(pred, "nb201")
    s = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
    ops = [3, 2, 1, 4, 0, 3]
    names = ["conv_3x3", "conv_1x1", "skip_connect", "avg_pool_3x3", "none", "conv_3x3"]
    edges = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    nni_cell = {f"cell/{b}_{a}": n for (a, b), n in zip(edges, names, strict=True)}
    from_to = {f"{a}_{b}": n for (a, b), n in zip(edges, names, strict=True)}
    _one_entry(o, [s, ops, np.array(ops), tuple(ops), nni_cell, from_to, {"arch_str": s}])
    # an edge that feeds nothing is masked: same entry as its canonical form
    dead = "|none~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
    assert o.key(dead) == o.key("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")


def test_fbnet_forms(pred: Any) -> None:
    o = Oracle.from_predictor(pred, "fbnet")
    from hwlat.spaces.fbnet import OPS

    idx = [int(i) for i in np.random.default_rng(2).integers(0, 9, 22)]
    names = [OPS[i] for i in idx]
    _one_entry(o, [idx, names, np.array(idx), "-".join(map(str, idx)), "-".join(names),
                   {"op_idx_list": idx}, {f"layer_{i}": v for i, v in enumerate(idx)}, tuple(idx)])


def test_vit_forms(pred: Any) -> None:
    o = Oracle.from_predictor(pred, "vit")
    a = {"embed_dim": 192, "depth": 2, "num_heads": [3, 4], "mlp_ratio": [4.0, 3.5], "r": 64}
    autoformer = {"embed_dim": 192, "layer_num": 2, "num_heads": [3, 4, 4], "mlp_ratio": [4.0, 3.5, 4.0],
                  "r": 64}
    mlp = {"embed_dim": 192, "depth": 2, "num_heads": [3, 4], "mlp_dim": [768, 672], "image_size": 64}
    dynast = {"hidden_size": 192, "num_layers": 2, "num_attention_heads": [3, 4, 12],
              "vit_intermediate_sizes": [768, 672, 3072], "r": 64}
    flat = {"embed_dim": 192, "depth": 2, "num_heads_0": 3, "num_heads_1": 4, "mlp_ratio.0": 4.0,
            "mlp_ratio.1": 3.5, "r": 64}
    _one_entry(o, [a, autoformer, mlp, dynast, flat])


@pytest.mark.parametrize(("space", "arch", "pattern"), [
    ("ofa_mbv3", {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 100}, r'"r"=100 not in'),
    ("ofa_mbv3", {"ks": [3] * 3 + [4] + [3] * 16, "e": [3] * 20, "d": [4] * 5}, r'"ks"\[3\]=4 not in'),
    ("ofa_mbv3", {"ks": [3] * 20, "e": [3] * 20}, "missing field 'd'"),
    ("ofa_mbv3", {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "depth": 3}, r"unknown field\(s\) \['depth'\]"),
    ("ofa_mbv3", {"ks_0": 3, "ks_2": 3, "e": [3] * 20, "d": [2] * 5}, r"lacks ks\[1\]"),
    ("ofa_mbv3", [0] * 44, "45 ints"),
    ("fbnet", [0] * 21 + [9], r"layer\[21\]=9 not in 0..8"),
    ("nb201", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "not of the form|'conv'"),
    ("nb201", {"cell/1_0": "conv_5x5"}, "conv_5x5"),
    ("vit", {"embed_dim": 192, "depth": 2, "num_heads": [3], "mlp_ratio": 4.0}, "'num_heads' has 1 entries"),
])
def test_bad_encodings_name_the_field(pred: Any, space: str, arch: Any, pattern: str) -> None:
    o = Oracle.from_predictor(pred, space)
    with pytest.raises(EncodingError, match=pattern):
        o(arch)


def test_bad_row_in_a_batch_is_named(pred: Any) -> None:
    o = Oracle.from_predictor(pred, "ofa_mbv3")
    sp = get_space("ofa_mbv3")
    rng = np.random.default_rng(3)
    archs = [sp.sample(rng) for _ in range(5)]
    archs[2] = dict(archs[2], e=[5] * 20)
    with pytest.raises(EncodingError, match=r'arch 2 of the batch: .*"e"\[0\]=5 not in'):
        o.batch(archs)
    bad = np.zeros((3, 46), dtype=int)
    bad[:, :45] = 1
    bad[:, 45] = 224
    bad[1, 45] = 225
    with pytest.raises(EncodingError, match=r"arch 1 of the batch: .*\"r\"=225"):
        o.batch(bad)


def test_unflatten_rejects_ambiguity() -> None:
    from hwlat.oracle.encodings import normalize

    with pytest.raises(EncodingError, match="given both"):
        normalize("ofa_mbv3", {"ks": [3] * 20, "ks_0": 3, "e": [3] * 20, "d": [2] * 5})
    assert normalize("nb201", {"cell/1_0": "none"}) == {"cell/1_0": "none"}  # the space reads NNI cells itself
