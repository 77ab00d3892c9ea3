"""NNI 3: a latency ``Profiler`` and a sample filter for multi-trial strategies.

* :func:`latency_profiler` → an ``nni.nas.profiler.Profiler`` whose ``profile(sample)`` is the
  predicted latency in ms (NNI profilers are built from a model space and score samples);
* :func:`latency_filter` → ``filter_fn`` for ``nni.nas.strategy.middleware.Filter``: models whose
  sample is over the budget are marked invalid before they train;
* :func:`model_space` → an NNI model space of the flat hwlat parameters (``nni.choice`` per parameter)
  for hardware-only searches; its executable model is the sample dict itself.

A sample is turned into an arch by ``to_arch`` (default: the sample dict as is — flat NNI labels such
as ``ks_0``, ``cell/1_0`` or ``layer_3`` are read by the oracle). Pass your own for other labels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hwlat.adapters._util import require
from hwlat.adapters.params import choices

nni = require("nni")
_profiler = require("nni.nas.profiler", "nni")

ToArch = Callable[[Any], Any]


def _default_to_arch(sample: Any) -> Any:
    return dict(sample)


class LatencyProfiler(_profiler.Profiler):
    """``profile(sample) -> ms`` from an hwlat oracle."""

    def __init__(self, oracle: Any, model_space: Any = None, to_arch: ToArch | None = None) -> None:
        super().__init__(model_space)
        self.oracle = oracle
        self.to_arch = to_arch or _default_to_arch

    def profile(self, sample: Any) -> float:
        return float(self.oracle(self.to_arch(sample)))


def latency_profiler(oracle: Any, model_space: Any = None, to_arch: ToArch | None = None) -> LatencyProfiler:
    return LatencyProfiler(oracle, model_space, to_arch)


def latency_filter(oracle: Any, budget_ms: float, to_arch: ToArch | None = None) -> Callable[[Any], bool]:
    """``filter_fn(model)`` for ``Filter``: True when ``model.sample`` meets the budget."""
    conv = to_arch or _default_to_arch
    budget = float(budget_ms)

    def filter_fn(model: Any) -> bool:
        sample = getattr(model, "sample", model)
        return bool(oracle.feasible(conv(sample), budget))

    filter_fn.__name__ = f"latency_le_{budget:g}ms"
    return filter_fn


def model_space(space: str, r: int | None = None) -> Any:
    """An NNI model space over hwlat's flat parameters of ``space`` (no deep-learning framework)."""
    from nni.mutable import MutableDict
    from nni.nas.space import BaseModelSpace

    class FlatSpace(BaseModelSpace, MutableDict):  # NNI's own SlimBenchmarkSpace, without its DB deps
        pass

    return FlatSpace({n: nni.choice(n, list(v)) for n, v in choices(space, r)})


def executable_space(space: Any, evaluator: Any) -> Any:
    """``RawFormatModelSpace`` whose executable model is the sample dict (for :func:`model_space`)."""
    from nni.nas.space import RawFormatModelSpace

    class DictModelSpace(RawFormatModelSpace):
        def executable_model(self) -> Any:
            return dict(self.sample)

    return DictModelSpace(space, evaluator)
