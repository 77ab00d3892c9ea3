"""Ray Tune: the Oracle inside distributed trials, the latency budget enforced in every trial.

Ray Tune's searchers (``OptunaSearch`` among them) have no constraint channel, so a trial whose
suggested arch is over budget is *repaired* in the worker: choices are stepped down one at a time,
cheapest-first by the Oracle, until the arch meets the budget. Every reported arch is then feasible
by construction and the searcher learns from what was evaluated.

    from ray import tune
    from ray.tune.search.optuna import OptunaSearch
    from hwlat.adapters.ray_tune import param_space, repair

    oracle = hwlat.Oracle("local", space="ofa_mbv3", upper=True)
    oracle.check_budget(8.0)

    def trial(config, oracle):                      # runs in a Ray worker
        arch, lat, steps = repair(oracle, config, 8.0)
        return {"accuracy": my_proxy(arch), "latency_ms": lat}

    tune.Tuner(tune.with_parameters(trial, oracle=oracle), param_space=param_space(oracle),
               tune_config=tune.TuneConfig(search_alg=OptunaSearch(metric="accuracy", mode="max"),
                                           num_samples=100)).fit()

``tune.with_parameters`` puts the oracle in Ray's object store once; it pickles as its lookup
tables (``hwlat.oracle.portable``), not the predictor. A full example: ``scripts/search_ray_tune.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hwlat.adapters._util import require
from hwlat.adapters.params import archs_of, choices
from hwlat.errors import ConfigError, HwlatError

tune = require("ray.tune", "ray[tune]", why="Ray Tune searches")


def param_space(oracle: Any, r: int | None = None) -> dict[str, Any]:
    """Tune's ``param_space``: every parameter of the oracle's space as ``tune.choice`` (``r`` fixes the
    resolution)."""
    return {n: tune.choice(list(v)) for n, v in choices(oracle.space_name, r)}


def _index(space: str, arch: Mapping[str, Any], r: int | None) -> np.ndarray:
    idx = []
    for n, vals in choices(space, r):
        if n not in arch:
            raise ConfigError(f"trial config has no parameter {n!r} of space {space!r}; build the search "
                              "space with hwlat.adapters.ray_tune.param_space(oracle)")
        try:
            idx.append(list(vals).index(arch[n]))
        except ValueError:
            raise ConfigError(f"trial config {n}={arch[n]!r} is not one of {list(vals)}") from None
    return np.asarray(idx, dtype=np.int64)


def repair(oracle: Any, arch: Mapping[str, Any], budget_ms: float, r: int | None = None,
           max_steps: int = 1000) -> tuple[dict[str, Any], float, int]:
    """``(arch', constraint value in ms, steps)`` with ``arch'`` meeting ``budget_ms`` by the oracle
    (the mean, or the 90 % interval's high end with ``Oracle(upper=True)``).

    Each step lowers one parameter by one choice (choices run from cheap to dear): the smallest
    step that reaches the budget when one does, else the step that saves the most. ``arch`` is
    returned unchanged (0 steps) when it already fits. Raises ConfigError when even the cheapest
    choices miss the budget (``oracle.check_budget`` says that up front).
    """
    space = oracle.space_name
    idx = _index(space, arch, r)
    ch = choices(space, r)
    cur = float(oracle.constraint_batch(archs_of(space, idx[None, :], r))[0])
    steps = 0
    while cur > budget_ms:
        movable = np.flatnonzero(idx > 0)
        if len(movable) == 0 or steps >= max_steps:
            raise ConfigError(f"no arch of space {space!r} near this one meets {budget_ms:g} ms on device "
                              f"{oracle.device!r} (reached {cur:.4g} ms); raise the budget (oracle.check_budget "
                              "tells the fastest arch)")
        cand = np.repeat(idx[None, :], len(movable), axis=0)
        cand[np.arange(len(movable)), movable] -= 1
        lat = np.asarray(oracle.constraint_batch(archs_of(space, cand, r)), dtype=np.float64)
        ok = np.flatnonzero(lat <= budget_ms)
        j = int(ok[np.argmax(lat[ok])]) if len(ok) else int(np.argmin(lat))
        if not len(ok) and lat[j] >= cur:
            # every single step is neutral (inactive blocks): lower all movable ones at once
            idx = np.where(idx > 0, idx - 1, idx)
            cur = float(oracle.constraint_batch(archs_of(space, idx[None, :], r))[0])
        else:
            idx, cur = cand[j], float(lat[j])
        steps += 1
    return {n: vals[int(i)] for (n, vals), i in zip(ch, idx, strict=True)}, cur, steps


def flops_accuracy(oracle: Any, arch: Mapping[str, Any]) -> float:
    """log10 FLOPs of ``arch``: the examples' accuracy STAND-IN (bigger subnets of a supernet tend to be
    more accurate; hwlat ships no accuracy predictor)."""
    from hwlat.oracle.measure import flops_proxy

    return float(flops_proxy(oracle.space, [dict(arch)])[0])


def oracle_trial(config: Mapping[str, Any], oracle: Any, budget_ms: float, r: int | None = None,
                 accuracy: Any = flops_accuracy) -> dict[str, Any]:
    """A Tune function trainable: repair ``config`` to the budget with the worker's oracle, score it.

    Reports ``accuracy``, ``latency_ms`` (the constraint value: mean, or high end with ``upper``),
    ``budget_ms``, ``repair_steps``, the evaluated ``arch`` as JSON, the worker's ``pid`` and whether
    the worker had to load the full predictor (``predictor_loaded``; False on the lookup-table path).
    """
    import json
    import os

    arch, lat, steps = repair(oracle, config, budget_ms, r)
    loaded = getattr(oracle.predictor, "_loaded", None) is not None if hasattr(oracle.predictor, "load") else True
    return {"accuracy": float(accuracy(oracle, arch)), "latency_ms": float(lat), "budget_ms": float(budget_ms),
            "repair_steps": int(steps), "arch": json.dumps(arch, sort_keys=True), "pid": os.getpid(),
            "predictor_loaded": bool(loaded)}


def run_search(oracle: Any, budget_ms: float, num_samples: int, *, max_concurrent: int = 2, seed: int = 0,
               storage_path: str | None = None, r: int | None = None, name: str = "hwlat-oracle-search",
               accuracy: Any = flops_accuracy) -> list[dict[str, Any]]:
    """A Ray Tune search with Optuna's TPE sampler (``OptunaSearch``) over the oracle's space, every
    trial repaired to ``budget_ms`` in its worker; returns each trial's reported metrics and config.
    ``accuracy(oracle, arch) -> float`` is the objective (maximised; picklable, e.g. a module-level function).

    Runs on the Ray cluster ``ray.init`` connected to (Tune starts a local one otherwise).
    ``oracle.check_budget`` runs first, so an infeasible budget fails here, not in the trials.
    """
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    oracle.check_budget(budget_ms, r=r)
    searcher = ConcurrencyLimiter(
        OptunaSearch(metric="accuracy", mode="max", sampler=optuna.samplers.TPESampler(seed=seed)),
        max_concurrent=max_concurrent)
    trainable = tune.with_parameters(oracle_trial, oracle=oracle, budget_ms=float(budget_ms), r=r,
                                     accuracy=accuracy)
    run_config = tune.RunConfig(name=name, storage_path=storage_path, verbose=0)
    tuner = tune.Tuner(tune.with_resources(trainable, {"cpu": 1}), param_space=param_space(oracle, r),
                       tune_config=tune.TuneConfig(search_alg=searcher, num_samples=num_samples, reuse_actors=True),
                       run_config=run_config)
    grid = tuner.fit()
    out = []
    for res in grid:
        if res.error:
            raise HwlatError(f"a Ray Tune trial failed: {str(res.error).strip().splitlines()[-1][:300]}; "
                             "its log is under the run's storage_path")
        out.append({**res.metrics, "config": dict(res.config)})
    return out
