"""Training a device predictor from its profile store (``hwlat train DEVICE``).

Data: the store's kernel table (one row per distinct kernel, median over repeats) and its
whole-model table (subnets of known spaces and zoo models, whose kernel lists we can rebuild).
A deterministic hash split keeps ``holdout`` of the kernels and of the models out of training;
the saved predictor is the one trained without them, so ``hwlat eval`` reports held-out numbers.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwlat.decompose import DECOMPOSITION_VERSION
from hwlat.decompose.records import read_kernel_list, records_dir, write_kernel_list
from hwlat.errors import HwlatError, PredictorError, StoreError
from hwlat.kernels.base import Kernel, names
from hwlat.predictors.artifacts import PredictorArtifact, library_versions, save_predictor, swap_in
from hwlat.predictors.features import FEATURE_VERSION, kernels_from_rows, model_feature_names
from hwlat.predictors.kernel_models import (
    POOLED,
    KernelLevelModel,
    OverheadModel,
    context_matrix,
    whole_model_parts,
)
from hwlat.predictors.predictor import MANIFEST, PREDICTOR_SCHEMA_VERSION, Predictor, predictor_dir
from hwlat.predictors.range_check import RangeCheck
from hwlat.predictors.subnet import MIN_SUBNETS, SubnetModel
from hwlat.predictors.whole_model import MIN_SPACE_MODELS, fit_stage, model_family
from hwlat.store import HostDrift, ProfileStore, with_floor

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
TRAIN_KEYS = "train_keys.json"
#: measured statistics a predictor can be trained to predict. ``floor_ms`` is the lowest time seen
#: over *every* stored measurement of an item (all passes of ``hwlat profile --passes N``), not
#: just the latest row: on a shared host whose speed switches between states every few hundred ms,
#: one short measurement lands in one state. On this project's 2-vCPU VM a kernel's single-pass
#: median reproduced within ±10 % for 67 % of kernels; the floor over 2 passes for 93 %.
TARGETS = ("median_ms", "min_ms", "floor_ms")


def resolve_target(store: ProfileStore, target: str = "auto") -> str:
    """``target`` itself, or for ``"auto"``: ``floor_ms`` when most stored items were measured in
    two or more passes (``hwlat profile --passes N``, quickstart), else ``median_ms``.

    A multi-pass store trained on ``median_ms`` would learn each item's latest pass only, whichever
    speed state it landed in, and throw the other passes away.
    """
    if target != "auto":
        if target not in TARGETS:
            raise PredictorError(f"unknown training target {target!r}; use auto or one of {', '.join(TARGETS)}")
        return target
    from hwlat.profiling.passes import stored_counts

    counts = stored_counts(store)
    n_multi = sum(c >= 2 for c in counts.values())
    return "floor_ms" if counts and n_multi * 2 >= len(counts) else "median_ms"


def host_drift(store: ProfileStore) -> HostDrift:
    """The host's speed drift over the store's passes, fitted on its kernel rows; ``floor_ms``
    labels (kernels and whole models alike) are taken with it divided out, unless the fit is not
    trusted (``HostDrift.trusted``), when it divides out nothing and a warning says so."""
    drift = HostDrift().fit(store.kernels(latest=False, expand=False))
    if drift.table and not drift.trusted:
        # Dividing labels by a fit that invented drift once cost 28 points of held-out accuracy;
        # uncorrected floors are what the store measured, so fall back to them and say so.
        log.warning("host-speed drift fit for %r not trusted (%s); floor_ms labels are taken as measured. "
                    "`hwlat doctor %s` shows how well the store's floors reproduce", store.device,
                    drift.reason, store.device)
    return drift


# ---- data -----------------------------------------------------------------------------------------

@dataclass
class KernelData:
    """Distinct measured kernels: ``y[i]`` ms for ``kernels[i]``; ``hashes`` are stable ids."""

    kernels: list[Kernel]
    y: np.ndarray
    hashes: list[str]
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass
class ModelData:
    """Whole-model measurements with their kernel lists."""

    item_keys: list[str]
    names: list[str]
    spaces: list[str | None]
    archs: list[Any]
    kernels: list[list[Kernel]]
    y: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def subset(self, idx: np.ndarray | list[int]) -> ModelData:
        idx = list(idx)
        return ModelData([self.item_keys[i] for i in idx], [self.names[i] for i in idx],
                         [self.spaces[i] for i in idx], [self.archs[i] for i in idx],
                         [self.kernels[i] for i in idx], self.y[idx] if len(idx) else np.zeros(0))


def kernel_hash(k: Kernel) -> str:
    return hashlib.sha256(k.key().encode()).hexdigest()[:16]


def is_holdout(key: str, frac: float) -> bool:
    """Deterministic split: the same key is always on the same side for a given fraction."""
    if frac <= 0:
        return False
    return int(hashlib.sha256(("holdout:" + key).encode()).hexdigest()[:8], 16) / 2**32 < frac


def kernel_data(store: ProfileStore, target: str = "median_ms", drift: HostDrift | None = None) -> KernelData:
    """Distinct kernels of the store (median of repeated measurements of one config). ``drift``:
    for ``floor_ms``, the store's :func:`host_drift` unless given."""
    df = store.kernels(expand=False)
    if not len(df):
        return KernelData([], np.zeros(0), [])
    if target == "floor_ms":
        rows = store.kernels(latest=False, expand=False)
        df = with_floor(df, rows, drift if drift is not None else HostDrift().fit(rows))
    known = set(names())
    skipped: dict[str, int] = {}
    by_key: dict[str, tuple[Kernel, list[float]]] = {}
    for t, c, ms in zip(df["kernel_type"], df["config"], df[target], strict=True):
        if t not in known:
            skipped[str(t)] = skipped.get(str(t), 0) + 1
            continue
        try:
            k = kernels_from_rows([t], [c])[0]
        except (ValueError, TypeError):
            skipped[str(t)] = skipped.get(str(t), 0) + 1
            continue
        key = k.key()
        by_key.setdefault(key, (k, []))[1].append(float(ms))
    ks = [v[0] for v in by_key.values()]
    y = np.array([float(np.median(v[1])) for v in by_key.values()])
    return KernelData(ks, y, [kernel_hash(k) for k in ks], skipped)


Decomposition = tuple[list[Kernel], list[dict[str, Any]]]


def _cached(cache: Path, decompose: Callable[[], Decomposition]) -> Decomposition:
    """A decomposition read from its JSON cache file, or computed once and written there (again,
    when the cached file is unreadable: it is derived data)."""
    if cache.is_file():
        try:
            return read_kernel_list(cache)
        except StoreError:
            pass
    kernels, unsupported = decompose()
    write_kernel_list(cache, kernels, unsupported)
    return list(kernels), list(unsupported)


def _zoo_kernels(name: str, sha: str, runtime: str, root: Path) -> Decomposition:
    """Kernels of a zoo model, decomposed once per (file hash, runtime) and cached as JSON."""
    def decompose() -> Decomposition:
        from hwlat.decompose import kernels_of, runtimes
        from hwlat.profiling.sources import cache_dir, zoo_file

        rt = runtime if runtime in runtimes() else "onnxruntime"
        f = cache_dir("zoo", "onnx") / f"{name}.onnx"
        if f.is_file():
            dec = kernels_of(f, runtime=rt)
        else:  # released from the cache: decompose the same export, made again in a scratch folder
            with tempfile.TemporaryDirectory(prefix="hwlat-zoo-") as tmp:
                dec = kernels_of(zoo_file(name, "onnx", Path(tmp)), runtime=rt)
        return list(dec.kernels), list(dec.unsupported)

    return _cached(records_dir(root, runtime) / f"{name}-{sha[:16]}.json", decompose)


def model_kernels(space: str | None, arch: Any, sha: str, runtime: str, root: Path) -> Decomposition:
    """Kernel list of a stored whole model (a subnet of a known space, or a zoo model)."""
    from hwlat.profiling.sources import arch_kernels
    from hwlat.spaces import get_space, space_names

    if space == "zoo":
        return _zoo_kernels(str(arch), sha, runtime, root)
    if space in space_names():
        if runtime == "onnxruntime":
            return arch_kernels(space, arch, runtime)
        # other runtimes fuse differently: decompose the built subnet once, cached like zoo models
        sp = get_space(space)
        material = f"{space}:{sp.key(sp.canonical(arch))}:{DECOMPOSITION_VERSION}"
        digest = hashlib.sha256(material.encode()).hexdigest()[:16]
        return _cached(records_dir(root, runtime) / f"{space}-{digest}.json",
                       lambda: arch_kernels(space, arch, runtime))
    raise PredictorError(f"no kernel list for model of space {space!r}")


def model_data(store: ProfileStore, runtime: str, progress: Progress | None = None,
               target: str = "median_ms", drift: HostDrift | None = None) -> ModelData:
    """Whole models of the store whose kernels can be rebuilt (known spaces, zoo) or were recorded
    when they were profiled (model files). ``drift``: as for :func:`kernel_data`."""
    from hwlat.profiling.sources import file_kernels_path

    df = store.models()
    if target == "floor_ms" and len(df):
        df = with_floor(df, store.models(latest=False), drift if drift is not None else host_drift(store))
    out = ModelData([], [], [], [], [], np.zeros(0))
    ys: list[float] = []
    n = len(df)
    for i, row in enumerate(df.itertuples(index=False)):
        if progress:
            progress("kernel lists of models", i, n)
        space = row.space if isinstance(row.space, str) else None
        if space is None or row.arch is None or (isinstance(row.arch, float) and np.isnan(row.arch)):
            space, arch = None, None
            recorded = file_kernels_path(str(row.file_sha256 or ""), runtime, store.root)
            if not row.file_sha256 or not recorded.is_file():
                out.skipped.append((row.name, "user model file whose kernel list was not recorded: run "
                                              f"`hwlat profile {store.device} --models DIR` on its folder again "
                                              "(stored rows are not measured again)"))
                continue
            try:
                ks, unsup = read_kernel_list(recorded)
            except StoreError as e:
                out.skipped.append((row.name, f"{e}: run `hwlat profile {store.device} --models DIR` on its "
                                              "folder again to record it anew (stored rows are not measured again)"))
                continue
        else:
            try:
                arch = json.loads(row.arch)
                ks, unsup = model_kernels(space, arch, str(row.file_sha256 or ""), runtime, store.root)
            except (HwlatError, ValueError, KeyError, TypeError) as e:
                out.skipped.append((row.name, f"kernels unavailable ({e})"))
                continue
        if unsup:
            ops = ", ".join(sorted({u["op_type"] for u in unsup}))
            out.skipped.append((row.name, f"unsupported operators {ops}: kernel sum would miss them"))
            continue
        if not ks:
            out.skipped.append((row.name, "decomposed into no kernels"))
            continue
        out.item_keys.append(str(row.item_key))
        out.names.append(str(row.name))
        out.spaces.append(space)
        out.archs.append(arch)
        out.kernels.append(ks)
        ys.append(float(getattr(row, target)))
    out.y = np.asarray(ys, dtype=np.float64)
    if progress:
        progress("kernel lists of models", n, n)
    return out


def _store_runtime(store: ProfileStore) -> str:
    for df in (store.kernels(expand=False), store.models()):
        if len(df) and "runtime" in df and df["runtime"].notna().any():
            return str(df["runtime"].dropna().mode().iloc[0])
    try:
        from hwlat.devices import get_device

        return get_device(store.device).runtime
    except HwlatError:
        return "onnxruntime"


# ---- training -------------------------------------------------------------------------------------

@dataclass
class TrainResult:
    """What ``train`` produced: the predictor, its directory and the held-out evaluation."""

    predictor: Predictor
    directory: Path
    evaluation: dict[str, Any]
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.predictor.device, "kind": self.predictor.kind, "directory": str(self.directory),
                "seconds": round(self.seconds, 1), "notes": self.notes, "manifest": _public_manifest(
                    self.predictor.manifest), "evaluation": self.evaluation}


def _public_manifest(m: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if k not in ("kernel_parts",)}


def train(device: str, kind: str = "gbdt", *, root: str | Path | None = None, holdout: float = 0.2,
          min_samples: int = 24, min_subnets: int = MIN_SUBNETS, fast: bool = False, seed: int = 0,
          residual: bool = True, target: str = "auto", exclude_models: Collection[str] = (),
          exclude_kernels: Collection[str] = (), select_subnet_models: bool = True,
          progress: Progress | None = None) -> TrainResult:
    """Train and save ``<profiles>/<device>/predictors/<kind>`` from the device's profile store.

    ``target``: the measured statistic to predict, ``median_ms`` (what ``hwlat measure`` reports),
    ``min_ms`` (robust to a busy device: contention only ever adds time), ``floor_ms`` (lowest over
    all passes, with the host's speed drift between them divided out: :mod:`hwlat.store.drift`) or
    ``auto`` (:func:`resolve_target`: ``floor_ms`` for a store profiled in passes). ``exclude_models``:
    item keys of whole models never trained on (benchmarks keep fixed test sets out this way).
    ``exclude_kernels``: kernel hashes (:func:`kernel_hash`) never trained on, e.g. the kernels of
    those test models where they were profiled alone.
    ``select_subnet_models``: keep a space's subnet model only if it beats the kernel sum in
    cross-validation (else always keep it).
    """
    from hwlat.predictors.evaluation import evaluate

    t0 = time.monotonic()
    store = ProfileStore(device, root=root)
    fp = store.latest_fingerprint() or {}
    fid = fp.get("fingerprint_id")
    runtime = _store_runtime(store)
    notes: list[str] = []

    target = resolve_target(store, target)
    drift = host_drift(store) if target == "floor_ms" else None
    if drift is not None and drift.table and drift.trusted:  # an untrusted fit was warned about
        cls = drift.summary()["classes"].values()
        notes.append(f"host speed drifted {min(c['p5_pct'] for c in cls):+.1f} to "
                     f"{max(c['p95_pct'] for c in cls):+.1f} % (5-95 % of {drift.bin_s / 60:.0f}-min bins) "
                     "over the passes; divided out of the floor_ms labels")
    kd = kernel_data(store, target, drift)
    if not kd.kernels:
        raise PredictorError(f"no kernel measurements for device {device!r} in {store.path}; run "
                             f"`hwlat profile {device} --suite quick` first")
    if kd.skipped:
        notes.append(f"skipped kernel rows of unknown/invalid types: {kd.skipped}")
    no_k = set(exclude_kernels)
    tr_k = np.array([not is_holdout(h, holdout) and h not in no_k for h in kd.hashes], dtype=bool)
    if tr_k.sum() < 5:
        raise PredictorError(f"only {int(tr_k.sum())} training kernels for device {device!r}; profile more "
                             f"with `hwlat profile {device} --suite quick`")
    km = KernelLevelModel(kind, min_samples=min_samples, fast=fast, seed=seed)
    ktrain = [k for k, t in zip(kd.kernels, tr_k, strict=True) if t]
    km.fit(ktrain, kd.y[tr_k], progress=progress)
    pooled_types = sorted(t for t in km.trained_types if km.source_of(t) == POOLED)
    if pooled_types:
        notes.append(f"kernel types with fewer than {min_samples} training samples use the pooled model: "
                     f"{', '.join(pooled_types)}")

    md = model_data(store, runtime, progress, target, drift)
    for name, why in md.skipped[:10]:
        notes.append(f"model {name}: {why}")
    excluded = set(exclude_models)
    tr_m = np.array([not is_holdout(k, holdout) and k not in excluded for k in md.item_keys], dtype=bool)
    mtrain = md.subset(np.flatnonzero(tr_m))
    types = names()
    manifest: dict[str, Any] = {
        "schema_version": PREDICTOR_SCHEMA_VERSION, "kind": kind, "device": device, "fingerprint_id": fid,
        "runtime": runtime, "feature_version": FEATURE_VERSION, "min_samples": min_samples,
        "kernel_parts": sorted(km.parts), "trained_types": km.trained_types, "pooled_types": pooled_types,
        "model_feature_types": types, "holdout": holdout, "seed": seed, "target": target,
        "min_subnets": min_subnets, "host_drift": drift.summary() if drift is not None else None,
        "n_kernels": {"train": int(tr_k.sum()), "holdout": int((~tr_k).sum())},
        "n_models": {"train": int(tr_m.sum()), "holdout": int((~tr_m).sum()), "skipped": len(md.skipped)},
        "library_versions": library_versions(),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    pred = Predictor(device, kind, manifest, km, OverheadModel())

    # whole-model stage: per-space overheads, and for other models whichever of plain sum / overhead /
    # residual did best on held-out families (hwlat.predictors.whole_model)
    res_X = res_y = None
    S = N = F = np.zeros(0)
    if len(mtrain.y):
        if progress:
            progress("whole-model stage", 0, 1)
        kms = [pred.predict_kernels(ks, return_interval=False) for ks in mtrain.kernels]
        S, N, F = whole_model_parts(mtrain.kernels, kms, types)
        C = context_matrix(mtrain.kernels)
        fams = [model_family(n, s, a) for n, s, a in zip(mtrain.names, mtrain.spaces, mtrain.archs, strict=True)]
        stage = fit_stage(S, N, F, mtrain.y, fams, mtrain.spaces, C=C, residual=residual, seed=seed)
        pred.overhead, pred.space_overhead = stage.overhead, stage.space_overhead
        manifest["whole_model_stage"] = stage.report
        manifest["residual"] = {"kept": stage.residual is not None, "check": stage.report}
        if stage.report.get("reason"):
            notes.append(f"whole-model stage: {stage.report['reason']}")
        elif stage.report.get("logo_within_10"):
            w = stage.report["logo_within_10"]
            notes.append(f"whole-model stage for networks of other families: {stage.report['chosen']} "
                         f"(held-out-family ±10 %: " + ", ".join(f"{k} {v:.0%}" for k, v in w.items()) +
                         f"; {stage.report['families']} families)")
        if stage.residual is not None:
            res_X, res_y = F, mtrain.y / pred.overhead.predict(S, N, C)
            fn = model_feature_names(types)
            pred.residual = PredictorArtifact(stage.residual, {"kind": stage.residual.kind, "feature_names": fn},
                                              RangeCheck(fn).fit(res_X))
    else:
        manifest["residual"] = {"kept": False, "check": {"reason": "no whole-model measurements"}}
        notes.append("no whole-model measurements: the kernel sum is used without a learned overhead; "
                     f"profile some with `hwlat profile {device} --space ofa_mbv3 --samples 20`")
    manifest["space_overhead"] = {sp: ov.to_dict() for sp, ov in pred.space_overhead.items()}
    manifest["overhead"] = pred.overhead.to_dict()

    # subnet-level models per space
    subnet_info: dict[str, Any] = {}
    for sp in sorted({s for s in mtrain.spaces if s and s != "zoo"}):
        idx = [i for i, s in enumerate(mtrain.spaces) if s == sp]
        if len(idx) < min_subnets:
            notes.append(f"space {sp}: {len(idx)} training subnets (< {min_subnets}), no subnet model; "
                         "its subnets are predicted by the kernel sum")
            continue
        if progress:
            progress(f"subnet model {sp}", 0, 1)
        archs, ys = [mtrain.archs[i] for i in idx], mtrain.y[idx]
        cmp = _subnet_vs_kernel_sum(sp, archs, np.asarray(idx), S, N, mtrain.y, kind, seed) \
            if select_subnet_models else {"kept": True}
        subnet_info[sp] = {"n_train": len(idx), **cmp}
        if not cmp["kept"]:
            notes.append(f"space {sp}: subnet model dropped, the kernel sum was more accurate in cross-validation "
                         f"(MAPE {cmp['cv_mape_subnet']:.1%} vs {cmp['mape_kernel_sum']:.1%})")
            continue
        pred.subnets[sp] = SubnetModel(sp, kind, fast=fast, seed=seed).fit(archs, ys)
    manifest["subnet_spaces"] = {sp: v for sp, v in subnet_info.items() if v["kept"]}
    manifest["subnet_checks"] = subnet_info

    train_keys = {"kernels": [h for h, t in zip(kd.hashes, tr_k, strict=True) if t],
                  "models": list(mtrain.item_keys)}
    manifest["training_data_hash"] = _keys_hash(train_keys, kd, tr_k, mtrain)

    # held-out evaluation with the exact prediction path the saved predictor uses
    if progress:
        progress("held-out evaluation", 0, 1)
    ev = evaluate(pred, store, train_keys=train_keys, kd=kd, md=md)
    manifest["validation_metrics"] = ev["summary"]

    d = predictor_dir(device, kind, root)
    _save(d, pred, manifest, train_keys, fid, ev, res_X, res_y)
    pred.directory = d
    return TrainResult(pred, d, ev, time.monotonic() - t0, notes)


def _subnet_vs_kernel_sum(space: str, archs: list[Any], idx: np.ndarray, S: np.ndarray, N: np.ndarray,
                          y_all: np.ndarray, kind: str, seed: int, n_folds: int = 3) -> dict[str, Any]:
    """Keep a space's subnet model only if its k-fold MAPE beats the kernel sum on the same subnets.

    Both sides are out-of-fold: the subnet model is refitted without the fold, and so is the space's
    own overhead on the kernel sum (``S, N`` = Σ kernels and kernel count of every training model,
    ``idx`` = this space's rows). With tens of subnets an MLP
    on ~100 arch features is often worse than the kernel sum (local bench: 68 % vs 87 % within ±10 %).
    """
    y = y_all[idx]
    folds = np.array_split(np.random.default_rng(seed).permutation(len(y)), n_folds)
    p, q = np.zeros(len(y)), np.zeros(len(y))
    for i, va in enumerate(folds):
        tr = np.concatenate([f for j, f in enumerate(folds) if j != i])
        sm = SubnetModel(space, kind, fast=True, seed=seed).fit([archs[t] for t in tr], y[tr])
        p[va] = sm.predict([archs[v] for v in va])[0]
        rows, keep = idx[va], idx[tr]
        # what the kernel sum path does for this space's archs: its own overhead, fitted without the fold
        ov = OverheadModel().fit(S[keep], N[keep], y_all[keep]) if len(keep) >= MIN_SPACE_MODELS \
            else OverheadModel()
        q[va] = ov.predict(S[rows], N[rows])
    mape_sub = float(np.mean(np.abs(p - y) / y))
    mape_ks = float(np.mean(np.abs(q - y) / y))
    return {"kept": bool(mape_sub < mape_ks), "cv_mape_subnet": mape_sub, "mape_kernel_sum": mape_ks}


def _keys_hash(train_keys: dict[str, list[str]], kd: KernelData, tr_k: np.ndarray, mtrain: ModelData) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(train_keys, sort_keys=True).encode())
    h.update(np.ascontiguousarray(kd.y[tr_k], dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(mtrain.y, dtype=np.float64).tobytes())
    return "sha256:" + h.hexdigest()


def _save(d: Path, pred: Predictor, manifest: dict[str, Any], train_keys: dict[str, list[str]],
          fid: str | None, ev: dict[str, Any], res_X: np.ndarray | None, res_y: np.ndarray | None) -> None:
    """Write the whole predictor into a temp directory and swap it in (never half-written)."""
    tmp = d.with_name(d.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    per_type = (ev.get("kernel") or {}).get("per_type") or {}
    pred.kernel_model.save(tmp / "kernel", pred.device, fid,
                           metrics={t: {"holdout": m} for t, m in per_type.items()})
    if pred.residual is not None and res_X is not None and res_y is not None:
        save_predictor(tmp / "residual", pred.residual.model, device=pred.device,
                       feature_names=pred.residual.feature_names, X_train=res_X, y_train=res_y,
                       fingerprint_id=fid, metrics=manifest["residual"]["check"],
                       extra={"level": "model-residual", "target": "measured / overhead(kernel sum)"})
    per_space = ((ev.get("model") or {}).get("subnet") or {}).get("per_space") or {}
    for sp, sm in pred.subnets.items():
        sm.save(tmp / "subnet" / sp, pred.device, fid, metrics={"holdout": per_space.get(sp, {})})
    (tmp / TRAIN_KEYS).write_text(json.dumps(train_keys))
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=_json_default))
    swap_in(tmp, d)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (pd.Timestamp,)):
        return str(o)
    return str(o)


def read_train_keys(d: Path) -> dict[str, set[str]]:
    """The kernel hashes and model item keys a saved predictor was trained on."""
    p = d / TRAIN_KEYS
    if not p.is_file():
        return {"kernels": set(), "models": set()}
    data = json.loads(p.read_text())
    return {"kernels": set(data.get("kernels", [])), "models": set(data.get("models", []))}


# ---- transfer to a new device -----------------------------------------------------------------------

@dataclass
class TransferData:
    """Whole models measured on the target with the source predictor's view of them."""

    md: ModelData
    source_ms: np.ndarray
    features: np.ndarray
    feature_names: list[str]


def transfer_data(target: str, source: Predictor, root: str | Path | None = None) -> TransferData:
    """Target-device whole models + source predictions and model aggregates (transfer inputs)."""
    store = ProfileStore(target, root=root)
    md = model_data(store, _store_runtime(store), target=str(source.manifest.get("target", "median_ms")))
    src = source.predict_models(md.spaces, md.archs, md.kernels)[0] if md.kernels else np.zeros(0)
    types = list(source.model_types or names())
    from hwlat.predictors.features import model_features

    F = np.stack([model_features(ks, source.predict_kernels(ks, return_interval=False), types)
                  for ks in md.kernels]) if md.kernels else np.zeros((0, len(model_feature_names(types))))
    return TransferData(md, src, F, model_feature_names(types))


def train_transfer(target: str, source_device: str, source_kind: str = "gbdt", *, root: str | Path | None = None,
                   n_samples: int | None = None, holdout: float = 0.2, seed: int = 0) -> TrainResult:
    """Fit and save ``<profiles>/<target>/predictors/transfer`` from the target's whole-model
    measurements (``n_samples`` of the non-held-out ones, all by default) and the source predictor."""
    from hwlat.predictors.transfer import TransferRegressor, transfer_features

    t0 = time.monotonic()
    source = Predictor.load(source_device, source_kind, root=root)
    td = transfer_data(target, source, root)
    keys = td.md.item_keys
    tr = np.flatnonzero([not is_holdout(k, holdout) for k in keys])
    if n_samples is not None and n_samples < len(tr):
        tr = np.sort(np.random.default_rng(seed).choice(tr, n_samples, replace=False))
    if len(tr) < 3:
        raise PredictorError(f"transfer to {target!r} needs at least 3 whole-model measurements on it, found "
                             f"{len(tr)}; profile some with `hwlat profile {target} --space ofa_mbv3 --samples 20`")
    trs = set(tr.tolist())
    te = np.array([i for i in range(len(keys)) if i not in trs], dtype=int)
    X = transfer_features(td.source_ms.reshape(-1, 1), td.features)
    est = TransferRegressor(1).fit(X[tr], td.md.y[tr])
    fn = ["source_ms"] + td.feature_names
    art = PredictorArtifact(est, {"kind": "transfer", "feature_names": fn}, RangeCheck(fn).fit(X[tr]))
    store = ProfileStore(target, root=root)
    fid = (store.latest_fingerprint() or {}).get("fingerprint_id")
    manifest: dict[str, Any] = {
        "schema_version": PREDICTOR_SCHEMA_VERSION, "kind": "transfer", "device": target, "fingerprint_id": fid,
        "source_device": source_device, "source_kind": source_kind,
        "source_fingerprint_id": source.manifest.get("fingerprint_id"),
        "model_feature_types": list(source.model_types or names()), "holdout": holdout, "seed": seed,
        "n_models": {"train": int(len(tr)), "holdout": int(len(te))}, "residual": bool(est._res is not None),
        "library_versions": library_versions(),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    from hwlat.predictors.predictor import TransferPredictor

    pred = TransferPredictor(target, manifest, source, art)
    ev: dict[str, Any] = {"device": target, "kind": "transfer", "model": None}
    if len(te):
        from hwlat.predictors.evaluation import _clean, _report

        m, lo, hi = est.predict(X[te], return_interval=True)
        ev["model"] = _clean(_report(td.md.y[te], m, lo, hi))
        ev["source_only"] = _clean(_report(td.md.y[te], td.source_ms[te]))
    manifest["validation_metrics"] = ev
    d = predictor_dir(target, "transfer", root)
    tmp = d.with_name(d.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_predictor(tmp / "transfer", est, device=target, feature_names=fn, X_train=X[tr], y_train=td.md.y[tr],
                   fingerprint_id=fid, metrics=ev, extra={"level": "transfer", "source_device": source_device})
    (tmp / TRAIN_KEYS).write_text(json.dumps({"kernels": [], "models": [keys[i] for i in tr]}))
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=_json_default))
    if d.exists():
        shutil.rmtree(d)
    tmp.rename(d)
    pred.directory = d
    return TrainResult(pred, d, ev, time.monotonic() - t0, [])
