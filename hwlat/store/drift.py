"""Host-speed drift over profiling campaigns, estimated from the items measured more than once.

A shared VM's speed wanders by a few per cent within an hour, and more for large working sets
(neighbours share the L3 and the memory bus): on `local`'s 2 h benchmark campaign, kernels over
2 ms ran 2-4 % slower than their own median in the first 30 min and 2-3 % faster in the last 20,
kernels under 30 µs within ±1.5 %. A floor taken as the lowest pass minimum then depends on when an
item's passes ran, which costs held-out accuracy the model cannot win back.

Model: ``log min_ms = item effect + speed(size class, time bin) + noise``, per size class. Only an
item measured in two or more time bins says anything about the speed of one bin against another,
so a (class, bin) is estimated only from such items (at least ``min_rows`` of their rows), and only
relative to the bins those items tie it to: the items and bins of a class form a bipartite graph,
and each connected component (one campaign, or several joined by re-measured anchors) is solved
on its own and centred on its own typical speed. Campaigns that share no item keep their level.

An earlier fit alternated clipped means over the whole store at once; bins joined to the rest by
a handful of items, or not at all, took whatever level the alternation wandered to, and on a
real store it reported drift of -57 to +24 % where every bin's median ratio of ``min_ms`` to its
item's median was within 0.996-1.002. Here each component is solved exactly (item effects
eliminated, robust weighted least squares on the bins), a Wald test of "all bins at one speed"
(sandwich covariance) must reject at ``ALPHA`` before anything is corrected, each bin is shrunk
toward no drift by its own signal to noise (a bin with few or noisy rows moves less), a bin
fitted beyond ``PLAUSIBLE`` is left as measured, and :meth:`HostDrift.assess` rejects a fit that
moves many rows that far, spreads an item's repeated rows apart, or claims more than the per-bin
median ratios of the raw rows show. A rejected fit corrects nothing: :meth:`HostDrift.factor`
returns 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.stats import chi2

#: Size classes by an item's median ``min_ms`` (ms): larger working sets drift more.
SIZE_EDGES_MS: tuple[float, ...] = (0.03, 0.3, 2.0)
#: Time bin of the speed estimate (s).
BIN_S = 120.0
#: Fewest rows of connecting items (items with rows in two or more bins) a (class, bin) needs.
MIN_ROWS = 20
#: A component's bins are corrected only if the Wald test of "all its bins run at one speed" gives
#: a p-value below this. The test is somewhat liberal with a few rows per item and slow-state
#: outliers (130 pure-noise components of 300-500 rows: smallest p 2e-4), so the level is far
#: below the usual; a real drift of a few per cent over a campaign's rows gives p below 1e-20.
ALPHA = 1e-5
#: Huber weights (first stage): residuals beyond this many robust standard deviations are
#: down-weighted. Then Tukey's bisquare from there: a tiny kernel on a shared host runs in a fast
#: or a slow speed state (9.7 µs or 15-19 µs), and a bin where the host was slow more often is no
#: slower in its fast state, which is what floors measure; bisquare gives slow-state rows no weight.
#: Starting it from the Huber fit keeps a real shift of many robust SDs inside its reach. (At
#: 4.685 SDs, the textbook value, pure noise failed the test below far more often.)
_HUBER = 2.0
_BISQUARE = 6.0
#: A bin fitted beyond ±this (relative) is left as measured, and a fit whose row-weighted 5-95 %
#: factor range leaves it is not trusted at all. The largest drift seen on a real host (the 2 h
#: benchmark campaign) was 4 %; the fit that invented drift reported -57 to +24 %. Beyond it a host
#: is in another speed state, not drifting, and the floor already takes the fast rows.
PLAUSIBLE = 0.15
#: A bin disagrees with its raw rows when the fit's median deviation of a row from its item's
#: median exceeds the rows' own in size (or has the other sign) by more than this (log units) plus
#: three standard errors of that median; a fit is not trusted when bins holding more than
#: ``_DISAGREE_SHARE`` of its rows disagree. (The fit that invented drift claimed -57 % in bins
#: whose rows showed under 0.5 %.)
_DISAGREE_TOL = 0.05
_DISAGREE_SHARE = 0.10
#: A fit is not trusted when dividing it out widens the median distance of a row from its item's
#: median by more than this factor.
_SPREAD_GROWTH = 1.10
_IRLS_ITERATIONS = 50
_IRLS_TOL = 1e-7


_NO_BIN = np.iinfo(np.int64).min


def _bins(rows: pd.DataFrame, bin_s: float) -> np.ndarray:
    """Time bin of each row by its ``finished_at``; rows without a readable time get ``_NO_BIN``."""
    t = pd.to_datetime(rows["finished_at"], utc=True, format="ISO8601", errors="coerce")
    s = (t - pd.Timestamp("2000-01-01", tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64)
    out = np.full(len(s), _NO_BIN, dtype=np.int64)
    ok = np.isfinite(s)
    out[ok] = np.floor(s[ok] / bin_s).astype(np.int64)
    return out


def _connecting(items: np.ndarray, bins: np.ndarray, min_rows: int) -> np.ndarray:
    """Mask of the rows that tie bins together: rows of items seen in two or more bins, in bins
    that keep at least ``min_rows`` such rows. Dropping a sparse bin can leave an item in one
    bin only, so the two rules are applied until neither drops a row."""
    keep = np.ones(len(items), dtype=bool)
    while True:
        df = pd.DataFrame({"i": items[keep], "b": bins[keep]})
        spans = df.groupby("i")["b"].transform("nunique").to_numpy() >= 2
        sub = np.flatnonzero(keep)
        new = np.zeros_like(keep)
        new[sub[spans]] = True
        counts = pd.Series(bins[new]).value_counts()
        dense = pd.Series(bins).map(counts).fillna(0).to_numpy() >= min_rows
        new &= dense
        if np.array_equal(new, keep):
            return keep
        keep = new


def _mad(v: pd.Series) -> float:
    """Robust standard deviation (1.4826 median absolute deviation)."""
    return 1.4826 * float(np.median(np.abs(v - np.median(v))))


def _weighted_median(v: np.ndarray, w: np.ndarray) -> float:
    order = np.argsort(v)
    cw = np.cumsum(w[order])
    return float(v[order][np.searchsorted(cw, 0.5 * cw[-1])])


@dataclass
class _Component:
    """One connected component's solution: bins, shrunk log factors and the test behind them."""

    bins: np.ndarray
    effects: np.ndarray
    rows: int
    p_value: float


def _solve(y: np.ndarray, item: np.ndarray, b: np.ndarray, alpha: float) -> _Component:
    """Robust (Huber, then bisquare) two-way fit ``y = a[item] + d[b]`` of one connected component
    (``item`` and ``b`` are 0-based codes), then the Wald test, centring and shrinkage of ``d``."""
    n, n_items, n_bins = len(y), int(item.max()) + 1, int(b.max()) + 1
    d = np.zeros(n_bins)
    a = pd.Series(y).groupby(item).transform("median").to_numpy()
    w = np.ones(n)
    M = np.zeros((n_bins, n_bins))
    s = 1.0
    for bisquare in (False, True):
        for _ in range(_IRLS_ITERATIONS):
            e = y - a - d[b]
            s = max(1.4826 * float(np.median(np.abs(e))), 1e-9)
            if bisquare:
                # a floor of weight keeps an item whose every row is rejected from dividing by zero
                w = np.maximum(np.clip(1.0 - (e / (_BISQUARE * s)) ** 2, 0.0, None) ** 2, 1e-9)
            else:
                w = np.minimum(1.0, _HUBER * s / np.maximum(np.abs(e), 1e-300))
            # Eliminate the item effects (Schur complement): the bins' normal equations M d = v.
            N = sp.csr_matrix((w, (item, b)), shape=(n_items, n_bins))
            Wi = np.asarray(N.sum(axis=1)).ravel()
            Wb = np.bincount(b, weights=w, minlength=n_bins)
            ybar = np.bincount(item, weights=w * y, minlength=n_items) / Wi
            M = np.diag(Wb) - (N.T @ sp.diags(1.0 / Wi) @ N).toarray()
            v = np.bincount(b, weights=w * y, minlength=n_bins) - N.T @ ybar
            new = np.linalg.lstsq(M, v, rcond=None)[0]  # min-norm: the component's bins sum to zero
            new -= new.mean()
            a = ybar[item] - (N @ new)[item] / Wi[item]
            moved = float(np.max(np.abs(new - d)))
            d = new
            if moved < _IRLS_TOL:
                break
    # Wald test of "every bin at one speed" with the M-estimator's sandwich covariance: the
    # IRLS weights are not precisions (they reject slow-state rows), so treating them as such made
    # the test reject pure noise. Z projects each row onto the bins with its item's mean removed.
    e = y - a - d[b]
    u = e / (_BISQUARE * s)
    inside = np.abs(u) < 1.0
    psi = np.where(inside, e * (1.0 - u * u) ** 2, 0.0)
    dpsi = np.where(inside, (1.0 - u * u) * (1.0 - 5.0 * u * u), 0.0)
    rows_ = np.arange(n)
    N = sp.csr_matrix((w, (item, b)), shape=(n_items, n_bins))
    Wi = np.asarray(N.sum(axis=1)).ravel()
    Z = (sp.csr_matrix((np.ones(n), (rows_, b)), shape=(n, n_bins))
         - sp.diags(1.0 / Wi[item]) @ N[item])
    bread = (Z.T @ sp.diags(dpsi) @ Z).toarray()
    # Residuals of items seen in few rows understate the noise (each row pulled its item's effect
    # toward itself): scale by rows over residual degrees of freedom, counting rejected rows out.
    n_in = float(inside.sum())
    meat = (Z.T @ sp.diags(psi * psi) @ Z).toarray() * n_in / max(n_in - n_items - n_bins + 1, 1.0)
    bread_pinv = np.linalg.pinv(bread, rcond=1e-10, hermitian=True)
    cov = bread_pinv @ meat @ bread_pinv
    q = float(d @ np.linalg.pinv(cov, rcond=1e-10, hermitian=True) @ d)
    p = float(chi2.sf(q, n_bins - 1))
    if p >= alpha:
        return _Component(np.arange(n_bins), np.zeros(n_bins), n, p)
    var_b = np.clip(np.diag(cov), 0.0, None)
    centred = d - _weighted_median(d, np.bincount(b, minlength=n_bins).astype(np.float64))
    # Each bin shrunk toward no drift by its own signal to noise (the positive-part estimate of
    # its drift variance): a bin known to a fraction of its size moves little, a clear step keeps
    # nearly all of it. One prior variance for all bins shrank a 5 % step in a third of the bins
    # to 3.7 %.
    keep = np.clip(1.0 - var_b / np.maximum(centred * centred, 1e-300), 0.0, 1.0)
    return _Component(np.arange(n_bins), centred * keep, n, p)


@dataclass
class HostDrift:
    """Per (size class, time bin) log speed factors of one device's store; ``fit`` then ``factor``.

    ``table`` maps ``(class, bin)`` to the log of how much slower than usual rows in that bin
    ran (negative: faster). An unfitted or empty ``HostDrift``, or one :meth:`assess` did not
    trust (``trusted`` false, ``reason`` says why), corrects nothing.
    """

    bin_s: float = BIN_S
    edges_ms: Sequence[float] = SIZE_EDGES_MS
    min_rows: int = MIN_ROWS
    #: significance level of the Wald test a component's bins must pass to be corrected at all
    alpha: float = ALPHA
    table: dict[tuple[int, int], float] = field(default_factory=dict)
    n_rows: int = 0
    trusted: bool = True
    reason: str = ""
    #: per class: connected components solved, and how many had drift that passed the Wald test
    components: dict[int, dict[str, int]] = field(default_factory=dict)

    def _classes(self, rows: pd.DataFrame) -> np.ndarray:
        med = rows.groupby("item_key")["min_ms"].transform("median").to_numpy(dtype=np.float64)
        return np.digitize(med, np.asarray(self.edges_ms, dtype=np.float64))

    def _usable(self, rows: pd.DataFrame) -> pd.DataFrame:
        if not len(rows):
            return rows
        ms = pd.to_numeric(rows["min_ms"], errors="coerce")
        return rows[np.isfinite(ms) & (ms > 0) & (_bins(rows, self.bin_s) != _NO_BIN)]

    def fit(self, rows: pd.DataFrame) -> HostDrift:
        """Fit on stored measurement rows (``item_key``, ``min_ms``, ``finished_at``), then
        :meth:`assess` the fit against the same rows."""
        self.table, self.components, self.trusted, self.reason = {}, {}, True, ""
        rep = self._usable(rows)
        rep = rep[rep.groupby("item_key")["item_key"].transform("size") >= 2] if len(rep) else rep
        self.n_rows = len(rep)
        if not len(rep):
            return self
        lm = np.log(rep["min_ms"].to_numpy(dtype=np.float64))
        items = pd.factorize(rep["item_key"])[0]
        cls = self._classes(rep)
        bins = _bins(rep, self.bin_s)
        for c in np.unique(cls):
            s = np.flatnonzero(cls == c)
            keep = s[_connecting(items[s], bins[s], self.min_rows)]
            if not len(keep):
                continue
            it_code, it_idx = np.unique(items[keep], return_inverse=True)
            b_code, b_idx = np.unique(bins[keep], return_inverse=True)
            graph = sp.csr_matrix((np.ones(len(keep)), (it_idx, len(it_code) + b_idx)),
                                  shape=(len(it_code) + len(b_code),) * 2)
            n_comp, label = connected_components(graph, directed=False)
            solved = drifted = 0
            for k in range(n_comp):
                in_k = label[len(it_code) + b_idx] == k
                comp_bins = np.unique(b_idx[in_k])
                if len(comp_bins) < 2:
                    continue
                ii = np.unique(it_idx[in_k], return_inverse=True)[1]
                bb = np.unique(b_idx[in_k], return_inverse=True)[1]
                res = _solve(lm[keep][in_k], ii, bb, self.alpha)
                solved += 1
                drifted += bool(np.any(res.effects != 0))
                self.table.update({(int(c), int(b_code[comp_bins[j]])): float(res.effects[j])
                                   for j in range(len(comp_bins))})
            self.components[int(c)] = {"solved": solved, "drifted": drifted}
        self.assess(rows)
        return self

    def _log_factor(self, rows: pd.DataFrame, capped: bool = True) -> np.ndarray:
        """Fitted log factor per row; ``capped``: bins beyond ±``PLAUSIBLE`` count as 0."""
        cls = self._classes(rows)
        bins = _bins(rows, self.bin_s)
        v = np.array([self.table.get((int(c), int(b)), 0.0) for c, b in zip(cls, bins, strict=True)])
        if capped:
            # A bin that far off is one where the host sat in a slow speed state for most rows; its
            # fast rows are at the usual floor, and dividing them by the bin's factor would put
            # floors below anything the device can do (seen: a 20-s bin at +37 % on `local`).
            v[np.abs(np.expm1(v)) > PLAUSIBLE] = 0.0
        return v

    def assess(self, rows: pd.DataFrame) -> bool:
        """Whether the fitted table is plausible for ``rows`` (sets ``trusted`` and ``reason``):
        the row-weighted 5-95 % range of the factors stays within ±``PLAUSIBLE``; dividing the
        factors out does not spread the rows of an item further from their median; and in bins
        holding at least 90 % of the fitted rows the fit's median deviation of a row from its
        item's median claims no more than the raw ``min_ms`` show (the same statistic computed on
        the fit and on the data, so anchored campaigns compare like with like)."""
        self.trusted, self.reason = True, ""
        rep = self._usable(rows)
        rep = rep[rep.groupby("item_key")["item_key"].transform("size") >= 2] if len(rep) else rep
        if not self.table or not len(rep):
            return True
        cls = self._classes(rep)
        bins = _bins(rep, self.bin_s)
        fitted = np.array([(int(c), int(b)) in self.table for c, b in zip(cls, bins, strict=True)])
        if not fitted.any():
            return True
        rep, cls, bins = rep[fitted], cls[fitted], bins[fitted]
        lo, hi = np.expm1(np.quantile(self._log_factor(rep, capped=False), [0.05, 0.95]))
        if lo < -PLAUSIBLE or hi > PLAUSIBLE:
            self.trusted = False
            self.reason = (f"5-95 % of the fitted factors span {100 * lo:+.1f} to {100 * hi:+.1f} %, beyond "
                           f"±{100 * PLAUSIBLE:.0f} %")
            return False
        logf = self._log_factor(rep)
        key = rep["item_key"].to_numpy()
        y = np.log(rep["min_ms"].to_numpy(dtype=np.float64))
        raw_dev = y - pd.Series(y).groupby(key).transform("median").to_numpy()
        fit_dev = logf - pd.Series(logf).groupby(key).transform("median").to_numpy()
        # A drift correction makes repeated rows of one item agree better; one that spreads them
        # apart divides out drift the rows do not have.
        corr = y - logf
        corr_dev = corr - pd.Series(corr).groupby(key).transform("median").to_numpy()
        before, after = float(np.median(np.abs(raw_dev))), float(np.median(np.abs(corr_dev)))
        if after > _SPREAD_GROWTH * before + 1e-3:
            self.trusted = False
            self.reason = (f"dividing it out spreads an item's repeated rows apart (median distance to the "
                           f"item's median {100 * before:.2f} % -> {100 * after:.2f} %)")
            return False
        df = pd.DataFrame({"c": cls, "b": bins, "raw": raw_dev, "fit": fit_dev})
        g = df.groupby(["c", "b"])
        stats = pd.DataFrame({"raw": g["raw"].median(), "fit": g["fit"].median(), "n": g.size(),
                              "mad": g["raw"].agg(_mad)})
        se = 1.2533 * stats["mad"] / np.sqrt(stats["n"])  # standard error of a median
        # Only a fit that claims more than the rows show counts against it: shrinkage makes fits
        # claim less, and a step mid-bin splits a bin's rows between two levels, which moves
        # their median anywhere between them while the fit takes the middle.
        excess = stats["fit"].abs() - stats["raw"].abs()
        bad = (excess > _DISAGREE_TOL + 3.0 * se) | ((np.sign(stats["fit"]) * np.sign(stats["raw"]) < 0)
                                                    & (stats["fit"].abs() > _DISAGREE_TOL + 3.0 * se))
        share = float(stats["n"][bad].sum() / stats["n"].sum())
        if share > _DISAGREE_SHARE:
            worst = (stats["fit"] - stats["raw"]).abs().idxmax()
            self.trusted = False
            fit_pct, raw_pct = 100 * np.expm1(stats["fit"][worst]), 100 * np.expm1(stats["raw"][worst])
            self.reason = (f"bins holding {100 * share:.0f} % of the fitted rows disagree with their rows' "
                           f"median ratio to the item median (worst: class {worst[0]}, fit {fit_pct:+.1f} %, "
                           f"rows {raw_pct:+.1f} %)")
            return False
        return True

    def factor(self, rows: pd.DataFrame) -> np.ndarray:
        """Multiplicative speed factor per row (1.0 outside the fitted bins, in bins fitted beyond
        ±``PLAUSIBLE``, and everywhere when the fit is not trusted): divide ``min_ms`` by it."""
        if not self.table or not self.trusted or not len(rows):
            return np.ones(len(rows))
        return np.exp(self._log_factor(rows))

    def summary(self) -> dict[str, Any]:
        """How much the host's speed moved: 5-95 % range of the bin factors (in %), per class, and
        whether the fit is trusted (an untrusted one is not applied)."""
        out: dict[str, Any] = {"bin_s": self.bin_s, "edges_ms": list(self.edges_ms), "rows": self.n_rows,
                               "bins": len(self.table), "trusted": self.trusted, "reason": self.reason,
                               "left_as_measured": sum(abs(math.expm1(v)) > PLAUSIBLE
                                                       for v in self.table.values()),
                               "components": {str(c): v for c, v in self.components.items()}, "classes": {}}
        for c in sorted({c for c, _ in self.table}):
            v = np.array([x for (k, _), x in self.table.items() if k == c])
            lo, hi = np.quantile(v, [0.05, 0.95])
            out["classes"][str(c)] = {"bins": len(v), "p5_pct": round(100 * float(np.expm1(lo)), 2),
                                      "p95_pct": round(100 * float(np.expm1(hi)), 2)}
        return out
