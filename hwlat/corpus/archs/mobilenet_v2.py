"""MobileNetV2: inverted residual stages (t, c, n, s) with drawn expansions, widths, depths, kernels."""

from __future__ import annotations

import numpy as np
import torch.nn as nn

from hwlat.corpus import Config, register_family
from hwlat.corpus.blocks import MBConv, PoolHead, conv_bn
from hwlat.corpus.draw import between, pick, scaled

# (channels, repeats, stride) of torchvision's MobileNetV2 after the t=1 block
_STAGES = [(24, 2, 2), (32, 3, 2), (64, 4, 2), (96, 3, 1), (160, 3, 2), (320, 1, 1)]


def sample(rng: np.random.Generator, r: int) -> Config:
    mult = pick(rng, [0.35, 0.5, 0.75, 1.0, 1.3])
    blocks = [[scaled(32, mult), scaled(16, mult), 3, 1, 1]]  # cin, cout, k, s, expansion
    cin = blocks[0][1]
    for c, n, s in _STAGES:
        t, k = pick(rng, [3, 4, 6, 6]), pick(rng, [3, 3, 5, 7])
        cout = scaled(c, mult)
        for j in range(max(1, n + between(rng, -1, 1))):
            blocks.append([cin, cout, k, s if j == 0 else 1, t])
            cin = cout
    return {"stem": blocks[0][0], "blocks": blocks, "last": scaled(1280, max(1.0, mult))}


def build(cfg: Config, r: int) -> nn.Module:
    layers: list[nn.Module] = [conv_bn(3, cfg["stem"], 3, 2, a="relu6")]
    for cin, cout, k, s, t in cfg["blocks"]:
        layers.append(MBConv(cin, cout, k, s, cin * t, "relu6"))
    layers.append(conv_bn(cfg["blocks"][-1][1], cfg["last"], 1, a="relu6"))
    return nn.Sequential(*layers, PoolHead(cfg["last"]))


register_family("mobilenet_v2", sample, build, doc="MobileNetV2, drawn width, depth, expansion, kernels")
