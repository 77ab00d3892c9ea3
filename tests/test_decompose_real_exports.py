"""Decomposition of real exports: TF-'same' padding (shapes through dynamic Pad chains), reductions
and transposes that hand-written networks use, and timm models (skipped without timm)."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from hwlat.decompose import kernels_of


def _timm() -> None:
    """Skip without timm; with it, import it the way hwlat does (tolerating torchvision's ops)."""
    if importlib.util.find_spec("timm") is None:
        pytest.skip("timm is not installed (pip install 'hwlat[timm]')")
    from hwlat.zoo.timm_models import import_timm

    import_timm()


class TFSamePad(nn.Module):
    """TF-'same' padding computed from the input's shape at run time, as timm's ``pad_same`` does:
    the exported pads come from a Shape → arithmetic chain, not from constants."""

    def __init__(self, k: int, s: int, value: float = 0.0) -> None:
        super().__init__()
        self.k, self.s, self.value = k, s, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        ph = max((math.ceil(ih / self.s) - 1) * self.s + self.k - ih, 0)
        pw = max((math.ceil(iw / self.s) - 1) * self.s + self.k - iw, 0)
        return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2], value=self.value)


class TFSameNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.p1, self.c1 = TFSamePad(3, 2), nn.Conv2d(3, 16, 3, 2)
        self.p2, self.c2 = TFSamePad(3, 2), nn.Conv2d(16, 16, 3, 2, groups=16)
        self.p3, self.pool = TFSamePad(3, 2, value=-math.inf), nn.MaxPool2d(3, 2)
        self.c3 = nn.Conv2d(16, 24, 1)
        self.p4, self.avg = TFSamePad(3, 2), nn.AvgPool2d(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c1(self.p1(x)))
        x = torch.relu(self.c2(self.p2(x)))
        x = self.pool(self.p3(x))
        return self.avg(self.p4(self.c3(x)))


def test_tf_same_padding_keeps_shapes_and_fuses_zero_pads() -> None:
    d = kernels_of(TFSameNet().eval(), (1, 3, 65, 65))
    assert d.unsupported == []
    types = [k.type for k in d.kernels]
    # zero pads fold into the conv / pool after them (onnxruntime's PadFusion); the -inf pad before
    # the max pool stays a copy kernel of its own
    assert types == ["conv_bn_act", "dwconv", "concat", "pool", "conv2d", "pool"], types
    c1, dw, pad, mp, c3, avg = d.kernels
    # the kernel sees the unpadded map: its own (k-1)/2 padding gives TF-'same''s output size
    assert (c1.config["h"], c1.config["w"], c1.config["s"]) == (65, 65, 2) and any("Pad" in n for n in c1.nodes)
    assert (dw.config["h"], dw.config["c"]) == (33, 16)
    assert pad.config == {"outer": 16 * 19, "cout": 19, "inner": 1, "n_inputs": 2}  # 17x17 padded to 19x19
    assert (mp.config["h"], c3.config["h"], avg.config["h"]) == (19, 9, 9)  # the max pool reads the copy
    assert any("Pad" in n for n in avg.nodes)


class SeqFirstAttention(nn.Module):
    """Sequence-first attention ([T, 1, D], nn.MultiheadAttention's default layout)."""

    def __init__(self, d: int = 32) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, 4)
        self.fc = nn.Linear(d, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(0, 1)
        y, _ = self.attn(x, x, x, need_weights=False)
        return self.fc((x + y).transpose(0, 1).mean(1))


def test_sequence_first_transposes_are_views() -> None:
    d = kernels_of(SeqFirstAttention().eval(), (1, 20, 32))
    assert d.unsupported == []
    assert [k.type for k in d.kernels] == ["linear", "mha", "linear", "add", "global_pool", "linear"]
    assert not any(k.type == "transpose" for k in d.kernels)


class Reductions(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(36, 36)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c(x)  # [1, 8, 6, 6]
        ch = y.mean(1, keepdim=True)  # over channels
        mx = y.amax(dim=1, keepdim=True)
        t = self.fc(y.flatten(2))  # [1, 8, 36] tokens
        last = t.transpose(1, 2).mean(-1)  # [1, 36, 8] -> mean over the last axis (MLP-Mixer head)
        batched = t.reshape(2, 4, 36).transpose(1, 2)  # [2, 36, 4]: a batch of two transposes
        return ch.sum() + mx.sum() + last.sum() + batched.sum()


def test_reductions_and_batched_transposes_map_to_kernels() -> None:
    d = kernels_of(Reductions().eval(), (1, 3, 6, 6))
    assert d.unsupported == [], d.unsupported
    pools = [dict(k.config) for k in d.kernels if k.type == "global_pool"]
    assert {"h": 8, "w": 1, "c": 36, "mode": "avg"} in pools  # mean over 8 channels of 6x6
    assert {"h": 8, "w": 1, "c": 36, "mode": "max"} in pools
    # the transposes: [1, 8, 36] -> [1, 36, 8] and the batch of two [4, 36] -> [36, 4]
    tr = [dict(k.config) for k in d.kernels if k.type == "transpose"]
    assert {"a": 8, "b": 36} in tr and {"a": 2 * 4, "b": 36} in tr


def test_tf_same_padding_timm_model_decomposes_like_its_pytorch_twin() -> None:
    _timm()
    from hwlat.zoo import timm_models

    tf = kernels_of(timm_models.build("tf_mobilenetv3_small_100"), (1, 3, 224, 224))
    assert tf.unsupported == [], tf.unsupported
    pt = kernels_of(timm_models.build("mobilenetv3_small_100"), (1, 3, 224, 224))
    # the same network with TF-'same' padding: the very same kernels
    assert [(k.type, dict(k.config)) for k in tf.kernels] == [(k.type, dict(k.config)) for k in pt.kernels]
    assert sum("Pad" in n for k in tf.kernels for n in k.nodes) == 5


def test_timm_import_tolerates_torchvision_ops_and_names_unknown_models() -> None:
    _timm()
    from hwlat.errors import ConfigError
    from hwlat.zoo import timm_models

    assert "convnext_atto" in timm_models.model_names("convnext_*")
    assert timm_models.default_input_shape("convnext_atto") == (1, 3, 224, 224)
    with pytest.raises(ConfigError, match="timm has no model 'convnext_nosuch'"):
        timm_models.build("convnext_nosuch")


class MixedOps(nn.Module):
    """Operators real networks use that have no kernel type of their own."""

    def __init__(self) -> None:
        super().__init__()
        self.gn = nn.GroupNorm(4, 16)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.eca = nn.Conv1d(1, 1, 3, padding=1, bias=False)
        self.rel = nn.Parameter(torch.randn(8, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [1, 16, 6, 6]
        y = self.gn(x)
        gate = torch.sigmoid(self.eca(y.mean((2, 3)).unsqueeze(1))).transpose(1, 2).unsqueeze(-1)  # ECA
        y = y * gate.expand_as(y)
        u = self.up(y)  # [1, 8, 12, 12]
        r = torch.einsum("bchw,ck->bhwk", u, self.rel)  # [1, 12, 12, 5]
        z = F.interpolate(u, scale_factor=2.0, mode="nearest")
        return r.exp().sum() + (z / (z.abs() + 1.0)).sum()


def test_operators_without_a_type_of_their_own_map_to_kernels() -> None:
    d = kernels_of(MixedOps().eval(), (1, 16, 6, 6))
    assert d.unsupported == [], d.unsupported
    cfgs = {(k.type, *sorted(k.config.items())) for k in d.kernels}
    assert ("layernorm", ("d", 4 * 36), ("t", 4)) in cfgs  # GroupNorm(4) via InstanceNormalization
    assert ("conv_bn_act", ("act", "sigmoid"), ("cin", 1), ("cout", 1), ("groups", 1), ("h", 16), ("k", 3),
            ("residual", 0), ("s", 1), ("w", 1)) in cfgs  # the 1-D ECA conv over 16 channels
    # the transposed conv as the strided conv from its 12x12 output back to its 6x6 input
    assert ("conv2d", ("cin", 8), ("cout", 16), ("groups", 1), ("h", 12), ("k", 2), ("residual", 0), ("s", 2),
            ("w", 12)) in cfgs
    assert ("matmul", ("b", 1), ("k", 8), ("m", 144), ("n", 5)) in cfgs  # the einsum
    types = [k.type for k in d.kernels]
    assert "concat" in types and "activation" in types  # the resize copy; exp / abs
