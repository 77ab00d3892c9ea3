"""ResNet (basic / bottleneck blocks) and ResNeXt (grouped bottlenecks), torchvision structure."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from hwlat.corpus import Config, register_family
from hwlat.corpus.blocks import PoolHead, conv_bn
from hwlat.corpus.draw import between, chance, pick, scaled


class Block(nn.Module):
    """Basic (two 3x3) or bottleneck (1x1 → grouped 3x3 → 1x1) residual block; ReLU after the add."""

    def __init__(self, cin: int, mid: int, cout: int, s: int, groups: int, bottleneck: bool) -> None:
        super().__init__()
        if bottleneck:
            self.body = nn.Sequential(conv_bn(cin, mid, 1), conv_bn(mid, mid, 3, s, groups=groups),
                                      conv_bn(mid, cout, 1, a="none"))
        else:
            self.body = nn.Sequential(conv_bn(cin, cout, 3, s), conv_bn(cout, cout, 3, a="none"))
        self.down = conv_bn(cin, cout, 1, s, a="none") if s != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.down(x))


def sample(rng: np.random.Generator, r: int) -> Config:
    bottleneck = chance(rng, 0.6)
    # narrower than the real networks (ResNet-50 is 4 GMACs): most variants stay under ~60 ms on one core
    mult = pick(rng, [0.25, 0.375, 0.5, 0.625] if bottleneck else [0.25, 0.375, 0.5, 0.75, 1.0])
    groups = pick(rng, [8, 16, 32]) if bottleneck and chance(rng, 0.4) else 1  # ResNeXt
    width_per_group = pick(rng, [2, 4]) if groups > 1 else 0
    max_depth = (3, 4, 6, 3)
    stages = []
    for i in range(4):
        planes = scaled(64 * 2 ** i, mult)
        if groups > 1:
            mid = scaled(groups * width_per_group * 2 ** i, mult * 2, divisor=groups)
        else:
            mid = planes
        cout = planes * 4 if bottleneck else planes
        stages.append([between(rng, 1, max_depth[i]), mid, cout, groups])
    return {"bottleneck": bottleneck, "stem": scaled(64, max(mult, 0.5)), "stages": stages}


def build(cfg: Config, r: int) -> nn.Module:
    layers: list[nn.Module] = [conv_bn(3, cfg["stem"], 7, 2), nn.MaxPool2d(3, 2, 1)]
    cin = cfg["stem"]
    for i, (depth, mid, cout, groups) in enumerate(cfg["stages"]):
        for j in range(depth):
            layers.append(Block(cin, mid, cout, 2 if i and not j else 1, groups, cfg["bottleneck"]))
            cin = cout
    return nn.Sequential(*layers, PoolHead(cin))


register_family("resnet", sample, build, doc="ResNet-18/34/50-style and ResNeXt (grouped 3x3) networks")
