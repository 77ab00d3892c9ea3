#!/usr/bin/env python3
"""Repeatability of the measurement protocol on a device (default: the built-in ``local``).

Measures the same set of models twice, in two independent profiling runs (fresh agent
process, fresh store), and prints the median absolute relative difference between the runs
and the agent's overhead per item (wall time of a run minus the time spent warming up and
timing, divided by the number of items). Writes bench_results/bench_repeatability.json.

    python scripts/bench_repeatability.py [--device local] [--models 24] [--max-time 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="local")
    ap.add_argument("--models", type=int, default=24, help="number of models (>= 20)")
    ap.add_argument("--max-time", type=float, default=2.0, help="time cap per item (s)")
    ap.add_argument("--out", default="bench_results/bench_repeatability.json")
    args = ap.parse_args()

    from hwlat.devices import get_device
    from hwlat.profiling import profile
    from hwlat.profiling.sources import kernel_items
    from hwlat.store import ProfileStore

    dev = get_device(args.device)
    # Real kernels of every type from the quick suite, spread over its cost range.
    items = kernel_items("quick", dev.runtime)
    idx = np.linspace(0, len(items) - 1, args.models).round().astype(int)
    items = [items[i] for i in sorted(set(idx))]
    console = Console()
    runs = []
    for rep in (1, 2):
        root = Path(tempfile.mkdtemp(prefix=f"hwlat-repeat{rep}-"))
        store = ProfileStore(dev.name, root=root)
        t0 = time.perf_counter()
        summary = profile(dev, items, store, force=True, measure={"max_time_s": args.max_time})
        wall = time.perf_counter() - t0
        if summary.error or summary.failed:
            raise SystemExit(f"run {rep} failed: {summary.error or summary.failed[:3]}")
        df = store.kernels().set_index("name")
        # time the agent spends loading, warming up and timing is measurement, not overhead
        load = float(sum(json.loads(e).get("load_s", 0.0) for e in df["extra"]))
        timed = float(df["measure_s"].sum() + df["warmup_s"].fillna(0).sum()) + load
        runs.append({"df": df, "wall_s": wall, "timed_s": timed, "converged": float(df["converged"].mean())})
        console.print(f"run {rep}: {len(df)} items in {wall:.1f} s")
    a, b = runs[0]["df"]["median_ms"], runs[1]["df"]["median_ms"].reindex(runs[0]["df"].index)
    rel = (a - b).abs() / ((a + b) / 2)
    overhead = [(r["wall_s"] - r["timed_s"]) / len(items) * 1e3 for r in runs]
    res = {
        "device": dev.name, "runtime": dev.runtime, "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "load_avg_1m": os.getloadavg()[0], "n_models": len(items),
        "median_abs_rel_diff": float(rel.median()), "p90_abs_rel_diff": float(rel.quantile(0.9)),
        "max_abs_rel_diff": float(rel.max()), "share_within_3pct": float((rel <= 0.03).mean()),
        "converged_share": [r["converged"] for r in runs],
        "agent_overhead_ms_per_item": overhead, "wall_s": [r["wall_s"] for r in runs],
        "per_model": {k: {"run1_ms": float(a[k]), "run2_ms": float(b[k]), "rel_diff": float(rel[k])} for k in a.index},
    }
    t = Table("metric", "value", title=f"repeatability on {dev.name} ({dev.runtime}, {dev.threads} thread(s))")
    t.add_row("models", str(len(items)))
    t.add_row("median |run1-run2| / mean", f"{100 * res['median_abs_rel_diff']:.2f} %  (target ≤ 3 %)")
    t.add_row("p90 / max relative diff", f"{100 * res['p90_abs_rel_diff']:.2f} % / {100 * res['max_abs_rel_diff']:.2f} %")
    t.add_row("share within ±3 %", f"{100 * res['share_within_3pct']:.0f} %")
    t.add_row("converged (run1, run2)", ", ".join(f"{100 * c:.0f} %" for c in res["converged_share"]))
    t.add_row("agent overhead per item", ", ".join(f"{o:.0f} ms" for o in overhead))
    t.add_row("wall time per run", ", ".join(f"{w:.1f} s" for w in res["wall_s"]))
    t.add_row("load average (1 min) at end", f"{res['load_avg_1m']:.2f}")
    console.print(t)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
