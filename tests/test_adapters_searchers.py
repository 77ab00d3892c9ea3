"""Each adapter drives its real searcher library for a few iterations over ofa_mbv3 with a real trained
oracle; the best/returned archs must meet the budget per the oracle. Accuracy stand-in: log FLOPs."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from oracle_support import session_predictor, shared_oracle

from hwlat.oracle import InfeasibleBudgetError
from hwlat.oracle.measure import flops_proxy


@pytest.fixture(scope="session")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return shared_oracle(session_predictor(tmp_path_factory)[0], "ofa_mbv3")


@pytest.fixture(scope="session")
def budget(oracle: Any) -> float:
    """The median predicted latency of the space."""
    rng = np.random.default_rng(0)
    return float(np.median(oracle.batch([oracle.space.sample(rng) for _ in range(2000)])))


def _skip_unless(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        pytest.skip(f"{module} cannot be imported here: {e}")


def test_optuna_set_constraint_and_ask_tell(oracle: Any, budget: float) -> None:
    optuna = _skip_unless("optuna")
    from hwlat.adapters.optuna import OptunaLatency

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    lat = OptunaLatency(oracle, budget)

    def objective(trial: Any) -> tuple[float, float]:
        arch = lat.suggest(trial)
        ms = lat.constrain(trial, arch)
        return float(flops_proxy(oracle.space, [arch])[0]), ms

    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.NSGAIISampler(population_size=10, seed=0))
    study.optimize(objective, n_trials=40)
    best = study.best_trials
    assert best
    for t in best:
        assert t.constraints[lat.name] <= 0
        assert oracle({n: t.params[n] for n, _ in lat.params}) <= budget
    # ask/tell in batches (one oracle.batch per batch), single objective
    study2 = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=1))
    lat.ask_tell(study2, lambda archs, ms: flops_proxy(oracle.space, archs), n_trials=48, batch_size=16)
    assert len(study2.trials) == 48
    b = study2.best_trial
    assert b.constraints[lat.name] <= 0 and b.user_attrs["latency_ms"] <= budget
    # the pre-5 path: constraints_func reads the violation back
    assert lat.constraints_func(b)[0] == pytest.approx(b.user_attrs["latency_ms"] - budget)


def test_pymoo_problem(oracle: Any, budget: float) -> None:
    _skip_unless("pymoo")
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize

    from hwlat.adapters.pymoo import LatencyProblem

    problem = LatencyProblem(oracle, budget, objectives=lambda archs, ms: -flops_proxy(oracle.space, archs),
                             latency_objective=True)
    algo = NSGA2(pop_size=20, sampling=IntegerRandomSampling(),
                 crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                 mutation=PM(eta=20, vtype=float, repair=RoundingRepair()), eliminate_duplicates=True)
    res = minimize(problem, algo, ("n_gen", 8), seed=0, verbose=False)
    assert res.X is not None and len(res.X)
    lat = oracle.batch(problem.archs(np.atleast_2d(res.X)))
    assert (lat <= budget).all()
    np.testing.assert_allclose(np.atleast_2d(res.F)[:, 1], lat)


def test_nevergrad(oracle: Any, budget: float) -> None:
    ng = _skip_unless("nevergrad")
    from hwlat.adapters.nevergrad import NevergradLatency

    nl = NevergradLatency(oracle, budget)
    a = oracle.space.sample(np.random.default_rng(2))
    flat = {f"ks_{i}": v or 3 for i, v in enumerate(a["ks"])} | {f"e_{i}": v or 3 for i, v in enumerate(a["e"])} \
        | {f"d_{i}": v for i, v in enumerate(a["d"])} | {"r": a["r"]}
    assert nl.cheap_constraint(flat) == pytest.approx(-nl.violation(flat))  # ≥0 satisfied vs >0 violated
    param = nl.parametrization()
    param.random_state.seed(0)
    opt = ng.optimizers.DiscreteOnePlusOne(parametrization=param, budget=60)
    rec = nl.minimize(opt, lambda arch: -float(flops_proxy(oracle.space, [arch])[0]))
    assert oracle(rec.value) <= budget


def test_nni_filter_and_profiler(oracle: Any, budget: float) -> None:
    nni = _skip_unless("nni")
    from hwlat.zoo.timm_models import tolerate_torchvision

    tolerate_torchvision()  # NNI imports torchvision (via pytorch-lightning), which the timm extra installs
    from nni.nas.evaluator import FunctionalEvaluator
    from nni.nas.execution import SequentialExecutionEngine
    from nni.nas.strategy import RegularizedEvolution
    from nni.nas.strategy.middleware import Chain, Filter

    from hwlat.adapters.nni import executable_space, latency_filter, latency_profiler, model_space

    space = model_space("ofa_mbv3")
    prof = latency_profiler(oracle, space)

    def evaluate(sample: dict) -> None:
        nni.report_final_result(float(flops_proxy(oracle.space, [sample])[0]))

    strategy = Chain(RegularizedEvolution(population_size=6, sample_size=3, dedup=True),
                     Filter(latency_filter(oracle, budget), patience=200))
    strategy(executable_space(space, FunctionalEvaluator(evaluate)), SequentialExecutionEngine(max_model_count=12))
    trained = [m for m in strategy.list_models() if m.metric is not None]
    assert len(trained) >= 6
    for m in trained:
        assert prof.profile(m.sample) == pytest.approx(oracle(dict(m.sample)))
        assert prof.profile(m.sample) <= budget


def test_archai_evolution_pareto(oracle: Any, budget: float, tmp_path: Path) -> None:
    _skip_unless("archai.discrete_search.api")
    from archai.discrete_search.algos import EvolutionParetoSearch
    from archai.discrete_search.api import SearchObjectives

    from hwlat.adapters.archai import (
        AsyncLatencyEvaluator,
        FlopsProxyEvaluator,
        HwlatSearchSpace,
        LatencyEvaluator,
    )

    objectives = SearchObjectives()
    objectives.add_objective("flops_proxy", FlopsProxyEvaluator("ofa_mbv3"), higher_is_better=True, compute_intensive=False)
    objectives.add_objective("latency_s", AsyncLatencyEvaluator(oracle), higher_is_better=False,
                             compute_intensive=False)
    objectives.add_constraint("latency_budget", LatencyEvaluator(oracle), (0.0, budget / 1000.0))
    algo = EvolutionParetoSearch(HwlatSearchSpace("ofa_mbv3", seed=0), objectives, str(tmp_path), num_iters=3,
                                 init_num_models=10, num_random_mix=4, mutations_per_parent=1, num_crossovers=3,
                                 save_pareto_model_weights=False, seed=0)
    results = algo.search()
    front = results.get_pareto_frontier()
    assert front["models"]
    for m, lat_s in zip(front["models"], front["evaluation_results"]["latency_s"], strict=True):
        assert lat_s == pytest.approx(oracle(m.metadata["arch"]) / 1000.0)
        assert oracle(m.metadata["arch"]) <= budget


def _import_dynast_search() -> types.ModuleType:
    """DyNAS-T's package ``__init__`` imports its OFA/BootstrapNAS runners, which need torchvision (not
    installable here: only CUDA builds on PyPI, which fail against CPU torch). The search modules
    themselves do not: register the package without running its ``__init__`` and import them."""
    spec = importlib.util.find_spec("dynast")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("dynast is not installed (pip install --no-deps dynast)")
    if "dynast" not in sys.modules or not hasattr(sys.modules["dynast"], "__path__"):
        pkg = types.ModuleType("dynast")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["dynast"] = pkg
    try:
        return importlib.import_module("dynast.search.evolutionary")
    except ImportError as e:
        pytest.skip(f"dynast.search.evolutionary cannot be imported here: {e}")


def test_dynast_nsga2(oracle: Any, budget: float) -> None:
    evo = _import_dynast_search()
    from hwlat.adapters.dynast import DynastLatencyInterface, DynastLatencyRunner

    runner = DynastLatencyRunner(oracle)
    # the runner's two call styles, as DyNAS-T's OFA interface makes them
    x = [0] * 45
    onehot = np.concatenate([np.eye(len(m))[i] for m, i in zip(runner.mapper, x, strict=True)])
    sample = {"wid": None, "ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": [224]}
    assert runner.estimate_latency(onehot.reshape(1, -1))[0] == pytest.approx(oracle(sample))
    mean, std = runner.measure_latency(sample)
    assert mean == pytest.approx(oracle(sample)) and std >= 0

    # DyNAS-T's OFA vectors fix r=224, so the space-wide median (r 128..224) is near its fastest
    # subnets: take the median over its own random vectors, else no early population is feasible
    rng = np.random.default_rng(0)
    vecs = [[int(rng.integers(0, u + 1)) for u in runner.param_upperbound] for _ in range(200)]
    budget = float(np.median([oracle(runner.subnet_sample(runner.translate2param(v))) for v in vecs]))
    iface = DynastLatencyInterface(runner, lambda s: float(flops_proxy(oracle.space, [s])[0]), budget_ms=budget)
    problem = evo.EvolutionaryMultiObjective(iface, runner.param_count, runner.param_upperbound)
    manager = evo.EvolutionaryManager(algorithm="nsga2", seed=0, n_obj=2)
    manager.configure_nsga2(population=12, num_evals=48)
    result = manager.run_search(problem)
    X = np.atleast_2d(result.pop.get("X"))
    lat = np.array([oracle(runner.subnet_sample(runner.translate2param(x))) for x in X])
    acc = np.array([-iface.eval_subnet(x)[2] for x in X])
    best = int(np.argmax(acc))
    assert lat[best] <= budget  # the penalty makes every feasible subnet beat every infeasible one


def test_ofa_evolution_finder(oracle: Any, budget: float) -> None:
    evolution = _skip_unless("ofa.nas.search_algorithm.evolution")
    import random

    from hwlat.adapters.ofa import FlopsProxyAccuracy, OFAArchManager, OFALatencyPredictor

    random.seed(0)
    np.random.seed(0)
    eff = OFALatencyPredictor(oracle, budget_ms=budget)
    finder = evolution.EvolutionFinder(eff, FlopsProxyAccuracy(OFAArchManager()), population_size=10,
                                       max_time_budget=3, parent_ratio=0.3, mutation_ratio=0.5)
    _, best_info = finder.run_evolution_search(budget, verbose=False)
    _, sample, latency = best_info
    assert latency <= budget and oracle(sample) == pytest.approx(latency)
    assert eff.predict_efficiency(sample) == pytest.approx(latency)
    with pytest.raises(InfeasibleBudgetError):
        OFALatencyPredictor(oracle, budget_ms=oracle.bounds().min_ms / 2)
