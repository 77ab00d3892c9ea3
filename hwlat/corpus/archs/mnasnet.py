"""MnasNet / ProxylessNAS / FBNet-style: one MBConv choice (kernel, expansion, SE, or skip) per layer."""

from __future__ import annotations

import numpy as np
import torch.nn as nn

from hwlat.corpus import Config, register_family
from hwlat.corpus.blocks import MBConv, PoolHead, conv_bn
from hwlat.corpus.draw import chance, pick, scaled

# (channels, layers, first stride) of the searchable stages (MnasNet-A1 / ProxylessNAS layout)
_STAGES = [(24, 4, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2), (320, 1, 1)]


def sample(rng: np.random.Generator, r: int) -> Config:
    mult = pick(rng, [0.5, 0.75, 1.0, 1.3])
    a = pick(rng, ["relu", "relu6"])
    use_se = chance(rng, 0.4)  # MnasNet-A1 has SE, ProxylessNAS and FBNet do not
    cin = scaled(16, mult)
    stem, blocks = scaled(32, mult), [[scaled(32, mult), cin, 3, 1, 1, 0]]
    for c, n, s in _STAGES:
        cout = scaled(c, mult)
        for j in range(n):
            if j and chance(rng, 0.25):
                continue  # the "skip" choice of the later layers of a stage
            e, k = pick(rng, [1, 3, 3, 6, 6]), pick(rng, [3, 5, 7])
            se_mid = max(8, cin * e // 4) if use_se and chance(rng, 0.5) else 0
            blocks.append([cin, cout, k, s if j == 0 else 1, e, se_mid])
            cin = cout
    return {"stem": stem, "act": a, "blocks": blocks, "last": scaled(1280, max(1.0, mult))}


def build(cfg: Config, r: int) -> nn.Module:
    a = cfg["act"]
    layers: list[nn.Module] = [conv_bn(3, cfg["stem"], 3, 2, a=a)]
    for cin, cout, k, s, e, se_mid in cfg["blocks"]:
        layers.append(MBConv(cin, cout, k, s, cin * e, a, se_mid))
    layers.append(conv_bn(cfg["blocks"][-1][1], cfg["last"], 1, a=a))
    return nn.Sequential(*layers, PoolHead(cfg["last"]))


register_family("mnasnet", sample, build, doc="MnasNet/ProxylessNAS/FBNet-style per-layer MBConv choices")
