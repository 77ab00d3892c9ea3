#!/usr/bin/env python3
"""A latency-constrained Ray Tune search over OFA-MobileNetV3: Optuna's TPE sampler, the hwlat Oracle in
every trial.

Each trial runs in a Ray worker, which receives the Oracle once through Ray's object store
(``tune.with_parameters``): its lookup tables and the overhead fit (``hwlat.oracle.portable``), about
160 KB, not the predictor. A suggested subnet over the budget is repaired in the worker, one choice
down at a time by the Oracle, so every evaluated subnet meets the budget. The objective is an
accuracy STAND-IN (log10 FLOPs; hwlat ships no accuracy predictor): pass your own as
``run_search(..., accuracy=fn)`` with ``fn(oracle, arch) -> float``.

    python scripts/search_ray_tune.py --device local --trials 64                 # local Ray cluster
    python scripts/search_ray_tune.py --address auto --trials 500 --concurrent 32   # a running cluster

On a cluster every node needs hwlat installed; the predictor's folder only where a trial needs more
than the tables (another width multiplier), e.g. the profiles root on a shared path.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
from rich.console import Console
from rich.table import Table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="local")
    ap.add_argument("--root", default=None, help="profiles root holding the trained predictor")
    ap.add_argument("--budget", type=float, default=None, help="latency budget in ms (default: 30 %% of the "
                                                                 "way from the fastest to the slowest subnet)")
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--concurrent", type=int, default=2, help="trials running at once")
    ap.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    ap.add_argument("--cpus", type=int, default=None, help="CPUs of the local Ray cluster (default: all)")
    ap.add_argument("--upper", action="store_true", help="constrain the 90 %% interval's high end, not the mean")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the trials as JSON")
    args = ap.parse_args()

    import ray

    from hwlat.adapters.ray_tune import run_search
    from hwlat.oracle import Oracle

    console = Console(stderr=args.json)
    oracle = Oracle(args.device, "ofa_mbv3", root=args.root, upper=args.upper, residual=False)
    b = oracle.bounds()
    budget = args.budget or b.min_ms + 0.3 * (b.max_ms - b.min_ms)
    console.print(f"budget {budget:.3f} ms (space: {b.min_ms:.3f} .. {b.max_ms:.3f} ms)")
    if args.address:
        ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    t0 = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="hwlat-tune-") as storage:
            trials = run_search(oracle, budget, args.trials, max_concurrent=args.concurrent, seed=args.seed,
                                storage_path=storage)
    finally:
        ray.shutdown()
    took = time.monotonic() - t0
    trials.sort(key=lambda r: -r["accuracy"])
    if args.json:
        print(json.dumps({"budget_ms": budget, "seconds": round(took, 1), "trials": trials}, default=str))
        return
    t = Table("rank", "log10 FLOPs", "latency ms", "repair steps", "worker pid",
              title=f"{len(trials)} trials in {took:.0f} s, all within {budget:.3f} ms")
    for i, r in enumerate(trials[:10]):
        t.add_row(str(i + 1), f"{r['accuracy']:.3f}", f"{r['latency_ms']:.3f}", str(r["repair_steps"]), str(r["pid"]))
    console.print(t)
    over = int(np.sum([r["latency_ms"] > budget for r in trials]))
    console.print(f"over budget: {over}; repaired in the worker: {sum(r['repair_steps'] > 0 for r in trials)}; "
                  f"predictor loaded in a worker: {any(r['predictor_loaded'] for r in trials)}")
    console.print(f"best subnet: {json.loads(trials[0]['arch'])}")


if __name__ == "__main__":
    main()
