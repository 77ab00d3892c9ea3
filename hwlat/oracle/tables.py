"""Exact per-slot lookup tables for additive latency models (the oracle's fast path).

In a kernel-sum model every block of an OFA-MobileNetV3 or FBNet arch contributes its kernels'
aggregates (Σ ms, count, squared interval half-widths) independently of the other blocks: a block's
input size depends only on the resolution and the strides (odd kernels, "same" padding), and its
input width only on the stage. So each slot × choice × resolution is predicted once with
``predict_kernels`` and an arch is a vectorised sum of table rows plus a fixed stem/head part.

Tables are built from the space's own kernel builders (``block_kernels`` / ``layer_kernels``); the
stem/head part is the arch's ``encode()`` minus its blocks, so a change in the space's stem or head
is picked up. ``tests/test_oracle_core.py`` checks table sums against ``predict_kernels(encode(a))``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hwlat.errors import EncodingError
from hwlat.kernels.base import Kernel
from hwlat.oracle.models import AGGREGATES, aggregates

NA = len(AGGREGATES)


class KernelPredictions:
    """Predicts many kernel lists at once: unique kernels go to the model in one call."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def aggregate_lists(self, lists: Sequence[Sequence[Kernel]]) -> np.ndarray:
        """(len(lists), NA) aggregates of each kernel list."""
        uniq: dict[str, int] = {}
        order: list[Kernel] = []
        idx_lists = []
        for ks in lists:
            idx = []
            for k in ks:
                key = k.key()
                j = uniq.get(key)
                if j is None:
                    j = uniq[key] = len(order)
                    order.append(k)
                idx.append(j)
            idx_lists.append(idx)
        out = np.zeros((len(lists), NA))
        if not order:
            return out
        m, lo, hi = self.model.predict_kernels(order)
        m, lo, hi = np.asarray(m, np.float64), np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        for i, idx in enumerate(idx_lists):
            if idx:
                ix = np.asarray(idx)
                out[i] = aggregates(m[ix], lo[ix], hi[ix])
        return out


def _minus(full: Sequence[Kernel], parts: Sequence[Kernel]) -> list[Kernel]:
    """``full`` without one occurrence of each kernel of ``parts`` (multiset difference)."""
    need = Counter(k.key() for k in parts)
    out = []
    for k in full:
        key = k.key()
        if need.get(key, 0) > 0:
            need[key] -= 1
        else:
            out.append(k)
    if any(v > 0 for v in need.values()):
        raise RuntimeError("space encoding does not contain the block kernels the lookup table expects")
    return out


class SlotTable:
    """Base: ``agg`` rows per slot and choice, plus a fixed part; subclasses say how archs map."""

    space_name = ""

    def key(self, arch: Any) -> tuple[int, ...] | None:
        """A hashable canonical key for common well-formed inputs (fast), or None to fall back."""
        raise NotImplementedError

    def agg_of_key(self, key: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError

    def agg_batch(self, archs: Any) -> np.ndarray | None:
        """(n, NA) aggregates of many archs, or None when the input form is not vectorisable."""
        raise NotImplementedError

    # -- pickling (hwlat.oracle.portable): the tables travel, the model and the space module do not --
    #: attributes rebuilt after unpickling instead of pickled (a module object, the model, caches)
    _TRANSIENT: tuple[str, ...] = ("preds", "_py")

    def prebuild(self) -> None:
        """Build the tables every query of the default form needs, before the table is pickled."""
        raise NotImplementedError

    def attach(self, model: Any) -> None:
        """After unpickling: the model that builds tables still missing (e.g. ofa_mbv3 width 1.2)."""
        self.preds = KernelPredictions(model)

    def _restore(self) -> None:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._restore()


# ---- OFA MobileNetV3 -----------------------------------------------------------------------------

class MBv3Table(SlotTable):
    """OFA-MobileNetV3: ``block[ri, slot, c]`` with c = ks_index·3 + e_index (c = 9: inactive, zeros)
    and ``fixed[ri]`` per width multiplier, built lazily per width."""

    space_name = "ofa_mbv3"

    def __init__(self, model: Any) -> None:
        from hwlat.spaces import ofa_mbv3 as m

        self.m = m
        self.preds = KernelPredictions(model)
        self.block: dict[int, np.ndarray] = {}  # wid index -> (n_r, 20, 10, NA)
        self.fixed: dict[int, np.ndarray] = {}  # wid index -> (n_r, NA)
        self._py: dict[int, list[list[list[tuple[float, ...]]]]] = {}
        self.ks_set = {k: i for i, k in enumerate(m.KS)}
        self.e_set = {e: i for i, e in enumerate(m.ES)}
        self.r_index = {r: i for i, r in enumerate(m.RS)}

    _TRANSIENT = ("preds", "_py", "m")

    def prebuild(self) -> None:
        self.build(0)  # width 1.0: the space's sampler and every encoding without "wid"

    def _restore(self) -> None:
        from hwlat.spaces import ofa_mbv3 as m

        self.m = m
        self.preds = getattr(self, "preds", None)
        self._py = {wi: self._rows(wi) for wi in self.block}

    def _rows(self, wi: int) -> list[list[list[tuple[float, ...]]]]:
        """Per-arch lookups read Python tuples: summing them beats numpy indexing for one arch."""
        block = self.block[wi]
        return [[[tuple(block[ri, s, c]) for c in range(10)] for s in range(self.m.N_BLOCKS)]
                for ri in range(len(self.m.RS))]

    # -- building ----------------------------------------------------------------------------------
    def _stage_inputs(self, r: int, wid: float) -> list[tuple[int, int, int, int]]:
        """Per stage: (h at the first block, h at later blocks, cin of the first block, cout)."""
        m = self.m
        w, _, _ = m.widths(wid)
        h = m.conv_out(m.conv_out(r, 3, 2), 3, 1)
        out = []
        for st in range(m.N_STAGES):
            hs = m.conv_out(h, 3, m.STRIDES[st])  # odd kernels: output size does not depend on ks
            out.append((h, hs, w[1 + st], w[2 + st]))
            h = hs
        return out

    def _block(self, st: int, pos: int, k: int, e: int, geo: tuple[int, int, int, int]) -> list[Kernel]:
        m = self.m
        h, hs, cin0, cout = geo
        if pos == 0:
            return m.block_kernels(h, cin0, cout, k, m.STRIDES[st], e, m.ACTS[st], m.SE_STAGES[st])
        return m.block_kernels(hs, cout, cout, k, 1, e, m.ACTS[st], m.SE_STAGES[st])

    def build(self, wi: int) -> None:
        if wi in self.block:
            return
        m = self.m
        wid = m.WIDS[wi]
        lists: list[list[Kernel]] = []
        where: list[tuple[int, int, int, int]] = []  # (ri, stage, first?, c)
        fixed_lists = []
        for ri, r in enumerate(m.RS):
            geo = self._stage_inputs(r, wid)
            for st in range(m.N_STAGES):
                for first in (1, 0):
                    for a, k in enumerate(m.KS):
                        for b, e in enumerate(m.ES):
                            lists.append(self._block(st, 0 if first else 1, k, e, geo[st]))
                            where.append((ri, st, first, a * 3 + b))
            # stem + head = encode(minimal arch) minus its blocks
            arch = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": r, "wid": wid}
            blocks = [kk for st in range(m.N_STAGES) for pos in range(2)
                      for kk in self._block(st, pos, 3, 3, geo[st])]
            space = _space("ofa_mbv3")
            fixed_lists.append(_minus(space.encode(arch), blocks))
        agg = self.preds.aggregate_lists(lists + fixed_lists)
        per_stage = np.zeros((len(m.RS), m.N_STAGES, 2, 10, NA))
        for (ri, st, first, c), row in zip(where, agg[: len(lists)], strict=True):
            per_stage[ri, st, first, c] = row
        block = np.zeros((len(m.RS), m.N_BLOCKS, 10, NA))
        for slot in range(m.N_BLOCKS):
            st, pos = divmod(slot, m.MAX_DEPTH)
            block[:, slot] = per_stage[:, st, 1 if pos == 0 else 0]
        self.block[wi] = block
        self.fixed[wi] = agg[len(lists):]
        self._py[wi] = self._rows(wi)

    # -- lookups -----------------------------------------------------------------------------------
    def key(self, arch: Any) -> tuple[int, ...] | None:
        if type(arch) is not dict:
            return None
        ks, e, d = arch.get("ks"), arch.get("e"), arch.get("d")
        if type(ks) is not list or type(e) is not list or type(d) is not list:
            return None
        if len(ks) != 20 or len(e) != 20 or len(d) != 5 or not _FAST_KEYS.issuperset(arch):
            return None
        r = arch.get("r", 224)
        if type(r) is list and len(r) == 1:
            r = r[0]
        ri = self.r_index.get(r) if type(r) is int else None
        wid = arch.get("wid", 1.0)
        wi = 0 if wid is None else {1.0: 0, 1.2: 1}.get(wid) if type(wid) in (float, int) else None
        if ri is None or wi is None:
            return None
        key = [wi, ri]
        ksi, esi = self.ks_set, self.e_set
        for st in range(5):
            dd = d[st]
            if type(dd) is not int or not 2 <= dd <= 4:
                return None
            for pos in range(4):
                i = st * 4 + pos
                if pos < dd:
                    a = ksi.get(ks[i]) if type(ks[i]) is int else None
                    b = esi.get(e[i]) if type(e[i]) is int else None
                    if a is None or b is None:
                        return None
                    key.append(a * 3 + b)
                else:  # inactive: masked, but it must still be a value the space accepts
                    if (ks[i] != 0 and ks[i] not in ksi) or (e[i] != 0 and e[i] not in esi):
                        return None
                    key.append(9)
        return tuple(key)

    def key_of_canonical(self, c: Mapping[str, Any]) -> tuple[int, ...]:
        m = self.m
        wi = 1 if c.get("wid", 1.0) == 1.2 else 0
        key = [wi, self.r_index[c["r"]]]
        for i in range(m.N_BLOCKS):
            key.append(9 if c["ks"][i] == 0 else m.KS.index(c["ks"][i]) * 3 + m.ES.index(c["e"][i]))
        return tuple(key)

    def agg_of_key(self, key: tuple[int, ...]) -> np.ndarray:
        wi, ri = key[0], key[1]
        self.build(wi)
        rows = self._py[wi][ri]
        s0 = s1 = s2 = s3 = 0.0
        for slot in range(20):
            a = rows[slot][key[2 + slot]]
            s0 += a[0]
            s1 += a[1]
            s2 += a[2]
            s3 += a[3]
        f = self.fixed[wi][ri]
        return np.array([[s0 + f[0], s1 + f[1], s2 + f[2], s3 + f[3]]])

    def arrays(self, archs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(wid index (n,), r index (n,), choice index (n, 20)) of a batch, or None if not vectorisable.

        Accepts a list of OFA dicts (full 20/20/5 lists), an int array (n, 46) of ``ks, e, d, r`` values,
        or DyNAS-T index vectors (n, 45) / (n, 46) (the last column then is the resolution). Value and
        index arrays are told apart by their entries: index vectors hold only 0..2 in the first 45.
        """
        m = self.m
        if isinstance(archs, np.ndarray) or (isinstance(archs, list) and archs and isinstance(archs[0], (list, tuple))
                                             and not isinstance(archs[0], str)):
            try:
                a = np.asarray(archs, dtype=np.int64)
            except (TypeError, ValueError):
                return None
            if a.ndim != 2 or a.shape[1] not in (45, 46):
                return None
            if a.shape[1] == 45 or (a[:, :45].max(initial=0) <= 2 and a[:, :45].min(initial=0) >= 0):
                if a[:, :45].min(initial=0) < 0 or a[:, :45].max(initial=0) > 2:
                    return None
                ks = np.asarray(m.KS)[a[:, :20]]
                e = np.asarray(m.ES)[a[:, 20:40]]
                d = np.asarray(m.DS)[a[:, 40:45]]
                r = a[:, 45] if a.shape[1] == 46 else np.full(len(a), 224)
            else:
                ks, e, d, r = a[:, :20], a[:, 20:40], a[:, 40:45], a[:, 45]
            wi = np.zeros(len(a), dtype=np.int64)
        elif isinstance(archs, (list, tuple)):
            try:
                ks = np.asarray([x["ks"] for x in archs], dtype=np.int64)
                e = np.asarray([x["e"] for x in archs], dtype=np.int64)
                d = np.asarray([x["d"] for x in archs], dtype=np.int64)
                r = np.asarray([_r_of(x) for x in archs], dtype=np.int64)
                wid = [x.get("wid", 1.0) for x in archs]
                wi = np.asarray([0 if w is None or w == 1.0 else 1 if w == 1.2 else -1 for w in wid], dtype=np.int64)
                if any(not _MBV3_KEYS.issuperset(x) for x in archs):
                    return None
            except (TypeError, KeyError, ValueError, AttributeError, IndexError):
                return None
            if ks.shape != (len(archs), 20) or e.shape != ks.shape or d.shape != (len(archs), 5):
                return None
        else:
            return None
        # small lookup arrays instead of isin/searchsorted: value -> choice index, -1 invalid, 3 masked (0)
        ks_lut, e_lut, r_lut = _LUTS["ks"], _LUTS["e"], _LUTS["r"]
        ki = ks_lut[np.clip(ks, 0, len(ks_lut) - 1)]
        ei = e_lut[np.clip(e, 0, len(e_lut) - 1)]
        ri = r_lut[np.clip(r, 0, len(r_lut) - 1)]
        active = (_POS[None, :] < np.repeat(d, 4, axis=1))
        ok = ((d >= 2) & (d <= 4)).all(axis=1) & (wi >= 0) & (ri >= 0)
        ok &= np.where(active, (ki >= 0) & (ki < 3) & (ei >= 0) & (ei < 3), (ki >= 0) & (ei >= 0)).all(axis=1)
        ok &= (ks >= 0).all(axis=1) & (e >= 0).all(axis=1)
        if not ok.all():
            bad = int(np.flatnonzero(~ok)[0])
            raise _bad_row(self.space_name, archs, bad)
        c = np.where(active, ki * 3 + ei, 9)
        return wi, ri, c

    def agg_batch(self, archs: Any) -> np.ndarray | None:
        arr = self.arrays(archs)
        if arr is None:
            return None
        wi, ri, c = arr
        out = np.empty((len(ri), NA))
        for w in np.unique(wi):
            self.build(int(w))
            flat = self.block[int(w)].reshape(-1, NA)  # rows (ri, slot, c) flattened: one take per batch
            one = len(wi) == 0 or (wi == w).all()
            rr, cc = (ri, c) if one else (ri[wi == w], c[wi == w])
            idx = (rr[:, None] * 20 + _SLOTS[None, :]) * 10 + cc
            part = np.take(flat, idx, axis=0).sum(axis=1) + self.fixed[int(w)][rr]
            if one:
                return part
            out[wi == w] = part
        return out

    def arch_of(self, wi: int, ri: int, choice: Sequence[int], d: Sequence[int]) -> dict[str, Any]:
        m = self.m
        ks = [m.KS[c // 3] if c < 9 else 0 for c in choice]
        e = [m.ES[c % 3] if c < 9 else 0 for c in choice]
        out: dict[str, Any] = {"ks": ks, "e": e, "d": list(d), "r": m.RS[ri]}
        if wi == 1:
            out["wid"] = 1.2
        return out


_POS = np.tile(np.arange(4), 5)
_SLOTS = np.arange(20)


def _lut(values: tuple[int, ...], size: int, zero: int | None) -> np.ndarray:
    t = np.full(size, -1, dtype=np.int64)
    t[list(values)] = np.arange(len(values))
    if zero is not None:
        t[0] = zero
    return t


_LUTS = {"ks": _lut((3, 5, 7), 8, 3), "e": _lut((3, 4, 6), 7, 3), "r": _lut(tuple(range(128, 225, 4)), 226, None)}
_FAST_KEYS = frozenset({"ks", "e", "d", "r", "wid"})
_MBV3_KEYS = frozenset({"ks", "e", "d", "r", "image_size", "resolution", "wid", "width_mult"})


def _r_of(x: Mapping[str, Any]) -> int:
    for k in ("r", "image_size", "resolution"):
        if k in x:
            v = x[k]
            return int(v[0]) if isinstance(v, (list, tuple)) else int(v)
    return 224


def _space(name: str) -> Any:
    from hwlat.spaces import get_space

    return get_space(name)


def _bad_row(space_name: str, archs: Any, i: int) -> EncodingError:
    """The space's own message (naming the field) for row ``i`` of a batch."""
    row = archs[i]
    if isinstance(row, np.ndarray):
        row = row.tolist()
    try:
        _space(space_name).canonical(row)
    except EncodingError as e:
        return EncodingError(f"arch {i} of the batch: {e}")
    return EncodingError(f"{space_name}: arch {i} of the batch is not a valid encoding")


# ---- FBNet ----------------------------------------------------------------------------------------

class FBNetTable(SlotTable):
    """FBNet (HW-NAS-Bench): ``layer[l, op]`` aggregates plus the fixed stem/head."""

    space_name = "fbnet"

    def __init__(self, model: Any) -> None:
        from hwlat.spaces import fbnet as f

        self.f = f
        self.preds = KernelPredictions(model)
        self.layer: np.ndarray | None = None
        self.fixed: np.ndarray | None = None
        self._py: list[list[tuple[float, ...]]] = []
        self.op_index = {o: i for i, o in enumerate(f.OPS)}

    _TRANSIENT = ("preds", "_py", "f")

    def prebuild(self) -> None:
        self.build()

    def _restore(self) -> None:
        from hwlat.spaces import fbnet as f

        self.f = f
        self.preds = getattr(self, "preds", None)
        self._py = [] if self.layer is None else self._rows()

    def _rows(self) -> list[list[tuple[float, ...]]]:
        assert self.layer is not None
        return [[tuple(self.layer[li, o]) for o in range(len(self.f.OPS))] for li in range(self.f.N_LAYERS)]

    def build(self) -> None:
        if self.layer is not None:
            return
        f = self.f
        lists, h = [], f.R
        all_layers = []
        for _i, _st, cin, cout, s in f.layer_plan():
            for op in f.OPS:
                lists.append(f.layer_kernels(op, h, cin, cout, s))
            all_layers += f.layer_kernels("k3_e1", h, cin, cout, s)
            h = f.conv_out(h, 3, s)
        fixed = _minus(_space("fbnet").encode(["k3_e1"] * f.N_LAYERS), all_layers)
        agg = self.preds.aggregate_lists(lists + [fixed])
        self.layer = agg[:-1].reshape(f.N_LAYERS, len(f.OPS), NA)
        self.fixed = agg[-1]
        self._py = self._rows()

    def key(self, arch: Any) -> tuple[int, ...] | None:
        if type(arch) is not list or len(arch) != self.f.N_LAYERS:
            return None
        out = []
        n = len(self.f.OPS)
        for v in arch:
            if type(v) is int:
                if not 0 <= v < n:
                    return None
                out.append(v)
            else:
                j = self.op_index.get(v)
                if j is None:
                    return None
                out.append(j)
        return tuple(out)

    def key_of_canonical(self, c: Sequence[str]) -> tuple[int, ...]:
        return tuple(self.op_index[o] for o in c)

    def agg_of_key(self, key: tuple[int, ...]) -> np.ndarray:
        self.build()
        assert self.fixed is not None
        s = list(self.fixed)
        for li, o in enumerate(key):
            a = self._py[li][o]
            s[0] += a[0]
            s[1] += a[1]
            s[2] += a[2]
            s[3] += a[3]
        return np.array([s])

    def arrays(self, archs: Any) -> np.ndarray | None:
        f = self.f
        if isinstance(archs, np.ndarray) and archs.ndim == 2:
            idx = archs.astype(np.int64)
        elif isinstance(archs, (list, tuple)) and archs and all(isinstance(a, (list, tuple, np.ndarray)) for a in archs):
            try:
                idx = np.asarray([[self.op_index[v] if isinstance(v, str) else v for v in a] for a in archs],
                                 dtype=np.int64)
            except (KeyError, TypeError, ValueError):
                return None
        else:
            return None
        if idx.ndim != 2 or idx.shape[1] != f.N_LAYERS:
            return None
        bad = ((idx < 0) | (idx >= len(f.OPS))).any(axis=1)
        if bad.any():
            raise _bad_row(self.space_name, archs, int(np.flatnonzero(bad)[0]))
        return idx

    def agg_batch(self, archs: Any) -> np.ndarray | None:
        idx = self.arrays(archs)
        if idx is None:
            return None
        self.build()
        assert self.layer is not None and self.fixed is not None
        return self.layer[np.arange(self.f.N_LAYERS)[None, :], idx].sum(axis=1) + self.fixed[None, :]


TABLES: dict[str, type[SlotTable]] = {"ofa_mbv3": MBv3Table, "fbnet": FBNetTable}
