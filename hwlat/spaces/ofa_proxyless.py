"""Once-for-All ProxylessNAS space (``ofa_proxyless``; supernet ``ofa_proxyless_d234_e346_k357_w1.3``).

Arch (canonical): ``{"ks": [21], "e": [21], "d": [5], "r": int}`` plus ``"wid": 1.0`` for a width-1.0
supernet (omitted for the published width 1.3). Entries 0..19 are the 5 elastic stages × up to 4
blocks; blocks past a stage's depth are inactive and masked to 0. Entry 20 is the single block of
the last stage (always active; OFA's ``ks``/``e`` lists have 21 entries and its ``d`` has a 6th
entry that ``set_active_subnet`` clamps to 1).

Accepted inputs (all canonicalise to the form above):

* dicts with ``r`` as int or ``[int]`` or under ``image_size`` / ``resolution``; ``wid`` (or
  ``width_mult``) 1.3 or 1.0, optional; lists as lists, tuples, numpy arrays or ``"3-5-7"`` strings;
  ``ks`` / ``e`` with 20 entries (DyNAS-T, which reuses the MBv3 encoding) leave the last block at
  OFA's default k=7, e=6; ``d`` with 6 entries (OFA's ``sample_active_subnet``) needs ``d[5]`` ≥ 1;
* DyNAS-T integer index vectors: 45 ints = 20 ``ks`` indices into [3,5,7], 20 ``e`` indices into
  [3,4,6], 5 ``d`` indices into [2,3,4] (last block k=7, e=6); or 47 ints = 21 + 21 + 5 (the last
  block's indices included); one more int, when present, is the resolution in pixels (else 224).

Structure follows OFA's ``OFAProxylessNASNets.get_active_subnet``: first conv 3x3 s2 relu6, first
block MBConv e=1 dw3x3 relu6 **without** shortcut (``ResidualBlock(first_block_conv, None)``),
5 stages × up to 4 MBConv blocks (widths 24/40/80/96/192 × wid, strides 2/2/2/1/2) and one block
of width 320 × wid (stride 1), all relu6 and no SE, mid = make_divisible(round(cin·e), 8), identity
shortcut when stride 1 and cin == cout; feature-mix 1x1 conv 1280 × wid + BN + relu6 on the map,
global average pool, linear 1000. Deviation on purpose: OFA pools with ``x.mean(3).mean(2)``; here
it is ``AdaptiveAvgPool2d`` (same maths, one ONNX op).
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
from hwlat.spaces.ofa_mbv3 import DS, ES, KS, METRICS, R_MIN, R_STEP, RS, _r_of, block_kernels

if TYPE_CHECKING:
    import torch.nn as nn

WIDS = (1.0, 1.3)
DEFAULT_WID = 1.3
N_STAGES, MAX_DEPTH = 5, 4  # elastic stages
N_ELASTIC = N_STAGES * MAX_DEPTH
N_BLOCKS = N_ELASTIC + 1  # + the fixed last-stage block
LAST_K, LAST_E = 7, 6  # OFA's default (max) active settings, kept when only 20 entries are given

BASE_WIDTHS = (32, 16, 24, 40, 80, 96, 192, 320, 1280)
STRIDES = (2, 2, 2, 1, 2)  # elastic stages; the last stage has stride 1
ACT = "relu6"
N_CLASSES = 1000
_KNOWN = frozenset({"ks", "e", "d", "r", "image_size", "resolution", "wid", "width_mult"})


def widths(wid: float) -> tuple[list[int], int]:
    """(first conv, first block, 5 elastic stage widths, last stage width), feature-mix width for ``wid``."""
    return [make_divisible(b * wid, 8) for b in BASE_WIDTHS[:-1]], make_divisible(BASE_WIDTHS[-1] * wid, 8)


def _choice_list(n: str, field: str, v: Any, last_default: int) -> list[int]:
    vals = int_list(n, field, v, None)
    if len(vals) == N_ELASTIC:
        vals.append(last_default)
    elif len(vals) != N_BLOCKS:
        raise EncodingError(f"{n}: {field!r} has {len(vals)} entries; expected {N_BLOCKS} "
                            f"(or {N_ELASTIC}: the last block then keeps OFA's default {last_default})")
    return vals


class OFAProxylessSpace(SearchSpace):
    """OFA ProxylessNAS (ks ∈ {3,5,7}, e ∈ {3,4,6}, d ∈ {2,3,4} per stage, r ∈ 128..224 step 4)."""

    name = "ofa_proxyless"
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
            raise EncodingError(f"{n}: expected a dict with ks/e/d/r or a 45/47-int index vector, got "
                                f"{type(arch).__name__}")
        extra = sorted(set(arch) - _KNOWN)
        if extra:
            raise EncodingError(f"{n}: unknown field(s) {extra}; expected ks, e, d, r [, wid]")
        for f in ("ks", "e", "d"):
            if f not in arch:
                raise EncodingError(f"{n}: missing field {f!r}")
        r = resolution_of(n, arch, RS)
        wid = width_of(n, arch, WIDS, DEFAULT_WID)
        ks = _choice_list(n, "ks", arch["ks"], LAST_K)
        e = _choice_list(n, "e", arch["e"], LAST_E)
        d = int_list(n, "d", arch["d"], None)
        if len(d) == N_STAGES + 1:  # OFA's own dicts: the last stage's depth, clamped to 1 by OFA
            check_in(n, f'"d"[{N_STAGES}]', d[-1], (1, *DS))
            d = d[:-1]
        elif len(d) != N_STAGES:
            raise EncodingError(f"{n}: 'd' has {len(d)} entries; expected {N_STAGES} (or {N_STAGES + 1})")
        for i, v in enumerate(d):
            check_in(n, f'"d"[{i}]', v, DS)
        for i in range(N_ELASTIC):
            st, pos = divmod(i, MAX_DEPTH)
            if pos < d[st]:
                check_in(n, f'"ks"[{i}]', ks[i], KS)
                check_in(n, f'"e"[{i}]', e[i], ES)
            else:  # inactive: any valid value (OFA ignores it) is masked; 0 is accepted as "masked"
                if ks[i] not in (0, *KS):
                    check_in(n, f'"ks"[{i}]', ks[i], KS)
                if e[i] not in (0, *ES):
                    check_in(n, f'"e"[{i}]', e[i], ES)
                ks[i] = 0
                e[i] = 0
        check_in(n, f'"ks"[{N_ELASTIC}]', ks[N_ELASTIC], KS)
        check_in(n, f'"e"[{N_ELASTIC}]', e[N_ELASTIC], ES)
        out: dict[str, Any] = {"ks": ks, "e": e, "d": d, "r": r}
        if wid != DEFAULT_WID:
            out["wid"] = wid
        return out

    def _from_index_vector(self, v: Sequence[Any]) -> dict[str, Any]:
        n = self.name
        vals = int_list(n, "index vector", list(v), None)
        if len(vals) not in (45, 46, 47, 48):
            raise EncodingError(f"{n}: an index vector must have 45 ints (20 ks, 20 e, 5 d indices) or 47 "
                                f"(21 ks, 21 e, 5 d), each + 1 optional resolution; got {len(vals)}")
        nb = N_ELASTIC if len(vals) < 47 else N_BLOCKS
        out: dict[str, Any] = {}
        for name, choices, lo, cnt in (("ks", KS, 0, nb), ("e", ES, nb, nb), ("d", DS, 2 * nb, N_STAGES)):
            lst = []
            for i in range(cnt):
                idx = vals[lo + i]
                if not 0 <= idx < len(choices):
                    raise EncodingError(f"{n}: index vector[{lo + i}] ({name!r}[{i}]) = {idx} not in {{0,1,2}}")
                lst.append(choices[idx])
            out[name] = lst
        end = 2 * nb + N_STAGES
        out["r"] = vals[end] if len(vals) > end else 224
        return out

    def to_index_vector(self, arch: Arch) -> list[int]:
        """DyNAS-T-style 45-int index vector when the last block is k=7, e=6 (else the 47-int form with
        its two indices), inactive blocks get index 0; + resolution when not 224."""
        a = self.canonical(arch)
        nb = N_ELASTIC if (a["ks"][-1], a["e"][-1]) == (LAST_K, LAST_E) else N_BLOCKS
        v = [KS.index(k) if k else 0 for k in a["ks"][:nb]] + [ES.index(x) if x else 0 for x in a["e"][:nb]]
        v += [DS.index(x) for x in a["d"]]
        return v + ([a["r"]] if a["r"] != 224 else [])

    def input_shape(self, arch: Arch) -> tuple[int, ...]:
        r = self.canonical(arch)["r"]
        return (1, 3, r, r)

    # ---- kernels & model ---------------------------------------------------------------------

    def _plan(self, a: Mapping[str, Any]) -> list[tuple[int, int, int, int, int, int, int]]:
        """Active blocks as (stage, h_in, cin, cout, k, s, e); stage 5 is the fixed last block."""
        w, _ = widths(a.get("wid", DEFAULT_WID))
        h = conv_out(a["r"], 3, 2)
        cin = w[1]
        plan = []
        for st in range(N_STAGES + 1):
            depth = a["d"][st] if st < N_STAGES else 1
            for pos in range(depth):
                i = st * MAX_DEPTH + pos
                s = (STRIDES[st] if st < N_STAGES else 1) if pos == 0 else 1
                plan.append((st, h, cin, w[2 + st], a["ks"][i], s, a["e"][i]))
                h = conv_out(h, a["ks"][i], s)
                cin = w[2 + st]
        return plan

    def _stem_kernels(self, r: int, wid: float) -> list[Kernel]:
        w, _ = widths(wid)
        h = conv_out(r, 3, 2)
        # first block: MBConv e=1 (no expand) and, in OFA's ProxylessNAS, no shortcut
        return [kernel("conv_bn_act", h=r, w=r, cin=3, cout=w[0], k=3, s=2, groups=1, act=ACT, residual=0),
                kernel("dwconv", h=h, w=h, c=w[0], k=3, s=1, act=ACT),
                kernel("conv2d", h=h, w=h, cin=w[0], cout=w[1], k=1, s=1, groups=1, residual=0)]

    def _head_kernels(self, h: int, wid: float) -> list[Kernel]:
        w, mix = widths(wid)
        return [
            kernel("conv_bn_act", h=h, w=h, cin=w[-1], cout=mix, k=1, s=1, groups=1, act=ACT, residual=0),
            kernel("global_pool", h=h, w=h, c=mix, mode="avg"),
            kernel("linear", m=1, cin=mix, cout=N_CLASSES, act="none"),
        ]

    def encode(self, arch: Arch) -> list[Kernel]:
        a = self.canonical(arch)
        wid = a.get("wid", DEFAULT_WID)
        out = self._stem_kernels(a["r"], wid)
        h = conv_out(a["r"], 3, 2)
        for _st, hin, cin, cout, k, s, e in self._plan(a):
            out += block_kernels(hin, cin, cout, k, s, e, ACT, False)
            h = conv_out(hin, k, s)
        return out + self._head_kernels(h, wid)

    def build(self, arch: Arch) -> nn.Module:
        from hwlat.spaces import _torch_blocks as tb

        a = self.canonical(arch)
        w, mix = widths(a.get("wid", DEFAULT_WID))
        blocks: list[Any] = [tb.ConvBNAct(3, w[0], 3, 2, 1, ACT),
                             tb.MBConv(w[0], w[1], 3, 1, w[0], ACT, expand=False, residual=False)]
        for _st, _h, cin, cout, k, s, e in self._plan(a):
            blocks.append(tb.MBConv(cin, cout, k, s, make_divisible(round(cin * e), 8), ACT))
        blocks.append(tb.ConvBNAct(w[-1], mix, 1, 1, 1, ACT))
        blocks.append(tb.Head(mix, N_CLASSES))
        return tb.finish(tb.Sequential(blocks))

    # ---- features ----------------------------------------------------------------------------

    def feature_names(self) -> list[str]:
        names = []
        for i in range(N_BLOCKS):
            names += [f"ks{i}_{k}" for k in KS] + [f"e{i}_{x}" for x in ES]
        names += [f"d{s}" for s in range(N_STAGES)] + ["r", "wid", "n_blocks"]
        names += [f"total_{m}" for m in METRICS]
        names += [f"stage{s}_flops" for s in range(N_STAGES + 1)] + [f"stage{s}_bytes" for s in range(N_STAGES + 1)]
        return names

    def features(self, arch: Arch) -> np.ndarray:
        return self.features_batch([arch])[0]

    def features_batch(self, archs: Sequence[Arch] | np.ndarray) -> np.ndarray:
        """Vectorised features. ``archs``: a list of arch dicts (canonical or raw OFA dicts with full
        lists), or an int array (N, 48) of ``ks[21], e[21], d[5], r`` values (wid 1.3)."""
        ks, e, d, r, wid = self._arrays(archs)
        return self._features_from_arrays(ks, e, d, r, wid)

    def _arrays(self, archs: Sequence[Arch] | np.ndarray) -> tuple[np.ndarray, ...]:
        nb, ns = N_BLOCKS, N_STAGES
        if isinstance(archs, np.ndarray) and archs.ndim == 2 and archs.shape[1] == 2 * nb + ns + 1:
            a = archs.astype(np.int64)
            ks, e, d, r = a[:, :nb], a[:, nb:2 * nb], a[:, 2 * nb:2 * nb + ns], a[:, -1]
            wid = np.full(len(a), DEFAULT_WID)
        else:
            archs = list(archs)
            try:  # fast path: well-formed dicts with full list fields
                ks = np.asarray([x["ks"] for x in archs], dtype=np.int64)
                e = np.asarray([x["e"] for x in archs], dtype=np.int64)
                d = np.asarray([x["d"] for x in archs], dtype=np.int64)
                r = np.asarray([_r_of(x) for x in archs], dtype=np.int64)
                wid = np.asarray([float(x.get("wid", DEFAULT_WID) or DEFAULT_WID) for x in archs])
                if ks.shape != (len(archs), nb) or e.shape != (len(archs), nb) or d.shape != (len(archs), ns):
                    raise ValueError
                if any(not _KNOWN.issuperset(x) for x in archs):
                    raise ValueError
            except (TypeError, KeyError, ValueError, AttributeError, IndexError):
                cs = [self.canonical(x) for x in archs]
                ks = np.asarray([c["ks"] for c in cs], dtype=np.int64).reshape(-1, nb)
                e = np.asarray([c["e"] for c in cs], dtype=np.int64).reshape(-1, nb)
                d = np.asarray([c["d"] for c in cs], dtype=np.int64).reshape(-1, ns)
                r = np.asarray([c["r"] for c in cs], dtype=np.int64)
                wid = np.asarray([c.get("wid", DEFAULT_WID) for c in cs])
        self._check_arrays(ks, e, d, r, wid)
        return ks, e, d, r, wid

    def _check_arrays(self, ks: np.ndarray, e: np.ndarray, d: np.ndarray, r: np.ndarray, wid: np.ndarray) -> None:
        n = self.name
        bad = ~np.isin(d, DS)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise EncodingError(f'{n}: arch {i}: "d"[{j}]={d[i, j]} not in {{2,3,4}}')
        active = _active(d)
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
            raise EncodingError(f'{n}: arch {i}: "wid"={wid[i]} not in {{1.0,1.3}}')

    def _features_from_arrays(self, ks: np.ndarray, e: np.ndarray, d: np.ndarray, r: np.ndarray,
                              wid: np.ndarray) -> np.ndarray:
        n = len(ks)
        active = _active(d)
        onehot = np.concatenate([(ks[:, :, None] == np.asarray(KS)) & active[:, :, None],
                                 (e[:, :, None] == np.asarray(ES)) & active[:, :, None]], axis=2)
        ki = np.searchsorted(KS, np.where(active, ks, 3))
        ei = np.searchsorted(ES, np.where(active, e, 3))
        ri = (r - R_MIN) // R_STEP
        wi = (np.round(wid, 6) == WIDS[1]).astype(np.int64)
        # flat row of block[stage, first?, ks, e, r]; stage 5 (the last block) is "first" of its stage
        blk = np.arange(N_BLOCKS)
        base = ((blk // MAX_DEPTH) * 2 + (blk % MAX_DEPTH != 0)) * 9
        flat = (base[None, :] + ki * 3 + ei) * len(RS) + ri[:, None]
        bm = np.empty((n, N_BLOCKS, len(METRICS)))
        fixed = np.empty((n, len(METRICS)))
        for i in np.unique(wi):  # tables are built per width on first use
            t, m = _tables(int(i)), wi == i
            bm[m] = t["block_flat"][flat[m]]
            fixed[m] = t["fixed"][ri[m]]
        bm *= active[:, :, None]
        per_stage = np.concatenate([bm[:, :N_ELASTIC].reshape(n, N_STAGES, MAX_DEPTH, len(METRICS)).sum(axis=2),
                                    bm[:, N_ELASTIC:]], axis=1)  # (n, 6, 4)
        totals = per_stage.sum(axis=1) + fixed
        return np.concatenate([
            onehot.reshape(n, -1), d, r[:, None], wid[:, None],
            active.sum(axis=1, keepdims=True), totals, per_stage[:, :, 0], per_stage[:, :, 2] + per_stage[:, :, 3],
        ], axis=1, dtype=np.float64)


def _active(d: np.ndarray) -> np.ndarray:
    """(n, 21) mask of active blocks; the last block is always active."""
    act = (np.arange(MAX_DEPTH)[None, None, :] < d[:, :, None]).reshape(len(d), N_ELASTIC)
    return np.concatenate([act, np.ones((len(d), 1), dtype=bool)], axis=1)


_TABLES: dict[int, dict[str, np.ndarray]] = {}


def _tables(wi: int) -> dict[str, np.ndarray]:
    """Per-(stage, first-or-not, ks, e, r) block costs and per-r stem+head costs for width ``WIDS[wi]``,
    built once per width from the kernel registry's cost models."""
    if wi in _TABLES:
        return _TABLES[wi]
    wid = WIDS[wi]
    block = np.zeros((N_STAGES + 1, 2, 3, 3, len(RS), len(METRICS)))
    fixed = np.zeros((len(RS), len(METRICS)))
    space = OFAProxylessSpace()
    w, _ = widths(wid)
    for ri, r in enumerate(RS):
        h = conv_out(r, 3, 2)
        for st in range(N_STAGES + 1):
            s0 = STRIDES[st] if st < N_STAGES else 1
            hs = conv_out(h, 3, s0)
            for first in ((0, 1) if st < N_STAGES else (0,)):  # 0 = first block (stride, width change)
                cin = w[1 + st] if first == 0 else w[2 + st]
                hin, s = (h, s0) if first == 0 else (hs, 1)
                for a, k in enumerate(KS):
                    for b, ex in enumerate(ES):
                        block[st, first, a, b, ri] = cost_totals(block_kernels(hin, cin, w[2 + st], k, s, ex, ACT,
                                                                               False))
            h = hs
        fixed[ri] = cost_totals(space._stem_kernels(r, wid) + space._head_kernels(h, wid))
    _TABLES[wi] = {"block_flat": block.reshape(-1, len(METRICS)), "fixed": fixed}
    return _TABLES[wi]


register(OFAProxylessSpace())
