"""RegNetX / RegNetY: stage widths from the quantized linear rule (w0, wa, wm, depth), grouped 3x3."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from hwlat.corpus import Config, register_family
from hwlat.corpus.blocks import PoolHead, conv_bn, se
from hwlat.corpus.draw import between, chance, pick, uniform


def stage_widths(w0: int, wa: float, wm: float, depth: int, group_width: int) -> list[list[int]]:
    """[[depth, width, group width], ...] by the RegNet paper's rule (widths quantized to 8, then to the
    group width)."""
    cont = np.arange(depth) * wa + w0
    exps = np.round(np.log(cont / w0) / np.log(wm))
    widths = (np.round(w0 * np.power(wm, exps) / 8) * 8).astype(int)
    stages: list[list[int]] = []
    for w in widths:
        if stages and stages[-1][1] == w:
            stages[-1][0] += 1
        else:
            stages.append([1, int(w), 0])
    for st in stages:
        gw = min(group_width, st[1])
        st[1] = max(gw, int(round(st[1] / gw)) * gw)
        st[2] = gw
    return stages


class Block(nn.Module):
    """1x1 → grouped 3x3 (stride) → [SE] → 1x1, plus the (projected) input, then ReLU."""

    def __init__(self, cin: int, cout: int, s: int, group_width: int, use_se: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn(cin, cout, 1),
                                   conv_bn(cout, cout, 3, s, groups=cout // group_width)]
        if use_se:
            layers.append(se(cout, max(1, int(round(cin * 0.25)))))
        layers.append(conv_bn(cout, cout, 1, a="none"))
        self.body = nn.Sequential(*layers)
        self.short = conv_bn(cin, cout, 1, s, a="none") if s != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.short(x))


def sample(rng: np.random.Generator, r: int) -> Config:
    use_se = chance(rng, 0.5)  # RegNetY
    for _ in range(100):  # the paper keeps only draws with four stages
        stages = stage_widths(pick(rng, [16, 24, 32, 48, 56, 64, 80]), uniform(rng, 8.0, 40.0, 2),
                              uniform(rng, 2.0, 2.8, 3), between(rng, 8, 20), pick(rng, [8, 16, 24, 32, 48]))
        if len(stages) == 4 and stages[-1][1] <= 1024:
            break
    return {"se": use_se, "stem": 32, "stages": stages}


def build(cfg: Config, r: int) -> nn.Module:
    layers: list[nn.Module] = [conv_bn(3, cfg["stem"], 3, 2)]
    cin = cfg["stem"]
    for depth, w, gw in cfg["stages"]:
        for j in range(depth):
            layers.append(Block(cin, w, 2 if j == 0 else 1, gw, cfg["se"]))
            cin = w
    return nn.Sequential(*layers, PoolHead(cin))


register_family("regnet", sample, build, doc="RegNetX/Y from drawn (w0, wa, wm, depth, group width)")
