"""Optuna: the latency budget as a trial constraint.

Optuna ≥ 5 stores constraints on the trial: ``trial.set_constraint(name, value)`` (system attr
``constraints:<name>``, feasible when ≤ 0); every sampler and ``study.best_trials`` read it. Older
Optuna takes a ``constraints_func(frozen_trial) -> [values]`` per sampler (deprecated in 5.0);
:meth:`OptunaLatency.constraints_func` serves it from the latency the objective stored as user attr.

    lat = OptunaLatency(oracle, budget_ms=25.0)
    def objective(trial):
        arch = lat.suggest(trial)          # ks_0 … r as categorical params
        lat.constrain(trial, arch)         # sets the constraint latency − budget
        return accuracy_proxy(arch)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hwlat.adapters._util import require
from hwlat.adapters.params import choices

optuna = require("optuna")

USER_ATTR = "latency_ms"


def _has_set_constraint() -> bool:
    return hasattr(optuna.trial.Trial, "set_constraint")


class OptunaLatency:
    """Latency constraint for Optuna studies over ``oracle``'s space (ms)."""

    def __init__(self, oracle: Any, budget_ms: float, name: str = "latency", r: int | None = None,
                 check_budget: bool = True) -> None:
        self.oracle = oracle
        self.budget_ms = float(budget_ms)
        self.name = name
        self.params = choices(oracle.space_name, r)
        if check_budget:
            oracle.check_budget(self.budget_ms, r=r)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Suggest every parameter of the space as a categorical; returns the flat arch."""
        return {n: trial.suggest_categorical(n, list(v)) for n, v in self.params}

    def distributions(self) -> dict[str, Any]:
        """``optuna.distributions`` of the parameters (for ``study.ask(fixed_distributions=…)``)."""
        return {n: optuna.distributions.CategoricalDistribution(list(v)) for n, v in self.params}

    def constrain(self, trial: Any, arch: Any, latency_ms: float | None = None,
                  constraint_ms: float | None = None) -> float:
        """Store the latency (user attr ``latency_ms``) and the constraint ``latency − budget`` on
        ``trial`` (with ``Oracle(upper=True)`` the interval's high end is compared); returns the latency."""
        if latency_ms is None:
            m, _, hi = self.oracle.predict(arch)
            lat, cval = m, (hi if self.oracle.upper else m)
        else:
            lat = float(latency_ms)
            cval = lat if constraint_ms is None else float(constraint_ms)
        value = float(cval) - self.budget_ms
        trial.set_user_attr(USER_ATTR, float(lat))
        if _has_set_constraint():
            trial.set_constraint(self.name, value)
        else:  # Optuna < 5: what constraints_func reads back after the trial
            trial.set_user_attr(f"{USER_ATTR}_violation", value)
        return float(lat)

    def constraints_func(self, frozen_trial: Any) -> Sequence[float]:
        """For Optuna < 5 samplers' ``constraints_func=`` (≤ 0 is feasible)."""
        attrs = frozen_trial.user_attrs
        if f"{USER_ATTR}_violation" in attrs:
            return [float(attrs[f"{USER_ATTR}_violation"])]
        arch = {n: frozen_trial.params[n] for n, _ in self.params}
        return [self.oracle.violation(arch, self.budget_ms)]

    def ask_tell(self, study: Any, objective: Callable[[list[Any], np.ndarray], Any], n_trials: int,
                 batch_size: int = 64) -> None:
        """Run ``n_trials`` trials in ask/tell batches: one ``oracle.batch`` call per batch.

        ``objective(archs, latencies_ms)`` returns one value per arch (or a (n, n_objectives) array).
        """
        dists = self.distributions()
        done = 0
        while done < n_trials:
            k = min(batch_size, n_trials - done)
            trials = [study.ask(dists) for _ in range(k)]
            archs = [{n: t.params[n] for n, _ in self.params} for t in trials]
            m, _, hi = self.oracle.predict_batch(archs)
            cons = hi if self.oracle.upper else m
            values = np.asarray(objective(archs, m), dtype=np.float64)
            for i, t in enumerate(trials):
                self.constrain(t, archs[i], latency_ms=float(m[i]), constraint_ms=float(cons[i]))
                v = values[i]
                study.tell(t, v.tolist() if np.ndim(v) else float(v))
            done += k

    def feasible_best(self, study: Any) -> list[Any]:
        """``study.best_trials`` (Optuna already drops infeasible ones when constraints are set)."""
        return list(study.best_trials)
