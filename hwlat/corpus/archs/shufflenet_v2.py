"""ShuffleNetV2: channel split, depthwise branch, concat and channel shuffle, torchvision structure."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from hwlat.corpus import Config, register_family
from hwlat.corpus.blocks import PoolHead, conv_bn
from hwlat.corpus.draw import between, pick

# stage output channels (and the last 1x1 conv) of the 0.5x / 1.0x / 1.5x / 2.0x networks
_WIDTHS = {0.5: (48, 96, 192, 1024), 1.0: (116, 232, 464, 1024), 1.5: (176, 352, 704, 1024),
           2.0: (244, 488, 976, 2048)}


class Unit(nn.Module):
    """Stride 1: split channels, transform one half; stride 2: transform both; then concat and shuffle."""

    def __init__(self, cin: int, cout: int, k: int, s: int) -> None:
        super().__init__()
        half = cout // 2
        self.s = s
        if s > 1:
            self.branch1 = nn.Sequential(conv_bn(cin, cin, k, s, groups=cin, a="none"), conv_bn(cin, half, 1))
        b_in = cin if s > 1 else half
        self.branch2 = nn.Sequential(conv_bn(b_in, half, 1), conv_bn(half, half, k, s, groups=half, a="none"),
                                     conv_bn(half, half, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.s == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        b, c, h, w = out.shape
        return out.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)


def sample(rng: np.random.Generator, r: int) -> Config:
    mult = pick(rng, sorted(_WIDTHS))
    *widths, last = _WIDTHS[mult]
    stages = [[c, between(rng, lo, hi), pick(rng, [3, 3, 5, 7])] for c, (lo, hi) in
              zip(widths, [(2, 5), (4, 9), (2, 5)])]
    return {"stem": 24, "stages": stages, "last": last}


def build(cfg: Config, r: int) -> nn.Module:
    layers: list[nn.Module] = [conv_bn(3, cfg["stem"], 3, 2), nn.MaxPool2d(3, 2, 1)]
    cin = cfg["stem"]
    for cout, n, k in cfg["stages"]:
        for j in range(n):
            layers.append(Unit(cin, cout, k, 2 if j == 0 else 1))
            cin = cout
    layers.append(conv_bn(cin, cfg["last"], 1))
    return nn.Sequential(*layers, PoolHead(cfg["last"]))


register_family("shufflenet_v2", sample, build, doc="ShuffleNetV2 0.5x-2.0x with drawn depths and kernels")
