"""Few-shot transfer as a workflow (``hwlat transfer NEW --from SRC[,SRC...] --samples N``).

1. A candidate pool: random subnets of the chosen search spaces plus the zoo models.
2. Every source device's trained predictor predicts every candidate; the N candidates to measure
   on the new device are picked by greedy facility location (k-medoids, :func:`select`) on the
   standardized log source predictions, with the family (space or zoo) as an extra coordinate,
   starting from the models the new device has already measured. The greedy is nested: asking for
   50 after 20 keeps the same 20, so only the 30 new ones are measured.
3. A :class:`~hwlat.predictors.transfer.TransferRegressor` with one column per source is fitted on
   every whole model the new device has measured, scored by leave-one-out, and saved as
   ``<profiles>/NEW/predictors/transfer`` where :meth:`hwlat.Predictor.load` finds it
   (:class:`MultiTransferPredictor`).
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from hwlat.errors import PredictorError
from hwlat.kernels.base import Kernel
from hwlat.predictors.artifacts import (
    PredictorArtifact,
    library_versions,
    load_predictor,
    save_predictor,
    swap_in,
)
from hwlat.predictors.features import model_feature_names, model_features
from hwlat.predictors.predictor import (
    MANIFEST,
    PREDICTOR_SCHEMA_VERSION,
    Prediction,
    Predictor,
    TransferPredictor,
    predictor_dir,
)
from hwlat.predictors.range_check import RangeCheck
from hwlat.predictors.transfer import TransferRegressor, transfer_features
from hwlat.profiling.items import Item

Tick = Callable[[int, int], None]

#: weight of "another family" against one standard deviation of log source latency in the selection
#: distance: a new family is worth about as much as a model 1.5 sd away in latency
FAMILY_WEIGHT = 1.5


@dataclass
class Candidate:
    """One model the new device could measure: a subnet ``arch`` of ``space``, or a zoo model."""

    space: str  # a search space name, or "zoo"
    arch: Any  # canonical arch, or the zoo model's name

    @property
    def family(self) -> str:
        return self.space if self.space != "zoo" else f"zoo:{self.arch}"


@dataclass
class SourceView:
    """What the sources say about some models: their latencies (n × k, ms) and the primary
    source's model aggregates (n × d), the transfer regressor's inputs."""

    source_ms: np.ndarray
    features: np.ndarray

    def X(self) -> np.ndarray:
        return transfer_features(self.source_ms, self.features)


def candidate_pool(spaces: Sequence[str], per_space: int, zoo: bool, seed: int = 7) -> list[Candidate]:
    """``per_space`` distinct random subnets of each space, then the zoo models."""
    from hwlat.profiling.sources import _sample_archs
    from hwlat.spaces import get_space

    pool = [Candidate(s, a) for s in spaces for a in _sample_archs(get_space(s), per_space, seed)]
    if zoo:
        from hwlat import zoo as z

        pool += [Candidate("zoo", n) for n in z.names()]
    return pool


def _zoo_kernel_list(name: str, runtime: str) -> list[Kernel]:
    from hwlat import zoo
    from hwlat.decompose import kernels_of

    dec = kernels_of(*zoo.get(name), runtime=runtime)
    return list(dec.kernels)


def candidate_kernels(primary: Predictor, pool: Sequence[Candidate], tick: Tick | None = None
                      ) -> list[list[Kernel]]:
    """Kernel lists of the pool as the primary source decomposes them."""
    out = []
    for c in pool:
        if c.space == "zoo":
            out.append(_zoo_kernel_list(str(c.arch), primary.decompose_runtime))
        else:
            out.append(primary.kernels_for(c.arch, space=c.space)[0])
        if tick:
            tick(len(out), len(pool))
    return out


def candidate_items(pool: Sequence[Candidate], runtime: str, tick: Tick | None = None) -> list[Item]:
    """Profiling items of candidates, exported to the runtime's format (cached by content, as
    ``hwlat profile --space/--zoo`` does, so they are the same store items)."""
    from hwlat.export.formats import format_for
    from hwlat.profiling.sources import cache_dir, subnet_file, zoo_items
    from hwlat.spaces import get_space

    fmt = format_for(runtime)
    out: list[Item] = []
    for c in pool:
        if c.space == "zoo":
            out += zoo_items(runtime, [str(c.arch)])
        else:
            path = subnet_file(get_space(c.space), c.arch, fmt, cache_dir(f"spaces/{c.space}", fmt))
            out.append(Item(table="models", name=path.name, file=path, space=c.space, arch=c.arch))
        if tick:
            tick(len(out), len(pool))
    return out


def source_view(sources: Sequence[Predictor], spaces: Sequence[str | None], archs: Sequence[Any],
                kernel_lists: Sequence[Sequence[Kernel]]) -> SourceView:
    """Each source's whole-model prediction of each model (its subnet model where it has one, else
    its kernel sum), and the primary (first) source's model aggregates."""
    S = np.stack([s.predict_models(spaces, archs, kernel_lists)[0] for s in sources], axis=1)
    primary = sources[0]
    types = list(primary.model_types)
    F = np.stack([model_features(ks, primary.predict_kernels(ks, return_interval=False), types)
                  for ks in kernel_lists]) if len(kernel_lists) else np.zeros((0, len(model_feature_names(types))))
    return SourceView(np.maximum(S, 1e-6), F)


def select(source_ms: np.ndarray, families: Sequence[str], n: int, measured: Sequence[int] = ()) -> list[int]:
    """Indices of ``n`` candidates: greedy facility location (k-medoids) on standardized log source
    latencies plus a family coordinate, seeded with ``measured`` (kept, counted in ``n``).
    Deterministic and nested.

    Why medoids and not k-center: farthest-point picks the pool's extremes, and a map fitted on
    extremes misses the typical model. Leave-one-source-out among HELP's NB201 meta-train devices
    (pool of 500 archs, 3 draws): ±10 % at N = 10 / 20 / 50 was 64.7 / 66.7 / 72.9 % for k-center,
    67.3 / 70.9 / 75.1 % for random picks and 67.7 / 71.8 / 74.1 % for facility location.
    """
    Z = np.log(np.asarray(source_ms, dtype=np.float64))
    sd = Z.std(axis=0)
    Z = (Z - Z.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    fam = sorted(set(families))
    onehot = np.zeros((len(Z), len(fam)))
    onehot[np.arange(len(Z)), [fam.index(f) for f in families]] = FAMILY_WEIGHT / np.sqrt(2.0)
    P = np.hstack([Z, onehot])
    D = np.sqrt(np.maximum(np.sum(P**2, 1)[:, None] + np.sum(P**2, 1)[None, :] - 2.0 * P @ P.T, 0.0))
    chosen = list(dict.fromkeys(int(i) for i in measured))
    # distance of every candidate to its nearest chosen one (nothing chosen: a far constant)
    cur = D[chosen].min(axis=0) if chosen else np.full(len(P), D.max() + 1.0)
    while len(chosen) < min(n, len(P)):
        total = np.minimum(cur[None, :], D).sum(axis=1)
        total[chosen] = np.inf
        i = int(np.argmin(total))
        chosen.append(i)
        cur = np.minimum(cur, D[i])
    return chosen


def loo_predictions(X: np.ndarray, y: np.ndarray, n_sources: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leave-one-out (mean, low, high): each model predicted by a transfer fitted without it."""
    n = len(y)
    m, lo, hi = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        keep = np.arange(n) != i
        est = TransferRegressor(n_sources).fit(X[keep], y[keep])
        a, b, c = est.predict(X[i:i + 1], return_interval=True)
        m[i], lo[i], hi[i] = float(a[0]), float(b[0]), float(c[0])
    return m, lo, hi


@dataclass
class TransferFit:
    """What :func:`fit_and_save` produced."""

    predictor: MultiTransferPredictor
    directory: Path
    cv: dict[str, Any]
    per_source: dict[str, dict[str, Any]]
    n_models: int
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.predictor.device, "kind": "transfer", "directory": str(self.directory),
                "sources": self.predictor.manifest["source_devices"], "n_models": self.n_models,
                "cv": self.cv, "source_as_is": self.per_source, "skipped": [list(s) for s in self.skipped]}


def fit_and_save(target: str, sources: Sequence[Predictor], *, root: str | Path | None = None,
                 selection: dict[str, Any] | None = None) -> TransferFit:
    """Fit the new device's transfer predictor on every whole model it has measured and save it."""
    from hwlat.predictors.evaluation import _clean, _report
    from hwlat.predictors.training import _json_default, _store_runtime, model_data, resolve_target
    from hwlat.store import ProfileStore

    store = ProfileStore(target, root=root)
    stat = resolve_target(store, "auto")
    md = model_data(store, _store_runtime(store), target=stat)
    if len(md.y) < 3:
        raise PredictorError(f"transfer to {target!r} needs at least 3 whole-model measurements on it, found "
                             f"{len(md.y)}; run `hwlat transfer {target} --from SRC --samples 10`")
    view = source_view(sources, md.spaces, md.archs, md.kernels)
    X, y, k = view.X(), md.y, len(sources)
    est = TransferRegressor(k).fit(X, y)
    m, lo, hi = loo_predictions(X, y, k)
    cv = _clean(_report(y, m, lo, hi))
    names = [s.device for s in sources]
    per_source = {n: _clean(_report(y, view.source_ms[:, j])) for j, n in enumerate(names)}
    fn = [f"source_ms:{n}" for n in names] + model_feature_names(list(sources[0].model_types))
    fid = (store.latest_fingerprint() or {}).get("fingerprint_id")
    manifest: dict[str, Any] = {
        "schema_version": PREDICTOR_SCHEMA_VERSION, "kind": "transfer", "device": target, "fingerprint_id": fid,
        "source_device": names[0], "source_kind": sources[0].kind,
        "source_devices": names, "source_kinds": [s.kind for s in sources],
        "source_fingerprint_ids": [s.manifest.get("fingerprint_id") for s in sources],
        "model_feature_types": list(sources[0].model_types), "target": stat,
        "n_models": {"train": int(len(y)), "holdout": 0}, "residual": bool(est._res is not None),
        "selection": selection or {}, "validation_metrics": {"cv": "leave-one-out", "model": cv,
                                                             "source_only": per_source},
        "library_versions": library_versions(),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    d = predictor_dir(target, "transfer", root)
    tmp = d.with_name(d.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_predictor(tmp / "transfer", est, device=target, feature_names=fn, X_train=X, y_train=y,
                   fingerprint_id=fid, metrics={"cv": cv}, extra={"level": "transfer", "source_devices": names})
    (tmp / "train_keys.json").write_text(json.dumps({"kernels": [], "models": md.item_keys}))
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=_json_default))
    swap_in(tmp, d)
    art = PredictorArtifact(est, {"kind": "transfer", "feature_names": fn}, RangeCheck(fn).fit(X))
    pred = MultiTransferPredictor(target, manifest, list(sources), art, d)
    return TransferFit(pred, d, cv, per_source, int(len(y)), list(md.skipped))


class MultiTransferPredictor(TransferPredictor):
    """A new device's predictor mapped from one or more source devices' predictors
    (``hwlat transfer``): ``log y_new ≈ Σ_j c_j·log y_j + b`` (+ an arch residual once N ≥ 20).

    The first source decomposes models and gives the arch aggregates; every source predicts the
    whole model its own way (subnet model or kernel sum).
    """

    def __init__(self, device: str, manifest: dict[str, Any], sources: list[Predictor], transfer: PredictorArtifact,
                 directory: Path | None = None) -> None:
        super().__init__(device, manifest, sources[0], transfer, directory)
        self.sources = sources

    @classmethod
    def load_from(cls, d: Path, device: str, manifest: dict[str, Any], root: str | Path | None
                  ) -> MultiTransferPredictor:
        names, kinds = manifest["source_devices"], manifest["source_kinds"]
        srcs = []
        for n, k in zip(names, kinds, strict=True):
            try:
                srcs.append(Predictor.load(n, k, root=root))
            except PredictorError as e:
                raise PredictorError(f"transfer predictor of {device!r} needs source {n!r} ({k}): {e}") from None
        return cls(device, manifest, srcs, load_predictor(d / "transfer", expected_device=device), d)

    def _view(self, spaces: Sequence[str | None], archs: Sequence[Any],
              kernel_lists: Sequence[Sequence[Kernel]]) -> SourceView:
        return source_view(self.sources, spaces, archs, kernel_lists)

    def _map_view(self, v: SourceView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.transfer.predict(v.X(), return_interval=True)

    def predict_kernels(self, kernels: Sequence[Kernel | Mapping[str, Any]], return_interval: bool = True) -> Any:
        """Each source's kernel predictions through the source map (no arch residual: it was fitted
        on whole models)."""
        model = self.transfer.model
        c, b = np.ravel(model.coef_), float(model.intercept_)
        parts = [s.predict_kernels(kernels) for s in self.sources]

        def f(i: int) -> np.ndarray:
            logs = np.stack([np.log(np.maximum(p[i], 1e-12)) for p in parts], axis=1)
            return np.exp(logs @ c + b)

        return f(0) if not return_interval else (f(0), f(1), f(2))

    def predict_kernel_lists(self, kernel_lists: Sequence[Sequence[Kernel]], space: str | None = None
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(kernel_lists)
        return self._map_view(self._view([space] * n, [None] * n, kernel_lists))

    def predict_models(self, spaces: Sequence[str | None], archs: Sequence[Any],
                       kernel_lists: Sequence[Sequence[Kernel]]) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                             list[str]]:
        m, lo, hi = self._map_view(self._view(spaces, archs, kernel_lists))
        meth = self.source.predict_models(spaces, archs, kernel_lists)[3]
        return m, lo, hi, [f"transfer({x})" for x in meth]

    def predict_archs(self, space: str, archs: Sequence[Any], method: str | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        got = [self.source.kernels_for(a, space=space) for a in archs]
        return self._map_view(self._view([space] * len(got), [g[2] for g in got], [g[0] for g in got]))

    def predict(self, x: Any, input_shape: Sequence[int] | None = None, space: str | None = None,
                method: str | None = None, **kwargs: Any) -> Prediction:
        """The primary source's prediction (breakdown, unsupported operators, coverage …) with its
        latency and interval replaced by the mapped ones and its kernels scaled to match."""
        sp = self.source.predict(x, input_shape, space, method, **kwargs)
        ks, _, arch = self.source.kernels_for(x, input_shape, space)
        view = self._view([space], [arch], [ks])
        m, lo, hi = self._map_view(view)
        ratio = float(m[0]) / sp.latency_ms if sp.latency_ms > 0 else 1.0
        kernels = [{**k, "ms": k["ms"] * ratio, "low": k["low"] * ratio, "high": k["high"] * ratio}
                   for k in sp.kernels]
        oor = sorted(set(sp.out_of_range) | {f"transfer.{n}" for n in self.transfer.out_of_range(view.X())})
        p = replace(sp, latency_ms=float(m[0]), low_ms=float(lo[0]), high_ms=float(hi[0]), kernels=kernels,
                    out_of_range=oor, method=f"transfer({sp.method})", device=self.device, kind="transfer",
                    kernel_sum_ms=sp.kernel_sum_ms * ratio)
        coverage = getattr(sp, "coverage", 1.0)
        if coverage < 1.0:  # the source left unsupported operators out: widen the high end as it does
            p.high_ms = p.high_ms / max(coverage, 1e-3)
        return p


def load_transfer(d: Path, device: str, manifest: dict[str, Any], root: str | Path | None) -> Any:
    """The predictor ``hwlat transfer`` saved in ``d``: mapped from trained devices or HELP tables."""
    if manifest.get("help"):
        from hwlat.predictors.help_transfer import HelpTransferPredictor

        return HelpTransferPredictor.load_from(d, device, manifest, root)
    return MultiTransferPredictor.load_from(d, device, manifest, root)


def measured_candidates(target: str, pool: Sequence[Candidate], root: str | Path | None = None) -> list[int]:
    """Indices of pool candidates already in the new device's store (same space and arch)."""
    from hwlat.store import ProfileStore

    df = ProfileStore(target, root=root).models()
    if not len(df):
        return []
    have: set[tuple[str, str]] = set()
    for space, arch in zip(df["space"], df["arch"], strict=True):
        if not isinstance(space, str) or not isinstance(arch, str):
            continue
        try:
            have.add((space, json.dumps(json.loads(arch), sort_keys=True)))
        except ValueError:
            continue
    return [i for i, c in enumerate(pool) if (c.space, json.dumps(c.arch, sort_keys=True)) in have]


def elapsed(t0: float) -> float:
    return round(time.monotonic() - t0, 1)
