"""Torch building blocks shared by the built-in spaces (imported only inside ``build()``).

Each block is written so that its ONNX export fuses into exactly the kernels that the spaces'
encoders list (docs/kernels.md): Conv+BN[+Add]+act, depthwise Conv+BN+act, SE as
GlobalAveragePool→Conv→act→Conv→gate→Mul, and so on.
"""

from __future__ import annotations

import torch
import torch.nn as nn

_ACTS = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hswish": nn.Hardswish,
    "hsigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
}


def act(name: str) -> nn.Module:
    """Activation module by kernel-schema name ('none' gives Identity)."""
    if name == "none":
        return nn.Identity()
    if name == "swish":
        return nn.SiLU()
    return _ACTS[name]()


class ConvBNAct(nn.Module):
    """Conv (same-style padding k//2) + optional BN + activation; optional residual added before the act."""

    def __init__(self, cin: int, cout: int, k: int, s: int = 1, groups: int = 1, act_name: str = "none",
                 bn: bool = True, bias: bool = False, pad: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, k // 2 if pad is None else pad, groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(cout) if bn else nn.Identity()
        self.act = act(act_name)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        y = self.bn(self.conv(x))
        if residual is not None:
            y = y + residual
        return self.act(y)


class SE(nn.Module):
    """Squeeze-excitation: GAP → 1x1 conv (bias) → act → 1x1 conv (bias) → gate → x * gate."""

    def __init__(self, c: int, cmid: int, act_name: str = "relu", gate: str = "hsigmoid") -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(c, cmid, 1, 1, 0, bias=True)
        self.act = act(act_name)
        self.expand = nn.Conv2d(cmid, c, 1, 1, 0, bias=True)
        self.gate = act(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class MBConv(nn.Module):
    """Inverted bottleneck: [1x1 expand + BN + act] → dw kxk + BN + act → [SE] → 1x1 project + BN [+ x]."""

    def __init__(self, cin: int, cout: int, k: int, s: int, mid: int, act_name: str, se_mid: int = 0,
                 expand: bool = True, residual: bool | None = None) -> None:
        super().__init__()
        self.expand = ConvBNAct(cin, mid, 1, 1, 1, act_name) if expand else None
        self.dw = ConvBNAct(mid, mid, k, s, mid, act_name)
        self.se = SE(mid, se_mid) if se_mid else None
        self.project = ConvBNAct(mid, cout, 1, 1, 1, "none")
        self.residual = (s == 1 and cin == cout) if residual is None else residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.dw(y)
        if self.se is not None:
            y = self.se(y)
        return self.project(y, x if self.residual else None)


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return x.reshape(b, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class Head(nn.Module):
    """Global average pool → flatten → [1x1 conv + act on the pooled map] → linear classifier."""

    def __init__(self, cin: int, n_classes: int, mix: int = 0, mix_act: str = "hswish") -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.mix = ConvBNAct(cin, mix, 1, 1, 1, mix_act, bn=False, bias=False) if mix else None
        self.fc = nn.Linear(mix or cin, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        if self.mix is not None:
            x = self.mix(x)
        return self.fc(torch.flatten(x, 1))


class Sequential(nn.Module):
    """A plain list of blocks applied in order (avoids nn.Sequential's single-arg restriction)."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return x


def finish(model: nn.Module, seed: int = 0) -> nn.Module:
    """Eval mode with deterministic random weights (BN statistics randomised so folding is non-trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()
