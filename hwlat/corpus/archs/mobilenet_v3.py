"""MobileNetV3 (large / small tables): hswish, hsigmoid squeeze-excitation, drawn widths and kernels."""

from __future__ import annotations

import numpy as np
import torch.nn as nn

from hwlat.corpus import Config, register_family
from hwlat.corpus.blocks import MBConv, PoolHead, conv_bn
from hwlat.corpus.draw import chance, pick, scaled
from hwlat.zoo.layers import make_divisible

# (kernel, expanded, out, SE, activation, stride) of torchvision's tables
_LARGE = [(3, 16, 16, 0, "relu", 1), (3, 64, 24, 0, "relu", 2), (3, 72, 24, 0, "relu", 1),
          (5, 72, 40, 1, "relu", 2), (5, 120, 40, 1, "relu", 1), (5, 120, 40, 1, "relu", 1),
          (3, 240, 80, 0, "hswish", 2), (3, 200, 80, 0, "hswish", 1), (3, 184, 80, 0, "hswish", 1),
          (3, 184, 80, 0, "hswish", 1), (3, 480, 112, 1, "hswish", 1), (3, 672, 112, 1, "hswish", 1),
          (5, 672, 160, 1, "hswish", 2), (5, 960, 160, 1, "hswish", 1), (5, 960, 160, 1, "hswish", 1)]
_SMALL = [(3, 16, 16, 1, "relu", 2), (3, 72, 24, 0, "relu", 2), (3, 88, 24, 0, "relu", 1),
          (5, 96, 40, 1, "hswish", 2), (5, 240, 40, 1, "hswish", 1), (5, 240, 40, 1, "hswish", 1),
          (5, 120, 48, 1, "hswish", 1), (5, 144, 48, 1, "hswish", 1), (5, 288, 96, 1, "hswish", 2),
          (5, 576, 96, 1, "hswish", 1), (5, 576, 96, 1, "hswish", 1)]


def sample(rng: np.random.Generator, r: int) -> Config:
    large = chance(rng, 0.5)
    mult = pick(rng, [0.5, 0.75, 1.0, 1.25])
    exp_mult = pick(rng, [0.75, 1.0, 1.0, 1.25])
    blocks, cin, table_cin = [], scaled(16, mult), 16
    stem = cin
    for k, e, c, has_se, a, s in _LARGE if large else _SMALL:
        if s == 1 and cin == scaled(c, mult) and chance(rng, 0.15):
            continue  # drop a repeated block: depth varies as in the NAS that found these tables
        cout = scaled(c, mult)
        mid = cin if e == table_cin else scaled(e, mult * exp_mult)  # the tables' unexpanded blocks stay so
        se_mid = make_divisible(mid // 4, 8) if has_se else 0
        blocks.append([cin, cout, pick(rng, [k, k, 3, 5, 7]), s, mid, a, se_mid])
        cin, table_cin = cout, c
    last = scaled(6 * blocks[-1][1], 1.0)
    return {"stem": stem, "blocks": blocks, "last": last, "hidden": 1280 if large else 1024}


def build(cfg: Config, r: int) -> nn.Module:
    layers: list[nn.Module] = [conv_bn(3, cfg["stem"], 3, 2, a="hswish")]
    for cin, cout, k, s, mid, a, se_mid in cfg["blocks"]:
        layers.append(MBConv(cin, cout, k, s, mid, a, se_mid, se_act="relu", se_gate="hsigmoid"))
    layers.append(conv_bn(cfg["blocks"][-1][1], cfg["last"], 1, a="hswish"))
    return nn.Sequential(*layers, PoolHead(cfg["last"], cfg["hidden"], "hswish"))


register_family("mobilenet_v3", sample, build, doc="MobileNetV3 large/small, drawn widths, kernels, depth")
