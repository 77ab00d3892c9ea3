"""ViT / DeiT: patch embedding, pre-norm transformer blocks; class token, DeiT's distillation token or
mean pooling."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from hwlat.corpus import Config, register_family
from hwlat.corpus.blocks import Mlp, attend
from hwlat.corpus.draw import between, pick


class Attention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(attend(q, k, v).transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(d, eps=1e-6), Attention(d, heads)
        self.norm2, self.mlp = nn.LayerNorm(d, eps=1e-6), Mlp(d, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, cfg: Config, r: int) -> None:
        super().__init__()
        d, p, pool = cfg["dim"], cfg["patch"], cfg["pool"]
        self.pool = pool
        self.patch = nn.Conv2d(3, d, p, p)
        extra = {"cls": 1, "distill": 2, "mean": 0}[pool]
        self.tokens = nn.Parameter(torch.randn(1, extra, d) * 0.02) if extra else None
        self.pos = nn.Parameter(torch.randn(1, (r // p) ** 2 + extra, d) * 0.02)
        self.blocks = nn.Sequential(*[Block(d, cfg["heads"], cfg["mlp"]) for _ in range(cfg["depth"])])
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Linear(d, 1000)
        self.head_dist = nn.Linear(d, 1000) if pool == "distill" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        if self.tokens is not None:
            x = torch.cat((self.tokens, x), 1)
        x = self.norm(self.blocks(x + self.pos))
        if self.pool == "mean":
            return self.head(x.mean(1))
        if self.head_dist is not None:  # DeiT at inference: the two heads averaged
            return (self.head(x[:, 0]) + self.head_dist(x[:, 1])) * 0.5
        return self.head(x[:, 0])


def sample(rng: np.random.Generator, r: int) -> Config:
    d = pick(rng, [128, 192, 256, 320, 384])
    patch = pick(rng, [p for p in (16, 32) if r % p == 0])
    return {"patch": patch, "dim": d, "heads": d // pick(rng, [32, 64]),
            "depth": between(rng, 4, 12), "mlp": d * pick(rng, [2, 3, 4, 4]),
            "pool": pick(rng, ["cls", "cls", "distill", "mean"])}


def build(cfg: Config, r: int) -> nn.Module:
    return ViT(cfg, r)


register_family("vit", sample, build, resolutions=(96, 112, 128, 160, 192, 224),
                doc="ViT/DeiT (Ti/S-like widths, 4-12 blocks, /16 or /32 patches)")
