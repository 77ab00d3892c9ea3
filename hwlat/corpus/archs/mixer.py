"""MLP-Mixer: patch embedding, then token-mixing and channel-mixing MLPs; mean pooled head."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from hwlat.corpus import Config, register_family
from hwlat.corpus.blocks import Mlp
from hwlat.corpus.draw import between, pick


class MixerBlock(nn.Module):
    def __init__(self, tokens: int, d: int, token_hidden: int, channel_hidden: int) -> None:
        super().__init__()
        self.norm1, self.tokens = nn.LayerNorm(d, eps=1e-6), Mlp(tokens, token_hidden)
        self.norm2, self.channels = nn.LayerNorm(d, eps=1e-6), Mlp(d, channel_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channels(self.norm2(x))


class Mixer(nn.Module):
    def __init__(self, cfg: Config, r: int) -> None:
        super().__init__()
        d, p = cfg["dim"], cfg["patch"]
        self.patch = nn.Conv2d(3, d, p, p)
        self.blocks = nn.Sequential(*[MixerBlock((r // p) ** 2, d, cfg["token_mlp"], cfg["channel_mlp"])
                                      for _ in range(cfg["depth"])])
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Linear(d, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.patch(x).flatten(2).transpose(1, 2))
        return self.head(self.norm(x).mean(1))


def sample(rng: np.random.Generator, r: int) -> Config:
    d = pick(rng, [128, 192, 256, 384])
    return {"patch": pick(rng, [p for p in (16, 32) if r % p == 0]), "dim": d, "depth": between(rng, 4, 12),
            "token_mlp": pick(rng, [64, 128, 192, 256]), "channel_mlp": d * pick(rng, [2, 4])}


def build(cfg: Config, r: int) -> nn.Module:
    return Mixer(cfg, r)


register_family("mixer", sample, build, resolutions=(96, 112, 128, 160, 192, 224),
                doc="MLP-Mixer (S/B-like widths, 4-12 blocks, /16 or /32 patches)")
