"""Archai: latency evaluators (in **seconds**, Archai's unit for latency objectives such as
``AvgOnnxLatency``) and an evolutionary search space over hwlat's spaces.

    objectives.add_constraint("latency_s", LatencyEvaluator(oracle), (0.0, budget_ms / 1000))
    objectives.add_objective("latency_s", AsyncLatencyEvaluator(oracle), higher_is_better=False,
                             compute_intensive=False)

A model's arch is read by ``to_arch(model)``: by default ``model.metadata["arch"]`` (what
:class:`HwlatSearchSpace` stores), else ``model.arch`` (an ``nn.Module`` needs
``model.metadata["input_shape"]``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from hwlat.adapters._util import require
from hwlat.adapters.params import arch_of, choices

_api = require("archai.discrete_search.api", "archai")
# Archai's base classes enforce an @overrides decorator on every overriding method
overrides = require("overrides", "overrides==3.1.0", "archai's pinned dependency").overrides
# plain names: overrides 3.1 finds the base classes by name in this module's globals
ModelEvaluator = _api.ModelEvaluator
AsyncModelEvaluator = _api.AsyncModelEvaluator
EvolutionarySearchSpace = _api.EvolutionarySearchSpace
ArchaiModel = _api.ArchaiModel


def default_to_arch(model: Any) -> tuple[Any, Any]:
    meta = getattr(model, "metadata", None) or {}
    if "arch" in meta:
        return meta["arch"], None
    return model.arch, meta.get("input_shape")


class LatencyEvaluator(ModelEvaluator):
    """Predicted latency of one ArchaiModel, in seconds."""

    def __init__(self, oracle: Any, to_arch: Callable[[Any], tuple[Any, Any]] = default_to_arch) -> None:
        self.oracle = oracle
        self.to_arch = to_arch

    @overrides
    def evaluate(self, model: Any, budget: float | None = None) -> float:
        arch, shape = self.to_arch(model)
        return float(self.oracle(arch, input_shape=shape)) / 1000.0


class AsyncLatencyEvaluator(AsyncModelEvaluator):
    """Batched: ``send`` queues models, ``fetch_all`` predicts them in one ``oracle.batch`` (seconds)."""

    def __init__(self, oracle: Any, to_arch: Callable[[Any], tuple[Any, Any]] = default_to_arch) -> None:
        self.oracle = oracle
        self.to_arch = to_arch
        self._queue: list[tuple[Any, Any]] = []

    @overrides
    def send(self, model: Any, budget: float | None = None) -> None:
        self._queue.append(self.to_arch(model))

    @overrides
    def fetch_all(self) -> list[float | None]:
        q, self._queue = self._queue, []
        if not q:
            return []
        if all(shape is None for _, shape in q):
            return [float(x) / 1000.0 for x in self.oracle.batch([a for a, _ in q])]
        return [float(self.oracle(a, input_shape=s)) / 1000.0 for a, s in q]


class FlopsProxyEvaluator(ModelEvaluator):
    """Accuracy *stand-in* for examples and tests: log10 FLOPs of ``model.metadata["arch"]`` (bigger
    subnets of a supernet tend to be more accurate). Not an accuracy predictor."""

    def __init__(self, space: str) -> None:
        from hwlat.spaces import get_space

        self.space = get_space(space)

    @overrides
    def evaluate(self, model: Any, budget: float | None = None) -> float:
        from hwlat.oracle.measure import flops_proxy

        return float(flops_proxy(self.space, [model.metadata["arch"]])[0])


class HwlatSearchSpace(EvolutionarySearchSpace):
    """Archai evolutionary search space over an hwlat space's flat parameters (no weights: ``arch`` is
    None and the flat arch sits in ``metadata["arch"]``; build a module with ``space.build``)."""

    def __init__(self, space: str, r: int | None = None, seed: int = 0) -> None:
        self.space_name = space
        self.r = r
        self.params = choices(space, r)
        self.rng = np.random.default_rng(seed)

    def _model(self, idx: list[int]) -> Any:
        from hwlat.spaces import get_space

        arch = arch_of(self.space_name, idx, self.r)
        from hwlat.oracle.encodings import normalize

        key = get_space(self.space_name).key(normalize(self.space_name, arch))
        return ArchaiModel(arch=None, archid=key, metadata={"arch": arch, "idx": list(idx)})

    @overrides
    def random_sample(self) -> Any:
        return self._model([int(self.rng.integers(0, len(v))) for _, v in self.params])

    @overrides
    def mutate(self, model: Any) -> Any:
        idx = list(model.metadata["idx"])
        j = int(self.rng.integers(0, len(idx)))
        idx[j] = int(self.rng.integers(0, len(self.params[j][1])))
        return self._model(idx)

    @overrides
    def crossover(self, model_list: list[Any]) -> Any:
        parents = [m.metadata["idx"] for m in model_list]
        pick = self.rng.integers(0, len(parents), len(self.params))
        return self._model([int(parents[p][j]) for j, p in enumerate(pick)])

    @overrides
    def save_arch(self, model: Any, file_path: str) -> None:
        with open(file_path, "w") as f:
            json.dump({"space": self.space_name, "idx": model.metadata["idx"]}, f)

    @overrides
    def load_arch(self, file_path: str) -> Any:
        with open(file_path) as f:
            return self._model(list(json.load(f)["idx"]))

    @overrides
    def save_model_weights(self, model: Any, file_path: str) -> None:
        return None  # hardware-only search: no weights

    @overrides
    def load_model_weights(self, model: Any, file_path: str) -> None:
        return None
