#!/usr/bin/env python3
"""Latency-constrained search over OFA-MobileNetV3 with Optuna NSGA-II and the hwlat oracle.

Objectives: maximise an accuracy STAND-IN (log10 FLOPs of the subnet — no accuracy predictor ships
with hwlat; bigger subnets of a supernet tend to be more accurate) and minimise predicted latency,
subject to latency ≤ budget (``trial.set_constraint``; default budget: the space's median predicted
latency). Prints the feasible Pareto front, then exports the best feasible subnets to ONNX, MEASURES
them on the device and prints how many really meet the budget.

    python scripts/search_optuna_ofa.py [--device local] [--root profiles] [--trials 400] [--measure 5] [--upper]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="local")
    ap.add_argument("--root", default=None, help="profiles root holding the trained predictor")
    ap.add_argument("--budget", type=float, default=None, help="latency budget in ms (default: space median)")
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--measure", type=int, default=5, help="best feasible subnets to measure (0: skip)")
    ap.add_argument("--upper", action="store_true", help="constrain the 90 %% interval's high end, not the mean")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--residual", action="store_true",
                    help="also apply the predictor's whole-model residual GBDT if it kept one (exact "
                         "Predictor.predict, per-arch and far slower); default: the additive lookup-table path")
    ap.add_argument("--check-passes", type=int, default=3,
                    help="passes per measured subnet when checking against the device (floor_ms target)")
    args = ap.parse_args()

    import optuna

    from hwlat.adapters.optuna import OptunaLatency
    from hwlat.oracle import Oracle
    from hwlat.oracle.measure import flops_proxy, measure_archs

    console = Console()
    oracle = Oracle(args.device, "ofa_mbv3", root=args.root, upper=args.upper, residual=args.residual)
    sp = oracle.space
    rng = np.random.default_rng(args.seed)
    budget = args.budget or float(np.median(oracle.batch([sp.sample(rng) for _ in range(10_000)])))
    lat = OptunaLatency(oracle, budget)  # raises a clear error when the budget is infeasible
    b = oracle.bounds()
    console.print(f"budget {budget:.3f} ms (space: {b.min_ms:.3f} .. {b.max_ms:.3f} ms), "
                  f"constraint on the {'upper bound' if args.upper else 'mean'}; accuracy = log10 FLOPs stand-in")

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        arch = lat.suggest(trial)
        ms = lat.constrain(trial, arch)
        return float(flops_proxy(sp, [arch])[0]), ms

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.NSGAIISampler(population_size=40, seed=args.seed))
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=args.trials)
    console.print(f"{args.trials} trials in {time.perf_counter() - t0:.1f} s; oracle cache {oracle.cache_info()}")
    front = sorted(study.best_trials, key=lambda t: -t.values[0])
    _report(console, "Optuna NSGA-II feasible Pareto front", front, budget, args, oracle, measure_archs,
            [{n: t.params[n] for n, _ in lat.params} for t in front], [t.values[0] for t in front])


def _report(console, title, front, budget, args, oracle, measure_archs, archs, proxy) -> None:  # noqa: ANN001
    t = Table(title=title)
    for c in ("#", "log10 FLOPs (stand-in)", "predicted ms", "90% interval", "r", "depths"):
        t.add_column(c, justify="right")
    # trials that differ only in inactive blocks are one subnet: list and measure each once
    seen: dict[str, tuple[dict, float]] = {}
    for a, p in zip(archs, proxy, strict=True):
        c = oracle.canonical(a)
        seen.setdefault(oracle.space.key(c), (c, p))
    canon = [c for c, _ in seen.values()]
    proxy = [p for _, p in seen.values()]
    for i, (c, p) in enumerate(zip(canon, proxy, strict=True)):
        m, lo, hi = oracle.predict(c)
        t.add_row(str(i), f"{p:.3f}", f"{m:.3f}", f"{lo:.2f}..{hi:.2f}", str(c["r"]), "-".join(map(str, c["d"])))
    console.print(t)
    if args.measure <= 0 or not canon:
        return
    best = canon[: args.measure]
    console.print(f"measuring the {len(best)} best feasible subnets on {args.device!r} ({oracle.target}) ...")
    ms = measure_archs(args.device, oracle.space, best, target=oracle.target, passes=args.check_passes)
    for c, m in zip(best, ms, strict=True):
        console.print(f"  predicted {oracle(c):.3f} ms, measured {m:.3f} ms -> {'meets' if m <= budget else 'MISSES'}")
    console.print(f"[bold]{int((ms <= budget).sum())}/{len(best)} really meet the {budget:.3f} ms budget[/bold]")


if __name__ == "__main__":
    main()
