"""Adaptive sampling rounds (nn-Meter style): measure more kernels where the predictor errs most.

A round trains a small per-type GBDT k-fold on the stored kernel rows, takes each row's
out-of-fold relative error, gives each kernel type a share of the new samples in proportion
to its error mass (rows outside ±10 %), and draws the new configs near the worst rows with
:func:`hwlat.kernels.sampling.adaptive_sample`. Rows measured in a round carry
``extra = {"source": "adaptive", "round": r, "seed": s}``.

Rounds are resumable: :func:`run_adaptive` saves each round's plan (new kernels and anchors) as
JSON under ``<store>/adaptive/seed-<s>/round-<r>.json`` before measuring, and a later run reads
it back instead of planning again, so it measures exactly the kernels still missing. Planning
anew would not do: the anchors and any confirmation passes measured since change the floors the
out-of-fold errors come from, and with them the plan. (A plan made afresh is deterministic too:
round ``r`` trains on the stored rows minus the adaptive rows of rounds ``>= r`` of the seed,
and every draw is seeded by (seed, round, type).)
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Collection, Container, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwlat.devices import Device
from hwlat.errors import StoreError
from hwlat.kernels.base import Kernel, get
from hwlat.kernels.sampling import adaptive_sample
from hwlat.profiling.items import Item, canonical_json
from hwlat.profiling.runner import RunSummary, profile
from hwlat.store import HostDrift, ProfileStore, with_floor
from hwlat.store.profile_store import atomic_write_bytes

SOURCE = "adaptive"
#: within this relative error a prediction counts as accurate (the ±10 % accuracy metric)
TOLERANCE = 0.10
#: a type this accurate out of fold gets no new samples
ENOUGH_ACC = 0.98
#: share of a round's size of stored kernels measured again among the new ones, when in passes
ANCHOR_SHARE = 0.25
#: one GBDT config (no search): OOF errors must not depend on a wall-clock search budget
_OOF_CONFIG = {"max_depth": 4, "eta": 0.1, "subsample": 0.8, "colsample_bytree": 0.8, "min_child_weight": 1.0}


@dataclass
class TypeReport:
    """One kernel type in a round: training rows, out-of-fold ±10 % accuracy, new kernels."""

    kernel_type: str
    rows: int
    acc10: float | None = None
    outside: int = 0
    new: int = 0
    note: str = ""


@dataclass
class RoundPlan:
    """The kernels one adaptive round chose to measure, and why (per-type report)."""

    round: int
    seed: int
    kernels: list[Kernel] = field(default_factory=list)
    report: list[TypeReport] = field(default_factory=list)
    #: True when read back from the plan a run saved earlier (resuming) rather than planned now
    resumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.round, "seed": self.seed, "planned": len(self.kernels), "resumed": self.resumed,
                "types": [asdict(r) for r in self.report]}


def _rng(seed: int, round_index: int, kernel_type: str) -> np.random.Generator:
    return np.random.default_rng([seed, round_index, zlib.crc32(kernel_type.encode())])


def _extra(s: Any) -> dict[str, Any]:
    try:
        d = json.loads(s) if isinstance(s, str) and s else {}
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def is_adaptive(extra: Any, seed: int | None = None, from_round: int = 1) -> bool:
    """Whether a row's ``extra`` JSON marks it as measured by an adaptive round >= ``from_round``
    (of ``seed``, when given)."""
    d = _extra(extra)
    if d.get("source") != SOURCE:
        return False
    if seed is not None and d.get("seed") != seed:
        return False
    r = d.get("round")
    return isinstance(r, int) and r >= from_round


def training_rows(store: ProfileStore, *, seed: int, round_index: int, runtime: str | None = None,
                  kernel_types: Collection[str] | None = None, target: str = "median_ms") -> pd.DataFrame:
    """Stored kernel rows round ``round_index`` trains on (sorted, one row per type+config):
    everything except the adaptive rows of this seed's rounds >= ``round_index``. ``target``
    ``floor_ms`` is the lowest drift-corrected ``min_ms`` over every stored row of an item (all
    passes), as training takes it."""
    df = store.kernels(latest=True, expand=False)
    if not len(df):
        return df
    if target == "floor_ms":
        rows = store.kernels(latest=False, expand=False)
        df = with_floor(df, rows, HostDrift().fit(rows))
    keep = ~df["extra"].map(lambda e: is_adaptive(e, seed, round_index)).astype(bool)
    keep &= df[target].map(lambda v: isinstance(v, (int, float)) and math.isfinite(v) and v > 0).astype(bool)
    if runtime is not None:
        keep &= df["runtime"] == runtime
    if kernel_types is not None:
        keep &= df["kernel_type"].isin(list(kernel_types))
    df = df[keep]
    # one row per kernel (another runtime version measures the same config again): the newest
    df = df.sort_values("finished_at").drop_duplicates(["kernel_type", "config"], keep="last")
    return df.sort_values(["kernel_type", "config"]).reset_index(drop=True)


def oof_rel_errors(kernels: Sequence[Kernel], y: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold relative errors ``(pred - y) / y`` of a small per-type GBDT (``folds``-fold)."""
    from hwlat.predictors.features import kernel_feature_names, kernel_features
    from hwlat.predictors.gbdt import GBDTRegressor

    y = np.asarray(y, dtype=np.float64)
    X = kernel_features(list(kernels), kernel_feature_names(kernels[0].type))
    pred = np.empty_like(y)
    order = np.random.default_rng(seed).permutation(len(y))
    for val in np.array_split(order, folds):
        tr = np.setdiff1d(order, val)
        model = GBDTRegressor(configs=(_OOF_CONFIG,), n_folds=3, budget_s=5.0, interval=False, seed=seed)
        pred[val] = model.fit(X[tr], y[tr]).predict(X[val])
    return (pred - y) / y


def allocate(outside: Mapping[str, int], n: int, min_each: int = 3) -> dict[str, int]:
    """Split ``n`` samples over types in proportion to their error mass ``outside`` (rows
    outside ±10 %); every type with errors gets at least ``min_each`` while ``n`` allows."""
    erring = sorted((t for t, m in outside.items() if m > 0), key=lambda t: (-outside[t], t))
    out = dict.fromkeys(outside, 0)
    if not erring or n <= 0:
        return out
    if n < len(erring):  # not even one each: the worst types first
        for t in erring[:n]:
            out[t] = 1
        return out
    base = min(min_each, n // len(erring))
    for t in erring:
        out[t] = base
    rest = n - base * len(erring)
    mass = sum(outside[t] for t in erring)
    share = {t: rest * outside[t] / mass for t in erring}
    for t in erring:
        out[t] += int(share[t])
    left = rest - sum(int(share[t]) for t in erring)
    for t in sorted(erring, key=lambda t: (-(share[t] - int(share[t])), -outside[t], t))[:left]:
        out[t] += 1  # largest remainders
    return out


def _kernels_of(rows: pd.DataFrame, exclude_kernels: Container[str] = ()) -> tuple[list[Kernel], np.ndarray]:
    """Kernels of ``rows`` and their row positions; configs the type no longer accepts, and kernels
    whose hash is in ``exclude_kernels``, are skipped."""
    from hwlat.predictors.training import kernel_hash

    ks, pos = [], []
    for i, (t, c) in enumerate(zip(rows["kernel_type"], rows["config"], strict=True)):
        try:
            k = get(t).make(**json.loads(c))
        except (KeyError, ValueError, TypeError):
            continue
        if exclude_kernels and kernel_hash(k) in exclude_kernels:
            continue
        ks.append(k)
        pos.append(i)
    return ks, np.asarray(pos, dtype=int)


def adaptive_round(store: ProfileStore, kernel_types: Collection[str] | None = None, n: int = 100, *,
                   seed: int = 0, round_index: int = 1, target: str = "median_ms", runtime: str | None = None,
                   min_rows: int = 20, folds: int = 5, min_each: int = 3, max_ms: float = 60.0,
                   exclude_kernels: Container[str] = ()) -> RoundPlan:
    """Plan one adaptive round: up to ``n`` new kernels, spread over the types by OOF error mass.

    Types with fewer than ``min_rows`` stored rows are reported and skipped; a type already
    ≥98 % within ±10 % gets none. New kernels are distinct from the training rows' configs
    (and valid, under ``max_ms`` by the cost estimate of the suites). ``exclude_kernels``: kernel
    hashes (``hwlat.predictors.training.kernel_hash``; any container answering ``in``) not used to
    plan, e.g. a benchmark's held-out kernels, so their errors never steer where new training
    kernels go.
    """
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    df = training_rows(store, seed=seed, round_index=round_index, runtime=runtime,
                       kernel_types=kernel_types, target=target)
    plan = RoundPlan(round=round_index, seed=seed)
    stored = set(df["kernel_type"]) if len(df) else set()
    types = sorted(set(kernel_types) if kernel_types is not None else stored)
    data: dict[str, tuple[list[Kernel], np.ndarray]] = {}
    reports: dict[str, TypeReport] = {}
    for t in types:
        rows = df[df["kernel_type"] == t] if len(df) else df
        ks, pos = _kernels_of(rows, exclude_kernels) if len(rows) else ([], np.zeros(0, dtype=int))
        rep = reports[t] = TypeReport(t, len(ks))
        if len(ks) < max(min_rows, 2 * folds):
            rep.note = f"needs >= {max(min_rows, 2 * folds)} rows"
            continue
        y = rows[target].to_numpy(dtype=np.float64)[pos]
        err = oof_rel_errors(ks, y, folds=folds, seed=seed)
        rep.acc10 = float(np.mean(np.abs(err) <= TOLERANCE))
        rep.outside = int(np.sum(np.abs(err) > TOLERANCE))
        if rep.acc10 >= ENOUGH_ACC:
            rep.note = "accurate"
        data[t] = (ks, err)
    mass = {t: 0 if (reports[t].acc10 or 0.0) >= ENOUGH_ACC else reports[t].outside for t in data}
    for t, k in allocate(mass, n, min_each).items():
        if k <= 0:
            continue
        ks, err = data[t]
        new = adaptive_sample(t, ks, err, k, _rng(seed, round_index, t), max_ms=max_ms)
        reports[t].new = len(new)
        if len(new) < k:
            reports[t].note = f"{k - len(new)} fewer: neighbourhood exhausted"
        plan.kernels += new
    plan.report = [reports[t] for t in types]
    return plan


class _TaggingStore(ProfileStore):
    """The device's store, adding ``tags`` to the ``extra`` JSON of every row appended except
    those of the ``untagged`` item keys (anchors: stored kernels measured again)."""

    def __init__(self, base: ProfileStore, tags: Mapping[str, Any], untagged: Collection[str] = ()) -> None:
        super().__init__(base.device, base.root)
        self.tags = dict(tags)
        self.untagged = set(untagged)

    def append(self, table: str, rows: Any, force: bool = False) -> int:
        rows = [r if r.get("item_key") in self.untagged
                else {**r, "extra": canonical_json({**_extra(r.get("extra")), **self.tags})} for r in rows]
        return super().append(table, rows, force=force)


def pick_anchors(store: ProfileStore, n: int, *, seed: int, round_index: int, runtime: str | None = None,
                 target: str = "median_ms", exclude_kernels: Container[str] = ()) -> tuple[list[Kernel], list[str]]:
    """``n`` stored kernels (and their item keys) to measure again beside a round's new ones, spread
    evenly over :class:`~hwlat.store.HostDrift`'s size classes, so the drift fit can tie the
    round's host speed to the store's in every class. ``exclude_kernels`` (hashes) are never
    picked: re-measuring a held-out kernel would change the label it is scored on."""
    if n <= 0:
        return [], []
    df = training_rows(store, seed=seed, round_index=round_index, runtime=runtime, target=target)
    ks, pos = _kernels_of(df, exclude_kernels) if len(df) else ([], np.zeros(0, dtype=int))
    if not ks:
        return [], []
    cls = np.digitize(df[target].to_numpy(dtype=np.float64)[pos], np.asarray(HostDrift().edges_ms))
    rng = _rng(seed, round_index, "anchors")
    groups = [rng.permutation(np.flatnonzero(cls == c)) for c in np.unique(cls)]
    # round-robin over the classes: every class gets anchors before any gets many
    picked = [int(g[j]) for j in range(max(len(g) for g in groups)) for g in groups if j < len(g)][:n]
    keys = df["item_key"].astype(str).to_numpy()[pos]
    return [ks[i] for i in picked], [str(keys[i]) for i in picked]


def plan_path(store: ProfileStore, seed: int, round_index: int) -> Path:
    """Where :func:`run_adaptive` keeps the plan of round ``round_index`` of ``seed``."""
    return store.path / "adaptive" / f"seed-{seed}" / f"round-{round_index}.json"


def save_plan(path: Path, plan: RoundPlan, anchors: Sequence[Kernel], anchor_keys: Sequence[str]) -> None:
    """Write a round's plan and its anchors (kernels and item keys) as JSON, atomically."""
    doc = {"round": plan.round, "seed": plan.seed, "kernels": [k.to_dict() for k in plan.kernels],
           "report": [asdict(r) for r in plan.report],
           "anchors": [{"kernel": k.to_dict(), "item_key": key} for k, key in zip(anchors, anchor_keys, strict=True)]}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(doc, indent=1).encode())


def load_plan(path: Path) -> tuple[RoundPlan, list[Kernel], list[str]]:
    """A plan saved by :func:`save_plan`: (plan, anchor kernels, anchor item keys)."""
    from hwlat.predictors.features import as_kernel

    try:
        doc = json.loads(path.read_text())
        plan = RoundPlan(round=int(doc["round"]), seed=int(doc["seed"]), resumed=True,
                         kernels=[as_kernel(k) for k in doc["kernels"]],
                         report=[TypeReport(**r) for r in doc["report"]])
        anchors = [as_kernel(a["kernel"]) for a in doc["anchors"]]
        keys = [str(a["item_key"]) for a in doc["anchors"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StoreError(f"adaptive plan {path} is unreadable ({type(e).__name__}: {e}); delete it to plan "
                         "that round again (rows already measured are kept)") from None
    return plan, anchors, keys


Runner = Callable[[Device, list[Item], ProfileStore, list[Item]], RunSummary]


@dataclass
class RoundResult:
    """A measured adaptive round: its plan and the profiling run's summary."""

    plan: RoundPlan
    summary: RunSummary
    anchors: int = 0

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        return {**self.plan.to_dict(), "anchors": self.anchors, "measured": s.measured, "skipped": s.skipped,
                "failed": [{"name": a, "reason": b} for a, b in s.failed], "error": s.error}


def default_size(store: ProfileStore, *, seed: int, runtime: str | None = None,
                 kernel_types: Collection[str] | None = None, share: float = 0.1) -> int:
    """Samples per round by default: ``share`` of the kernel rows stored before round 1."""
    n = len(training_rows(store, seed=seed, round_index=1, runtime=runtime, kernel_types=kernel_types))
    return max(1, round(share * n))


def run_adaptive(device: Device, rounds: int, n: int | None = None, *, store: ProfileStore | None = None,
                 seed: int = 0, kernel_types: Collection[str] | None = None, force: bool = False,
                 measure: dict[str, Any] | None = None, min_rows: int = 20, folds: int = 5,
                 max_ms: float = 60.0, target: str = "median_ms", exclude_kernels: Container[str] = (),
                 anchors: float = 0.0, runner: Runner | None = None,
                 on_start: Callable[[int], None] | None = None,
                 on_plan: Callable[[RoundPlan], None] | None = None,
                 tick: Callable[[int, int], None] | None = None) -> list[RoundResult]:
    """Run ``rounds`` adaptive rounds on ``device``: plan, export, measure (tagged), repeat.

    ``n`` new kernels per round (default: 10 % of the stored kernel rows). Stops early when a
    round plans nothing or its run fails (``summary.error``). ``runner(device, items, store)``
    measures (default :func:`hwlat.profiling.profile`; measure in passes with
    :func:`hwlat.profiling.passes.profile_passes` and plan on ``target="floor_ms"`` on noisy hosts).

    ``anchors``: a share of each round's size of stored kernels (:func:`pick_anchors`, never one of
    ``exclude_kernels``) handed to the runner with the new ones, to be measured again among them
    (``profile_passes(anchors=...)``), untagged. Only a runner measuring in passes can use them:
    drift is estimated from items with several rows.

    Each round's plan is saved (:func:`plan_path`) before it is measured and read back by later
    runs (``plan.resumed``), so a rerun measures only what is missing; ``force`` plans anew.
    """
    from hwlat.profiling.sources import items_for_kernels

    if anchors < 0:
        raise ValueError(f"anchors is a share of the round size (e.g. 0.25), got {anchors}")
    if anchors and runner is None:
        raise ValueError("anchors need a runner that measures in passes (hwlat.profiling.passes.profile_passes)")
    store = store or ProfileStore(device.name)
    if n is None:
        n = default_size(store, seed=seed, runtime=device.runtime, kernel_types=kernel_types)
    run = runner or (lambda dev, items, st, _anchors: profile(dev, items, st, force=force, measure=measure))
    out: list[RoundResult] = []
    for r in range(1, rounds + 1):
        if on_start:
            on_start(r)
        saved = plan_path(store, seed, r)
        if saved.is_file() and not force:
            plan, anchor_kernels, anchor_keys = load_plan(saved)
        else:
            plan = adaptive_round(store, kernel_types, n, seed=seed, round_index=r, runtime=device.runtime,
                                  min_rows=min_rows, folds=folds, max_ms=max_ms, target=target,
                                  exclude_kernels=exclude_kernels)
            anchor_kernels, anchor_keys = pick_anchors(
                store, round(anchors * len(plan.kernels)), seed=seed, round_index=r, runtime=device.runtime,
                target=target, exclude_kernels=exclude_kernels) if plan.kernels else ([], [])
            save_plan(saved, plan, anchor_kernels, anchor_keys)
        if on_plan:
            on_plan(plan)
        items = items_for_kernels(plan.kernels, device.runtime, tick=tick)
        anchor_items = items_for_kernels(anchor_kernels, device.runtime, tick=tick) if anchor_kernels else []
        tagged = _TaggingStore(store, {"source": SOURCE, "round": r, "seed": seed}, untagged=anchor_keys)
        summary = run(device, items, tagged, anchor_items) if items else RunSummary(device=device.name, run_id="")
        out.append(RoundResult(plan, summary, len(anchor_items)))
        if not plan.kernels or summary.error:
            break
    return out
