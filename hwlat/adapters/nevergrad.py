"""Nevergrad: the latency budget as a cheap constraint and as a ``tell`` violation.

Sign conventions differ (checked in nevergrad 1.0's code):

* ``parametrization.register_cheap_constraint(f)``: ``f(value)`` returns a bool, or a float that is
  **≥ 0 when satisfied** (``utils.float_penalty`` turns negatives into penalties) — here
  ``budget − latency``; candidates failing it are re-drawn before evaluation;
* ``optimizer.tell(candidate, loss, constraint_violation=v)``: **> 0 means violated** — here
  ``latency − budget``, the oracle's ``violation``.

    ng_lat = NevergradLatency(oracle, budget_ms=25.0)
    opt = ng.optimizers.DiscreteOnePlusOne(parametrization=ng_lat.parametrization(), budget=300)
    rec = ng_lat.minimize(opt, objective)      # objective(arch) -> loss
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hwlat.adapters._util import require
from hwlat.adapters.params import choices

ng = require("nevergrad")


class NevergradLatency:
    """Latency constraint for Nevergrad over ``oracle``'s space (ms)."""

    def __init__(self, oracle: Any, budget_ms: float, r: int | None = None, check_budget: bool = True) -> None:
        self.oracle = oracle
        self.budget_ms = float(budget_ms)
        self.params = choices(oracle.space_name, r)
        if check_budget:
            oracle.check_budget(self.budget_ms, r=r)

    def cheap_constraint(self, value: dict[str, Any]) -> float:
        """``budget − latency`` in ms: ≥ 0 is satisfied (nevergrad's cheap-constraint sign)."""
        return float(self.budget_ms - self.oracle.constraint_value(value))

    def violation(self, value: dict[str, Any]) -> float:
        """``latency − budget`` in ms: > 0 is violated (``tell(..., constraint_violation=)``'s sign)."""
        return float(self.oracle.constraint_value(value) - self.budget_ms)

    def parametrization(self, cheap_constraint: bool = True) -> Any:
        """``ng.p.Dict`` of ``ng.p.Choice`` per parameter; its value is a flat arch."""
        p = ng.p.Dict(**{n: ng.p.Choice(list(v)) for n, v in self.params})
        if cheap_constraint:
            p.register_cheap_constraint(self.cheap_constraint)
        return p

    def minimize(self, optimizer: Any, objective: Callable[[dict[str, Any]], float]) -> Any:
        """ask/tell loop over the optimizer's budget, telling each candidate its latency violation;
        returns the optimizer's recommendation."""
        for _ in range(optimizer.budget):
            cand = optimizer.ask()
            optimizer.tell(cand, float(objective(cand.value)), constraint_violation=[self.violation(cand.value)])
        return optimizer.provide_recommendation()
