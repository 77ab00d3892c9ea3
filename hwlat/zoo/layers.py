"""Building blocks shared by the zoo models (torchvision-equivalent structure)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

ActFn = Callable[[], nn.Module] | None


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor`` without dropping more than 10% (TF MobileNet rule)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNAct(nn.Sequential):
    """Conv (no bias, padding (k-1)//2) → BatchNorm → optional activation."""

    def __init__(self, cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1, act: ActFn = nn.ReLU) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False),
                                   nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """x · gate(fc2(act(fc1(avgpool(x))))) with 1x1 convs (torchvision ``SqueezeExcitation``)."""

    def __init__(self, c: int, cmid: int, act: Callable[[], nn.Module] = nn.ReLU,
                 gate: Callable[[], nn.Module] = nn.Sigmoid) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, cmid, 1)
        self.fc2 = nn.Conv2d(cmid, c, 1)
        self.act = act()
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.gate(self.fc2(self.act(self.fc1(self.avgpool(x)))))
        return s * x
