#!/usr/bin/env python3
"""Latency-oracle speed on one core, and how often its "feasible" subnets really meet the budget.

* single query: median/p90 time of ``oracle(arch)`` for archs not in the cache, lookup table warm
  (target ≤ 100 µs), and of a cache hit;
* batch: ``oracle.batch`` throughput on 100,000 OFA-MobileNetV3 archs as dicts and as an int array
  (target ≥ 100,000 archs/s);
* reality check: budget = the median predicted latency of the space; among 10,000 random subnets the
  oracle calls feasible, the ``--measure`` largest (FLOPs) — the ones nearest the budget — are exported
  to ONNX and measured on the device; the share that really meets the budget is reported
  (target ≥ 95 %), for the mean prediction and for the interval's upper end (``Oracle(upper=True)``).

Runs pinned to one core (``sched_setaffinity``, like ``taskset -c``) with BLAS/OpenMP threads at 1.
Needs a trained predictor for the device (``hwlat train DEVICE``). Writes bench_results/bench_oracle.json.

    python scripts/bench_oracle.py [--device local] [--root profiles] [--measure 20]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402


def machine_info() -> dict[str, object]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores_visible": os.cpu_count(),
            "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform(),
            "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="local")
    ap.add_argument("--root", default=None, help="profiles root holding the trained predictor")
    ap.add_argument("--kind", default="gbdt")
    ap.add_argument("--space", default="ofa_mbv3")
    ap.add_argument("--single", type=int, default=3000, help="single queries to time")
    ap.add_argument("--batch", type=int, default=100_000, help="archs per batch call")
    ap.add_argument("--measure", type=int, default=20, help="subnets to measure per rule (0: skip)")
    ap.add_argument("--out", default="bench_results/bench_oracle.json")
    ap.add_argument("--residual", action="store_true",
                    help="also apply the predictor's whole-model residual GBDT if it kept one (exact "
                         "Predictor.predict, per-arch and far slower); default: the additive lookup-table path")
    ap.add_argument("--check-passes", type=int, default=3,
                    help="passes per measured subnet when checking against the device (floor_ms target)")
    args = ap.parse_args()

    from hwlat.oracle import Oracle
    from hwlat.oracle.measure import flops_proxy, measure_archs
    from hwlat.predictors.predictor import Predictor

    console = Console()
    info = machine_info()
    console.print(f"machine: {info['cpu']} | visible cores {info['cores_visible']} | pinned to "
                  f"{info['affinity']} | python {info['python']} | numpy {info['numpy']} | load {info['load_avg_1m']}")
    pred = Predictor.load(args.device, kind=args.kind, root=args.root)
    t0 = time.perf_counter()
    oracle = Oracle.from_predictor(pred, args.space, residual=args.residual)
    sp = oracle.space
    rng = np.random.default_rng(0)
    oracle(sp.sample(rng))  # builds the lookup table
    build_s = time.perf_counter() - t0

    singles = [sp.sample(rng) for _ in range(args.single)]
    oracle.clear_cache()
    miss_ns = np.empty(len(singles))
    for i, a in enumerate(singles):
        t = time.perf_counter_ns()
        oracle(a)
        miss_ns[i] = time.perf_counter_ns() - t
    hit_ns = np.empty(len(singles))
    for i, a in enumerate(singles):
        t = time.perf_counter_ns()
        oracle(a)
        hit_ns[i] = time.perf_counter_ns() - t
    info_cache = oracle.cache_info()

    archs = [sp.sample(rng) for _ in range(args.batch)]
    batch = {}
    for form, data in (("dicts", archs), ("int array", _as_array(sp, archs))):
        best = np.inf
        for _ in range(3):
            t = time.perf_counter()
            lat = oracle.batch(data)
            best = min(best, time.perf_counter() - t)
        batch[form] = {"n": len(lat), "seconds": best, "archs_per_s": len(lat) / best}

    lat, _, high = oracle.predict_batch(archs)
    budget = float(np.median(lat))
    bounds = oracle.bounds()
    checks = {}
    if args.measure > 0:
        pool = archs[:10_000]
        flops = flops_proxy(sp, pool)
        for rule, value in (("mean", lat[:10_000]), ("upper", high[:10_000])):
            ok = np.flatnonzero(value <= budget)
            pick = ok[np.argsort(-flops[ok])][: args.measure]
            chosen = [pool[i] for i in pick]
            if not chosen:
                console.print(f"no random subnet is feasible by the {rule} rule at {budget:.3f} ms; skipped")
                checks[rule] = {"n": 0, "meets_budget": 0, "share": None}
                continue
            console.print(f"measuring {len(chosen)} subnets feasible by the {rule} rule on {args.device!r} ...")
            measured = measure_archs(args.device, sp, chosen, target=oracle.target, passes=args.check_passes)
            meets = measured <= budget
            checks[rule] = {"n": len(chosen), "meets_budget": int(meets.sum()), "share": float(meets.mean()),
                            "predicted_ms": [float(lat[i]) for i in pick], "upper_ms": [float(high[i]) for i in pick],
                            "measured_ms": [float(x) for x in measured],
                            "median_rel_error": float(np.median(np.abs(lat[pick] - measured) / measured))}

    t = Table(title=f"latency oracle: {args.space} on {args.device} ({pred.kind}, {oracle.mode} path, 1 core)")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("target", justify="right")
    t.add_row("table build (cold)", f"{build_s:.2f} s", "")
    t.add_row("single query, cache miss, median", f"{np.median(miss_ns) / 1e3:.1f} µs", "≤ 100 µs")
    t.add_row("single query, cache miss, p90", f"{np.percentile(miss_ns, 90) / 1e3:.1f} µs", "")
    t.add_row("single query, cache hit, median", f"{np.median(hit_ns) / 1e3:.1f} µs", "")
    for form, b in batch.items():
        t.add_row(f"batch of {b['n']:,} ({form})", f"{b['archs_per_s']:,.0f} archs/s", "≥ 100,000/s")
    t.add_row("budget = median predicted latency", f"{budget:.3f} ms", "")
    t.add_row("exact bounds", f"{bounds.min_ms:.3f} .. {bounds.max_ms:.3f} ms", "")
    for rule, c in checks.items():
        if not c["n"]:
            t.add_row(f"measured ≤ budget ({rule} rule)", "no feasible subnet", "≥ 95 %")
            continue
        t.add_row(f"measured ≤ budget ({rule} rule)", f"{c['meets_budget']}/{c['n']} = {c['share']:.0%}", "≥ 95 %")
        t.add_row(f"median |pred-meas|/meas ({rule} set)", f"{c['median_rel_error']:.1%}", "")
    console.print(t)

    out = {"machine": info, "device": args.device, "space": args.space, "predictor_kind": pred.kind, "path": oracle.mode, "target": oracle.target,
           "overhead": pred.overhead.to_dict(), "table_build_s": build_s,
           "single_miss_us": {"median": float(np.median(miss_ns) / 1e3), "p90": float(np.percentile(miss_ns, 90) / 1e3)},
           "single_hit_us": {"median": float(np.median(hit_ns) / 1e3)}, "cache": info_cache, "batch": batch,
           "budget_ms": budget, "bounds": bounds.to_dict(), "measured_check": checks}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    console.print(f"wrote {args.out}")


def _as_array(sp: object, archs: list[dict]) -> np.ndarray:
    """ks[20], e[20], d[5], r values per row (the int-array form ``Oracle.batch`` takes for ofa_mbv3)."""
    if getattr(sp, "name", "") != "ofa_mbv3":
        return archs  # type: ignore[return-value]
    return np.array([a["ks"] + a["e"] + a["d"] + [a["r"]] for a in archs], dtype=np.int64)


if __name__ == "__main__":
    main()
