"""Once-for-All MobileNetV3-Large space (``ofa_mbv3``; supernets ``ofa_mbv3_d234_e346_k357_w1.0`` / ``_w1.2``).

Arch (canonical): ``{"ks": [20], "e": [20], "d": [5], "r": int}`` plus ``"wid": 1.2`` for the
width-1.2 supernet (omitted for the default width 1.0). Blocks past a stage's depth are inactive
and masked to 0 in ``ks`` and ``e``.

Accepted inputs (all canonicalise to the form above):

* dicts with ``r`` as int or ``[int]`` or under ``image_size`` / ``resolution``; ``wid`` (or
  ``width_mult``) 1.0 or 1.2, optional; lists as lists, tuples, numpy arrays or ``"3-5-7"`` strings;
* DyNAS-T integer index vectors: 45 ints = 20 ``ks`` indices into [3,5,7], 20 ``e`` indices
  into [3,4,6], 5 ``d`` indices into [2,3,4] (DyNAS-T's OFA-MBv3 parameter order ks, e, d);
  resolution 224; a 46th int, when present, is the resolution in pixels.

Structure follows OFA's ``OFAMobileNetV3.get_active_subnet``: first conv 3x3 s2 hswish, first
block dw3x3 (e=1, relu) with identity shortcut, 5 stages × up to 4 MBConv blocks (widths
24/40/80/112/160 × wid, strides 2/2/2/1/2, acts relu/relu/hswish/hswish/hswish, SE in stages
2, 4, 5 with mid = make_divisible(c//4, 8), relu + hsigmoid), final 1x1 expand 960 hswish,
global average pool, 1x1 feature-mix 1280 hswish (no BN), linear 1000. Deviation on purpose:
OFA pools with ``x.mean(3).mean(2)`` and gates with ``relu6(x+3)/6``; here they are
``AdaptiveAvgPool2d`` and ``Hardsigmoid``/``Hardswish`` (same maths, one ONNX op each).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hwlat.errors import EncodingError
from hwlat.kernels.base import Kernel
from hwlat.spaces._common import (
    check_in,
    conv_out,
    cost_totals,
    int_list,
    kernel,
    make_divisible,
    resolution_of,
    width_of,
)
from hwlat.spaces.base import Arch, SearchSpace, register

if TYPE_CHECKING:
    import torch.nn as nn

KS = (3, 5, 7)
ES = (3, 4, 6)
DS = (2, 3, 4)
WIDS = (1.0, 1.2)
R_MIN, R_MAX, R_STEP = 128, 224, 4
RS = tuple(range(R_MIN, R_MAX + 1, R_STEP))
N_STAGES, MAX_DEPTH = 5, 4
N_BLOCKS = N_STAGES * MAX_DEPTH

BASE_WIDTHS = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
STRIDES = (2, 2, 2, 1, 2)
ACTS = ("relu", "relu", "hswish", "hswish", "hswish")
SE_STAGES = (False, True, False, True, True)
N_CLASSES = 1000
METRICS = ("flops", "params", "bytes_read", "bytes_written")


def widths(wid: float) -> tuple[list[int], int, int]:
    """(first conv, first block, 5 stage widths), final expand width, feature-mix width for ``wid``."""
    w = [make_divisible(b * wid, 8) for b in BASE_WIDTHS[:-2]]
    return w, make_divisible(BASE_WIDTHS[-2] * wid, 8), make_divisible(BASE_WIDTHS[-1] * wid, 8)


def block_kernels(h: int, cin: int, cout: int, k: int, s: int, e: int, act: str, se: bool) -> list[Kernel]:
    """Kernels of one OFA MBConv block (expand, dw, [se], project[+residual])."""
    mid = make_divisible(round(cin * e), 8)
    ho = conv_out(h, k, s)
    ks: list[Kernel] = []
    if e != 1:
        ks.append(kernel("conv_bn_act", h=h, w=h, cin=cin, cout=mid, k=1, s=1, groups=1, act=act, residual=0))
    ks.append(kernel("dwconv", h=h, w=h, c=mid, k=k, s=s, act=act))
    if se:
        ks.append(kernel("se", h=ho, w=ho, c=mid, cmid=make_divisible(mid // 4, 8), act="relu", gate="hsigmoid"))
    ks.append(kernel("conv2d", h=ho, w=ho, cin=mid, cout=cout, k=1, s=1, groups=1,
                     residual=int(s == 1 and cin == cout)))
    return ks


class OFAMobileNetV3Space(SearchSpace):
    """OFA MobileNetV3 (ks ∈ {3,5,7}, e ∈ {3,4,6}, d ∈ {2,3,4} per stage, r ∈ 128..224 step 4)."""

    name = "ofa_mbv3"
    is_cnn = True

    # ---- encodings ---------------------------------------------------------------------------

    def sample(self, rng: np.random.Generator) -> Arch:
        arch = {
            "ks": [int(x) for x in rng.choice(KS, N_BLOCKS)],
            "e": [int(x) for x in rng.choice(ES, N_BLOCKS)],
            "d": [int(x) for x in rng.choice(DS, N_STAGES)],
            "r": int(rng.choice(RS)),
        }
        return self.canonical(arch)

    def canonical(self, arch: Arch) -> dict[str, Any]:
        n = self.name
        if isinstance(arch, np.ndarray) or (isinstance(arch, (list, tuple)) and not isinstance(arch, str)):
            arch = self._from_index_vector(arch)
        if not isinstance(arch, Mapping):
            raise EncodingError(f"{n}: expected a dict with ks/e/d/r or a 45-int index vector, got "
                                f"{type(arch).__name__}")
        known = {"ks", "e", "d", "r", "image_size", "resolution", "wid", "width_mult"}
        extra = sorted(set(arch) - known)
        if extra:
            raise EncodingError(f"{n}: unknown field(s) {extra}; expected ks, e, d, r [, wid]")
        for f in ("ks", "e", "d"):
            if f not in arch:
                raise EncodingError(f"{n}: missing field {f!r}")
        r = resolution_of(n, arch, RS)
        wid = width_of(n, arch, WIDS, 1.0)
        ks = int_list(n, "ks", arch["ks"], N_BLOCKS)
        e = int_list(n, "e", arch["e"], N_BLOCKS)
        d = int_list(n, "d", arch["d"], N_STAGES)
        for i, v in enumerate(d):
            check_in(n, f'"d"[{i}]', v, DS)
        for i in range(N_BLOCKS):
            st, pos = divmod(i, MAX_DEPTH)
            if pos < d[st]:
                check_in(n, f'"ks"[{i}]', ks[i], KS)
                check_in(n, f'"e"[{i}]', e[i], ES)
            else:  # inactive: any value (OFA ignores it) is masked; 0 is accepted as "masked"
                if ks[i] not in (0, *KS):
                    check_in(n, f'"ks"[{i}]', ks[i], KS)
                if e[i] not in (0, *ES):
                    check_in(n, f'"e"[{i}]', e[i], ES)
                ks[i] = 0
                e[i] = 0
        out: dict[str, Any] = {"ks": ks, "e": e, "d": d, "r": r}
        if wid != 1.0:
            out["wid"] = wid
        return out

    def _from_index_vector(self, v: Sequence[Any]) -> dict[str, Any]:
        n = self.name
        vals = int_list(n, "index vector", list(v), None)
        if len(vals) not in (45, 46):
            raise EncodingError(f"{n}: an index vector must have 45 ints (20 ks, 20 e, 5 d indices) or 46 "
                                f"(+ resolution), got {len(vals)}")
        out: dict[str, Any] = {}
        for name, choices, lo, cnt in (("ks", KS, 0, 20), ("e", ES, 20, 20), ("d", DS, 40, 5)):
            lst = []
            for i in range(cnt):
                idx = vals[lo + i]
                if not 0 <= idx < len(choices):
                    raise EncodingError(f"{n}: index vector[{lo + i}] ({name!r}[{i}]) = {idx} not in {{0,1,2}}")
                lst.append(choices[idx])
            out[name] = lst
        out["r"] = vals[45] if len(vals) == 46 else 224
        return out

    def to_index_vector(self, arch: Arch) -> list[int]:
        """DyNAS-T-style 45-int index vector (inactive blocks get index 0), + resolution when not 224."""
        a = self.canonical(arch)
        v = [KS.index(k) if k else 0 for k in a["ks"]] + [ES.index(x) if x else 0 for x in a["e"]]
        v += [DS.index(x) for x in a["d"]]
        return v + ([a["r"]] if a["r"] != 224 else [])

    def input_shape(self, arch: Arch) -> tuple[int, ...]:
        r = self.canonical(arch)["r"]
        return (1, 3, r, r)

    # ---- kernels & model ---------------------------------------------------------------------

    def _plan(self, a: Mapping[str, Any]) -> list[tuple[int, int, int, int, int, int, int]]:
        """Active blocks as (stage, h_in, cin, cout, k, s, e)."""
        w, _, _ = widths(a.get("wid", 1.0))
        h = conv_out(conv_out(a["r"], 3, 2), 3, 1)
        cin = w[1]
        plan = []
        for st in range(N_STAGES):
            for pos in range(a["d"][st]):
                i = st * MAX_DEPTH + pos
                s = STRIDES[st] if pos == 0 else 1
                plan.append((st, h, cin, w[2 + st], a["ks"][i], s, a["e"][i]))
                h = conv_out(h, a["ks"][i], s)
                cin = w[2 + st]
        return plan

    def _stem_kernels(self, r: int, wid: float) -> list[Kernel]:
        w, _, _ = widths(wid)
        h = conv_out(r, 3, 2)
        ks = [kernel("conv_bn_act", h=r, w=r, cin=3, cout=w[0], k=3, s=2, groups=1, act="hswish", residual=0)]
        # first block: MBConv e=1 (no expand), relu, identity shortcut when widths match
        ks.append(kernel("dwconv", h=h, w=h, c=w[0], k=3, s=1, act="relu"))
        ks.append(kernel("conv2d", h=h, w=h, cin=w[0], cout=w[1], k=1, s=1, groups=1, residual=int(w[0] == w[1])))
        return ks

    def _head_kernels(self, h: int, wid: float) -> list[Kernel]:
        w, fe, mix = widths(wid)
        return [
            kernel("conv_bn_act", h=h, w=h, cin=w[-1], cout=fe, k=1, s=1, groups=1, act="hswish", residual=0),
            kernel("global_pool", h=h, w=h, c=fe, mode="avg"),
            kernel("conv_bn_act", h=1, w=1, cin=fe, cout=mix, k=1, s=1, groups=1, act="hswish", residual=0),
            kernel("linear", m=1, cin=mix, cout=N_CLASSES, act="none"),
        ]

    def encode(self, arch: Arch) -> list[Kernel]:
        a = self.canonical(arch)
        wid = a.get("wid", 1.0)
        out = self._stem_kernels(a["r"], wid)
        h = conv_out(a["r"], 3, 2)
        for st, hin, cin, cout, k, s, e in self._plan(a):
            out += block_kernels(hin, cin, cout, k, s, e, ACTS[st], SE_STAGES[st])
            h = conv_out(hin, k, s)
        return out + self._head_kernels(h, wid)

    def build(self, arch: Arch) -> nn.Module:
        from hwlat.spaces import _torch_blocks as tb

        a = self.canonical(arch)
        wid = a.get("wid", 1.0)
        w, fe, mix = widths(wid)
        blocks: list[Any] = [tb.ConvBNAct(3, w[0], 3, 2, 1, "hswish"),
                             tb.MBConv(w[0], w[1], 3, 1, w[0], "relu", expand=False)]
        for st, _h, cin, cout, k, s, e in self._plan(a):
            mid = make_divisible(round(cin * e), 8)
            se_mid = make_divisible(mid // 4, 8) if SE_STAGES[st] else 0
            blocks.append(tb.MBConv(cin, cout, k, s, mid, ACTS[st], se_mid))
        blocks.append(tb.ConvBNAct(w[-1], fe, 1, 1, 1, "hswish"))
        blocks.append(tb.Head(fe, N_CLASSES, mix=mix, mix_act="hswish"))
        return tb.finish(tb.Sequential(blocks))

    # ---- features ----------------------------------------------------------------------------

    def feature_names(self) -> list[str]:
        names = []
        for i in range(N_BLOCKS):
            names += [f"ks{i}_{k}" for k in KS] + [f"e{i}_{x}" for x in ES]
        names += [f"d{s}" for s in range(N_STAGES)] + ["r", "wid", "n_blocks"]
        names += [f"total_{m}" for m in METRICS]
        names += [f"stage{s}_flops" for s in range(N_STAGES)] + [f"stage{s}_bytes" for s in range(N_STAGES)]
        return names

    def features(self, arch: Arch) -> np.ndarray:
        return self.features_batch([arch])[0]

    def features_batch(self, archs: Sequence[Arch] | np.ndarray) -> np.ndarray:
        """Vectorised features. ``archs``: a list of arch dicts (canonical or raw OFA dicts with full
        lists), or an int array (N, 46) of ``ks[20], e[20], d[5], r`` values (wid 1.0)."""
        ks, e, d, r, wid = self._arrays(archs)
        return self._features_from_arrays(ks, e, d, r, wid)

    def _arrays(self, archs: Sequence[Arch] | np.ndarray) -> tuple[np.ndarray, ...]:
        if isinstance(archs, np.ndarray) and archs.ndim == 2 and archs.shape[1] == 46:
            a = archs.astype(np.int64)
            ks, e, d, r = a[:, :20], a[:, 20:40], a[:, 40:45], a[:, 45]
            wid = np.ones(len(a))
        else:
            archs = list(archs)
            try:  # fast path: well-formed dicts with list fields
                ks = np.asarray([x["ks"] for x in archs], dtype=np.int64)
                e = np.asarray([x["e"] for x in archs], dtype=np.int64)
                d = np.asarray([x["d"] for x in archs], dtype=np.int64)
                r = np.asarray([_r_of(x) for x in archs], dtype=np.int64)
                wid = np.asarray([float(x.get("wid", 1.0) or 1.0) for x in archs])
                if ks.shape != (len(archs), 20) or e.shape != (len(archs), 20) or d.shape != (len(archs), 5):
                    raise ValueError
                if any(not _KNOWN.issuperset(x) for x in archs):
                    raise ValueError
            except (TypeError, KeyError, ValueError, AttributeError, IndexError):
                cs = [self.canonical(x) for x in archs]
                ks = np.asarray([c["ks"] for c in cs], dtype=np.int64).reshape(-1, 20)
                e = np.asarray([c["e"] for c in cs], dtype=np.int64).reshape(-1, 20)
                d = np.asarray([c["d"] for c in cs], dtype=np.int64).reshape(-1, 5)
                r = np.asarray([c["r"] for c in cs], dtype=np.int64)
                wid = np.asarray([c.get("wid", 1.0) for c in cs])
        self._check_arrays(ks, e, d, r, wid)
        return ks, e, d, r, wid

    def _check_arrays(self, ks: np.ndarray, e: np.ndarray, d: np.ndarray, r: np.ndarray, wid: np.ndarray) -> None:
        n = self.name
        bad = ~np.isin(d, DS)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise EncodingError(f'{n}: arch {i}: "d"[{j}]={d[i, j]} not in {{2,3,4}}')
        active = np.arange(MAX_DEPTH)[None, None, :] < d[:, :, None]
        active = active.reshape(len(d), N_BLOCKS)
        for name, arr, ch in (("ks", ks, KS), ("e", e, ES)):
            bad = active & ~np.isin(arr, ch)
            if bad.any():
                i, j = np.argwhere(bad)[0]
                raise EncodingError(f'{n}: arch {i}: "{name}"[{j}]={arr[i, j]} not in {{{",".join(map(str, ch))}}}')
        bad = ~np.isin(r, RS)
        if bad.any():
            i = int(np.argwhere(bad)[0][0])
            raise EncodingError(f'{n}: arch {i}: "r"={r[i]} not in 128..224 step 4')
        bad = ~np.isin(np.round(wid, 6), WIDS)
        if bad.any():
            i = int(np.argwhere(bad)[0][0])
            raise EncodingError(f'{n}: arch {i}: "wid"={wid[i]} not in {{1.0,1.2}}')

    def _features_from_arrays(self, ks: np.ndarray, e: np.ndarray, d: np.ndarray, r: np.ndarray,
                              wid: np.ndarray) -> np.ndarray:
        t = _tables()
        n = len(ks)
        active = (np.arange(MAX_DEPTH)[None, None, :] < d[:, :, None]).reshape(n, N_BLOCKS)
        # one-hot by comparison (cheaper than scatter); inactive blocks stay all-zero
        onehot = np.concatenate([(ks[:, :, None] == np.asarray(KS)) & active[:, :, None],
                                 (e[:, :, None] == np.asarray(ES)) & active[:, :, None]], axis=2)
        ki = np.searchsorted(KS, np.where(active, ks, 3))
        ei = np.searchsorted(ES, np.where(active, e, 3))
        ri = (r - R_MIN) // R_STEP
        wi = (np.round(wid, 6) == 1.2).astype(np.int64)
        # flat index into block[wid, stage, first?, ks, e, r]: one gather instead of six-way fancy indexing
        blk = np.arange(N_BLOCKS)
        base = ((blk // MAX_DEPTH) * 2 + (blk % MAX_DEPTH != 0)) * 9  # (stage, first?) part, (20,)
        flat = ((wi[:, None] * (N_STAGES * 2 * 9) + base[None, :] + ki * 3 + ei) * len(RS) + ri[:, None])
        bm = t["block_flat"][flat] * active[:, :, None]  # (n, 20, 4)
        per_stage = bm.reshape(n, N_STAGES, MAX_DEPTH, len(METRICS)).sum(axis=2)  # (n, 5, 4)
        # fixed parts depend on the final spatial size, which depends only on r
        totals = per_stage.sum(axis=1) + t["fixed"][wi, ri]
        stage_flops = per_stage[:, :, 0]
        stage_bytes = per_stage[:, :, 2] + per_stage[:, :, 3]
        return np.concatenate([
            onehot.reshape(n, -1), d, r[:, None], wid[:, None],
            active.sum(axis=1, keepdims=True), totals, stage_flops, stage_bytes,
        ], axis=1, dtype=np.float64)


_KNOWN = frozenset({"ks", "e", "d", "r", "image_size", "resolution", "wid", "width_mult"})


def _r_of(x: Mapping[str, Any]) -> int:
    for k in ("r", "image_size", "resolution"):
        if k in x:
            v = x[k]
            return int(v[0]) if isinstance(v, (list, tuple)) else int(v)
    return 224


_TABLES: dict[str, np.ndarray] = {}


def _tables() -> dict[str, np.ndarray]:
    """Per-(wid, stage, first-or-not, ks, e, r) block costs and per-(wid, r) stem+head costs, built once
    from the kernel registry's cost models (so importing this module never needs the registry)."""
    if _TABLES:
        return _TABLES
    block = np.zeros((2, N_STAGES, 2, 3, 3, len(RS), len(METRICS)))
    fixed = np.zeros((2, len(RS), len(METRICS)))
    space = OFAMobileNetV3Space()
    for wi, wid in enumerate(WIDS):
        w, _, _ = widths(wid)
        for ri, r in enumerate(RS):
            h = conv_out(r, 3, 2)
            for st in range(N_STAGES):
                hs = conv_out(h, 3, STRIDES[st])
                for first in (0, 1):  # index 0 = first block of the stage (stride, width change)
                    cin = w[1 + st] if first == 0 else w[2 + st]
                    hin, s = (h, STRIDES[st]) if first == 0 else (hs, 1)
                    for a, k in enumerate(KS):
                        for b, ex in enumerate(ES):
                            kl = block_kernels(hin, cin, w[2 + st], k, s, ex, ACTS[st], SE_STAGES[st])
                            block[wi, st, first, a, b, ri] = cost_totals(kl)
                h = hs
            fixed[wi, ri] = cost_totals(space._stem_kernels(r, wid) + space._head_kernels(h, wid))
    _TABLES["block"] = block
    _TABLES["block_flat"] = block.reshape(-1, len(METRICS))
    _TABLES["fixed"] = fixed
    return _TABLES


register(OFAMobileNetV3Space())
