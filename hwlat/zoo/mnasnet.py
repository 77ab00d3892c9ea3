"""MnasNet-A1 1.0 without SE (torchvision ``mnasnet1_0``)."""

from __future__ import annotations

import torch
import torch.nn as nn

from hwlat.zoo.layers import ConvBNAct


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, s: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.layers = nn.Sequential(ConvBNAct(cin, mid, 1), ConvBNAct(mid, mid, k, s, groups=mid),
                                    ConvBNAct(mid, cout, 1, act=None))
        self.use_res = s == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x) + x if self.use_res else self.layers(x)


def _stack(cin: int, cout: int, k: int, s: int, expand: int, repeats: int) -> nn.Sequential:
    blocks = [_InvertedResidual(cin, cout, k, s, expand)]
    blocks += [_InvertedResidual(cout, cout, k, 1, expand) for _ in range(repeats - 1)]
    return nn.Sequential(*blocks)


class MNASNet(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            ConvBNAct(3, 32, 3, 2), ConvBNAct(32, 32, 3, 1, groups=32), ConvBNAct(32, 16, 1, act=None),
            _stack(16, 24, 3, 2, 3, 3), _stack(24, 40, 5, 2, 3, 3), _stack(40, 80, 5, 2, 6, 3),
            _stack(80, 96, 3, 1, 6, 2), _stack(96, 192, 5, 2, 6, 4), _stack(192, 320, 3, 1, 6, 1),
            ConvBNAct(320, 1280, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.layers(x).mean([2, 3]))


def mnasnet1_0() -> MNASNet:
    return MNASNet()
