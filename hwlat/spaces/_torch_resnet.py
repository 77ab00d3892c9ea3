"""Torch blocks of the OFA ResNet50 space (imported only inside ``build()``)."""

from __future__ import annotations

import torch
import torch.nn as nn

from hwlat.spaces._torch_blocks import ConvBNAct


class StemResidual(nn.Module):
    """OFA's ResidualBlock(ConvLayer(3x3, bn, relu), Identity): relu before the Add."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(c, c, 3, 1, 1, "relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + x


class Bottleneck(nn.Module):
    """OFA ResNetBottleneckBlock with the "avgpool_conv" shortcut; shortcut computed first as in OFA."""

    def __init__(self, cin: int, cout: int, s: int, mid: int) -> None:
        super().__init__()
        if s == 1 and cin == cout:
            self.down = None
        else:
            self.down = nn.Sequential(nn.AvgPool2d(s, s, 0, ceil_mode=True), ConvBNAct(cin, cout, 1, 1, 1, "none"))
        self.conv1 = ConvBNAct(cin, mid, 1, 1, 1, "relu")
        self.conv2 = ConvBNAct(mid, mid, 3, s, 1, "relu")
        self.conv3 = ConvBNAct(mid, cout, 1, 1, 1, "relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.down(x) if self.down is not None else x
        return self.conv3(self.conv2(self.conv1(x)), res)
