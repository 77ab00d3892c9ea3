"""Torch modules mirroring the kernel types' ONNX graphs (imports torch: import lazily).

Every module takes the same numpy weights as the ONNX builder, so both compute the same
numbers for a config. Modules are in eval mode, traceable, and scriptable except ``Concat``
(which takes its parts as separate arguments, like every module: ``m(*inputs)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _load(p: Tensor, a: np.ndarray) -> None:
    with torch.no_grad():
        p.copy_(torch.from_numpy(np.ascontiguousarray(a)).reshape(p.shape))


def act_fn(x: Tensor, act: str) -> Tensor:
    """The activation with the same formula as the ONNX pattern (scriptable)."""
    if act == "relu":
        return F.relu(x)
    if act == "relu6":
        return torch.clamp(x, 0.0, 6.0)
    if act == "hswish":
        return F.hardswish(x)
    if act == "hsigmoid":
        return F.hardsigmoid(x)
    if act == "sigmoid":
        return torch.sigmoid(x)
    if act == "swish":
        return x * torch.sigmoid(x)
    if act == "gelu":
        return F.gelu(x)
    if act == "tanh":
        return torch.tanh(x)
    if act == "leaky_relu":
        return F.leaky_relu(x, 0.01)  # = onnx_graph.LEAKY_RELU_ALPHA
    return x


class Act(nn.Module):
    def __init__(self, act: str) -> None:
        super().__init__()
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        return act_fn(x, self.act)


def _batchnorm(c: int, w: Mapping[str, np.ndarray]) -> nn.BatchNorm2d:
    """BatchNorm2d holding the ONNX builder's scale, bias, mean and var."""
    bn = nn.BatchNorm2d(c, eps=1e-5)
    for p, key in ((bn.weight, "scale"), (bn.bias, "bias"), (bn.running_mean, "mean"), (bn.running_var, "var")):
        _load(p, w[key])
    return bn


class ConvBN(nn.Module):
    """Conv (no bias) → BatchNorm → [+ r] → activation."""

    def __init__(self, cin: int, cout: int, k: int, s: int, groups: int, act: str, residual: bool,
                 w: Mapping[str, np.ndarray]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False)
        self.bn = _batchnorm(cout, w)
        self.act = act
        self.residual = residual
        _load(self.conv.weight, w["w"])
        self.eval()

    def forward(self, x: Tensor, r: Optional[Tensor] = None) -> Tensor:  # noqa: UP045 (TorchScript)
        y = self.bn(self.conv(x))
        if r is not None:
            y = y + r
        return act_fn(y, self.act)


class Linear(nn.Module):
    def __init__(self, cin: int, cout: int, act: str, w: Mapping[str, np.ndarray]) -> None:
        super().__init__()
        self.fc = nn.Linear(cin, cout)
        self.act = act
        _load(self.fc.weight, w["w"])
        _load(self.fc.bias, w["b"])
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return act_fn(self.fc(x), self.act)


class MatMul(nn.Module):
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.matmul(a, b)


class Pool(nn.Module):
    def __init__(self, k: int, s: int, mode: str, ceil: bool = False) -> None:
        super().__init__()
        p = (k - 1) // 2
        # ONNX AveragePool excludes padding from the count by default. Without padding (p == 0) the
        # count mode changes no number, so a ceil-mode pool then takes torch's default (include),
        # which is what ceil-mode models (OFA-ResNet's AvgPool2d(s, s, 0, ceil_mode=True)) use and
        # what litert-torch lowers differently (PAD + AVERAGE_POOL_2D + MUL instead of one op).
        include = bool(ceil) and p == 0
        self.pool = (nn.MaxPool2d(k, s, p, ceil_mode=bool(ceil)) if mode == "max"
                     else nn.AvgPool2d(k, s, p, ceil_mode=bool(ceil), count_include_pad=include))

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(x)


class GlobalPool(nn.Module):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "max":
            return F.adaptive_max_pool2d(x, 1)
        return F.adaptive_avg_pool2d(x, 1)


class BatchNorm(nn.Module):
    """Eval-mode BatchNorm2d with the ONNX builder's scale, bias, mean and var."""

    def __init__(self, c: int, w: Mapping[str, np.ndarray]) -> None:
        super().__init__()
        self.bn = _batchnorm(c, w)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(x)


class Binary(nn.Module):
    def __init__(self, op: str) -> None:
        super().__init__()
        self.op = op

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return a + b if self.op == "add" else a * b


class Concat(nn.Module):
    """Called with the parts as separate arguments, like every kernel module (trace, not script)."""

    def forward(self, *xs: Tensor) -> Tensor:
        return torch.cat(xs, dim=1)


class SE(nn.Module):
    """GlobalAvgPool → 1x1 conv → act → 1x1 conv → gate → × x."""

    def __init__(self, c: int, cmid: int, act: str, gate: str, w: Mapping[str, np.ndarray]) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, cmid, 1)
        self.fc2 = nn.Conv2d(cmid, c, 1)
        self.act = act
        self.gate = gate
        for p, key in ((self.fc1.weight, "w1"), (self.fc1.bias, "b1"), (self.fc2.weight, "w2"),
                       (self.fc2.bias, "b2")):
            _load(p, w[key])
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        s = act_fn(self.fc1(F.adaptive_avg_pool2d(x, 1)), self.act)
        return x * act_fn(self.fc2(s), self.gate)


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        x = x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2)
        return x.reshape(n, c, h, w)


class Transpose(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2)


class LayerNorm(nn.Module):
    def __init__(self, d: int, w: Mapping[str, np.ndarray]) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(d, eps=1e-5)
        _load(self.ln.weight, w["scale"])
        _load(self.ln.bias, w["bias"])
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.ln(x)


class Softmax(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(x, dim=-1)


class MHA(nn.Module):
    """Attention core on projected q, k, v ``[1, T, D]``: softmax(q kᵀ · scale) v."""

    def __init__(self, heads: int, d: int) -> None:
        super().__init__()
        self.heads = heads
        self.dh = d // heads
        self.scale = float(self.dh) ** -0.5

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        b, t, d = q.shape
        q = q.reshape(b, t, self.heads, self.dh).transpose(1, 2)
        k = k.reshape(b, t, self.heads, self.dh).permute(0, 2, 3, 1)
        v = v.reshape(b, t, self.heads, self.dh).transpose(1, 2)
        a = torch.softmax(torch.matmul(q, k) * self.scale, dim=-1)
        return torch.matmul(a, v).transpose(1, 2).reshape(b, t, d)


class MBConv(nn.Module):
    """[1x1 expand+BN+act] → dw kxk+BN+act → [SE] → 1x1 project+BN → [+ x]."""

    def __init__(self, cin: int, cout: int, k: int, s: int, cexp: int, cmid: int, act: str,
                 w: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        super().__init__()
        self.expand = ConvBN(cin, cexp, 1, 1, 1, act, False, w["expand"]) if "expand" in w else None
        self.dw = ConvBN(cexp, cexp, k, s, cexp, act, False, w["dw"])
        self.se = SE(cexp, cmid, "relu", "hsigmoid", w["se"]) if "se" in w else None
        self.project = ConvBN(cexp, cout, 1, 1, 1, "none", False, w["project"])
        self.residual = s == 1 and cin == cout
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        y = x
        if self.expand is not None:
            y = self.expand(y)
        y = self.dw(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        if self.residual:
            y = y + x
        return y
