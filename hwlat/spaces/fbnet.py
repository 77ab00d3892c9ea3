"""FBNet space as used by HW-NAS-Bench / HELP (``fbnet``): 22 searchable layers, 9 candidate ops each,
CIFAR-100 input 32x32 (HELP's FBNet latencies are for this setting).

Op indices (HW-NAS-Bench ``ops_str_lookup_table``; checked against HELP's ``fbnet_latency_ms.csv`` rows):
0 k3_e1, 1 k3_e1_g2, 2 k3_e3, 3 k3_e6, 4 k5_e1, 5 k5_e1_g2, 6 k5_e3, 7 k5_e6, 8 skip.

Canonical arch: a list of 22 op names. Accepted: 22 op indices (list / array / "7-8-1-..."
string), 22 op names (list or "k5_e6-skip-..." string), or a dict with ``op_idx_list`` or
``arch_str`` (HELP's metainfo rows).

Macro (HW-NAS-Bench ``fbnet_get_metrics``, CIFAR-100): stem conv3x3 s1 16; stages of
[1, 4, 4, 4, 4, 4, 1] layers with widths [16, 24, 32, 64, 112, 184, 352] and first-layer strides
[1, 1, 2, 2, 1, 2, 1]; head conv1x1 1504; global average pool; linear 100.
Blocks follow FBNet's IRF block (maskrcnn-benchmark ``fbnet_builder``): 1x1 conv (groups g) + BN +
ReLU, channel shuffle when g > 1, depthwise kxk (stride) + BN + ReLU, 1x1 conv (groups g) + BN,
identity residual when stride 1 and widths match. ``skip`` is the identity, or a 1x1 conv (stride)
+ BN + ReLU where the layer changes width or stride. Assumptions not pinned down by the public
benchmark code (HW-NAS-Bench ships LUT entries, not the model): stem and head have BN + ReLU,
the depthwise conv has a ReLU, e=1 blocks keep the 1x1 expansion conv.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hwlat.errors import EncodingError
from hwlat.kernels.base import Kernel
from hwlat.spaces._common import as_int, conv_out, cost_totals, kernel
from hwlat.spaces.base import Arch, SearchSpace, register

if TYPE_CHECKING:
    import torch.nn as nn

OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
N_LAYERS = 22
STEM = 16
LAYERS = (1, 4, 4, 4, 4, 4, 1)
WIDTHS = (16, 24, 32, 64, 112, 184, 352)
STRIDES = (1, 1, 2, 2, 1, 2, 1)
HEAD = 1504
N_CLASSES = 100
R = 32


def op_params(op: str) -> tuple[int, int, int]:
    """(k, e, groups) of a non-skip op name."""
    k, e = op.split("_")[:2]
    return int(k[1:]), int(e[1:]), 2 if op.endswith("_g2") else 1


def layer_plan() -> list[tuple[int, int, int, int, int]]:
    """(layer, stage, cin, cout, stride) of the 22 layers."""
    out, cin, i = [], STEM, 0
    for st, (n, w, s) in enumerate(zip(LAYERS, WIDTHS, STRIDES)):
        for j in range(n):
            out.append((i, st, cin, w, s if j == 0 else 1))
            cin = w
            i += 1
    return out


def layer_kernels(op: str, h: int, cin: int, cout: int, s: int) -> list[Kernel]:
    if op == "skip":
        if s == 1 and cin == cout:
            return []
        return [kernel("conv_bn_act", h=h, w=h, cin=cin, cout=cout, k=1, s=s, groups=1, act="relu", residual=0)]
    k, e, g = op_params(op)
    mid = cin * e
    ho = conv_out(h, k, s)
    ks = [kernel("conv_bn_act", h=h, w=h, cin=cin, cout=mid, k=1, s=1, groups=g, act="relu", residual=0)]
    if g > 1:
        ks.append(kernel("channel_shuffle", h=h, w=h, c=mid, groups=g))
    ks.append(kernel("dwconv", h=h, w=h, c=mid, k=k, s=s, act="relu"))
    ks.append(kernel("conv2d", h=ho, w=ho, cin=mid, cout=cout, k=1, s=1, groups=g,
                     residual=int(s == 1 and cin == cout)))
    return ks


class FBNetSpace(SearchSpace):
    """HW-NAS-Bench FBNet space (9^22 archs)."""

    name = "fbnet"
    is_cnn = True

    def sample(self, rng: np.random.Generator) -> Arch:
        return [OPS[int(i)] for i in rng.integers(0, len(OPS), N_LAYERS)]

    def canonical(self, arch: Arch) -> list[str]:
        n = self.name
        if isinstance(arch, Mapping):
            keys = [k for k in ("op_idx_list", "arch_str", "ops") if k in arch]
            if not keys:
                raise EncodingError(f"{n}: dict needs 'op_idx_list' or 'arch_str', got keys {sorted(arch)}")
            arch = arch[keys[0]]
        if isinstance(arch, str):
            arch = [p for p in arch.replace(",", "-").replace(" ", "-").split("-") if p]
            # op names contain '_' not '-'; integers are digits
        if isinstance(arch, np.ndarray):
            arch = arch.tolist()
        if not isinstance(arch, (list, tuple)):
            raise EncodingError(f"{n}: expected 22 op indices or names, got {type(arch).__name__}")
        if len(arch) != N_LAYERS:
            raise EncodingError(f"{n}: expected {N_LAYERS} layers, got {len(arch)}")
        out = []
        for i, v in enumerate(arch):
            if isinstance(v, str) and not v.strip().isdigit():
                if v.strip() not in OPS:
                    raise EncodingError(f"{n}: layer[{i}]={v!r} not in {{{','.join(OPS)}}}")
                out.append(v.strip())
            else:
                j = as_int(n, f"layer[{i}]", v)
                if not 0 <= j < len(OPS):
                    raise EncodingError(f"{n}: layer[{i}]={j} not in 0..8")
                out.append(OPS[j])
        return out

    def op_indices(self, arch: Arch) -> list[int]:
        return [OPS.index(o) for o in self.canonical(arch)]

    def input_shape(self, arch: Arch) -> tuple[int, ...]:
        self.canonical(arch)
        return (1, 3, R, R)

    def encode(self, arch: Arch) -> list[Kernel]:
        ops = self.canonical(arch)
        out = [kernel("conv_bn_act", h=R, w=R, cin=3, cout=STEM, k=3, s=1, groups=1, act="relu", residual=0)]
        h = R
        for i, _st, cin, cout, s in layer_plan():
            out += layer_kernels(ops[i], h, cin, cout, s)
            h = conv_out(h, 1, s) if ops[i] == "skip" else conv_out(h, op_params(ops[i])[0], s)
        out.append(kernel("conv_bn_act", h=h, w=h, cin=WIDTHS[-1], cout=HEAD, k=1, s=1, groups=1, act="relu",
                          residual=0))
        out.append(kernel("global_pool", h=h, w=h, c=HEAD, mode="avg"))
        out.append(kernel("linear", m=1, cin=HEAD, cout=N_CLASSES, act="none"))
        return out

    def build(self, arch: Arch) -> nn.Module:
        from hwlat.spaces import _torch_blocks as tb

        ops = self.canonical(arch)
        blocks: list[Any] = [tb.ConvBNAct(3, STEM, 3, 1, 1, "relu")]
        for i, _st, cin, cout, s in layer_plan():
            op = ops[i]
            if op == "skip":
                if not (s == 1 and cin == cout):
                    blocks.append(tb.ConvBNAct(cin, cout, 1, s, 1, "relu"))
                continue
            k, e, g = op_params(op)
            blocks.append(_irf(cin, cout, k, s, e, g))
        blocks.append(tb.ConvBNAct(WIDTHS[-1], HEAD, 1, 1, 1, "relu"))
        blocks.append(tb.Head(HEAD, N_CLASSES))
        return tb.finish(tb.Sequential(blocks))

    def feature_names(self) -> list[str]:
        names = [f"l{i}_{o}" for i in range(N_LAYERS) for o in OPS]
        names += ["total_flops", "total_params", "total_bytes_read", "total_bytes_written"]
        return names + [f"stage{s}_flops" for s in range(len(LAYERS))]

    def features(self, arch: Arch) -> np.ndarray:
        return self.features_batch([arch])[0]

    def features_batch(self, archs: Sequence[Arch]) -> np.ndarray:
        idx = np.asarray([self.op_indices(a) for a in archs], dtype=np.int64).reshape(-1, N_LAYERS)
        t = _table()
        n = len(idx)
        onehot = np.zeros((n, N_LAYERS, len(OPS)))
        onehot[np.arange(n)[:, None], np.arange(N_LAYERS)[None, :], idx] = 1
        per_layer = t["layer"][np.arange(N_LAYERS)[None, :], idx]  # (n, 22, 4)
        totals = per_layer.sum(axis=1) + t["fixed"][None, :]
        stage_of = np.repeat(np.arange(len(LAYERS)), LAYERS)
        stage_flops = np.stack([per_layer[:, stage_of == s, 0].sum(axis=1) for s in range(len(LAYERS))], axis=1)
        return np.concatenate([onehot.reshape(n, -1), totals, stage_flops], axis=1)


def _irf(cin: int, cout: int, k: int, s: int, e: int, g: int) -> Any:
    import torch.nn as tnn

    from hwlat.spaces import _torch_blocks as tb

    class IRF(tnn.Module):
        def __init__(self) -> None:
            super().__init__()
            mid = cin * e
            self.pw = tb.ConvBNAct(cin, mid, 1, 1, g, "relu")
            self.shuffle = tb.ChannelShuffle(g) if g > 1 else None
            self.dw = tb.ConvBNAct(mid, mid, k, s, mid, "relu")
            self.pwl = tb.ConvBNAct(mid, cout, 1, 1, g, "none")
            self.res = s == 1 and cin == cout

        def forward(self, x: Any) -> Any:
            y = self.pw(x)
            if self.shuffle is not None:
                y = self.shuffle(y)
            return self.pwl(self.dw(y), x if self.res else None)

    return IRF()


_TABLE: dict[str, np.ndarray] = {}


def _table() -> dict[str, np.ndarray]:
    """Per-(layer, op) cost rows and the fixed stem+head cost (spatial sizes do not depend on ops)."""
    if _TABLE:
        return _TABLE
    layer = np.zeros((N_LAYERS, len(OPS), 4))
    h = R
    for i, _st, cin, cout, s in layer_plan():
        for j, op in enumerate(OPS):
            layer[i, j] = cost_totals(layer_kernels(op, h, cin, cout, s))
        h = conv_out(h, 3, s)
    fixed = cost_totals([
        kernel("conv_bn_act", h=R, w=R, cin=3, cout=STEM, k=3, s=1, groups=1, act="relu", residual=0),
        kernel("conv_bn_act", h=h, w=h, cin=WIDTHS[-1], cout=HEAD, k=1, s=1, groups=1, act="relu", residual=0),
        kernel("global_pool", h=h, w=h, c=HEAD, mode="avg"),
        kernel("linear", m=1, cin=HEAD, cout=N_CLASSES, act="none"),
    ])
    _TABLE["layer"] = layer
    _TABLE["fixed"] = np.asarray(fixed)
    return _TABLE


register(FBNetSpace())
