"""DenseNet-BC: pre-activation (BN-ReLU-conv) layers whose outputs are concatenated, 0.5 transitions."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from hwlat.corpus import Config, register_family
from hwlat.corpus.blocks import PoolHead, conv_bn
from hwlat.corpus.draw import between, pick


def _pre_act(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, k, 1, (k - 1) // 2, bias=False))


class DenseBlock(nn.Module):
    def __init__(self, cin: int, n: int, growth: int, bn_size: int) -> None:
        super().__init__()
        # BN-ReLU-1x1 (bn_size·growth), then BN-ReLU-3x3 (growth); the 1x1's BN folds into it on export
        self.layers = nn.ModuleList(nn.Sequential(_pre_act(cin + i * growth, bn_size * growth, 1),
                                                  nn.BatchNorm2d(bn_size * growth), nn.ReLU(),
                                                  nn.Conv2d(bn_size * growth, growth, 3, 1, 1, bias=False))
                                    for i in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1) if len(feats) > 1 else x))
        return torch.cat(feats, 1)


def sample(rng: np.random.Generator, r: int) -> Config:
    growth = pick(rng, [12, 16, 24, 32])
    depths = [between(rng, lo, hi) for lo, hi in [(2, 6), (4, 12), (4, 16), (2, 10)]]
    return {"growth": growth, "bn_size": pick(rng, [2, 4]), "stem": 2 * growth, "blocks": depths}


def build(cfg: Config, r: int) -> nn.Module:
    g = cfg["growth"]
    layers: list[nn.Module] = [conv_bn(3, cfg["stem"], 7, 2), nn.MaxPool2d(3, 2, 1)]
    c = cfg["stem"]
    for i, n in enumerate(cfg["blocks"]):
        layers.append(DenseBlock(c, n, g, cfg["bn_size"]))
        c += n * g
        if i < len(cfg["blocks"]) - 1:  # transition: halve channels and resolution
            layers += [_pre_act(c, c // 2, 1), nn.AvgPool2d(2, 2)]
            c //= 2
    layers += [nn.BatchNorm2d(c), nn.ReLU()]
    return nn.Sequential(*layers, PoolHead(c))


register_family("densenet", sample, build, doc="DenseNet-BC with drawn growth rate and block depths")
