"""Swin-style transformer: attention inside (shifted) windows, patch merging between stages, NHWC tokens.

The window partition is done on the QKV projection's output rather than on the block input (the
projection is per token, so the result is the same): the partition's 6-D transposes then belong to
the attention kernel, as a fused window-attention kernel executes them, and the family does not
depend on standalone 6-D ``Transpose`` support (permutations that are not a two-group swap were
unsupported by the decomposer when this was written). The shifted-window mask is folded into the
relative-position bias, as a constant-folded export of Swin holds it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from hwlat.corpus import Config, register_family
from hwlat.corpus.blocks import Mlp, attend
from hwlat.corpus.draw import between, pick


def window_for(size: int, ws: int) -> int:
    """The largest window ≤ ``ws`` that tiles a ``size``-wide map (Swin shrinks windows on small maps)."""
    return max(w for w in range(1, min(ws, size) + 1) if size % w == 0)


class WindowAttention(nn.Module):
    def __init__(self, d: int, heads: int, size: int, ws: int, shift: bool) -> None:
        super().__init__()
        self.d, self.heads, self.size, self.ws = d, heads, size, ws
        self.n = size // ws
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.bias = nn.Parameter(torch.randn(self.n * self.n if shift else 1, heads, ws * ws, ws * ws) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, ws, h, d = self.n, self.ws, self.heads, self.d
        qkv = self.qkv(x).reshape(n, ws, n, ws, 3, h, d // h).permute(4, 0, 2, 5, 1, 3, 6)
        q, k, v = qkv.reshape(3, n * n, h, ws * ws, d // h).unbind(0)
        o = attend(q, k, v, self.bias).reshape(n, n, h, ws, ws, d // h).permute(0, 3, 1, 4, 2, 5)
        return self.proj(o.reshape(1, self.size, self.size, d))


class Block(nn.Module):
    def __init__(self, d: int, heads: int, size: int, ws: int, shift: int, mlp: int) -> None:
        super().__init__()
        self.shift = shift
        self.norm1, self.attn = nn.LayerNorm(d), WindowAttention(d, heads, size, ws, bool(shift))
        self.norm2, self.mlp = nn.LayerNorm(d), Mlp(d, mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), (1, 2))
        y = self.attn(y)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), (1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbours concatenated (4·C) → LayerNorm → Linear to 2·C."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * d)
        self.reduce = nn.Linear(4 * d, 2 * d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat((x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]), -1)
        return self.reduce(self.norm(x))


class Swin(nn.Module):
    def __init__(self, cfg: Config, r: int) -> None:
        super().__init__()
        d = cfg["dim"]
        self.patch = nn.Conv2d(3, d, 4, 4)
        self.patch_norm = nn.LayerNorm(d)
        layers: list[nn.Module] = []
        size = r // 4
        for i, depth in enumerate(cfg["depths"]):
            if i:
                layers.append(PatchMerging(d))
                d, size = 2 * d, size // 2
            ws = window_for(size, cfg["window"])
            for j in range(depth):
                shift = ws // 2 if j % 2 and ws < size else 0
                layers.append(Block(d, d // cfg["head_dim"], size, ws, shift, d * cfg["mlp_ratio"]))
        self.blocks = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.patch_norm(self.patch(x).permute(0, 2, 3, 1)))
        return self.head(self.norm(x).flatten(1, 2).mean(1))


def sample(rng: np.random.Generator, r: int) -> Config:
    depths = [between(rng, lo, hi) for lo, hi in [(1, 2), (1, 2), (2, 6), (1, 2)]]
    return {"dim": pick(rng, [32, 48, 64]), "depths": depths, "window": pick(rng, [4, 7, 7, 8]),
            "head_dim": 32, "mlp_ratio": pick(rng, [2, 4, 4])}


def build(cfg: Config, r: int) -> nn.Module:
    return Swin(cfg, r)


register_family("swin", sample, build, resolutions=(96, 128, 160, 192, 224),
                doc="Swin-T-like windowed attention with shifted windows and patch merging")
