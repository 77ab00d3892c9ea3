"""EfficientNet: B0's MBConv stages under drawn width / depth coefficients, swish and SE (ratio 0.25)."""

from __future__ import annotations

import math

import numpy as np
import torch.nn as nn

from hwlat.corpus import Config, register_family
from hwlat.corpus.blocks import MBConv, PoolHead, conv_bn
from hwlat.corpus.draw import pick, scaled, uniform

# (expansion, kernel, stride, channels, repeats) of EfficientNet-B0
_B0 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
       (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]


def sample(rng: np.random.Generator, r: int) -> Config:
    width = uniform(rng, 0.5, 1.2, 2)
    depth = uniform(rng, 0.5, 1.4, 2)
    cin = scaled(32, width)
    stem, blocks = cin, []
    for e, k, s, c, n in _B0:
        cout = scaled(c, width)
        if e != 1:
            e = pick(rng, [4, 6, 6])
        for j in range(max(1, math.ceil(n * depth))):
            blocks.append([cin, cout, k, s if j == 0 else 1, cin * e, max(1, int(cin * 0.25))])
            cin = cout
    return {"stem": stem, "blocks": blocks, "last": scaled(1280, width)}


def build(cfg: Config, r: int) -> nn.Module:
    layers: list[nn.Module] = [conv_bn(3, cfg["stem"], 3, 2, a="swish")]
    for cin, cout, k, s, mid, se_mid in cfg["blocks"]:
        layers.append(MBConv(cin, cout, k, s, mid, "swish", se_mid, se_act="swish", se_gate="sigmoid"))
    layers.append(conv_bn(cfg["blocks"][-1][1], cfg["last"], 1, a="swish"))
    return nn.Sequential(*layers, PoolHead(cfg["last"]))


register_family("efficientnet", sample, build, doc="EfficientNet-B0 stages under width/depth coefficients")
