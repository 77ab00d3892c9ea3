"""A trained predictor on disk: a directory with ``meta.json`` plus the model's own files.

``meta.json`` says what the model is (kind), what it is for (device, fingerprint), what it
was trained on (data hash, feature names, training range) and how good it was (validation
metrics). Model files are xgboost UBJ, torch ``state_dict`` or JSON; nothing is pickled.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hwlat.errors import PredictorError
from hwlat.predictors.range_check import RangeCheck

SCHEMA_VERSION = 1
META_FILE = "meta.json"


class Estimator(Protocol):
    kind: str

    def fit(self, X: np.ndarray, y: np.ndarray) -> Any: ...
    def predict(self, X: np.ndarray, return_interval: bool = False) -> Any: ...
    def save(self, directory: str | Path) -> list[str]: ...


def _kinds() -> dict[str, Any]:
    """kind -> estimator class. Imported lazily so loading a GBDT does not import torch."""
    def gbdt() -> Any:
        from hwlat.predictors.gbdt import GBDTRegressor
        return GBDTRegressor

    def mlp() -> Any:
        from hwlat.predictors.mlp import MLPRegressor
        return MLPRegressor

    def transfer() -> Any:
        from hwlat.predictors.transfer import TransferRegressor
        return TransferRegressor

    return {"gbdt": gbdt, "mlp": mlp, "transfer": transfer}


def data_hash(X: np.ndarray, y: np.ndarray) -> str:
    """sha256 over the training features and targets (float64, C order, shapes included)."""
    h = hashlib.sha256()
    for a in (np.ascontiguousarray(X, dtype=np.float64), np.ascontiguousarray(y, dtype=np.float64)):
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return "sha256:" + h.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose files or numerics a predictor depends on."""
    out = {}
    for name in ("hwlat", "numpy", "xgboost", "torch", "scipy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@dataclass
class PredictorArtifact:
    """A loaded predictor: the estimator, its metadata and its training-range check."""

    model: Any
    meta: dict[str, Any]
    range_check: RangeCheck

    @property
    def device(self) -> str:
        return str(self.meta["device"])

    @property
    def kind(self) -> str:
        return str(self.meta["kind"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.meta["feature_names"])

    def predict(self, X: np.ndarray, return_interval: bool = False) -> Any:
        return self.model.predict(X, return_interval=return_interval)

    def out_of_range(self, X: np.ndarray) -> list[str]:
        """Feature names for which ``X`` leaves the training range (a flag, not an error)."""
        return self.range_check.out_of_range(X)


def save_predictor(directory: str | Path, model: Estimator, *, device: str, feature_names: list[str],
                   X_train: np.ndarray, y_train: np.ndarray, fingerprint_id: str | None = None,
                   metrics: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` and its ``meta.json`` to ``directory`` (replacing an existing predictor there).

    Writes into a sibling temporary directory first and swaps it in, so a crash never leaves a
    half-written predictor behind.
    """
    d = Path(directory)
    X_train = np.asarray(X_train, dtype=np.float64)
    if X_train.ndim != 2 or X_train.shape[1] != len(feature_names):
        raise ValueError(f"{len(feature_names)} feature names for training features of shape {X_train.shape}")
    if model.kind not in _kinds():
        raise ValueError(f"unknown predictor kind {model.kind!r}; known: {', '.join(sorted(_kinds()))}")
    tmp = d.with_name(d.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    files = model.save(tmp)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "kind": model.kind,
        "device": device,
        "fingerprint_id": fingerprint_id,
        "training_data_hash": data_hash(X_train, y_train),
        "n_train": int(X_train.shape[0]),
        "library_versions": library_versions(),
        "feature_names": list(feature_names),
        "feature_range": RangeCheck(feature_names).fit(X_train).to_dict(),
        "validation_metrics": metrics or {},
        "model_files": sorted(files),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    (tmp / META_FILE).write_text(json.dumps(meta, indent=1, default=float))
    old = d.with_name(d.name + ".old")
    if d.exists():
        if old.exists():
            shutil.rmtree(old)
        d.rename(old)
    tmp.rename(d)
    if old.exists():
        shutil.rmtree(old)
    return d


def read_meta(directory: str | Path) -> dict[str, Any]:
    """``meta.json`` of a predictor directory, schema-checked."""
    d = Path(directory)
    path = d / META_FILE
    if not path.is_file():
        raise PredictorError(f"no predictor at {d} (missing {META_FILE}); train one with `hwlat train DEVICE`")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PredictorError(f"predictor metadata {path} is unreadable ({e}); "
                             f"retrain with `hwlat train DEVICE`") from None
    if not isinstance(meta, dict):
        raise PredictorError(f"predictor metadata {path} is not a JSON object; retrain with `hwlat train DEVICE`")
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise PredictorError(f"predictor at {d} has schema_version {version}, this hwlat reads "
                             f"{SCHEMA_VERSION}; retrain it with `hwlat train {meta.get('device', 'DEVICE')}`")
    missing = [k for k in ("kind", "device", "feature_names", "feature_range") if k not in meta]
    if missing:
        raise PredictorError(f"predictor metadata {path} lacks {', '.join(missing)}; "
                             f"retrain with `hwlat train {meta.get('device', 'DEVICE')}`")
    return meta


def load_predictor(directory: str | Path, expected_device: str | None = None) -> PredictorArtifact:
    """Load a predictor directory; refuses another schema version, and another device when
    ``expected_device`` is given."""
    d = Path(directory)
    meta = read_meta(d)
    if expected_device is not None and meta["device"] != expected_device:
        raise PredictorError(f"predictor at {d} was trained for device {meta['device']!r}, not "
                             f"{expected_device!r}; train one with `hwlat train {expected_device}`")
    kinds = _kinds()
    if meta["kind"] not in kinds:
        raise PredictorError(f"predictor at {d} has unknown kind {meta['kind']!r} (known: "
                             f"{', '.join(sorted(kinds))}); retrain with `hwlat train {meta['device']}`")
    model = kinds[meta["kind"]]().load(d)
    return PredictorArtifact(model=model, meta=meta, range_check=RangeCheck.from_dict(meta["feature_range"]))


def swap_in(tmp: Path, d: Path) -> None:
    """Replace directory ``d`` by the fully written ``tmp``: a reader sees the old predictor or the
    new one, never half of either (the old one waits as ``<d>.old`` until the rename)."""
    old = d.with_name(d.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if d.exists():
        d.rename(old)
    tmp.rename(d)
    if old.exists():
        shutil.rmtree(old)
