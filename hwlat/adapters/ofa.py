"""OFA-style evolution (``ofa.nas.search_algorithm.EvolutionFinder``): an efficiency predictor over
the oracle, an arch manager for ofa_mbv3 samples, and a FLOPs-based accuracy *stand-in*.

``EvolutionFinder`` keeps drawing samples until ``get_efficiency(sample) <= constraint``; with an
infeasible constraint it loops forever, so :class:`OFALatencyPredictor` checks the budget first
(``budget_ms=`` or :meth:`OFALatencyPredictor.check`) and raises ``InfeasibleBudgetError`` instead.

    eff = OFALatencyPredictor(oracle, budget_ms=25.0)
    finder = EvolutionFinder(eff, FlopsProxyAccuracy(OFAArchManager()), population_size=100)
    best_valids, (acc, sample, latency_ms) = finder.run_evolution_search(25.0)
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from typing import Any

import numpy as np


class OFALatencyPredictor:
    """OFA's efficiency-predictor interface, in ms: ``get_efficiency(arch_dict)`` (EvolutionFinder)
    and ``predict_efficiency(spec)`` (OFA's latency-table tutorial)."""

    def __init__(self, oracle: Any, budget_ms: float | None = None) -> None:
        self.oracle = oracle
        if budget_ms is not None:
            self.check(budget_ms)

    def check(self, constraint_ms: float) -> Any:
        """Raise ``InfeasibleBudgetError`` when no subnet can meet ``constraint_ms`` (no endless loop)."""
        return self.oracle.check_budget(float(constraint_ms))

    def get_efficiency(self, arch_dict: dict[str, Any]) -> float:
        return float(self.oracle.constraint_value(arch_dict))

    def predict_efficiency(self, spec: dict[str, Any]) -> float:
        return self.get_efficiency(spec)


class OFAArchManager:
    """OFA's arch manager / arch encoder sampling interface for ofa_mbv3 (``image_size`` key, like OFA)."""

    def __init__(self, image_size_list: Sequence[int] = (160, 176, 192, 208, 224), ks_list: Sequence[int] = (3, 5, 7),
                 expand_list: Sequence[int] = (3, 4, 6), depth_list: Sequence[int] = (2, 3, 4), n_stage: int = 5,
                 max_depth: int = 4) -> None:
        self.image_size_list = list(image_size_list)
        self.ks_list, self.expand_list, self.depth_list = list(ks_list), list(expand_list), list(depth_list)
        self.n_stage, self.max_depth = n_stage, max_depth
        self.num_blocks = n_stage * max_depth

    def random_sample_arch(self) -> dict[str, Any]:
        return {"ks": [random.choice(self.ks_list) for _ in range(self.num_blocks)],
                "e": [random.choice(self.expand_list) for _ in range(self.num_blocks)],
                "d": [random.choice(self.depth_list) for _ in range(self.n_stage)],
                "image_size": random.choice(self.image_size_list)}

    def mutate_resolution(self, arch_dict: dict[str, Any], mutate_prob: float) -> None:
        if random.random() < mutate_prob:
            arch_dict["image_size"] = random.choice(self.image_size_list)

    def mutate_arch(self, arch_dict: dict[str, Any], mutate_prob: float) -> None:
        for i in range(self.num_blocks):
            if random.random() < mutate_prob:
                arch_dict["ks"][i] = random.choice(self.ks_list)
                arch_dict["e"][i] = random.choice(self.expand_list)
        for i in range(self.n_stage):
            if random.random() < mutate_prob:
                arch_dict["d"][i] = random.choice(self.depth_list)


class FlopsProxyAccuracy:
    """Accuracy predictor *stand-in* for examples and tests: log10 FLOPs of the subnet (bigger subnets of
    a supernet tend to be more accurate). ``predict_acc`` returns a torch tensor like OFA's predictor."""

    def __init__(self, arch_encoder: Any, space: str = "ofa_mbv3") -> None:
        from hwlat.spaces import get_space

        self.arch_encoder = arch_encoder
        self.space = get_space(space)

    def predict_acc(self, samples: list[dict[str, Any]]) -> Any:
        import torch

        from hwlat.oracle.measure import flops_proxy

        archs = [self.space.canonical(copy.deepcopy(s)) for s in samples]
        return torch.as_tensor(np.asarray(flops_proxy(self.space, archs)))
