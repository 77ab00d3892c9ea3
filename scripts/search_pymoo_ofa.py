#!/usr/bin/env python3
"""Latency-constrained search over OFA-MobileNetV3 with pymoo NSGA-II and the hwlat oracle.

A vectorised ``LatencyProblem``: each generation is one ``oracle.batch`` call on an int array.
Objectives: maximise an accuracy STAND-IN (log10 FLOPs — not an accuracy predictor) and minimise
predicted latency, subject to latency ≤ budget (``out["G"]``; default budget: the space's median
predicted latency). Prints the feasible Pareto front, then exports the best feasible subnets to ONNX,
MEASURES them on the device and prints how many really meet the budget.

    python scripts/search_pymoo_ofa.py [--device local] [--root profiles] [--gens 40] [--measure 5] [--upper]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="local")
    ap.add_argument("--root", default=None, help="profiles root holding the trained predictor")
    ap.add_argument("--budget", type=float, default=None, help="latency budget in ms (default: space median)")
    ap.add_argument("--pop", type=int, default=64)
    ap.add_argument("--gens", type=int, default=40)
    ap.add_argument("--measure", type=int, default=5, help="best feasible subnets to measure (0: skip)")
    ap.add_argument("--upper", action="store_true", help="constrain the 90 %% interval's high end, not the mean")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--residual", action="store_true",
                    help="also apply the predictor's whole-model residual GBDT if it kept one (exact "
                         "Predictor.predict, per-arch and far slower); default: the additive lookup-table path")
    ap.add_argument("--check-passes", type=int, default=3,
                    help="passes per measured subnet when checking against the device (floor_ms target)")
    args = ap.parse_args()

    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize
    from search_optuna_ofa import _report

    from hwlat.adapters.pymoo import LatencyProblem
    from hwlat.oracle import Oracle
    from hwlat.oracle.measure import flops_proxy, measure_archs

    console = Console()
    oracle = Oracle(args.device, "ofa_mbv3", root=args.root, upper=args.upper, residual=args.residual)
    sp = oracle.space
    rng = np.random.default_rng(args.seed)
    budget = args.budget or float(np.median(oracle.batch([sp.sample(rng) for _ in range(10_000)])))
    problem = LatencyProblem(oracle, budget, objectives=lambda archs, ms: -flops_proxy(sp, archs),
                             latency_objective=True)  # raises a clear error when the budget is infeasible
    b = oracle.bounds()
    console.print(f"budget {budget:.3f} ms (space: {b.min_ms:.3f} .. {b.max_ms:.3f} ms), "
                  f"constraint on the {'upper bound' if args.upper else 'mean'}; accuracy = log10 FLOPs stand-in")
    algo = NSGA2(pop_size=args.pop, sampling=IntegerRandomSampling(),
                 crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                 mutation=PM(eta=20, vtype=float, repair=RoundingRepair()), eliminate_duplicates=True)
    t0 = time.perf_counter()
    res = minimize(problem, algo, ("n_gen", args.gens), seed=args.seed, verbose=False)
    console.print(f"{args.gens} generations x {args.pop} in {time.perf_counter() - t0:.1f} s")
    if res.X is None:
        console.print("no feasible subnet found")
        return
    X, F = np.atleast_2d(res.X), np.atleast_2d(res.F)
    order = np.argsort(F[:, 0])  # best stand-in accuracy first
    values = problem.archs(X[order])
    archs = [{"ks": v[:20].tolist(), "e": v[20:40].tolist(), "d": v[40:45].tolist(), "r": int(v[45])} for v in values]
    _report(console, "pymoo NSGA-II feasible Pareto front", archs, budget, args, oracle, measure_archs, archs,
            list(-F[order, 0]))


if __name__ == "__main__":
    main()
