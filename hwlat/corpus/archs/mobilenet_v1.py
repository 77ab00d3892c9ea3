"""MobileNetV1: a stem conv, then depthwise-separable layers (dw kxk → pw 1x1)."""

from __future__ import annotations

import numpy as np
import torch.nn as nn

from hwlat.corpus import Config, register_family
from hwlat.corpus.blocks import PoolHead, conv_bn
from hwlat.corpus.draw import between, pick, scaled

# (channels, stride) of the original 13 separable layers; the five 512-wide ones are drawn as 1–6
_LAYERS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
_TAIL = [(1024, 2), (1024, 1)]


def sample(rng: np.random.Generator, r: int) -> Config:
    mult = pick(rng, [0.25, 0.35, 0.5, 0.75, 1.0])
    k = pick(rng, [3, 3, 5])
    a = pick(rng, ["relu", "relu6"])
    plan = _LAYERS + [(512, 1)] * between(rng, 1, 6) + _TAIL[: between(rng, 1, 2)]
    return {"stem": scaled(32, mult), "act": a, "layers": [[scaled(c, mult), s, k] for c, s in plan]}


def build(cfg: Config, r: int) -> nn.Module:
    a = cfg["act"]
    layers: list[nn.Module] = [conv_bn(3, cfg["stem"], 3, 2, a=a)]
    cin = cfg["stem"]
    for cout, s, k in cfg["layers"]:
        layers += [conv_bn(cin, cin, k, s, groups=cin, a=a), conv_bn(cin, cout, 1, a=a)]
        cin = cout
    return nn.Sequential(*layers, PoolHead(cin))


register_family("mobilenet_v1", sample, build, doc="MobileNetV1 with width multipliers and 1-6 middle layers")
