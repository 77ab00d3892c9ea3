"""Decomposition golden checks on small hand-built models (torch exports and hand-written ONNX)."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from hwlat.decompose import kernels_of, runtimes
from hwlat.errors import ConfigError, ModelFileError, UnsupportedOperatorError
from hwlat.export import graph_hash, torch_to_onnx
from hwlat.kernels import get


def types(d) -> list[str]:
    return [k.type for k in d.kernels]


def cfg(d, i: int) -> dict:
    return dict(d.kernels[i].config)


def conv_bn(cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1, act: nn.Module | None = None) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, *([act] if act is not None else []))


# ---- convolutions --------------------------------------------------------------------------------
def test_conv_bn_relu_is_one_conv_bn_act() -> None:
    d = kernels_of(conv_bn(3, 16, 3, 2, act=nn.ReLU()), (1, 3, 32, 32))
    assert d.unsupported == []
    assert types(d) == ["conv_bn_act"]
    assert cfg(d, 0) == {"h": 32, "w": 32, "cin": 3, "cout": 16, "k": 3, "s": 2, "groups": 1, "act": "relu",
                         "residual": 0}
    assert d.kernels[0] == get("conv_bn_act").make(**cfg(d, 0))  # same as a space encoder would build
    assert d.kernels[0].outputs == ((1, 16, 16, 16),)


class MBConv(nn.Module):
    def __init__(self, c: int, e: int, k: int, act: type[nn.Module] = nn.ReLU6) -> None:
        super().__init__()
        self.expand = conv_bn(c, c * e, 1, act=act())
        self.dw = conv_bn(c * e, c * e, k, 1, groups=c * e, act=act())
        self.project = conv_bn(c * e, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.dw(self.expand(x)))


def test_mbconv_with_residual_onnxruntime_and_tflite() -> None:
    m = MBConv(16, 4, 5)
    d = kernels_of(m, (1, 16, 14, 14))
    assert d.unsupported == []
    assert types(d) == ["conv_bn_act", "dwconv", "conv2d"]
    assert cfg(d, 0) == {"h": 14, "w": 14, "cin": 16, "cout": 64, "k": 1, "s": 1, "groups": 1, "act": "relu6",
                         "residual": 0}
    assert cfg(d, 1) == {"h": 14, "w": 14, "c": 64, "k": 5, "s": 1, "act": "relu6"}
    assert cfg(d, 2) == {"h": 14, "w": 14, "cin": 64, "cout": 16, "k": 1, "s": 1, "groups": 1, "residual": 1}
    t = kernels_of(m, (1, 16, 14, 14), runtime="tflite")
    assert types(t) == ["conv_bn_act", "dwconv", "conv2d", "add"]
    assert cfg(t, 2)["residual"] == 0
    assert cfg(t, 3) == {"c": 16, "hw": 196, "broadcast": 0}


class ResBlock(nn.Module):
    """Basic block with a downsample branch traced *after* the main branch (torchvision order)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = conv_bn(8, 16, 3, 2, act=nn.ReLU())
        self.c2 = conv_bn(16, 16, 3)
        self.down = conv_bn(8, 16, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.c2(self.c1(x)) + self.down(x))


def test_residual_add_fuses_into_the_later_conv() -> None:
    d = kernels_of(ResBlock(), (1, 8, 16, 16))
    assert types(d) == ["conv_bn_act", "conv2d", "conv_bn_act"]
    assert cfg(d, 1)["residual"] == 0
    assert cfg(d, 2) == {"h": 16, "w": 16, "cin": 8, "cout": 16, "k": 1, "s": 2, "groups": 1, "act": "relu",
                         "residual": 1}
    t = kernels_of(ResBlock(), (1, 8, 16, 16), runtime="tflite")
    assert types(t) == ["conv_bn_act", "conv2d", "conv2d", "add", "activation"]
    assert cfg(t, 4) == {"c": 16, "hw": 64, "act": "relu"}


class Acts(nn.Module):
    """Conv → each activation form; every conv output has one reader so the activation fuses."""

    def __init__(self, act) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


@pytest.mark.parametrize("act, name", [
    (nn.ReLU(), "relu"), (nn.ReLU6(), "relu6"), (nn.Hardswish(), "hswish"), (nn.Hardsigmoid(), "hsigmoid"),
    (nn.Sigmoid(), "sigmoid"), (nn.SiLU(), "swish"), (nn.GELU(), "gelu"),
    (lambda x: x * F.relu6(x + 3) / 6, "hswish"),
    (lambda x: x * (F.relu6(x + 3) / 6), "hswish"),
    (lambda x: F.relu6(x + 3) / 6, "hsigmoid"),
    (lambda x: x * torch.sigmoid(x), "swish"),
    (lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2))), "gelu"),
    (lambda x: x * (0.5 * (1.0 + torch.erf(x / math.sqrt(2)))), "gelu"),  # the dynamo exporter's order
    (nn.Tanh(), "tanh"), (nn.LeakyReLU(), "leaky_relu"), (nn.LeakyReLU(0.2), "leaky_relu"),
])
def test_activation_forms_fuse_into_conv(act, name: str) -> None:
    d = kernels_of(Acts(act), (1, 4, 8, 8))
    assert d.unsupported == []
    assert types(d) == ["conv_bn_act"]
    assert cfg(d, 0)["act"] == name


def test_standalone_activation_and_elementwise() -> None:
    class M(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.hardswish(x)  # input is a graph input: nothing to fuse into
            return y * torch.sigmoid(y) + x

    d = kernels_of(M(), (1, 8, 4, 4))
    assert types(d) == ["activation", "activation", "add"]
    assert [cfg(d, i)["act"] for i in (0, 1)] == ["hswish", "swish"]
    assert cfg(d, 2) == {"c": 8, "hw": 16, "broadcast": 0}


def test_dwconv_without_activation_and_grouped_conv() -> None:
    m = nn.Sequential(conv_bn(8, 8, 3, 2, groups=8), conv_bn(8, 16, 3, groups=2, act=nn.ReLU()))
    d = kernels_of(m, (1, 8, 9, 9))
    assert types(d) == ["dwconv", "conv_bn_act"]
    assert cfg(d, 0) == {"h": 9, "w": 9, "c": 8, "k": 3, "s": 2, "act": "none"}
    assert cfg(d, 1)["groups"] == 2 and cfg(d, 1)["h"] == 5


def test_se_blocks_hsigmoid_and_sigmoid() -> None:
    class SE(nn.Module):
        def __init__(self, gate: nn.Module, act: nn.Module, mean: bool) -> None:
            super().__init__()
            self.fc1, self.fc2, self.gate, self.act, self.mean = nn.Conv2d(32, 8, 1), nn.Conv2d(8, 32, 1), gate, act, mean

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = x.mean((2, 3), keepdim=True) if self.mean else F.adaptive_avg_pool2d(x, 1)
            return x * self.gate(self.fc2(self.act(self.fc1(s))))

    m = nn.Sequential(conv_bn(16, 32, 3, act=nn.Hardswish()), SE(nn.Hardsigmoid(), nn.ReLU(), False))
    d = kernels_of(m, (1, 16, 10, 10))
    assert types(d) == ["conv_bn_act", "se"]
    assert cfg(d, 1) == {"h": 10, "w": 10, "c": 32, "cmid": 8, "act": "relu", "gate": "hsigmoid"}
    m = nn.Sequential(conv_bn(16, 32, 3, act=nn.SiLU()), SE(nn.Sigmoid(), nn.SiLU(), True))
    d = kernels_of(m, (1, 16, 10, 10))
    assert types(d) == ["conv_bn_act", "se"]
    assert cfg(d, 1) == {"h": 10, "w": 10, "c": 32, "cmid": 8, "act": "swish", "gate": "sigmoid"}


def test_channel_shuffle_pools_concat() -> None:
    class M(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x.reshape(1, 4, 6, 8, 8).transpose(1, 2).reshape(1, 24, 8, 8)
            y = torch.cat([F.max_pool2d(y, 3, 2, 1), F.avg_pool2d(y, 2, 2)], dim=1)
            return torch.flatten(F.adaptive_max_pool2d(y, 1), 1)

    d = kernels_of(M(), (1, 24, 8, 8))
    assert d.unsupported == []
    assert types(d) == ["channel_shuffle", "pool", "pool", "concat", "global_pool"]
    assert cfg(d, 0) == {"h": 8, "w": 8, "c": 24, "groups": 4}
    assert cfg(d, 1) == {"h": 8, "w": 8, "c": 24, "k": 3, "s": 2, "mode": "max", "ceil": 0}
    assert cfg(d, 2)["mode"] == "avg"
    assert cfg(d, 3) == {"outer": 1, "cout": 48, "inner": 16, "n_inputs": 2}
    assert cfg(d, 4) == {"h": 4, "w": 4, "c": 48, "mode": "max"}


# ---- transformers --------------------------------------------------------------------------------
class Attn(nn.Module):
    def __init__(self, d: int = 32, h: int = 4, sdpa: bool = True, manual_ln: bool = False) -> None:
        super().__init__()
        self.h, self.sdpa, self.manual_ln = h, sdpa, manual_ln
        self.qkv, self.proj, self.ln = nn.Linear(d, 3 * d), nn.Linear(d, d), nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        if self.manual_ln:
            u = x.mean(-1, keepdim=True)
            v = (x - u).pow(2).mean(-1, keepdim=True)
            y = (x - u) / torch.sqrt(v + 1e-5) * self.ln.weight + self.ln.bias
        else:
            y = self.ln(x)
        q, k, v = self.qkv(y).reshape(b, n, 3, self.h, c // self.h).permute(2, 0, 3, 1, 4).unbind(0)
        if self.sdpa:
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            o = ((q @ k.transpose(-2, -1)) * (c // self.h) ** -0.5).softmax(-1) @ v
        return x + self.proj(o.transpose(1, 2).reshape(b, n, c))


@pytest.mark.parametrize("sdpa", [True, False])
@pytest.mark.parametrize("manual_ln", [False, True])
def test_attention_block(sdpa: bool, manual_ln: bool) -> None:
    d = kernels_of(Attn(sdpa=sdpa, manual_ln=manual_ln), (1, 10, 32))
    assert d.unsupported == []
    assert types(d) == ["layernorm", "linear", "mha", "linear", "add"]
    assert cfg(d, 0) == {"t": 10, "d": 32}
    assert cfg(d, 1) == {"m": 10, "cin": 32, "cout": 96, "act": "none"}
    assert cfg(d, 2) == {"t": 10, "d": 32, "heads": 4}
    assert cfg(d, 4) == {"c": 32, "hw": 10, "broadcast": 0}


def test_mlp_gelu_matmul_softmax_transpose() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(16, 64), nn.Linear(64, 16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.fc2(F.gelu(self.fc1(x)))
            return (y @ x.transpose(1, 2)).softmax(-1)

    d = kernels_of(M(), (1, 8, 16))
    assert d.unsupported == []
    assert types(d) == ["linear", "linear", "transpose", "matmul", "softmax"]
    assert cfg(d, 0) == {"m": 8, "cin": 16, "cout": 64, "act": "gelu"}
    assert cfg(d, 2) == {"a": 8, "b": 16}
    assert cfg(d, 3) == {"b": 1, "m": 8, "k": 16, "n": 8}
    assert cfg(d, 4) == {"rows": 8, "cols": 8}


# ---- hand-written ONNX: unfolded BN, custom ops, inputs of every kind --------------------------------
def _conv_bn_relu_custom(custom: bool = True, batch: int | str = "N") -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")]
    for n, v in (("g", 1.0), ("b", 0.0), ("mu", 0.0), ("var", 1.0)):
        inits.append(numpy_helper.from_array(np.full(8, v, np.float32), n))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("BatchNormalization", ["c", "g", "b", "mu", "var"], ["bn"], name="bn"),
             helper.make_node("Relu", ["bn"], ["r"], name="relu")]
    out = "r"
    if custom:
        nodes += [helper.make_node("MyOp", ["r"], ["m"], domain="com.example", name="my1"),
                  helper.make_node("MyOp", ["m"], ["m2"], domain="com.example", name="my2"),
                  helper.make_node("Relu", ["m2"], ["y"], name="relu2")]
        out = "y"
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("com.example", 1)] if custom else [])
    return helper.make_model(g, opset_imports=opsets)


def test_unfolded_bn_symbolic_batch_and_all_input_kinds(tmp_path) -> None:
    m = _conv_bn_relu_custom(custom=False)
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    for src in (m, m.SerializeToString(), p, str(p)):
        d = kernels_of(src)
        assert types(d) == ["conv_bn_act"] and d.unsupported == []
        assert d.kernels[0].nodes == ("conv", "bn", "relu")
        assert d.input_shapes == [[1, 3, 16, 16]]
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"  # caller's proto untouched


def test_unknown_operator_is_reported_by_name_and_strict_raises() -> None:
    m = _conv_bn_relu_custom()
    d = kernels_of(m)
    assert types(d) == ["conv_bn_act"]  # the mapped part still decomposes
    ops = {(u["domain"], u["op_type"]): u for u in d.unsupported}
    assert ops[("com.example", "MyOp")]["count"] == 2
    assert ops[("com.example", "MyOp")]["nodes"] == ["my1", "my2"]
    assert ("", "Relu") in ops  # after the custom op the shape is unknown: reported, not dropped
    assert d.to_dict()["unsupported"] == d.unsupported
    with pytest.raises(UnsupportedOperatorError) as e:
        kernels_of(m, strict=True)
    assert "com.example::MyOp" in e.value.operators
    assert "MyOp" in str(e.value) and "\n" not in str(e.value)


def test_truncated_and_invalid_files_raise_model_file_error(tmp_path) -> None:
    data = torch_to_onnx(MBConv(8, 2, 3), (1, 8, 8, 8)).SerializeToString()
    assert types(kernels_of(data)) == ["conv_bn_act", "dwconv", "conv2d"]
    cuts = sorted(set(np.linspace(1, len(data) - 1, 40).astype(int).tolist()))
    for cut in cuts:
        with pytest.raises(ModelFileError):
            kernels_of(data[:cut])
    p = tmp_path / "trunc.onnx"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="trunc.onnx"):
        kernels_of(p)
    with pytest.raises(ModelFileError, match="not found"):
        kernels_of(tmp_path / "missing.onnx")
    with pytest.raises(ModelFileError):
        kernels_of(b"")
    with pytest.raises(ModelFileError):
        kernels_of(b"this is not a protobuf at all \xff\xfe")
    with pytest.raises(ModelFileError, match="input_shape"):
        kernels_of(nn.ReLU())


def test_absurd_declared_shape_is_refused() -> None:
    m = _conv_bn_relu_custom(custom=False, batch=1)
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 100000
    m.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 100000
    with pytest.raises(ModelFileError, match="2\\^31"):
        kernels_of(m)


def test_runtime_registry() -> None:
    assert {"onnxruntime", "tflite"} <= set(runtimes())
    with pytest.raises(ConfigError, match="onnxruntime"):
        kernels_of(_conv_bn_relu_custom(custom=False), runtime="no-such-runtime")


class PreAct(nn.Module):
    """Pre-activation block (BN → ReLU → conv), a BN after a pool, a BN on a conv output that is also
    read elsewhere, and Tanh / LeakyReLU both after convs and standalone."""

    def __init__(self) -> None:
        super().__init__()
        self.bn0, self.bn1, self.bn2 = nn.BatchNorm2d(8), nn.BatchNorm2d(16), nn.BatchNorm2d(16)
        self.conv1 = nn.Conv2d(8, 16, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(16, 16, 3, 2, 1)
        self.conv3 = nn.Conv2d(16, 16, 1)
        for bn in (self.bn0, self.bn1, self.bn2):  # non-trivial statistics: nothing folds away
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.relu(self.bn0(x)))  # BN on the graph input: standalone
        y = torch.tanh(self.conv2(y))  # conv + Tanh: fused
        z = self.bn1(F.max_pool2d(y, 2, 2, ceil_mode=True))  # BN after a ceil-mode pool: standalone
        z = F.leaky_relu(self.conv3(z), 0.1)  # conv + LeakyRelu: fused
        c = self.conv3(z)
        w = self.bn2(c) + c  # the conv output has two readers: BN does not fuse
        return torch.tanh(F.leaky_relu(w))  # standalone activations


@pytest.mark.parametrize("runtime", ["onnxruntime", "tflite"])
def test_standalone_batchnorm_tanh_leaky_relu(runtime: str) -> None:
    d = kernels_of(PreAct().eval(), (1, 8, 9, 9), runtime=runtime, strict=True)
    assert d.unsupported == []
    assert types(d) == ["batchnorm", "activation", "conv2d", "conv_bn_act", "pool", "batchnorm", "conv_bn_act",
                        "conv2d", "batchnorm", "add", "activation", "activation"]
    assert cfg(d, 0) == {"h": 9, "w": 9, "c": 8}
    assert cfg(d, 1) == {"c": 8, "hw": 81, "act": "relu"}
    assert cfg(d, 3)["act"] == "tanh" and cfg(d, 3)["s"] == 2 and cfg(d, 3)["h"] == 9
    assert cfg(d, 4) == {"h": 5, "w": 5, "c": 16, "k": 2, "s": 2, "mode": "max", "ceil": 1}
    assert d.kernels[4].outputs == ((1, 16, 3, 3),)  # ceil(5 / 2)
    assert cfg(d, 5) == {"h": 3, "w": 3, "c": 16}
    assert cfg(d, 6)["act"] == "leaky_relu" and cfg(d, 6)["k"] == 1
    assert cfg(d, 8) == {"h": 3, "w": 3, "c": 16}
    assert [cfg(d, i)["act"] for i in (10, 11)] == ["leaky_relu", "tanh"]
    for k in d.kernels:
        assert get(k.type).make(**k.config) == k


def test_batchnorm1d_maps_to_batchnorm() -> None:
    m = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.BatchNorm1d(32)).eval()
    d = kernels_of(m, (1, 16))
    assert types(d) == ["linear", "batchnorm"]
    assert cfg(d, 1) == {"h": 1, "w": 1, "c": 32}


# ---- export --------------------------------------------------------------------------------------
def test_export_folds_bn_and_hash_is_structural(tmp_path) -> None:
    m1 = MBConv(8, 2, 3)
    p = tmp_path / "a.onnx"
    a = torch_to_onnx(m1, (1, 8, 8, 8), p)
    assert p.is_file() and "BatchNormalization" not in {n.op_type for n in a.graph.node}
    assert m1.training  # mode restored
    b = torch_to_onnx(MBConv(8, 2, 3), (1, 8, 8, 8))  # other random weights: same structure
    assert graph_hash(a) == graph_hash(b) == graph_hash(onnx.load(str(p)))
    assert graph_hash(a) != graph_hash(torch_to_onnx(MBConv(8, 2, 5), (1, 8, 8, 8)))
    assert graph_hash(a) != graph_hash(torch_to_onnx(MBConv(8, 2, 3), (1, 8, 16, 16)))
    with pytest.raises(ModelFileError):
        torch_to_onnx(m1, (1, 0, 8))


def test_instance_a_kernel_type_cannot_represent_is_reported() -> None:
    # k=4 with explicit pads 2 on a 1x1 map: valid ONNX, but beyond the pool type's (k-1)//2 padding
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[4, 4], pads=[2, 2, 2, 2], name="odd_pool"),
             helper.make_node("Relu", ["p"], ["y"], name="r")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 1, 1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    d = kernels_of(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    assert types(d) == ["activation"]
    assert [(u["op_type"], u["node"]) for u in d.unsupported] == [("MaxPool", "odd_pool")]
    assert d.unsupported[0]["reason"].startswith("as pool:")


def test_dynamic_batch_export_decomposes_like_static() -> None:
    import io

    m = Attn(sdpa=False)
    buf = io.BytesIO()
    torch.onnx.export(m.eval(), (torch.zeros(1, 10, 32),), buf, dynamo=False, opset_version=17,
                      input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    d = kernels_of(buf.getvalue())
    assert d.input_shapes == [[1, 10, 32]] and d.unsupported == []
    assert d.kernels == kernels_of(m, (1, 10, 32)).kernels
