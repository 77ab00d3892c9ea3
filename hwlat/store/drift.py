"""Host-speed drift over a profiling campaign, estimated from the items measured more than once.

A shared VM's speed wanders by a few per cent within an hour, and more for large working sets
(neighbours share the L3 and the memory bus): on `local`'s 2 h benchmark campaign, kernels over
2 ms ran 2-4 % slower than their own median in the first 30 min and 2-3 % faster in the last 20,
kernels under 30 µs within ±1.5 %. A floor taken as the lowest pass minimum then depends on when an
item's passes ran, which costs held-out accuracy the model cannot win back.

Every item profiled in passes is measured at several times, so the store holds the drift itself:
``log min_ms = item effect + speed(size class, time bin) + noise``, fitted on the items with two
or more rows by alternating Huber-style means (residuals clipped at three robust standard
deviations, so a row slowed by a neighbour's burst pulls no harder than a mildly slow one). :meth:`HostDrift.factor` divides it out of any row (kernels
or whole models) that falls in a fitted bin; rows elsewhere are left as measured. Items profiled
in disjoint campaigns are each centred on their own campaign, so no offset between campaigns is
invented.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: Size classes by an item's median ``min_ms`` (ms): larger working sets drift more.
SIZE_EDGES_MS: tuple[float, ...] = (0.03, 0.3, 2.0)
#: Time bin of the speed estimate (s); each estimate is smoothed over its two neighbour bins.
BIN_S = 120.0
#: Fewest rows of repeated items a (class, bin) needs before it gets a correction.
MIN_ROWS = 20
#: Residuals beyond this many robust standard deviations are clipped before averaging.
_CLIP = 3.0
#: The alternation stops once no correction moves by more than this (log units) or after
#: ``_MAX_ITERATIONS``. A later campaign's bins, filled mostly by items new to the store and tied
#: to it only by the stored items re-measured among them (anchors), move part of the way per
#: iteration; medians there would stall inside the new items' own cluster.
_TOL = 1e-5
_MAX_ITERATIONS = 300


_NO_BIN = np.iinfo(np.int64).min


def _bins(rows: pd.DataFrame, bin_s: float) -> np.ndarray:
    """Time bin of each row by its ``finished_at``; rows without a readable time get ``_NO_BIN``."""
    t = pd.to_datetime(rows["finished_at"], utc=True, format="ISO8601", errors="coerce")
    s = (t - pd.Timestamp("2000-01-01", tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64)
    out = np.full(len(s), _NO_BIN, dtype=np.int64)
    ok = np.isfinite(s)
    out[ok] = np.floor(s[ok] / bin_s).astype(np.int64)
    return out


def _clipped(r: np.ndarray) -> np.ndarray:
    """``r`` clipped at ``_CLIP`` robust standard deviations (1.4826 MAD) around zero."""
    scale = max(1.4826 * float(np.median(np.abs(r))), 1e-6)
    return np.clip(r, -_CLIP * scale, _CLIP * scale)


@dataclass
class HostDrift:
    """Per (size class, time bin) log speed factors of one device's store; ``fit`` then ``factor``.

    ``table`` maps ``(class, bin)`` to the log of how much slower than usual rows in that bin
    ran (negative: faster). An unfitted or empty ``HostDrift`` corrects nothing.
    """

    bin_s: float = BIN_S
    edges_ms: Sequence[float] = SIZE_EDGES_MS
    min_rows: int = MIN_ROWS
    table: dict[tuple[int, int], float] = field(default_factory=dict)
    n_rows: int = 0

    def _classes(self, rows: pd.DataFrame) -> np.ndarray:
        med = rows.groupby("item_key")["min_ms"].transform("median").to_numpy(dtype=np.float64)
        return np.digitize(med, np.asarray(self.edges_ms, dtype=np.float64))

    def fit(self, rows: pd.DataFrame) -> HostDrift:
        """Fit on stored measurement rows (``item_key``, ``min_ms``, ``finished_at``)."""
        self.table = {}
        rep = rows[rows.groupby("item_key")["item_key"].transform("size") >= 2] if len(rows) else rows
        if len(rep):
            rep = rep[np.isfinite(rep["min_ms"]) & (rep["min_ms"] > 0) & (_bins(rep, self.bin_s) != _NO_BIN)]
        self.n_rows = len(rep)
        if not len(rep):
            return self
        lm = np.log(rep["min_ms"].to_numpy(dtype=np.float64))
        items = rep["item_key"].to_numpy()
        cls = self._classes(rep)
        bins = _bins(rep, self.bin_s)
        corr = np.zeros(len(rep))
        effect = pd.Series(lm).groupby(items).transform("median").to_numpy()
        for _ in range(_MAX_ITERATIONS):
            effect = effect + pd.Series(_clipped(lm - effect - corr)).groupby(items).transform("mean").to_numpy()
            new, self.table = self._estimate(corr + _clipped(lm - effect - corr), cls, bins)
            moved = float(np.max(np.abs(new - corr)))
            corr = new
            if moved < _TOL:
                break
        return self

    def _estimate(self, resid: np.ndarray, cls: np.ndarray, bins: np.ndarray
                  ) -> tuple[np.ndarray, dict[tuple[int, int], float]]:
        table: dict[tuple[int, int], float] = {}
        for c in np.unique(cls):
            s = cls == c
            stats = pd.DataFrame({"b": bins[s], "r": resid[s]}).groupby("b")["r"].agg(["mean", "size"])
            raw = {int(b): float(m) for b, m, n in zip(stats.index, stats["mean"], stats["size"], strict=True)
                   if n >= self.min_rows}
            smooth = {b: float(np.median([raw[x] for x in (b - 1, b, b + 1) if x in raw])) for b in raw}
            if smooth:
                # Centre each class on its typical speed, weighting bins by their rows.
                sizes = stats["size"].reindex(list(smooth)).to_numpy()
                centre = float(np.median(np.repeat(list(smooth.values()), sizes)))
                table.update({(int(c), b): v - centre for b, v in smooth.items()})
        corr = np.array([table.get((int(c), int(b)), 0.0) for c, b in zip(cls, bins, strict=True)])
        return corr, table

    def factor(self, rows: pd.DataFrame) -> np.ndarray:
        """Multiplicative speed factor per row (1.0 outside the fitted bins): divide ``min_ms`` by it."""
        if not self.table or not len(rows):
            return np.ones(len(rows))
        cls = self._classes(rows)
        bins = _bins(rows, self.bin_s)
        return np.exp([self.table.get((int(c), int(b)), 0.0) for c, b in zip(cls, bins, strict=True)])

    def summary(self) -> dict[str, Any]:
        """How much the host's speed moved: 5-95 % range of the bin factors (in %), per class."""
        out: dict[str, Any] = {"bin_s": self.bin_s, "edges_ms": list(self.edges_ms), "rows": self.n_rows,
                               "bins": len(self.table), "classes": {}}
        for c in sorted({c for c, _ in self.table}):
            v = np.array([x for (k, _), x in self.table.items() if k == c])
            lo, hi = np.quantile(v, [0.05, 0.95])
            out["classes"][str(c)] = {"bins": len(v), "p5_pct": round(100 * float(np.expm1(lo)), 2),
                                      "p95_pct": round(100 * float(np.expm1(hi)), 2)}
        return out
