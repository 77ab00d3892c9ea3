"""pymoo: a vectorised integer ``Problem`` with the latency budget as inequality constraint.

pymoo treats ``out["G"] ≤ 0`` as feasible, the oracle's ``violation`` sign. Variables are choice
indices (``hwlat.adapters.params``); use integer operators (e.g. ``IntegerRandomSampling``,
``SBX``/``PM`` with ``RoundingRepair``, as in ``scripts/search_pymoo_ofa.py``).

    problem = LatencyProblem(oracle, budget_ms=25.0, objectives=lambda archs, lat: -flops(archs))
    res = minimize(problem, NSGA2(...), ("n_gen", 30))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hwlat.adapters._util import require
from hwlat.adapters.params import archs_of, sizes

_problem = require("pymoo.core.problem", "pymoo")

Objectives = Callable[[Any, np.ndarray], np.ndarray]


class LatencyProblem(_problem.Problem):
    """Minimise ``objectives(archs, latency_ms)`` (an (n,) or (n, n_obj) array) subject to
    latency ≤ ``budget_ms``. Without ``objectives`` the latency itself is the single objective.
    ``latency_objective=True`` appends the latency as an extra objective (a latency/accuracy front)."""

    def __init__(self, oracle: Any, budget_ms: float, objectives: Objectives | None = None, n_obj: int = 1,
                 r: int | None = None, latency_objective: bool = False, check_budget: bool = True) -> None:
        self.oracle = oracle
        self.budget_ms = float(budget_ms)
        self.objectives = objectives
        self.r = r
        self.latency_objective = latency_objective
        if check_budget:
            oracle.check_budget(self.budget_ms, r=r)
        sz = np.asarray(sizes(oracle.space_name, r))
        super().__init__(n_var=len(sz), n_obj=n_obj + int(latency_objective), n_ieq_constr=1, xl=0, xu=sz - 1,
                         vtype=int)

    def archs(self, X: np.ndarray) -> Any:
        """Archs of a population matrix (value array for ofa_mbv3, flat dicts otherwise)."""
        return archs_of(self.oracle.space_name, X, self.r)

    def _evaluate(self, X: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        archs = self.archs(X)
        m, _, hi = self.oracle.predict_batch(archs)
        cons = hi if self.oracle.upper else m
        out["G"] = (cons - self.budget_ms)[:, None]
        if self.objectives is None:
            F = m[:, None]
        else:
            F = np.asarray(self.objectives(archs, m), dtype=np.float64).reshape(len(m), -1)
        if self.latency_objective:
            F = np.hstack([F, m[:, None]])
        out["F"] = F
