"""EfficientNet-B0 (torchvision configuration; stochastic depth is identity in eval)."""

from __future__ import annotations

import torch
import torch.nn as nn

from hwlat.zoo.layers import ConvBNAct, SqueezeExcitation


class MBConv(nn.Module):
    """[1x1 expand-SiLU] → dw kxk-SiLU → SE(SiLU, sigmoid; cmid = cin/4) → 1x1 project (+ x)."""

    def __init__(self, expand: int, k: int, s: int, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(cin, mid, 1, act=nn.SiLU))
        layers += [ConvBNAct(mid, mid, k, s, groups=mid, act=nn.SiLU),
                   SqueezeExcitation(mid, max(1, cin // 4), nn.SiLU, nn.Sigmoid),
                   ConvBNAct(mid, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.use_res = s == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_res else self.block(x)


# (expand, kernel, stride, cin, cout, repeats)
B0 = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
      (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]


class EfficientNet(nn.Module):
    def __init__(self, setting: list[tuple[int, ...]], last: int = 1280, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNAct(3, setting[0][3], 3, 2, act=nn.SiLU)]
        for e, k, s, cin, cout, n in setting:
            for i in range(n):
                layers.append(MBConv(e, k, s if i == 0 else 1, cin if i == 0 else cout, cout))
        layers.append(ConvBNAct(setting[-1][4], last, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def efficientnet_b0() -> EfficientNet:
    return EfficientNet(B0)
