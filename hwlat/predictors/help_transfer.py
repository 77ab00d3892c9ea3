"""Public HELP latency tables as transfer sources (``hwlat transfer NEW --from-help DIR --space nb201``).

The HELP tables (NB201, FBNet, OFA MobileNetV3 archs timed on 20-odd devices) are read from the
folder the user gives; nothing of them is copied. Each table device becomes a source through a
ridge on the space's arch features fitted to its log latencies (:func:`arch_smoothed_sources`'
model, on every arch of the table): that answers any arch of the space, not only the table's,
and the saved predictor holds only those coefficients. FLOPs and bytes read are two more
pseudo-sources. The new device measures a few archs chosen by greedy facility location on the
sources' predictions, and a :class:`~hwlat.predictors.transfer.TransferRegressor` maps the sources to it.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwlat.errors import ConfigError, PredictorError
from hwlat.predictors.artifacts import (
    PredictorArtifact,
    library_versions,
    load_predictor,
    save_predictor,
    swap_in,
)
from hwlat.predictors.help_data import SPACES, arch_features, load_help
from hwlat.predictors.predictor import MANIFEST, PREDICTOR_SCHEMA_VERSION, Prediction, predictor_dir
from hwlat.predictors.transfer import TransferRegressor, transfer_features
from hwlat.predictors.transfer_flow import Candidate, loo_predictions, select

#: hwlat space name -> HELP table name
HELP_OF_SPACE = {sp: key for key, (_, sp) in SPACES.items()}
COST_COLUMNS = ("total_flops", "total_bytes_read")
SOURCES_FILE = "help_sources.json"


class HelpSources:
    """Per-device ridge models of a HELP table's log latencies on arch features, plus FLOPs/bytes."""

    def __init__(self, help_space: str, devices: list[str], mu: np.ndarray, sd: np.ndarray, W: np.ndarray,
                 b: np.ndarray, cost_idx: list[int], feature_names: list[str]) -> None:
        self.help_space, self.devices = help_space, devices
        self.mu, self.sd, self.W, self.b = mu, sd, W, b
        self.cost_idx, self.feature_names = cost_idx, feature_names

    @property
    def names(self) -> list[str]:
        return [f"help:{d}" for d in self.devices] + [self.feature_names[i] for i in self.cost_idx]

    @classmethod
    def fit(cls, help_space: str, data_dir: Path, devices: Sequence[str] | None = None,
            alpha: float = 1.0, max_archs: int = 4000) -> HelpSources:
        """Fit on ``max_archs`` random archs of the table: a ridge on ~200 features needs no more,
        and the arch features of all 15,625 NB201 archs take minutes on a small host."""
        data = load_help(help_space, data_dir)
        devs = list(devices) if devices else data.devices
        bad = [d for d in devs if d not in data.devices]
        if bad:
            raise ConfigError(f"HELP {help_space} table has no device {', '.join(bad)}; it has: "
                              f"{', '.join(data.devices)}")
        rows = np.sort(np.random.default_rng(0).permutation(len(data.archs))[:max_archs])
        A, names = arch_features(help_space, [data.archs[int(i)] for i in rows])
        mu, sd = A.mean(axis=0), A.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        Z = (A - mu) / sd
        L = np.log(np.maximum(data.latency[devs].to_numpy()[rows], 1e-3))
        b = L.mean(axis=0)
        W = np.linalg.solve(Z.T @ Z + alpha * np.eye(Z.shape[1]), Z.T @ (L - b))
        return cls(help_space, devs, mu, sd, W, b, [names.index(c) for c in COST_COLUMNS if c in names], names)

    def features(self, archs: Sequence[Any]) -> np.ndarray:
        return arch_features(self.help_space, list(archs))[0]

    def latency(self, A: np.ndarray) -> np.ndarray:
        """Source "latencies" (n × k): the per-device ridges, then FLOPs and bytes read."""
        S = np.exp(((A - self.mu) / self.sd) @ self.W + self.b)
        return np.hstack([S, np.maximum(A[:, self.cost_idx], 1.0)])

    def to_dict(self) -> dict[str, Any]:
        return {"help_space": self.help_space, "devices": self.devices, "mu": self.mu.tolist(),
                "sd": self.sd.tolist(), "W": self.W.tolist(), "b": self.b.tolist(), "cost_idx": self.cost_idx,
                "feature_names": self.feature_names}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HelpSources:
        arr = lambda k: np.asarray(d[k], dtype=np.float64)  # noqa: E731
        return cls(d["help_space"], list(d["devices"]), arr("mu"), arr("sd"), arr("W"), arr("b"),
                   [int(i) for i in d["cost_idx"]], list(d["feature_names"]))


class HelpTransferPredictor:
    """A device's predictor for archs of one search space, mapped from HELP table devices.

    It predicts whole archs of its space (``predict(arch, space=...)``, ``predict_archs``), which
    is what ``hwlat predict --space`` and :class:`hwlat.Oracle` ask; it has no kernel model.
    """

    kind = "transfer"

    def __init__(self, device: str, manifest: dict[str, Any], sources: HelpSources, transfer: PredictorArtifact,
                 directory: Path | None = None) -> None:
        self.device, self.manifest, self.sources, self.transfer = device, manifest, sources, transfer
        self.space = str(manifest["help"]["space"])
        self.directory = directory
        self.runtime = str(manifest.get("runtime") or "onnxruntime")
        self.subnets: dict[str, Any] = {}
        self.residual = None
        self.overhead = None  # no kernel-sum path: the oracle asks predict_archs (kind "transfer")
        self.model_types: list[str] = []

    @classmethod
    def load_from(cls, d: Path, device: str, manifest: dict[str, Any], root: str | Path | None
                  ) -> HelpTransferPredictor:
        try:
            src = HelpSources.from_dict(json.loads((d / SOURCES_FILE).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise PredictorError(f"HELP source models in {d} are missing or unreadable ({e}); run `hwlat transfer "
                                 f"{device} --from-help DIR --space {manifest['help']['space']}` again") from None
        return cls(device, manifest, src, load_predictor(d / "transfer", expected_device=device), d)

    def _check_space(self, space: str | None) -> None:
        if space != self.space:
            raise PredictorError(f"the transfer predictor of {self.device!r} was mapped from HELP's {self.space} "
                                 f"table and predicts archs of {self.space} only (got "
                                 f"{'a model file' if space is None else 'space ' + repr(space)}); pass --space "
                                 f"{self.space}, or transfer from trained devices with `hwlat transfer "
                                 f"{self.device} --from DEV`")

    def X(self, archs: Sequence[Any]) -> np.ndarray:
        A = self.sources.features(archs)
        return transfer_features(self.sources.latency(A), A)

    def predict_archs(self, space: str, archs: Sequence[Any], method: str | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._check_space(space)
        from hwlat.spaces import get_space

        sp = get_space(space)
        return self.transfer.predict(self.X([sp.canonical(a) for a in archs]), return_interval=True)

    def predict_kernels(self, kernels: Sequence[Any], return_interval: bool = True) -> Any:
        raise PredictorError(f"the transfer predictor of {self.device!r} (from HELP's {self.space} table) "
                             f"predicts whole archs of {self.space}, not kernels")

    def predict(self, x: Any, input_shape: Sequence[int] | None = None, space: str | None = None,
                method: str | None = None, **kwargs: Any) -> Prediction:
        self._check_space(space)
        from hwlat.spaces import get_space

        arch = get_space(self.space).canonical(x)
        X = self.X([arch])
        m, lo, hi = self.transfer.predict(X, return_interval=True)
        oor = sorted({f"transfer.{n}" for n in self.transfer.out_of_range(X)})
        return Prediction(latency_ms=float(m[0]), low_ms=float(lo[0]), high_ms=float(hi[0]), kernels=[],
                          out_of_range=oor, method="transfer(help)", device=self.device, kind="transfer")


def run_help_transfer(dev: Any, data_dir: Path, spaces: list[str], *, samples: int, pool: int, seed: int,
                      devices: list[str] | None, measure: Callable[[list[Candidate]], None],
                      root: str | Path | None = None) -> dict[str, Any]:
    """Choose, measure (``measure``) and fit; saves ``<profiles>/<dev>/predictors/transfer``."""
    if len(spaces) != 1 or spaces[0] not in HELP_OF_SPACE:
        raise ConfigError(f"--from-help needs one --space of {', '.join(HELP_OF_SPACE)} (the HELP tables' "
                          f"spaces), got {','.join(spaces)}")
    space = spaces[0]
    hs = HelpSources.fit(HELP_OF_SPACE[space], data_dir, devices)
    data = load_help(hs.help_space, data_dir)
    from hwlat.predictors.transfer_flow import measured_candidates
    from hwlat.spaces import get_space

    sp = get_space(space)
    order = np.random.default_rng(seed).permutation(len(data.archs))[:pool]
    seen: dict[str, Any] = {}
    for i in order:  # canonical forms, deduplicated (NB201 strings that differ only in dead edges)
        a = sp.canonical(data.archs[int(i)])
        seen.setdefault(sp.key(a), a)
    cands = [Candidate(space, a) for a in seen.values()]
    A = hs.features([c.arch for c in cands])
    have = measured_candidates(dev.name, cands, root)
    chosen = select(hs.latency(A), [space] * len(cands), samples, have)
    measure([cands[i] for i in chosen])
    return fit_help(dev.name, hs, space, root=root, selection={
        "help_dir": str(Path(data_dir).resolve()), "pool": pool, "seed": seed, "samples": samples,
        "chosen": [{"space": space, "arch": cands[i].arch} for i in chosen]})


def fit_help(target: str, hs: HelpSources, space: str, *, root: str | Path | None = None,
             selection: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fit the new device's HELP-sourced transfer on its measured archs of ``space`` and save it."""
    from hwlat.predictors.evaluation import _clean, _report
    from hwlat.predictors.training import _json_default, _store_runtime, model_data, resolve_target
    from hwlat.store import ProfileStore

    store = ProfileStore(target, root=root)
    stat = resolve_target(store, "auto")
    md = model_data(store, _store_runtime(store), target=stat)
    idx = [i for i, s in enumerate(md.spaces) if s == space]
    if len(idx) < 3:
        raise PredictorError(f"transfer to {target!r} needs at least 3 measured {space} archs on it, found "
                             f"{len(idx)}; run `hwlat transfer {target} --from-help DIR --space {space} --samples 10`")
    archs, y = [md.archs[i] for i in idx], md.y[idx]
    A = hs.features(archs)
    S = hs.latency(A)
    X = transfer_features(S, A)
    k = S.shape[1]
    est = TransferRegressor(k).fit(X, y)
    m, lo, hi = loo_predictions(X, y, k)
    cv = _clean(_report(y, m, lo, hi))
    fn = hs.names + hs.feature_names
    fid = (store.latest_fingerprint() or {}).get("fingerprint_id")
    manifest: dict[str, Any] = {
        "schema_version": PREDICTOR_SCHEMA_VERSION, "kind": "transfer", "device": target, "fingerprint_id": fid,
        "help": {"space": space, "table": hs.help_space, "devices": hs.devices}, "target": stat,
        "runtime": _store_runtime(store), "n_models": {"train": int(len(y)), "holdout": 0},
        "residual": bool(est._res is not None), "selection": selection or {},
        "validation_metrics": {"cv": "leave-one-out", "model": cv}, "library_versions": library_versions(),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    d = predictor_dir(target, "transfer", root)
    tmp = d.with_name(d.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_predictor(tmp / "transfer", est, device=target, feature_names=fn, X_train=X, y_train=y,
                   fingerprint_id=fid, metrics={"cv": cv}, extra={"level": "transfer", "help": manifest["help"]})
    (tmp / SOURCES_FILE).write_text(json.dumps(hs.to_dict()))
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=_json_default))
    swap_in(tmp, d)
    per_source = {}
    for j, n in enumerate(hs.names[:len(hs.devices)]):
        per_source[n] = _clean(_report(y, S[:, j]))
    best = dict(sorted(per_source.items(), key=lambda kv: -(kv[1] or {}).get("spearman", -1.0))[:3])
    return {"device": target, "kind": "transfer", "directory": str(d), "sources": hs.names,
            "n_models": int(len(y)), "cv": cv, "source_as_is": best, "skipped": [list(s) for s in md.skipped]}
