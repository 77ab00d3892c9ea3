"""ConvNeXt: patchify stem, blocks of depthwise kxk → LayerNorm → MLP (GELU) → layer scale, NHWC inside."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from hwlat.corpus import Config, register_family
from hwlat.corpus.blocks import Mlp
from hwlat.corpus.draw import between, pick


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over channels of an NCHW map, through NHWC as timm's ``LayerNorm2d`` exports."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Block(nn.Module):
    def __init__(self, c: int, k: int, ratio: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, k, 1, k // 2, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.mlp = Mlp(c, ratio * c)
        self.gamma = nn.Parameter(torch.full((c,), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.dw(x).permute(0, 2, 3, 1))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class Head(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.fc = nn.Linear(c, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x.mean((2, 3))))


def sample(rng: np.random.Generator, r: int) -> Config:
    base = pick(rng, [32, 40, 48, 64, 80])
    depths = [between(rng, lo, hi) for lo, hi in [(1, 3), (1, 3), (2, 9), (1, 3)]]
    return {"dims": [base * 2 ** i for i in range(4)], "depths": depths, "k": pick(rng, [3, 5, 7, 7]),
            "mlp_ratio": pick(rng, [2, 3, 4, 4])}


def build(cfg: Config, r: int) -> nn.Module:
    dims = cfg["dims"]
    layers: list[nn.Module] = [nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], eps=1e-6)]
    for i, (c, n) in enumerate(zip(dims, cfg["depths"])):
        if i:
            layers += [LayerNorm2d(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], c, 2, 2)]
        layers += [Block(c, cfg["k"], cfg["mlp_ratio"]) for _ in range(n)]
    return nn.Sequential(*layers, Head(dims[-1]))


register_family("convnext", sample, build, resolutions=(96, 128, 160, 192, 224),
                doc="ConvNeXt atto-tiny-like widths with drawn depths, kernel and MLP ratio")
