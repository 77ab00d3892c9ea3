"""GhostNet: ghost modules (1x1 conv + cheap depthwise conv, concatenated), SE with a hard sigmoid."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from hwlat.corpus import Config, register_family
from hwlat.corpus.blocks import PoolHead, conv_bn, se
from hwlat.corpus.draw import chance, pick, scaled

# (kernel, expanded, out, SE, stride) of GhostNet 1.0x
_TABLE = [(3, 16, 16, 0, 1), (3, 48, 24, 0, 2), (3, 72, 24, 0, 1), (5, 72, 40, 1, 2), (5, 120, 40, 1, 1),
          (3, 240, 80, 0, 2), (3, 200, 80, 0, 1), (3, 184, 80, 0, 1), (3, 184, 80, 0, 1), (3, 480, 112, 1, 1),
          (3, 672, 112, 1, 1), (5, 672, 160, 1, 2), (5, 960, 160, 0, 1), (5, 960, 160, 1, 1),
          (5, 960, 160, 0, 1), (5, 960, 160, 1, 1)]


class Ghost(nn.Module):
    """Half the outputs from a 1x1 conv, the other half from a depthwise 3x3 on those (ratio 2)."""

    def __init__(self, cin: int, cout: int, relu: bool) -> None:
        super().__init__()
        self.cout = cout
        init = math.ceil(cout / 2)
        a = "relu" if relu else "none"
        self.primary = conv_bn(cin, init, 1, a=a)
        self.cheap = conv_bn(init, init, 3, groups=init, a=a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.primary(x)
        return torch.cat((y, self.cheap(y)), dim=1)[:, : self.cout]


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, k: int, s: int, se_mid: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [Ghost(cin, mid, True)]
        if s > 1:
            layers.append(conv_bn(mid, mid, k, s, groups=mid, a="none"))
        if se_mid:
            layers.append(se(mid, se_mid, "relu", "hsigmoid"))
        layers.append(Ghost(mid, cout, False))
        self.body = nn.Sequential(*layers)
        if s == 1 and cin == cout:
            self.short: nn.Module = nn.Identity()
        else:
            self.short = nn.Sequential(conv_bn(cin, cin, k, s, groups=cin, a="none"),
                                       conv_bn(cin, cout, 1, a="none"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.short(x)


def sample(rng: np.random.Generator, r: int) -> Config:
    mult = pick(rng, [0.5, 0.75, 1.0, 1.3])
    cin = scaled(16, mult, 4)
    stem, blocks = cin, []
    for k, e, c, has_se, s in _TABLE:
        cout = scaled(c, mult, 4)
        if s == 1 and cin == cout and chance(rng, 0.2):
            continue
        mid = scaled(e, mult * pick(rng, [0.75, 1.0, 1.0, 1.25]), 4)
        se_mid = scaled(mid / 4, 1.0, 4) if has_se else 0
        blocks.append([cin, mid, cout, pick(rng, [k, k, 3, 5, 7]), s, se_mid])
        cin = cout
    return {"stem": stem, "blocks": blocks, "last": scaled(960, mult, 4)}


def build(cfg: Config, r: int) -> nn.Module:
    layers: list[nn.Module] = [conv_bn(3, cfg["stem"], 3, 2)]
    layers += [Bottleneck(*b) for b in cfg["blocks"]]
    layers.append(conv_bn(cfg["blocks"][-1][2], cfg["last"], 1))
    return nn.Sequential(*layers, PoolHead(cfg["last"], 1280, "relu"))


register_family("ghostnet", sample, build, doc="GhostNet 0.5x-1.3x with drawn expansions, kernels and depth")
