"""MobileViT: MobileNetV2 blocks, then blocks that run a transformer across image patches.

MobileViT unfolds a map into P pixel positions × N patches and attends across the N patches at each
position. The unfold is a 6-D permutation; here it is done on the QKV projection's output and folded
back after attention (LayerNorms and MLPs are per token, so their order does not matter), which keeps
the permutation inside the attention kernel instead of leaving standalone 6-D ``Transpose`` nodes
(permutations that are not a two-group swap were unsupported by the decomposer when this was written).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from hwlat.corpus import Config, register_family
from hwlat.corpus.blocks import MBConv, Mlp, PoolHead, attend, conv_bn
from hwlat.corpus.draw import between

# channels of the five stages, transformer widths of stages 3-5, MV2 expansion, last conv: XXS, XS, S
_VARIANTS = [([16, 24, 48, 64, 80], [64, 80, 96], 2, 320), ([32, 48, 64, 80, 96], [96, 120, 144], 4, 384),
             ([32, 64, 96, 128, 160], [144, 192, 240], 4, 640)]


class PatchAttention(nn.Module):
    def __init__(self, d: int, heads: int, size: int, patch: int) -> None:
        super().__init__()
        self.d, self.heads, self.size, self.p = d, heads, size, patch
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, p, h, d = self.size // self.p, self.p, self.heads, self.d
        qkv = self.qkv(x).reshape(n, p, n, p, 3, h, d // h).permute(4, 1, 3, 5, 0, 2, 6)
        q, k, v = qkv.reshape(3, p * p, h, n * n, d // h).unbind(0)
        o = attend(q, k, v).reshape(p, p, h, n, n, d // h).permute(3, 0, 4, 1, 2, 5)
        return self.proj(o.reshape(1, self.size * self.size, d))


class Layer(nn.Module):
    def __init__(self, d: int, size: int, patch: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(d), PatchAttention(d, 4, size, patch)
        self.norm2, self.mlp = nn.LayerNorm(d), Mlp(d, 2 * d, "swish")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MobileViTBlock(nn.Module):
    def __init__(self, c: int, d: int, depth: int, size: int) -> None:
        super().__init__()
        self.d, self.size = d, size
        self.local = nn.Sequential(conv_bn(c, c, 3, a="swish"), nn.Conv2d(c, d, 1, bias=False))
        patch = 2 if size % 2 == 0 else 1
        self.layers = nn.Sequential(*[Layer(d, size, patch) for _ in range(depth)], nn.LayerNorm(d))
        self.proj = conv_bn(d, c, 1, a="swish")
        self.fuse = conv_bn(2 * c, c, 3, a="swish")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(self.local(x).flatten(2).transpose(1, 2))
        y = self.proj(y.transpose(1, 2).reshape(1, self.d, self.size, self.size))
        return self.fuse(torch.cat((x, y), 1))


def sample(rng: np.random.Generator, r: int) -> Config:
    channels, dims, e, last = _VARIANTS[between(rng, 0, 2)]
    depths = [between(rng, 1, 2), between(rng, 2, 4), between(rng, 1, 3)]
    return {"channels": channels, "dims": dims, "depths": depths, "expansion": e, "last": last}


def build(cfg: Config, r: int) -> nn.Module:
    c, e = cfg["channels"], cfg["expansion"]
    layers: list[nn.Module] = [conv_bn(3, 16, 3, 2, a="swish"), MBConv(16, c[0], 3, 1, 16 * e, "swish")]
    layers += [MBConv(c[0], c[1], 3, 2, c[0] * e, "swish")]
    layers += [MBConv(c[1], c[1], 3, 1, c[1] * e, "swish") for _ in range(2)]
    size = -(-r // 4)
    for i in range(3):
        size = -(-size // 2)
        layers += [MBConv(c[i + 1], c[i + 2], 3, 2, c[i + 1] * e, "swish"),
                   MobileViTBlock(c[i + 2], cfg["dims"][i], cfg["depths"][i], size)]
    layers.append(conv_bn(c[4], cfg["last"], 1, a="swish"))
    return nn.Sequential(*layers, PoolHead(cfg["last"]))


register_family("mobilevit", sample, build, resolutions=(96, 128, 160, 192, 224),
                doc="MobileViT XXS/XS/S layouts with drawn transformer depths")
