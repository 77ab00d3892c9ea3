"""SqueezeNet: fire modules (1x1 squeeze, then 1x1 and 3x3 expands concatenated) from the paper's
design-space metaparameters (base_e, incr_e, pct3x3, freq, squeeze ratio)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from hwlat.corpus import Config, register_family
from hwlat.corpus.draw import between, pick


def _conv_relu(cin: int, cout: int, k: int, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, (k - 1) // 2), nn.ReLU())


class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, e1: int, e3: int) -> None:
        super().__init__()
        self.squeeze = _conv_relu(cin, squeeze, 1)
        self.e1 = _conv_relu(squeeze, e1, 1)
        self.e3 = _conv_relu(squeeze, e3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        return torch.cat((self.e1(s), self.e3(s)), 1)


def sample(rng: np.random.Generator, r: int) -> Config:
    base_e, incr_e = pick(rng, [64, 96, 128]), pick(rng, [32, 64, 96, 128])
    pct3, sr, freq = pick(rng, [0.25, 0.5, 0.75]), pick(rng, [0.125, 0.25]), 2
    v10 = pick(rng, [True, False])  # 1.0: 7x7 stem, pools after fires 3 and 7; 1.1: 3x3 stem, after 2 and 4
    fires = []
    for i in range(between(rng, 6, 9)):
        e = base_e + incr_e * (i // freq)
        e3 = int(e * pct3) // 8 * 8 or 8
        fires.append([max(8, int(e * sr) // 8 * 8), e - e3, e3])
    return {"stem": [7, 96] if v10 else [3, 64], "pool_after": [3, 7] if v10 else [2, 4], "fires": fires}


def build(cfg: Config, r: int) -> nn.Module:
    k, c = cfg["stem"]
    layers: list[nn.Module] = [_conv_relu(3, c, k, 2), nn.MaxPool2d(3, 2, ceil_mode=True)]
    for i, (sq, e1, e3) in enumerate(cfg["fires"]):
        layers.append(Fire(c, sq, e1, e3))
        c = e1 + e3
        if i + 1 in cfg["pool_after"]:
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
    layers += [_conv_relu(c, 1000, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


register_family("squeezenet", sample, build, doc="SqueezeNet 1.0/1.1 layouts over the paper's design space")
