"""Zoo models: they build, export, run in onnxruntime like in torch, and decompose with every operator
mapped; ResNet-18's kernel FLOPs match a by-hand count."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from hwlat import zoo
from hwlat.decompose import kernels_of
from hwlat.errors import ConfigError
from hwlat.export import graph_hash, torch_to_onnx
from hwlat.kernels import get

# Parameter counts of the torchvision / timm (ViT-Ti/16) reference models: the structure is the same.
REFERENCE_PARAMS = {"resnet18": 11_689_512, "resnet50": 25_557_032, "mobilenet_v2": 3_504_872,
                    "mobilenet_v3_large": 5_483_032, "mobilenet_v3_small": 2_542_856,
                    "efficientnet_b0": 5_288_548, "mnasnet1_0": 4_383_312, "vit_tiny": 5_717_416}


@pytest.fixture(scope="module")
def exported() -> dict[str, tuple[torch.nn.Module, tuple[int, ...], onnx.ModelProto]]:
    """Every zoo model built and exported once for this module."""
    out = {}
    for name in zoo.names():
        m, shape = zoo.get(name)
        out[name] = (m, shape, torch_to_onnx(m, shape))
    return out


@pytest.fixture(scope="module")
def decomposed(exported) -> dict:
    return {name: kernels_of(p) for name, (_, _, p) in exported.items()}


def test_registry() -> None:
    assert set(zoo.names()) == set(REFERENCE_PARAMS)
    with pytest.raises(ConfigError, match="resnet18"):
        zoo.get("resnet19")


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_model_matches_reference_structure(name: str, exported) -> None:
    m, shape, _ = exported[name]
    assert not m.training and shape == (1, 3, 224, 224)
    assert sum(p.numel() for p in m.parameters()) == REFERENCE_PARAMS[name]


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_export_runs_in_onnxruntime_like_torch(name: str, exported) -> None:
    m, shape, proto = exported[name]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape == (1, 1000)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_every_operator_maps_to_a_kernel(name: str, decomposed) -> None:
    d = decomposed[name]
    assert d.unsupported == [], d.unsupported
    for k in d.kernels:  # configs are valid for the kernel types and carry graph node names
        assert get(k.type).validate(k.config) == dict(k.config)
        assert k.nodes


def test_kernel_counts(decomposed) -> None:
    counts = {n: collections.Counter(k.type for k in d.kernels) for n, d in decomposed.items()}
    # ResNet-18: stem conv, maxpool, 16 block convs (8 of them end a block: 5 take the residual Add,
    # 3 blocks have a downsample conv that takes it instead), GAP, FC.
    assert counts["resnet18"] == {"conv_bn_act": 17, "conv2d": 3, "pool": 1, "global_pool": 1, "linear": 1}
    # MobileNetV2: 17 blocks (16 with expansion), 10 residual projections.
    mb2 = counts["mobilenet_v2"]
    assert mb2["dwconv"] == 17 and mb2["conv2d"] == 17 and mb2["conv_bn_act"] == 1 + 16 + 1
    assert sum(k.config.get("residual", 0) for k in decomposed["mobilenet_v2"].kernels) == 10
    assert counts["mobilenet_v3_large"]["se"] == 8 and counts["mobilenet_v3_small"]["se"] == 9
    assert counts["efficientnet_b0"]["se"] == 16 and counts["efficientnet_b0"]["dwconv"] == 16
    se_b0 = [k.config for k in decomposed["efficientnet_b0"].kernels if k.type == "se"]
    assert {(c["act"], c["gate"]) for c in se_b0} == {("swish", "sigmoid")}
    se_v3 = [k.config for k in decomposed["mobilenet_v3_large"].kernels if k.type == "se"]
    assert {(c["act"], c["gate"]) for c in se_v3} == {("relu", "hsigmoid")}
    assert counts["vit_tiny"]["mha"] == 12 and counts["vit_tiny"]["layernorm"] == 25
    assert counts["vit_tiny"]["linear"] == 12 * 4 + 1


def test_resnet18_flops_match_hand_count(decomposed) -> None:
    # (h_out, w_out, cin, cout, k) of every conv of ResNet-18 at 224x224, then the classifier.
    convs = [(112, 112, 3, 64, 7)]
    h, cin = 56, 64
    for stage, cout in enumerate((64, 128, 256, 512)):
        if stage:
            h //= 2
            convs += [(h, h, cin, cout, 3), (h, h, cout, cout, 3), (h, h, cin, cout, 1)]  # + downsample
        else:
            convs += [(h, h, cin, cout, 3), (h, h, cout, cout, 3)]
        convs += [(h, h, cout, cout, 3), (h, h, cout, cout, 3)]
        cin = cout
    macs = sum(ho * wo * ci * co * k * k for ho, wo, ci, co, k in convs) + 512 * 1000
    assert len(convs) == 20 and abs(macs / 1e9 - 1.814) < 0.001  # the well-known 1.82 GMACs
    flops = sum(get(k.type).flops(k.config) for k in decomposed["resnet18"].kernels)
    assert flops == pytest.approx(2 * macs, rel=0.01)


def test_tflite_rules_split_residuals(exported) -> None:
    d = kernels_of(exported["mobilenet_v2"][2], runtime="tflite")
    assert d.unsupported == []
    assert collections.Counter(k.type for k in d.kernels)["add"] == 10
    assert not any(k.config.get("residual") for k in d.kernels)


def test_decompose_torch_module_directly_equals_exported(exported, decomposed) -> None:
    m, shape, proto = exported["mobilenet_v3_small"]
    assert kernels_of(m, shape).kernels == decomposed["mobilenet_v3_small"].kernels
    assert graph_hash(proto) == graph_hash(torch_to_onnx(zoo.get("mobilenet_v3_small", seed=1)[0], shape))
