"""``hwlat.Predictor``: a trained device predictor (kernel sum + overhead, subnet models), loaded
from ``profiles/<device>/predictors/<kind>/``.

>>> p = Predictor.load("local")                     # doctest: +SKIP
>>> p.predict("resnet18.onnx").latency_ms           # doctest: +SKIP
>>> p.predict(arch, space="ofa_mbv3")               # doctest: +SKIP

A predictor trained for one device refuses to serve another, and refuses once the device's
fingerprint (hardware / runtime / settings) changed since training: predictions from a stale
predictor would look fine and be wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwlat.errors import ModelFileError, PredictorError
from hwlat.kernels.base import Kernel
from hwlat.paths import profiles_root
from hwlat.predictors.artifacts import PredictorArtifact, load_predictor
from hwlat.predictors.features import FEATURE_VERSION, as_kernel, context_features, model_features
from hwlat.predictors.kernel_models import KernelLevelModel, OverheadModel
from hwlat.predictors.subnet import SubnetModel
from hwlat.predictors.whole_model import widen_for_novelty

#: version of ``predictor.json`` (the composite predictor's layout); another version is refused
PREDICTOR_SCHEMA_VERSION = 1
MANIFEST = "predictor.json"
_CACHE_MAX = 500_000


def predictor_dir(device: str, kind: str, root: str | Path | None = None) -> Path:
    """``<profiles>/<device>/predictors/<kind>``."""
    return (Path(root) if root is not None else profiles_root()) / device / "predictors" / kind


@dataclass
class Prediction:
    """One latency prediction with its interval and per-kernel breakdown.

    ``kernels``: one dict per kernel (type, config, ms, low, high, model) with the kernel's own
    prediction measured-alone style; ``latency_ms`` adds the device's whole-model overhead.
    ``out_of_range``: features outside the training range (``conv2d.log_cin``), unseen kernel
    types; ``pooled_types``: kernel types served by the pooled fallback model; ``unsupported``:
    operators the decomposition could not map (their time is missing from ``latency_ms``).
    ``coverage``: the share of the model the kernels cover, by :data:`COVERAGE_BASIS`; below 1 the
    interval's high end is divided by it (the missing operators taken to cost what the covered ones
    cost on average).
    """

    latency_ms: float
    low_ms: float
    high_ms: float
    kernels: list[dict[str, Any]]
    out_of_range: list[str]
    method: str
    device: str
    kind: str = ""
    kernel_sum_ms: float = 0.0
    pooled_types: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    coverage: float = 1.0
    coverage_basis: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: what :attr:`Prediction.coverage` counts: the only size every unsupported operator has (an
#: operator with unknown shapes has no FLOPs or bytes to weigh it by)
COVERAGE_BASIS = "ONNX operators (count)"


def coverage_of(kernels: Sequence[Kernel], unsupported: Sequence[Mapping[str, Any]]) -> float:
    """Share of a model's operators that its kernels cover: ONNX nodes in kernels / (those + the
    unsupported nodes). Glue (reshapes, shape arithmetic) counts on neither side."""
    missing = sum(int(u.get("count", 1)) for u in unsupported)
    if not missing:
        return 1.0
    covered = sum(max(len(k.nodes), 1) for k in kernels)
    return covered / (covered + missing)


def with_unsupported(p: Prediction, source: Prediction) -> Prediction:
    """``p`` (a prediction derived from ``source``, e.g. mapped to another device) with ``source``'s
    unsupported operators and coverage, and its high end widened the same way."""
    p.unsupported = list(source.unsupported)
    p.coverage, p.coverage_basis = source.coverage, source.coverage_basis
    if p.coverage < 1.0:
        p.high_ms = p.high_ms / max(p.coverage, 1e-3)
    return p


def unsupported_error(model: str, unsupported: Sequence[str], coverage: float, runtime: str) -> Exception:
    """The one-line refusal of a model with unsupported operators (strict mode)."""
    from hwlat.errors import UnsupportedOperatorError

    return UnsupportedOperatorError(
        f"{model}: {len(unsupported)} operator type(s) with no kernel for runtime {runtime!r} "
        f"({', '.join(unsupported)}; the kernels cover {100 * coverage:.0f} % of its operators), so a "
        "prediction would leave their time out; see them with `hwlat kernels MODEL`, replace them in the "
        "model, or predict without strict mode for a widened estimate",
        operators=[u.rsplit(" x", 1)[0] for u in unsupported])


def _quad(*xs: float) -> float:
    return float(math.sqrt(sum(x * x for x in xs)))


class Predictor:
    """A device's latency predictor (see module docstring). Build with :meth:`load` or
    :func:`hwlat.predictors.training.train`."""

    def __init__(self, device: str, kind: str, manifest: dict[str, Any], kernel_model: KernelLevelModel,
                 overhead: OverheadModel, residual: PredictorArtifact | None = None,
                 subnets: dict[str, SubnetModel] | None = None, directory: Path | None = None) -> None:
        self.device = device
        self.kind = kind
        self.manifest = manifest
        self.kernel_model = kernel_model
        self.overhead = overhead
        self.residual = residual
        self.subnets = dict(subnets or {})
        #: overheads fitted on one space's subnets, used only for archs of that space
        self.space_overhead: dict[str, OverheadModel] = {
            sp: OverheadModel.from_dict(d) for sp, d in (manifest.get("space_overhead") or {}).items()}
        self.directory = directory
        self.runtime = str(manifest.get("runtime") or "onnxruntime")
        self.model_types: list[str] = list(manifest.get("model_feature_types") or [])
        self._cache: dict[str, tuple[float, float, float, str, tuple[str, ...]]] = {}

    # -- loading ----------------------------------------------------------------------------------
    @classmethod
    def load(cls, device: str, kind: str = "gbdt", root: str | Path | None = None,
             check_fingerprint: bool = True) -> Predictor:
        """Load ``<profiles>/<device>/predictors/<kind>``; refuses another device, another schema
        version, and (``check_fingerprint``) a device whose fingerprint changed since training."""
        d = predictor_dir(device, kind, root)
        manifest = read_manifest(d, device)
        if check_fingerprint:
            _check_fingerprint(device, manifest, root)
        if manifest.get("kind") == "transfer":
            return TransferPredictor.load_from(d, device, manifest, root)
        km = KernelLevelModel.load(d / "kernel", device, manifest["kind"], manifest["kernel_parts"],
                                   manifest["trained_types"], int(manifest["min_samples"]))
        ov = OverheadModel.from_dict(manifest["overhead"])
        res = None
        if manifest.get("residual", {}).get("kept"):
            res = load_predictor(d / "residual", expected_device=device)
        subs = {s: SubnetModel.load(d / "subnet" / s, device, s) for s in manifest.get("subnet_spaces", {})}
        return cls(device, manifest["kind"], manifest, km, ov, res, subs, d)

    # -- kernels ----------------------------------------------------------------------------------
    def predict_kernels(self, kernels: Sequence[Kernel | Mapping[str, Any]], return_interval: bool = True
                        ) -> Any:
        """Vectorised per-kernel predictions: ``(mean, low, high)`` arrays in ms (or ``mean`` only).

        Results are cached by kernel key, so repeated kernels (NAS loops) cost a dict lookup.
        """
        ks = [as_kernel(k) for k in kernels]
        keys = [k.key() for k in ks]
        todo: dict[str, Kernel] = {}
        for k, key in zip(ks, keys, strict=True):
            if key not in self._cache and key not in todo:
                todo[key] = k
        if todo:
            if len(self._cache) + len(todo) > _CACHE_MAX:
                self._cache.clear()
            tk = list(todo.values())
            m, lo, hi, src, oor = self.kernel_model.predict(tk)
            for i, key in enumerate(todo):
                self._cache[key] = (float(m[i]), float(lo[i]), float(hi[i]), src[i], tuple(oor[i]))
        rows = [self._cache[key] for key in keys]
        mean = np.array([r[0] for r in rows], dtype=np.float64)
        if not return_interval:
            return mean
        return mean, np.array([r[1] for r in rows]), np.array([r[2] for r in rows])

    def _kernel_rows(self, ks: Sequence[Kernel]) -> list[tuple[float, float, float, str, tuple[str, ...]]]:
        self.predict_kernels(ks, return_interval=False)
        return [self._cache[k.key()] for k in ks]

    def overhead_for(self, space: str | None = None) -> OverheadModel:
        """The whole-model overhead for archs of ``space`` (its own fit, where it has one), else the
        one chosen for networks of any family (:mod:`hwlat.predictors.whole_model`)."""
        return self.space_overhead.get(space, self.overhead) if space else self.overhead

    def kernel_sum(self, ks: Sequence[Kernel], space: str | None = None
                   ) -> tuple[float, float, float, list[dict[str, Any]], list[str], list[str]]:
        """(latency, low, high, breakdown, out_of_range, pooled_types) of one kernel list."""
        rows = self._kernel_rows(ks)
        m = np.array([r[0] for r in rows])
        lo = np.array([r[1] for r in rows])
        hi = np.array([r[2] for r in rows])
        lat, low, high = self._combine(ks, m, lo, hi, space)
        breakdown = [{"type": k.type, "config": dict(k.config), "ms": r[0], "low": r[1], "high": r[2],
                      "model": r[3]} for k, r in zip(ks, rows, strict=True)]
        stage_oor = self.overhead_for(space).out_of_range(float(m.sum()), len(ks))
        oor = sorted({o for r in rows for o in r[4]}) + stage_oor
        pooled = sorted({k.type for k, r in zip(ks, rows, strict=True) if r[3] == "_pooled"})
        if space is None:  # a space's archs keep the interval the Oracle's lookup tables reproduce
            novel = np.array([bool(r[4]) or r[3] == "_pooled" for r in rows], dtype=bool)
            low, high = widen_for_novelty(lat, low, high, float(m[novel].sum() / m.sum()) if m.sum() > 0 else 0.0,
                                          bool(stage_oor))
        return lat, low, high, breakdown, oor, pooled

    def _combine(self, ks: Sequence[Kernel], m: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 space: str | None = None) -> tuple[float, float, float]:
        """Whole-model latency and interval from per-kernel predictions.

        Kernel half-widths add in quadrature (errors of different kernels partly cancel), then the
        overhead fit's own residual spread (or the residual model's interval) is added in log space.
        """
        S = float(m.sum())
        if not ks or S <= 0:
            return 0.0, 0.0, 0.0
        n = len(ks)
        hw_lo = _quad(*(m - lo))
        hw_hi = _quad(*(hi - m))
        ov = self.overhead_for(space)
        ctx = context_features(ks)[None, :] if ov.has_context else None
        base = float(ov.predict(np.array([S]), np.array([n]), ctx)[0])
        k_lo = math.log(S / max(S - hw_lo, 1e-3 * S))
        k_hi = math.log((S + hw_hi) / S)
        lat = base
        w_lo, w_hi = -ov.q_lo, ov.q_hi
        # the residual was chosen on networks of other families; a space's own overhead needs none
        if self.residual is not None and ov is self.overhead:
            F = model_features(ks, m, self.model_types)[None, :]
            r, rlo, rhi = self.residual.predict(F, return_interval=True)
            lat = base * float(r[0])
            w_lo, w_hi = math.log(float(r[0]) / float(rlo[0])), math.log(float(rhi[0]) / float(r[0]))
        low = lat * math.exp(-_quad(k_lo, max(w_lo, 0.0)))
        high = lat * math.exp(_quad(k_hi, max(w_hi, 0.0)))
        return lat, low, high

    def predict_kernel_lists(self, kernel_lists: Sequence[Sequence[Kernel]], space: str | None = None
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Whole-model (latency, low, high) of many kernel lists at once (one batched kernel call);
        ``space``: they are all archs of that search space."""
        flat = [k for ks in kernel_lists for k in ks]
        self.predict_kernels(flat, return_interval=False)
        out = np.zeros((len(kernel_lists), 3))
        for i, ks in enumerate(kernel_lists):
            rows = [self._cache[k.key()] for k in ks]
            out[i] = self._combine(ks, np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                                   np.array([r[2] for r in rows]), space)
        return out[:, 0], out[:, 1], out[:, 2]

    # -- models -----------------------------------------------------------------------------------
    def kernels_for(self, x: Any, input_shape: Sequence[int] | None = None, space: str | None = None
                    ) -> tuple[list[Kernel], list[str], Any]:
        """(kernels, unsupported operators, canonical arch or None) of any accepted input."""
        ks, unsupported, arch = self.decomposed(x, input_shape, space)
        return ks, _unsupported_names(unsupported), arch

    def decomposed(self, x: Any, input_shape: Sequence[int] | None = None, space: str | None = None
                   ) -> tuple[list[Kernel], list[dict[str, Any]], Any]:
        """(kernels, unsupported operators as the decomposition lists them, canonical arch or None);
        ``x`` may also be a ``timm:NAME`` model (exported once into the profiles cache)."""
        if isinstance(x, str) and space is None and x.startswith("timm:"):
            from hwlat.zoo import timm_models

            x, input_shape = timm_models.load(x, input_shape)
        if space is not None:
            from hwlat.spaces import get_space

            sp = get_space(space)
            arch = sp.canonical(x)
            if self.runtime == "onnxruntime":
                return list(sp.encode(arch)), [], arch
            from hwlat.decompose import kernels_of

            dec = kernels_of(sp.build(arch), sp.input_shape(arch), runtime=self.decompose_runtime)
            return list(dec.kernels), list(dec.unsupported), arch
        if isinstance(x, (list, tuple)) and all(isinstance(k, (Kernel, Mapping)) for k in x):
            return [as_kernel(k) for k in x], [], None
        if hasattr(x, "kernels") and hasattr(x, "unsupported"):  # a Decomposition
            return list(x.kernels), list(x.unsupported), None
        if isinstance(x, (str, Path)) and Path(x).suffix.lower() not in ("", ".onnx"):
            raise ModelFileError(f"{Path(x).name}: predict needs an ONNX file (or a torch module with "
                                 f"input_shape); export the model to ONNX first")
        from hwlat.decompose import kernels_of

        dec = kernels_of(x, input_shape, runtime=self.decompose_runtime)
        return list(dec.kernels), list(dec.unsupported), None

    @property
    def decompose_runtime(self) -> str:
        from hwlat.decompose import runtimes

        # Runtimes without their own fusion rules (torch, tensorrt …) are decomposed as onnxruntime.
        return self.runtime if self.runtime in runtimes() else "onnxruntime"

    def predict(self, x: Any, input_shape: Sequence[int] | None = None, space: str | None = None,
                method: str | None = None, strict: bool = False) -> Prediction:
        """Predict one model: an ONNX path / ModelProto / bytes, an ``nn.Module`` + ``input_shape``,
        a ``timm:NAME`` model (timm installed), a kernel list, or an arch encoding of search space
        ``space``.

        ``method``: ``"subnet"`` (space models only), ``"kernel-sum"``, or None = the subnet model
        when the space has one, else the kernel sum.

        A model with operators no kernel covers is refused with ``strict`` (an
        :class:`~hwlat.errors.UnsupportedOperatorError` naming them); otherwise it is predicted with an
        :class:`~hwlat.errors.UnsupportedOperatorWarning`, ``coverage`` below 1 and the interval's
        high end divided by that coverage.
        """
        if method not in (None, "subnet", "kernel-sum"):
            raise PredictorError(f"unknown method {method!r}; use 'subnet' or 'kernel-sum'")
        ks, unsupported_ops, arch = self.decomposed(x, input_shape, space)
        unsupported = _unsupported_names(unsupported_ops)
        coverage = coverage_of(ks, unsupported_ops)
        if unsupported and strict:
            raise unsupported_error(_model_name(x), unsupported, coverage, self.decompose_runtime)
        if not ks:
            raise ModelFileError("the model decomposed into no kernels; nothing to predict")
        lat, low, high, breakdown, oor, pooled = self.kernel_sum(ks, space)
        ksum = float(sum(b["ms"] for b in breakdown))
        used = "kernel-sum"
        if space is not None and method != "kernel-sum" and space in self.subnets:
            m, lo, hi, soor = self.subnets[space].predict([arch])
            lat, low, high = float(m[0]), float(lo[0]), float(hi[0])
            oor = sorted(set(soor))
            used = "subnet"
        elif method == "subnet":
            raise PredictorError(f"no subnet predictor for space {space!r} on device {self.device!r} "
                                 f"(have: {', '.join(self.subnets) or 'none'}); profile subnets with "
                                 f"`hwlat profile {self.device} --space {space}` and retrain")
        if unsupported:
            import warnings

            from hwlat.errors import UnsupportedOperatorWarning

            warnings.warn(f"{_model_name(x)}: operators with no kernel ({', '.join(unsupported)}) are left out of "
                          f"the estimate; the kernels cover {100 * coverage:.0f} % of its operators and the "
                          f"interval's high end is widened to match", UnsupportedOperatorWarning, stacklevel=2)
            high = high / max(coverage, 1e-3)
        return Prediction(latency_ms=lat, low_ms=low, high_ms=high, kernels=breakdown, out_of_range=oor,
                          method=used, device=self.device, kind=self.kind, kernel_sum_ms=ksum,
                          pooled_types=pooled, unsupported=unsupported, coverage=coverage,
                          coverage_basis=COVERAGE_BASIS)

    def predict_models(self, spaces: Sequence[str | None], archs: Sequence[Any],
                       kernel_lists: Sequence[Sequence[Kernel]]) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                             list[str]]:
        """What :meth:`predict` returns, for many stored models at once: the subnet model for archs
        of spaces that have one, else the kernel sum. Returns (latency, low, high, method)."""
        n = len(kernel_lists)
        m, lo, hi = np.zeros(n), np.zeros(n), np.zeros(n)
        method = ["kernel-sum"] * n
        groups: dict[tuple[str | None, bool], list[int]] = {}
        for i, s in enumerate(spaces):
            groups.setdefault((s, s in self.subnets), []).append(i)
        for (s, has_subnet_model), ix in groups.items():
            if not has_subnet_model:
                r = self.predict_kernel_lists([kernel_lists[i] for i in ix], s)
            else:
                r = self.subnets[s].predict([archs[i] for i in ix])[:3]
                for i in ix:
                    method[i] = "subnet"
            m[ix], lo[ix], hi[ix] = r
        return m, lo, hi, method

    def predict_archs(self, space: str, archs: Sequence[Any], method: str | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(latency, low, high) arrays for many archs of one space (vectorised)."""
        if method != "kernel-sum" and space in self.subnets:
            m, lo, hi, _ = self.subnets[space].predict(archs)
            return m, lo, hi
        return self.predict_kernel_lists([self.kernels_for(a, space=space)[0] for a in archs], space)


def _model_name(x: Any) -> str:
    if isinstance(x, (str, Path)):
        return Path(x).name if not str(x).startswith("timm:") else str(x)
    if hasattr(x, "graph") and getattr(x.graph, "name", ""):
        return str(x.graph.name)
    return type(x).__name__


def unsupported_names(unsupported: Sequence[Mapping[str, Any]]) -> list[str]:
    """``["Pad x5", "com.microsoft::Foo x1"]`` from a decomposition's unsupported list."""
    return [f"{u.get('domain') + '::' if u.get('domain') else ''}{u['op_type']} x{u.get('count', 1)}"
            for u in unsupported]


_unsupported_names = unsupported_names


def no_predictor(device: str, d: Path) -> PredictorError:
    """The error for a missing predictor at ``d`` (``<profiles>/<device>/predictors[/<kind>]``): a
    device name nothing knows (most often a typo) is told apart from a device not trained yet."""
    from hwlat.devices import load_devices
    from hwlat.errors import ConfigError

    try:
        known = sorted(load_devices())
    except ConfigError:  # a broken devices.toml is reported by the command that needs it
        known = []
    profile = next((p.parent for p in (d, *d.parents) if p.name == "predictors"), d)
    if known and device not in known and not profile.is_dir():
        return PredictorError(f"no trained predictor for device {device!r}, and no device of that name: "
                              f"known devices: {', '.join(known)} (`hwlat devices list`)")
    return PredictorError(f"no trained predictor for device {device!r} at {d}; train one with `hwlat train {device}`")


def read_manifest(d: Path, device: str) -> dict[str, Any]:
    """``predictor.json`` of a predictor directory, checked for schema version and device."""
    p = d / MANIFEST
    if not p.is_file():
        raise no_predictor(device, d)
    try:
        manifest = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PredictorError(f"predictor manifest {p} is unreadable ({e}); retrain with `hwlat train {device}`") from None
    if not isinstance(manifest, dict):
        raise PredictorError(f"predictor manifest {p} is not a JSON object; retrain with `hwlat train {device}`")
    version = manifest.get("schema_version")
    if version != PREDICTOR_SCHEMA_VERSION:
        raise PredictorError(f"predictor at {d} has schema_version {version}, this hwlat reads "
                             f"{PREDICTOR_SCHEMA_VERSION}; retrain it with `hwlat train {device}`")
    if manifest.get("kind") != "transfer" and manifest.get("feature_version") != FEATURE_VERSION:
        raise PredictorError(f"predictor at {d} uses feature version {manifest.get('feature_version')}, this "
                             f"hwlat computes version {FEATURE_VERSION}; retrain it with `hwlat train {device}`")
    if manifest.get("device") != device:
        raise PredictorError(f"predictor at {d} was trained for device {manifest.get('device')!r}, not "
                             f"{device!r}; retrain with `hwlat train {device}`")
    return manifest


def _check_fingerprint(device: str, manifest: dict[str, Any], root: str | Path | None) -> None:
    from hwlat.store import ProfileStore

    fp = ProfileStore(device, root=root).latest_fingerprint()
    if fp is None:  # predictor shipped without its profiles: nothing to compare with
        return
    now, then = fp.get("fingerprint_id"), manifest.get("fingerprint_id")
    if then and now and now != then:
        raise PredictorError(f"device {device!r} changed since its predictor was trained (fingerprint "
                             f"{then} -> {now}: hardware, runtime or settings); retrain with "
                             f"`hwlat train {device}`")


class TransferPredictor(Predictor):
    """A new device's predictor from few samples: a source device's predictor mapped through a
    :class:`~hwlat.predictors.TransferRegressor` (``log y_new ≈ c·log y_src + b`` + arch residual)
    fitted on the new device's whole-model measurements (``hwlat train NEW --transfer-from SRC``).

    The arch features are the model aggregates of :func:`~hwlat.predictors.features.model_features`
    computed from the source's kernel predictions, so one map serves every space and the zoo.
    """

    def __init__(self, device: str, manifest: dict[str, Any], source: Predictor, transfer: PredictorArtifact,
                 directory: Path | None = None) -> None:
        super().__init__(device, "transfer", manifest, source.kernel_model, source.overhead, source.residual,
                         source.subnets, directory)
        self.subnets = {}  # the source's subnet models predict the source device; reached via self.source
        self.source = source
        self.transfer = transfer
        self.model_types = list(manifest.get("model_feature_types") or [])
        self.runtime = source.runtime

    @classmethod
    def load_from(cls, d: Path, device: str, manifest: dict[str, Any], root: str | Path | None) -> Any:
        if manifest.get("source_devices") or manifest.get("help"):  # written by `hwlat transfer`
            from hwlat.predictors.transfer_flow import load_transfer

            return load_transfer(d, device, manifest, root)
        src = Predictor.load(manifest["source_device"], manifest["source_kind"], root=root)
        art = load_predictor(d / "transfer", expected_device=device)
        return cls(device, manifest, src, art, d)

    def _map(self, src_ms: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from hwlat.predictors.transfer import transfer_features

        return self.transfer.predict(transfer_features(src_ms.reshape(-1, 1), F), return_interval=True)

    def predict_kernels(self, kernels: Sequence[Kernel | Mapping[str, Any]], return_interval: bool = True) -> Any:
        """Source kernel predictions through the transfer's source map (no arch residual: it was
        fitted on whole models)."""
        m, lo, hi = self.source.predict_kernels(kernels)
        model = self.transfer.model
        c, b = float(np.ravel(model.coef_)[0]), float(model.intercept_)

        def f(v: np.ndarray) -> np.ndarray:
            return np.exp(c * np.log(np.maximum(v, 1e-12)) + b)

        return f(m) if not return_interval else (f(m), f(lo), f(hi))

    def _source_and_features(self, kernel_lists: Sequence[Sequence[Kernel]]) -> np.ndarray:
        return np.stack([model_features(ks, self.source.predict_kernels(ks, return_interval=False),
                                        self.model_types) for ks in kernel_lists])

    def predict_kernel_lists(self, kernel_lists: Sequence[Sequence[Kernel]], space: str | None = None
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s, _, _ = self.source.predict_kernel_lists(kernel_lists, space)
        return self._map(s, self._source_and_features(kernel_lists))

    def predict_models(self, spaces: Sequence[str | None], archs: Sequence[Any],
                       kernel_lists: Sequence[Sequence[Kernel]]) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                             list[str]]:
        s, _, _, meth = self.source.predict_models(spaces, archs, kernel_lists)
        m, lo, hi = self._map(s, self._source_and_features(kernel_lists))
        return m, lo, hi, [f"transfer({x})" for x in meth]

    def predict_archs(self, space: str, archs: Sequence[Any], method: str | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s, _, _ = self.source.predict_archs(space, archs, method)
        kls = [self.source.kernels_for(a, space=space)[0] for a in archs]
        return self._map(s, self._source_and_features(kls))

    def predict(self, x: Any, input_shape: Sequence[int] | None = None, space: str | None = None,
                method: str | None = None, strict: bool = False) -> Prediction:
        sp = self.source.predict(x, input_shape, space, method, strict=strict)
        ks, _, _ = self.source.kernels_for(x, input_shape, space)
        F = self._source_and_features([ks])
        m, lo, hi = self._map(np.array([sp.latency_ms]), F)
        ratio = float(m[0]) / sp.latency_ms if sp.latency_ms > 0 else 1.0
        kernels = [{**k, "ms": k["ms"] * ratio, "low": k["low"] * ratio, "high": k["high"] * ratio}
                   for k in sp.kernels]
        oor = sorted(set(sp.out_of_range) | {f"transfer.{n}" for n in self.transfer.out_of_range(
            np.hstack([np.array([[sp.latency_ms]]), F]))})
        return with_unsupported(Prediction(
            latency_ms=float(m[0]), low_ms=float(lo[0]), high_ms=float(hi[0]), kernels=kernels, out_of_range=oor,
            method=f"transfer({sp.method})", device=self.device, kind="transfer",
            kernel_sum_ms=sp.kernel_sum_ms * ratio, pooled_types=sp.pooled_types), sp)
