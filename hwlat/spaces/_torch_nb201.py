"""Torch model of the NAS-Bench-201 CIFAR network (imported only inside ``build()``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from hwlat.spaces._torch_blocks import ConvBNAct

EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))


class ReLUConvBN(nn.Module):
    def __init__(self, c: int, k: int) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(c, c, k, 1, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.relu(x)))


def _op(name: str, c: int) -> nn.Module:
    if name == "skip_connect":
        return nn.Identity()
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    return ReLUConvBN(c, 3 if name == "nor_conv_3x3" else 1)


class Cell(nn.Module):
    """Node i = sum of live edges j→i (in edge order); all-dead cells output x * 0 (NB201's Zero op)."""

    def __init__(self, ops: Sequence[str], c: int) -> None:
        super().__init__()
        self.edges = [(e, a, b) for e, (a, b) in enumerate(EDGES) if ops[e] != "none"]
        self.ops = nn.ModuleDict({str(e): _op(ops[e], c) for e, _, _ in self.edges})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x, None, None, None]
        for i in (1, 2, 3):
            acc = None
            for e, a, b in self.edges:
                if b != i:
                    continue
                src = nodes[a]
                assert src is not None
                y = self.ops[str(e)](src)
                acc = y if acc is None else acc + y
            nodes[i] = acc
        out = nodes[3]
        return x * 0.0 if out is None else out


class ResNetBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.relu_a = nn.ReLU()
        self.conv_a = ConvBNAct(cin, cout, 3, 2)
        self.relu_b = nn.ReLU()
        self.conv_b = ConvBNAct(cout, cout, 3, 1)
        self.pool = nn.AvgPool2d(2, 2, 0)
        self.down = nn.Conv2d(cin, cout, 1, 1, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.conv_b(self.relu_b(self.conv_a(self.relu_a(x))))
        return b + self.down(self.pool(x))


class Affine(nn.Module):
    """Eval-mode BatchNorm written as x * scale + shift (decomposes into mul + add kernels)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.rand(1, c, 1, 1) + 0.5)
        self.shift = nn.Parameter(torch.randn(1, c, 1, 1) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


class TinyNetwork(nn.Module):
    def __init__(self, ops: Sequence[str], channels: Sequence[int], n_cells: int, n_classes: int) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, channels[0], 3, 1)
        layers: list[nn.Module] = []
        for st, c in enumerate(channels):
            if st > 0:
                layers.append(ResNetBasicBlock(channels[st - 1], c))
            layers += [Cell(ops, c) for _ in range(n_cells)]
        self.cells = nn.ModuleList(layers)
        self.lastact_bn = Affine(channels[-1])
        self.lastact = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels[-1], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for c in self.cells:
            x = c(x)
        x = self.pool(self.lastact(self.lastact_bn(x)))
        return self.classifier(torch.flatten(x, 1))
