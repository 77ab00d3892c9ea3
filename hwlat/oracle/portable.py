"""What an :class:`~hwlat.oracle.Oracle` sends to another process (Ray Tune trials, multiprocessing, Dask).

A search framework pickles the objective's closure for every worker. An oracle pickled as is would
carry the whole trained predictor (GBDT boosters, MLP weights, subnet models: megabytes) and its
query cache. The lookup-table path needs none of that: per-slot aggregate tables (a few hundred KB
of float64) and the overhead fit's handful of numbers answer every query. So an oracle pickles as:

* its lookup tables, built first in the sender so that no worker rebuilds them (and for
  ``ofa_mbv3`` the default width 1.0; width 1.2 builds on first use);
* a :class:`LazyPredictor` in place of the predictor: device, kind, where it was loaded from, its
  manifest and overhead fits; the full predictor is loaded from that folder in the worker only when
  a query needs more than the tables (other spaces' kernel path, whole models, width 1.2);
* empty caches (a worker fills its own).

An oracle over a predictor that does not come from a profiles folder (``Oracle.from_predictor`` of
an object built in memory) cannot be reloaded by name, so that predictor is pickled whole.
Unpickling is for the sender's own transport (Ray, multiprocessing); never unpickle files from others.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hwlat.errors import PredictorError


class LazyPredictor:
    """Stands in for an hwlat ``Predictor`` in a worker: the small parts it carries answer the oracle's
    table path, and any other attribute loads the real predictor from ``directory`` once."""

    #: attributes served without loading (everything else goes to the loaded predictor)
    EAGER = ("device", "kind", "manifest", "runtime", "overhead", "directory")

    def __init__(self, predictor: Any, root: Path, space: str | None) -> None:
        self.device = str(predictor.device)
        self.kind = str(predictor.kind)
        self.manifest = copy.deepcopy(getattr(predictor, "manifest", {}) or {})
        self.runtime = str(getattr(predictor, "runtime", "onnxruntime"))
        self.overhead = predictor.overhead
        self.directory = Path(predictor.directory)
        self.root = root
        pick = getattr(predictor, "overhead_for", None)
        # the oracle's space may have its own overhead fit; carrying it keeps combine() load-free
        self._overheads: dict[str | None, Any] = {space: pick(space)} if pick is not None else {}
        self._loaded: Any = None

    def overhead_for(self, space: str | None = None) -> Any:
        if space in self._overheads:
            return self._overheads[space]
        pred = self.load()
        pick = getattr(pred, "overhead_for", None)
        return pick(space) if pick is not None else pred.overhead

    def load(self) -> Any:
        """The real predictor (loaded on first call); refuses one retrained since the oracle was pickled."""
        if self._loaded is None:
            from hwlat.predictors.predictor import Predictor

            # the sender already checked the device fingerprint when it loaded this predictor
            pred = Predictor.load(self.device, kind=self.kind, root=self.root, check_fingerprint=False)
            if (getattr(pred, "manifest", {}) or {}) != self.manifest:
                raise PredictorError(f"the {self.kind} predictor of device {self.device!r} in {self.directory} changed "
                                     "since this oracle was sent to the worker; create the Oracle again and "
                                     "restart the search")
            self._loaded = pred
        return self._loaded

    def __getattr__(self, name: str) -> Any:
        # only reached for attributes not set in __init__; private and dunder names must not
        # load (pickle and copy probe them on half-built instances)
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.load(), name)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_loaded"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._loaded = None

    def __repr__(self) -> str:
        return f"LazyPredictor(device={self.device!r}, kind={self.kind!r}, loaded={self._loaded is not None})"


def _reloadable_root(predictor: Any) -> Path | None:
    """The profiles root ``predictor`` was loaded from, when ``Predictor.load`` can find it there again."""
    from hwlat.predictors.predictor import predictor_dir

    d = getattr(predictor, "directory", None)
    device, kind = getattr(predictor, "device", None), getattr(predictor, "kind", None)
    if d is None or not device or not kind or not hasattr(predictor, "overhead"):
        return None
    d = Path(d)
    root = d.parent.parent.parent
    return root if predictor_dir(str(device), str(kind), root) == d else None


def oracle_state(oracle: Any) -> dict[str, Any]:
    """``Oracle.__getstate__``: the oracle's attributes with the heavy parts replaced (module docstring)."""
    from hwlat.oracle.models import PredictorModel

    state = dict(oracle.__dict__)
    if oracle.table is not None:
        oracle.table.prebuild()
    pred = oracle.predictor
    if isinstance(pred, LazyPredictor):
        root: Path | None = pred.root
    else:
        root = _reloadable_root(pred)
    if root is not None:
        lazy = pred if isinstance(pred, LazyPredictor) else LazyPredictor(pred, root, oracle.space_name)
        state["predictor"] = lazy
        if isinstance(oracle.model, PredictorModel) and oracle.model.predictor is pred:
            model = copy.copy(oracle.model)
            model.predictor = lazy
            state["model"] = model
    state["space"] = None  # the registry rebuilds it from space_name
    state.pop("_preds", None)
    for k in ("_cache", "_graph_cache"):
        if k in state:
            state[k] = ("maxsize", state[k].maxsize)
    return state


def restore_oracle(oracle: Any, state: dict[str, Any]) -> None:
    """``Oracle.__setstate__``."""
    from hwlat.oracle.oracle import _LRU
    from hwlat.oracle.tables import KernelPredictions
    from hwlat.spaces import get_space

    oracle.__dict__.update(state)
    for k in ("_cache", "_graph_cache"):
        v = state.get(k)
        if isinstance(v, tuple):
            setattr(oracle, k, _LRU(int(v[1])))
    oracle.space = get_space(oracle.space_name)
    oracle._preds = KernelPredictions(oracle.model)
    if oracle.table is not None:
        oracle.table.attach(oracle.model)
