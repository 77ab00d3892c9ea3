"""Torch building blocks several corpus families share (convolution units, MBConv, classifier heads)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from hwlat.zoo.layers import ConvBNAct, SqueezeExcitation

#: activation names used in configs → torch modules (all of them decompose to one activation unit)
ACTS: dict[str, Callable[[], nn.Module] | None] = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish, "swish": nn.SiLU, "gelu": nn.GELU,
    "hsigmoid": nn.Hardsigmoid, "sigmoid": nn.Sigmoid, "none": None,
}
NUM_CLASSES = 1000


def act(name: str) -> Callable[[], nn.Module] | None:
    return ACTS[name]


def conv_bn(cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1, a: str = "relu") -> ConvBNAct:
    """Conv (padding (k-1)//2, no bias) → BatchNorm → activation ``a`` (``"none"``: none)."""
    return ConvBNAct(cin, cout, k, s, groups=groups, act=ACTS[a])


def se(c: int, cmid: int, a: str = "relu", gate: str = "sigmoid") -> SqueezeExcitation:
    """Squeeze-excitation with 1x1 convs (decomposes to one ``se`` kernel)."""
    act_fn, gate_fn = ACTS[a], ACTS[gate]
    assert act_fn is not None and gate_fn is not None
    return SqueezeExcitation(c, cmid, act_fn, gate_fn)


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand] → depthwise kxk → [SE] → 1x1 project (+ x when shapes allow).

    ``mid == cin`` skips the expansion (MobileNetV2's t=1 blocks); ``se_mid == 0`` skips the SE.
    """

    def __init__(self, cin: int, cout: int, k: int, s: int, mid: int, a: str, se_mid: int = 0,
                 se_act: str = "relu", se_gate: str = "sigmoid") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if mid != cin:
            layers.append(conv_bn(cin, mid, 1, a=a))
        layers.append(conv_bn(mid, mid, k, s, groups=mid, a=a))
        if se_mid:
            layers.append(se(mid, se_mid, se_act, se_gate))
        layers.append(conv_bn(mid, cout, 1, a="none"))
        self.block = nn.Sequential(*layers)
        self.residual = s == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class PoolHead(nn.Module):
    """Global average pool → flatten → [hidden linear + act] → classifier."""

    def __init__(self, cin: int, hidden: int = 0, a: str = "relu", num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        layers: list[nn.Module] = []
        if hidden:
            act_fn = ACTS[a]
            layers += [nn.Linear(cin, hidden)] + ([act_fn()] if act_fn else [])
            cin = hidden
        layers.append(nn.Linear(cin, num_classes))
        self.fc = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(x), 1))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
           bias: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q·kᵀ/√d [+ bias])·v, written out as timm's non-fused path exports it (one ``mha`` kernel
    with the head reshapes around it)."""
    attn = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if bias is not None:
        attn = attn + bias
    return attn.softmax(-1) @ v


class Mlp(nn.Sequential):
    """Linear → activation → Linear on the last dimension."""

    def __init__(self, d: int, hidden: int, a: str = "gelu", out: int | None = None) -> None:
        act_fn = ACTS[a]
        assert act_fn is not None
        super().__init__(nn.Linear(d, hidden), act_fn(), nn.Linear(hidden, out or d))
