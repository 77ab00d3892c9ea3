"""LeViT-style hybrid: a 16x convolutional stem (hardswish), then transformer stages on tokens with
per-head attention biases, narrow keys (16 or 32 per head) and wider values, hardswish before each
projection; strided convolutions between stages.

LeViT's BatchNorms after each linear are folded into the linears here, as the deployed network has
them; its attention-subsample blocks (queries from a strided token subset) are replaced by the
strided convolution, because the ``mha`` kernel describes square attention only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from hwlat.corpus import Config, register_family
from hwlat.corpus.blocks import Mlp, attend, conv_bn
from hwlat.corpus.draw import between, pick

# (stage widths, heads, key dim per head) of LeViT-128S, -192 and -256
_VARIANTS = [([128, 256, 384], [4, 6, 8], 16), ([192, 288, 384], [3, 5, 6], 32),
             ([256, 384, 512], [4, 6, 8], 32)]


class Attention(nn.Module):
    def __init__(self, d: int, heads: int, kd: int, ratio: int, tokens: int) -> None:
        super().__init__()
        self.heads, self.kd, self.dv = heads, kd, ratio * kd
        self.qkv = nn.Linear(d, heads * (2 * kd + self.dv))
        self.bias = nn.Parameter(torch.randn(heads, tokens, tokens) * 0.02)
        self.act = nn.Hardswish()
        self.proj = nn.Linear(heads * self.dv, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, t, _ = x.shape
        qkv = self.qkv(x).reshape(1, t, self.heads, 2 * self.kd + self.dv).permute(0, 2, 1, 3)
        q, k, v = qkv.split([self.kd, self.kd, self.dv], dim=3)
        o = attend(q, k, v, self.bias).transpose(1, 2).reshape(1, t, self.heads * self.dv)
        return self.proj(self.act(o))


class Block(nn.Module):
    def __init__(self, d: int, heads: int, kd: int, ratio: int, tokens: int, mlp_ratio: int) -> None:
        super().__init__()
        self.attn = Attention(d, heads, kd, ratio, tokens)
        self.mlp = Mlp(d, mlp_ratio * d, "hswish")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class Downsample(nn.Module):
    """Tokens → map → strided 3x3 conv (hardswish) → tokens."""

    def __init__(self, cin: int, cout: int, size: int) -> None:
        super().__init__()
        self.cin, self.size = cin, size
        self.conv = conv_bn(cin, cout, 3, 2, a="hswish")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2).reshape(1, self.cin, self.size, self.size)
        return self.conv(x).flatten(2).transpose(1, 2)


class LeViT(nn.Module):
    def __init__(self, cfg: Config, r: int) -> None:
        super().__init__()
        dims = cfg["dims"]
        c = dims[0]
        self.stem = nn.Sequential(conv_bn(3, c // 8, 3, 2, a="hswish"),
                                  conv_bn(c // 8, c // 4, 3, 2, a="hswish"),
                                  conv_bn(c // 4, c // 2, 3, 2, a="hswish"),
                                  conv_bn(c // 2, c, 3, 2, a="none"))
        size = r
        for _ in range(4):
            size = (size - 1) // 2 + 1  # a 3x3 stride-2 conv with padding 1
        layers: list[nn.Module] = []
        for i, (d, heads, depth) in enumerate(zip(dims, cfg["heads"], cfg["depths"])):
            if i:
                layers.append(Downsample(dims[i - 1], d, size))
                size = (size - 1) // 2 + 1
            layers += [Block(d, heads, cfg["key_dim"], cfg["attn_ratio"], size * size, cfg["mlp_ratio"])
                       for _ in range(depth)]
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(dims[-1], 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x).flatten(2).transpose(1, 2))
        return self.head(x.mean(1))


def sample(rng: np.random.Generator, r: int) -> Config:
    dims, heads, kd = _VARIANTS[between(rng, 0, 2)]
    return {"dims": dims, "heads": heads, "key_dim": kd, "depths": [between(rng, 1, 4) for _ in dims],
            "attn_ratio": pick(rng, [2, 4]), "mlp_ratio": pick(rng, [2, 2, 3])}


def build(cfg: Config, r: int) -> nn.Module:
    return LeViT(cfg, r)


register_family("levit", sample, build, resolutions=(128, 160, 192, 224),
                doc="LeViT-128S/192/256-style hybrids with drawn depths and value widths")
