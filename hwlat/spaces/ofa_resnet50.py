"""Once-for-All ResNet50 space (``ofa_resnet50``; OFA's ``ofa_resnet50_d=0+1+2_e=0.2+0.25+0.35_w=0.65+0.8+1.0``).

Arch (canonical): ``{"d": [5], "e": [18], "w": [6], "r": int}`` as in OFA's ``OFAResNets.set_active_subnet``:

* ``d[0]`` ∈ {0,1,2}: the input stem's residual 3x3 conv runs only when ``d[0] == 2`` (canonicalised
  to 0 or 2); ``d[1..4]`` ∈ {0,1,2}: stage i has ``[2,2,4,2][i] + d`` of its ``[4,4,6,4]`` blocks;
* ``e[18]`` ∈ {0.2, 0.25, 0.35}: bottleneck ratio per block, mid = make_divisible(round(out·e), 8);
  inactive blocks are masked to 0;
* ``w[6]`` ∈ {0,1,2}: width-multiplier *indices* into [0.65, 0.8, 1.0] for the stem conv 0 (and the
  residual stem conv), stem conv 2, and the 4 stages;
* ``r`` ∈ 128..256 step 4 (input resolution; OFA's ResNet50 predictor uses 128..256).

Structure: stem conv3x3 s2 → [conv3x3 + identity] → conv3x3 → maxpool 3x3 s2 → bottlenecks
(1x1 → 3x3 (stride) → 1x1, + shortcut, relu) with OFA's "avgpool_conv" shortcut (AvgPool k=s s=s
ceil_mode → 1x1 conv → BN) when the shape changes → global avg pool → linear 1000.
The shortcut AvgPool is a ``pool`` kernel with ``ceil=1``: at odd sizes before a stride-2 block it
outputs ceil(h/2), like the 3x3 stride-2 conv of the main branch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from hwlat.errors import EncodingError
from hwlat.kernels.base import Kernel
from hwlat.spaces._common import (
    as_float,
    as_int,
    check_in,
    conv_out,
    cost_totals,
    int_list,
    kernel,
    make_divisible,
)
from hwlat.spaces.base import Arch, SearchSpace, register

if TYPE_CHECKING:
    import torch.nn as nn

DS = (0, 1, 2)
ES = (0.2, 0.25, 0.35)
WS = (0, 1, 2)
WIDTH_MULTS = (0.65, 0.8, 1.0)
BASE_DEPTH = (2, 2, 4, 2)
MAX_BLOCKS = tuple(b + 2 for b in BASE_DEPTH)  # 4, 4, 6, 4
N_BLOCKS = sum(MAX_BLOCKS)  # 18
STAGE_WIDTHS = (256, 512, 1024, 2048)
STRIDES = (1, 2, 2, 2)
R_MIN, R_MAX, R_STEP = 128, 256, 4
RS = tuple(range(R_MIN, R_MAX + 1, R_STEP))
N_CLASSES = 1000

INPUT_CH = tuple(make_divisible(64 * m, 8) for m in WIDTH_MULTS)
MID_INPUT_CH = tuple(make_divisible(c // 2, 8) for c in INPUT_CH)
STAGE_CH = tuple(tuple(make_divisible(w * m, 8) for m in WIDTH_MULTS) for w in STAGE_WIDTHS)


class OFAResNet50Space(SearchSpace):
    """OFA ResNet50 (depth, bottleneck ratio and width elastic)."""

    name = "ofa_resnet50"
    is_cnn = True

    def sample(self, rng: np.random.Generator) -> Arch:
        arch = {
            "d": [int(x) for x in rng.choice(DS, 5)],
            "e": [float(x) for x in rng.choice(ES, N_BLOCKS)],
            "w": [int(x) for x in rng.choice(WS, 6)],
            "r": int(rng.choice(RS)),
        }
        return self.canonical(arch)

    def canonical(self, arch: Arch) -> dict[str, Any]:
        n = self.name
        if not isinstance(arch, Mapping):
            raise EncodingError(f"{n}: expected a dict with d/e/w/r, got {type(arch).__name__}")
        extra = sorted(set(arch) - {"d", "e", "w", "r", "image_size", "resolution"})
        if extra:
            raise EncodingError(f"{n}: unknown field(s) {extra}; expected d, e, w, r")
        for f in ("d", "e", "w"):
            if f not in arch:
                raise EncodingError(f"{n}: missing field {f!r}")
        rkeys = [k for k in ("r", "image_size", "resolution") if k in arch]
        r_raw = arch[rkeys[0]] if rkeys else 224
        if isinstance(r_raw, (list, tuple, np.ndarray)):
            if len(r_raw) != 1:
                raise EncodingError(f"{n}: 'r' as a list must hold one value, got {list(r_raw)}")
            r_raw = r_raw[0]
        r = as_int(n, '"r"', r_raw)
        check_in(n, '"r"', r, RS)
        d = int_list(n, "d", arch["d"], 5)
        for i, v in enumerate(d):
            check_in(n, f'"d"[{i}]', v, DS)
        w = int_list(n, "w", arch["w"], 6)
        for i, v in enumerate(w):
            check_in(n, f'"w"[{i}]', v, WS)
        e_raw = arch["e"]
        if isinstance(e_raw, np.ndarray):
            e_raw = e_raw.tolist()
        if not isinstance(e_raw, (list, tuple)) or len(e_raw) != N_BLOCKS:
            raise EncodingError(f"{n}: 'e' must be a list of {N_BLOCKS} ratios in {{0.2,0.25,0.35}}")
        e: list[float] = []
        i = 0
        for st in range(4):
            for pos in range(MAX_BLOCKS[st]):
                v = round(as_float(n, f'"e"[{i}]', e_raw[i]), 6)
                if pos < BASE_DEPTH[st] + d[st + 1]:
                    check_in(n, f'"e"[{i}]', v, ES)
                else:
                    if v not in (0.0, *ES):
                        check_in(n, f'"e"[{i}]', v, ES)
                    v = 0.0
                e.append(v if v else 0)
                i += 1
        d[0] = 2 if d[0] == 2 else 0  # OFA only checks d[0] != max
        return {"d": d, "e": e, "w": w, "r": r}

    def input_shape(self, arch: Arch) -> tuple[int, ...]:
        r = self.canonical(arch)["r"]
        return (1, 3, r, r)

    def _plan(self, a: Mapping[str, Any]) -> list[tuple[int, int, int, int, int, int]]:
        """Active bottlenecks as (stage, h_in, cin, cout, s, mid)."""
        h = conv_out(conv_out(a["r"], 3, 2), 3, 2)
        cin = INPUT_CH[a["w"][1]]
        plan = []
        i = 0
        for st in range(4):
            cout = STAGE_CH[st][a["w"][st + 2]]
            for pos in range(MAX_BLOCKS[st]):
                if pos < BASE_DEPTH[st] + a["d"][st + 1]:
                    s = STRIDES[st] if pos == 0 else 1
                    mid = make_divisible(round(cout * a["e"][i]), 8)
                    plan.append((st, h, cin, cout, s, mid))
                    h = conv_out(h, 3, s)
                    cin = cout
                i += 1
        return plan

    def encode(self, arch: Arch) -> list[Kernel]:
        a = self.canonical(arch)
        r = a["r"]
        mid_in, c_in = MID_INPUT_CH[a["w"][0]], INPUT_CH[a["w"][1]]
        h = conv_out(r, 3, 2)
        out = [kernel("conv_bn_act", h=r, w=r, cin=3, cout=mid_in, k=3, s=2, groups=1, act="relu", residual=0)]
        if a["d"][0] == 2:  # ResidualBlock(ConvLayer(conv, bn, relu), Identity): relu comes before the Add
            out.append(kernel("conv_bn_act", h=h, w=h, cin=mid_in, cout=mid_in, k=3, s=1, groups=1, act="relu",
                              residual=0))
            out.append(kernel("add", c=mid_in, hw=h * h, broadcast=0))
        out.append(kernel("conv_bn_act", h=h, w=h, cin=mid_in, cout=c_in, k=3, s=1, groups=1, act="relu",
                          residual=0))
        out.append(kernel("pool", h=h, w=h, c=c_in, k=3, s=2, mode="max"))
        h = conv_out(h, 3, 2)
        for _st, hin, cin, cout, s, mid in self._plan(a):
            out += bottleneck_kernels(hin, cin, cout, s, mid)
            h = conv_out(hin, 3, s)
        cl = self._plan(a)[-1][3]
        out.append(kernel("global_pool", h=h, w=h, c=cl, mode="avg"))
        out.append(kernel("linear", m=1, cin=cl, cout=N_CLASSES, act="none"))
        return out

    def build(self, arch: Arch) -> nn.Module:
        from hwlat.spaces import _torch_blocks as tb
        from hwlat.spaces._torch_resnet import Bottleneck, StemResidual

        a = self.canonical(arch)
        mid_in, c_in = MID_INPUT_CH[a["w"][0]], INPUT_CH[a["w"][1]]
        blocks: list[Any] = [tb.ConvBNAct(3, mid_in, 3, 2, 1, "relu")]
        if a["d"][0] == 2:
            blocks.append(StemResidual(mid_in))
        blocks.append(tb.ConvBNAct(mid_in, c_in, 3, 1, 1, "relu"))
        import torch.nn as tnn

        blocks.append(tnn.MaxPool2d(3, 2, 1))
        for _st, _h, cin, cout, s, mid in self._plan(a):
            blocks.append(Bottleneck(cin, cout, s, mid))
        blocks.append(tb.Head(self._plan(a)[-1][3], N_CLASSES))
        return tb.finish(tb.Sequential(blocks))

    # ---- features ----------------------------------------------------------------------------

    def feature_names(self) -> list[str]:
        names = [f"d{i}" for i in range(5)] + [f"w{i}_{m}" for i in range(6) for m in WIDTH_MULTS]
        names += [f"e{i}" for i in range(N_BLOCKS)] + ["r", "n_blocks"]
        names += ["total_flops", "total_params", "total_bytes_read", "total_bytes_written"]
        names += [f"stage{s}_flops" for s in range(4)]
        return names

    def features(self, arch: Arch) -> np.ndarray:
        a = self.canonical(arch)
        onehot_w = np.zeros((6, 3))
        onehot_w[np.arange(6), a["w"]] = 1
        plan = self._plan(a)
        totals = cost_totals(self.encode(a))
        stage_flops = [0.0] * 4
        for st, hin, cin, cout, s, mid in plan:
            stage_flops[st] += cost_totals(bottleneck_kernels(hin, cin, cout, s, mid))[0]
        return np.concatenate([np.asarray(a["d"], float), onehot_w.ravel(), np.asarray(a["e"], float),
                               [a["r"], len(plan)], totals, stage_flops]).astype(np.float64)


def bottleneck_kernels(h: int, cin: int, cout: int, s: int, mid: int) -> list[Kernel]:
    """One OFA ResNet bottleneck, in OFA's execution order (shortcut branch first)."""
    ho = conv_out(h, 3, s)
    ks: list[Kernel] = []
    if not (s == 1 and cin == cout):  # avgpool_conv shortcut (OFA keeps AvgPool(k=s) even for s=1)
        ks.append(kernel("pool", h=h, w=h, c=cin, k=s, s=s, mode="avg", ceil=1))
        ks.append(kernel("conv2d", h=ho, w=ho, cin=cin, cout=cout, k=1, s=1, groups=1, residual=0))
    ks.append(kernel("conv_bn_act", h=h, w=h, cin=cin, cout=mid, k=1, s=1, groups=1, act="relu", residual=0))
    ks.append(kernel("conv_bn_act", h=h, w=h, cin=mid, cout=mid, k=3, s=s, groups=1, act="relu", residual=0))
    ks.append(kernel("conv_bn_act", h=ho, w=ho, cin=mid, cout=cout, k=1, s=1, groups=1, act="relu", residual=1))
    return ks


register(OFAResNet50Space())
