"""Every kernel type: ONNX validity, onnxruntime shapes, torch == ONNX numbers, cost model
against hand counts, and validation messages that name the bad field."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import hwlat.kernels as K
from hwlat.kernels.derived import describe
from hwlat.kernels.suites import suite

# One deliberately irregular config per type (odd sizes, groups, residuals, broadcasts).
EXAMPLES: dict[str, dict] = {
    "conv2d": dict(h=14, w=13, cin=16, cout=32, k=3, s=2, groups=2, residual=1),
    "conv_bn_act": dict(h=14, w=14, cin=16, cout=16, k=3, s=1, groups=1, act="relu6", residual=1),
    "dwconv": dict(h=15, w=15, c=24, k=5, s=2, act="hswish"),
    "linear": dict(m=7, cin=32, cout=48, act="gelu"),
    "matmul": dict(b=3, m=5, k=7, n=9),
    "pool": dict(h=15, w=15, c=8, k=3, s=2, mode="avg"),
    "batchnorm": dict(h=9, w=7, c=12),
    "global_pool": dict(h=7, w=7, c=32, mode="max"),
    "add": dict(c=16, hw=49, broadcast=1),
    "mul": dict(c=16, hw=49, broadcast=0),
    "concat": dict(outer=2, cout=11, inner=5, n_inputs=3),
    "activation": dict(c=8, hw=30, act="swish"),
    "se": dict(h=7, w=7, c=32, cmid=8, act="relu", gate="hsigmoid"),
    "channel_shuffle": dict(h=5, w=5, c=12, groups=3),
    "transpose": dict(a=6, b=10),
    "patch_embed": dict(h=32, w=30, cin=3, cout=24, p=8),
    "layernorm": dict(t=10, d=32),
    "softmax": dict(rows=12, cols=17),
    "mha": dict(t=10, d=32, heads=4),
    "mbconv": dict(h=14, w=14, cin=16, cout=16, k=5, s=1, e=4, se=1, act="hswish"),
}


def _run_ort(kernel: K.Kernel) -> tuple[list[np.ndarray], np.ndarray]:
    model = K.get(kernel.type).build_onnx(kernel.config)
    onnx.checker.check_model(model, full_check=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    assert [tuple(i.shape) for i in sess.get_inputs()] == list(kernel.inputs)
    rng = np.random.default_rng(0)
    xs = [rng.uniform(-1, 1, s).astype(np.float32) for s in kernel.inputs]
    (y,) = sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), xs, strict=True)})
    return xs, y


def _run_torch(kernel: K.Kernel, xs: list[np.ndarray]) -> np.ndarray:
    mod = K.get(kernel.type).build_torch(kernel.config)
    assert not mod.training
    with torch.no_grad():
        return mod(*[torch.from_numpy(x) for x in xs]).numpy()


def test_every_type_has_an_example() -> None:
    assert sorted(EXAMPLES) == K.names()


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_onnx_runs_with_declared_shapes_and_matches_torch(name: str) -> None:
    k = K.get(name).make(**EXAMPLES[name])
    xs, y = _run_ort(k)
    assert (y.shape,) == k.outputs and y.dtype == np.float32
    assert np.isfinite(y).all() and np.abs(y).max() > 0
    t = _run_torch(k, xs)
    np.testing.assert_allclose(y, t, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(t).max())))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_params_equal_torch_parameter_count(name: str) -> None:
    mod = K.get(name).build_torch(EXAMPLES[name])
    assert K.get(name).params(EXAMPLES[name]) == sum(p.numel() for p in mod.parameters())


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_build_is_deterministic(name: str) -> None:
    kt = K.get(name)
    assert kt.build_onnx(EXAMPLES[name]).SerializeToString() == kt.build_onnx(EXAMPLES[name]).SerializeToString()


def test_onnx_models_use_opset17_and_an_old_ir() -> None:
    m = K.get("conv_bn_act").build_onnx(EXAMPLES["conv_bn_act"])
    assert [(o.domain, o.version) for o in m.opset_import] == [("", 17)]
    assert m.ir_version == 8


def test_op_patterns_match_the_table() -> None:
    def ops(name: str, **cfg: object) -> list[str]:
        return [n.op_type for n in K.get(name).build_onnx(cfg).graph.node]

    assert ops("conv_bn_act", h=8, w=8, cin=8, cout=8, k=3, s=1, groups=1, act="relu", residual=0) == [
        "Conv", "BatchNormalization", "Relu"]
    assert ops("activation", c=4, hw=4, act="relu6") == ["Clip"]
    assert ops("activation", c=4, hw=4, act="swish") == ["Sigmoid", "Mul"]
    assert ops("activation", c=4, hw=4, act="gelu") == ["Div", "Erf", "Add", "Mul", "Mul"]
    assert ops("activation", c=4, hw=4, act="hsigmoid") == ["HardSigmoid"]
    assert ops("linear", m=1, cin=8, cout=4, act="none") == ["Gemm"]
    assert ops("linear", m=5, cin=8, cout=4, act="hswish") == ["MatMul", "Add", "HardSwish"]
    assert ops("se", h=4, w=4, c=8, cmid=2, act="relu", gate="sigmoid") == [
        "GlobalAveragePool", "Conv", "Relu", "Conv", "Sigmoid", "Mul"]
    hs = K.get("activation").build_onnx({"c": 4, "hw": 4, "act": "hsigmoid"}).graph.node[0]
    assert {a.name: round(a.f, 6) for a in hs.attribute} == {"alpha": round(1 / 6, 6), "beta": 0.5}
    mha = ops("mha", t=4, d=8, heads=2)
    assert [o for o in mha if o not in ("Reshape", "Transpose")] == ["MatMul", "Mul", "Softmax", "MatMul"]


def test_every_quick_suite_kernel_builds_runs_and_matches_torch() -> None:
    for k in suite("quick"):
        xs, y = _run_ort(k)
        assert (y.shape,) == k.outputs, k
        t = _run_torch(k, xs)
        np.testing.assert_allclose(y, t, rtol=1e-3, atol=1e-4 * max(1.0, float(np.abs(t).max())),
                                   err_msg=str(k))


# --- cost model against hand counts (1 % tolerance) ---------------------------------------
def _close(a: float, b: float, tol: float = 0.01) -> bool:
    return abs(a - b) <= tol * b


def test_flops_hand_counts() -> None:
    g = K.get
    # ResNet basic-block conv 3x3 64->64 at 56x56: 2*56*56*64*64*9
    assert _close(g("conv_bn_act").flops(dict(h=56, w=56, cin=64, cout=64, k=3, s=1, groups=1, act="relu",
                                              residual=0)), 231_211_008)
    # ResNet-50 stem 7x7/2 3->64 at 224 -> 112x112: 2*112*112*64*3*49
    assert _close(g("conv2d").flops(dict(h=224, w=224, cin=3, cout=64, k=7, s=2, groups=1, residual=0)),
                  236_027_904)
    # ResNeXt grouped 3x3 128->128, 32 groups at 56: 2*56*56*128*4*9 + 56*56*128*(bias + relu)
    assert _close(g("conv_bn_act").flops(dict(h=56, w=56, cin=128, cout=128, k=3, s=1, groups=32, act="relu",
                                              residual=0)), 28_901_376 + 802_816)
    # MobileNetV2 depthwise 3x3/2, 96 ch at 112 -> 56: 2*56*56*96*9 + 56*56*96 (bias)
    assert _close(g("dwconv").flops(dict(h=112, w=112, c=96, k=3, s=2, act="none")), 5_419_008 + 301_056)
    # ViT-B MLP fc1 197x768 -> 3072: 2*197*768*3072
    assert _close(g("linear").flops(dict(m=197, cin=768, cout=3072, act="gelu")), 929_562_624)
    # ViT-B attention core: q k^T and a v, 2*197*197*768 each, + scale and softmax (6 per score,
    # 12*197*197 scores): 119_221_248 + 2_794_248
    assert _close(g("mha").flops(dict(t=197, d=768, heads=12)), 122_015_496)
    # OFA MBv3 block 40->40 e=3 (120) k=5 at 28 with SE (cmid 32), relu:
    #   expand 2*784*40*120 + 784*120*(bias+relu) = 7_526_400 + 188_160
    #   dw     2*784*120*25 + 784*120*2           = 4_704_000 + 188_160
    #   SE     pool 94_080 + fc1 2*120*32+32+32 + fc2 2*32*120+120+3*120 + mul 94_080 = 204_064
    #   project 2*784*120*40 + 784*40 (bias) + 784*40 (residual) = 7_526_400 + 62_720
    assert _close(g("mbconv").flops(dict(h=28, w=28, cin=40, cout=40, k=5, s=1, e=3, se=1, act="relu")),
                  20_399_904)


def test_params_and_bytes_hand_counts() -> None:
    cfg = dict(h=56, w=56, cin=64, cout=64, k=3, s=1, groups=1, act="relu", residual=0)
    d = describe(K.get("conv_bn_act").make(**cfg))
    assert d["params"] == 64 * 64 * 9 + 2 * 64
    assert d["bytes_read"] == 4 * (64 * 56 * 56 + 64 * 64 * 9 + 2 * 64)
    assert d["bytes_written"] == 4 * 64 * 56 * 56 and d["out_numel"] == 64 * 56 * 56
    assert _close(d["arithmetic_intensity"], d["flops"] / (d["bytes_read"] + d["bytes_written"]), 1e-9)
    # classifier 1280 -> 1000: weight + bias
    assert K.get("linear").params(dict(m=1, cin=1280, cout=1000, act="none")) == 1_281_000


def test_output_sizes_follow_the_padding_rule() -> None:
    k = K.get("conv2d").make(h=15, w=16, cin=8, cout=8, k=3, s=2, groups=1, residual=0)
    assert k.outputs == ((1, 8, 8, 8),)
    assert K.get("pool").make(h=112, w=112, c=64, k=3, s=2, mode="max").outputs == ((1, 64, 56, 56),)
    assert K.get("pool").make(h=57, w=57, c=8, k=2, s=2, mode="avg").outputs == ((1, 8, 28, 28),)


# --- validation ---------------------------------------------------------------------------
BAD = [
    ("conv2d", dict(groups=3), "groups"),
    ("conv2d", dict(cin=16, cout=16, groups=16), "groups"),
    ("conv2d", dict(residual=2), "residual"),
    ("conv2d", dict(h=0), "h"),
    ("conv2d", dict(h=3.5), "h"),
    ("conv_bn_act", dict(act="none"), "act"),
    ("conv_bn_act", dict(act="elu"), "act"),
    ("pool", dict(ceil=2), "ceil"),
    ("pool", dict(h=4, w=4, k=1, s=2, ceil=1), "ceil"),  # the last ceil window would start past the input
    ("batchnorm", dict(c=0), "c"),
    ("dwconv", dict(c=-4), "c"),
    ("linear", dict(act="elu"), "act"),
    ("pool", dict(mode="min"), "mode"),
    ("pool", dict(h=1, w=1, k=2, s=2), "k"),
    ("global_pool", dict(mode="sum"), "mode"),
    ("add", dict(broadcast=3), "broadcast"),
    ("concat", dict(n_inputs=1), "n_inputs"),
    ("concat", dict(cout=2, n_inputs=3), "cout"),
    ("activation", dict(act="none"), "act"),
    ("se", dict(gate="relu"), "gate"),
    ("channel_shuffle", dict(groups=5), "groups"),
    ("mha", dict(heads=5), "heads"),
    ("mbconv", dict(k=4), "k"),
    ("mbconv", dict(se=2), "se"),
    ("matmul", dict(n=0), "n"),
]


@pytest.mark.parametrize(("name", "change", "field"), BAD)
def test_validate_names_the_bad_field(name: str, change: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"'{field}'"):
        K.get(name).validate({**EXAMPLES[name], **change})


def test_validate_rejects_missing_and_unknown_fields() -> None:
    cfg = dict(EXAMPLES["layernorm"])
    with pytest.raises(ValueError, match="'d'"):
        K.get("layernorm").validate({"t": cfg["t"]})
    with pytest.raises(ValueError, match="'eps'"):
        K.get("layernorm").validate({**cfg, "eps": 1})
    with pytest.raises(ValueError, match="'mode'"):
        K.get("pool").flops({**EXAMPLES["pool"], "mode": "min"})  # cost functions validate too


def test_get_unknown_type_lists_known_ones() -> None:
    with pytest.raises(KeyError, match="conv2d"):
        K.get("conv3d")


# --- added fields, new types and activations ----------------------------------------------
# ceil-mode pools at odd sizes (OFA-ResNet's AvgPool2d(s, s, 0, ceil_mode=True) and a padded max pool)
CEIL_POOLS = [dict(h=9, w=9, c=8, k=2, s=2, mode="avg", ceil=1), dict(h=15, w=14, c=8, k=3, s=2, mode="max", ceil=1),
              dict(h=13, w=13, c=4, k=3, s=2, mode="avg", ceil=1), dict(h=7, w=7, c=4, k=1, s=1, mode="avg", ceil=1)]


@pytest.mark.parametrize("cfg", CEIL_POOLS)
def test_ceil_mode_pool_runs_with_predicted_shape_and_decomposes_back(cfg: dict) -> None:
    from hwlat.decompose import kernels_of

    k = K.get("pool").make(**cfg)
    xs, y = _run_ort(k)
    assert (y.shape,) == k.outputs
    t = _run_torch(k, xs)
    np.testing.assert_allclose(y, t, rtol=1e-5, atol=1e-6)
    for runtime in ("onnxruntime", "tflite"):
        d = kernels_of(K.get("pool").build_onnx(cfg), runtime=runtime)
        assert d.unsupported == [] and d.kernels == [k], runtime


def test_ceil_changes_the_output_size_only_where_it_rounds() -> None:
    pool = K.get("pool")
    assert pool.make(h=9, w=9, c=8, k=2, s=2, mode="avg", ceil=1).outputs == ((1, 8, 5, 5),)
    assert pool.make(h=9, w=9, c=8, k=2, s=2, mode="avg", ceil=0).outputs == ((1, 8, 4, 4),)
    assert pool.make(h=8, w=8, c=8, k=2, s=2, mode="avg", ceil=1).outputs == ((1, 8, 4, 4),)
    # 3x3/2 with padding 1: floor and ceil agree at odd sizes, differ at even ones
    assert pool.make(h=15, w=16, c=8, k=3, s=2, mode="max", ceil=1).outputs == ((1, 8, 8, 9),)
    assert pool.make(h=15, w=16, c=8, k=3, s=2, mode="max", ceil=0).outputs == ((1, 8, 8, 8),)


def test_pool_ceil_defaults_to_zero_so_old_configs_validate() -> None:
    old = dict(h=56, w=56, c=256, k=2, s=2, mode="avg")  # a profile row stored before the field existed
    assert K.get("pool").validate(old) == {**old, "ceil": 0}
    assert K.get("pool").make(**old) == K.get("pool").make(**old, ceil=0)
    assert K.get("pool").flops(old) == K.get("pool").flops({**old, "ceil": 0})
    ops = K.get("pool").build_onnx(old).graph.node
    assert [a.name for a in ops[0].attribute if a.name == "ceil_mode"] == []  # built as before
    assert K.get("pool").defaults == {"ceil": 0} and K.get("conv2d").defaults == {}


def test_batchnorm_costs_and_op() -> None:
    bn = K.get("batchnorm")
    cfg = dict(h=56, w=56, c=64)
    assert [n.op_type for n in bn.build_onnx(cfg).graph.node] == ["BatchNormalization"]
    d = describe(bn.make(**cfg))
    assert d["flops"] == 2 * 64 * 56 * 56 and d["params"] == 2 * 64
    assert d["bytes_read"] == 4 * (64 * 56 * 56 + 2 * 64) and d["bytes_written"] == 4 * 64 * 56 * 56


@pytest.mark.parametrize(("act", "op"), [("tanh", "Tanh"), ("leaky_relu", "LeakyRelu")])
def test_tanh_and_leaky_relu_build_run_and_decompose(act: str, op: str) -> None:
    from hwlat.decompose import kernels_of

    cases = [("activation", dict(c=8, hw=30, act=act)),
             ("conv_bn_act", dict(h=9, w=9, cin=8, cout=16, k=3, s=2, groups=1, act=act, residual=0)),
             ("dwconv", dict(h=9, w=9, c=8, k=3, s=1, act=act)),
             ("linear", dict(m=5, cin=16, cout=8, act=act))]
    for name, cfg in cases:
        k = K.get(name).make(**cfg)
        model = K.get(name).build_onnx(cfg)
        assert op in [n.op_type for n in model.graph.node]
        xs, y = _run_ort(k)
        t = _run_torch(k, xs)
        np.testing.assert_allclose(y, t, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(t).max())))
        if name != "activation":  # a standalone [1, c, hw] activation decomposes with the token view
            assert kernels_of(model).kernels == [k], name
    lr = K.get("activation").build_onnx(dict(c=4, hw=4, act="leaky_relu")).graph.node[0]
    assert [round(a.f, 6) for a in lr.attribute if a.name == "alpha"] == [0.01]


def test_suites_sample_only_the_old_activations() -> None:
    from hwlat.kernels.sampling import SAMPLED_ACTIVATIONS

    assert set(SAMPLED_ACTIVATIONS) == set(K.ACTIVATIONS) - {"tanh", "leaky_relu"}
    acts = {k.config[f] for k in suite("quick") for f in ("act", "gate") if f in k.config}
    assert acts <= set(SAMPLED_ACTIVATIONS)
    pools = [k for k in suite("quick") if k.type == "pool"]
    assert pools and all(k.config["ceil"] == 0 for k in pools)
