"""The CRITICAL contract: ``space.encode(arch)`` (no torch/ONNX) equals the decomposition of the real
exported torch model, ``kernels_of(space.build(arch), space.input_shape(arch)).kernels``."""

from __future__ import annotations

import numpy as np
import pytest

from hwlat.decompose import kernels_of
from hwlat.spaces import get_space


def _small(name: str, a: object, rng: np.random.Generator) -> object:
    """Cheaper variants for the fast test: lower resolutions (the structure is what is checked)."""
    if name == "ofa_resnet50":
        return dict(a, r=int(rng.choice([128, 132])))  # 132: odd sizes → ceil-mode pools
    if name == "vit":
        return dict(a, r=int(rng.choice([32, 48, 64])))
    if name == "ofa_mbv3":
        return dict(a, r=int(rng.choice([128, 132, 140])))
    return a


def _check(name: str, arch: object) -> None:
    sp = get_space(name)
    dec = kernels_of(sp.build(arch), sp.input_shape(arch))
    assert dec.unsupported == [], dec.unsupported
    enc = sp.encode(arch)
    got = [(k.type, dict(k.config), k.inputs, k.outputs) for k in dec.kernels]
    want = [(k.type, dict(k.config), k.inputs, k.outputs) for k in enc]
    if got != want:
        diff = next(i for i, (g, w) in enumerate(zip(got + [None] * 999, want + [None] * 999)) if g != w)
        raise AssertionError(f"{name} {sp.key(arch)}: kernel {diff} differs: decomposed "
                             f"{got[diff] if diff < len(got) else None} vs encoded "
                             f"{want[diff] if diff < len(want) else None} ({len(got)} vs {len(want)} kernels)")


SPECIAL = {
    "nb201": ["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
              "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
              "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|",
              "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"],
    "fbnet": [[8] * 22, [1] * 22, [5] * 22],
    "ofa_mbv3": [{"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224, "wid": 1.2},
                 {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128}],
}


@pytest.mark.parametrize("name", ["ofa_mbv3", "nb201", "fbnet", "ofa_resnet50", "vit"])
def test_encode_equals_decomposition(name: str) -> None:
    sp = get_space(name)
    rng = np.random.default_rng(2024)
    n = 20
    archs = [_small(name, sp.sample(rng), rng) for _ in range(n)] + SPECIAL.get(name, [])
    for a in archs:
        _check(name, a)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ofa_mbv3", "nb201", "fbnet", "ofa_resnet50", "vit"])
def test_encode_equals_decomposition_100(name: str) -> None:
    sp = get_space(name)
    rng = np.random.default_rng(7)
    for _ in range(100):
        _check(name, sp.sample(rng))


@pytest.mark.parametrize("name", ["ofa_mbv3", "nb201", "fbnet", "ofa_resnet50", "vit"])
def test_build_forward_runs(name: str) -> None:
    import torch

    sp = get_space(name)
    a = _small(name, sp.sample(np.random.default_rng(3)), np.random.default_rng(3))
    m = sp.build(a)
    assert not m.training
    with torch.no_grad():
        y = m(torch.randn(sp.input_shape(a)))
    assert y.shape[0] == 1 and y.ndim == 2 and torch.isfinite(y).all()


@pytest.mark.parametrize("r", [132, 136, 140])
def test_ofa_resnet50_ceil_pools_at_odd_sizes(r: int) -> None:
    """At resolutions giving odd maps before a stride-2 block the shortcut AvgPool(ceil_mode) kernels
    carry ceil=1, the encoder equals the decomposition, and every pool's output shape is the real one."""
    import onnx

    from hwlat.export import torch_to_onnx

    sp = get_space("ofa_resnet50")
    arch = dict(sp.sample(np.random.default_rng(r)), r=r)
    proto = onnx.shape_inference.infer_shapes(torch_to_onnx(sp.build(arch), sp.input_shape(arch)))
    shapes = {vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
              for vi in list(proto.graph.value_info) + list(proto.graph.output)}
    out_of = {n.name: shapes.get(n.output[0]) for n in proto.graph.node}
    dec = kernels_of(proto)
    assert dec.unsupported == []
    assert dec.kernels == sp.encode(arch)
    pools = [k for k in dec.kernels if k.type == "pool"]
    odd = [k for k in pools if k.config["ceil"] == 1 and k.config["s"] == 2 and k.config["h"] % 2 == 1]
    assert odd, "no ceil-mode pool at an odd size: pick another resolution"
    for k in pools:
        assert k.config["ceil"] == int(k.config["mode"] == "avg")  # stem maxpool floor, shortcuts ceil
        assert k.outputs == (out_of[k.nodes[0]],), k


def test_space_kernel_items_are_the_distinct_kernels_of_the_sampled_subnets(tmp_path, monkeypatch) -> None:
    import numpy as np

    from hwlat.profiling.sources import space_kernel_items, subnet_kernels
    from hwlat.spaces import get_space

    monkeypatch.setenv("HWLAT_PROFILES", str(tmp_path))
    space = get_space("nb201")
    rng = np.random.default_rng(3)
    archs = [space.canonical(space.sample(rng)) for _ in range(3)]
    want = {k.key() for a in archs for k in space.encode(a)}
    got = subnet_kernels("nb201", archs, "onnxruntime")
    assert [k.key() for k in got] == list(dict.fromkeys(k.key() for a in archs for k in space.encode(a)))
    assert {k.key() for k in got} == want
    items = space_kernel_items("nb201", 3, "onnxruntime", seed=3)
    assert {(it.kernel_type, tuple(sorted(it.config.items()))) for it in items} == \
        {(k.type, tuple(sorted(k.config.items()))) for k in got}
    assert all(it.file.is_file() and it.table == "kernels" for it in items)


def test_fresh_exports_of_a_subnet_are_the_same_file(tmp_path, monkeypatch) -> None:
    # A model's store identity is its file's sha256: two fresh profile roots must agree on it, or the
    # same subnet would be a new item (and land on another side of the held-out split) on each machine.
    import torch

    from hwlat.profiling.sources import space_items

    shas = []
    for i in range(2):
        monkeypatch.setenv("HWLAT_PROFILES", str(tmp_path / f"root{i}"))
        torch.manual_seed(i)  # the caller's RNG state must not leak into the weights
        shas.append([it.sha256 for it in space_items("ofa_mbv3", 2, "onnxruntime", seed=5)])
    assert shas[0] == shas[1]
    assert len(set(shas[0])) == 2
