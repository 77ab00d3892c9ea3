#!/usr/bin/env python3
"""Does every campaign a user adds to a store leave the predictor at least as good as before?

On ``--device`` (default ``local``), in a fresh profiles folder (``--profiles``, default
bench_results/campaigns/profiles), the sequence the README suggests, each step with the command's
default options, and ``hwlat train DEV --kind gbdt`` after each:

1. ``hwlat quickstart``
2. ``hwlat profile DEV --suite standard``
3. ``hwlat profile DEV --zoo --model-kernels``

After each step it prints held-out kernel ±10 % and whole-model ±10 % (what ``hwlat predict``
returns), the training target and the fitted host drift (and whether training trusted it).
Target (issue 31): no step lowers either figure by more than 1 point, and the last step's
held-out kernels are ≥ 93 % (GBDT). The full run takes well over an hour on a 2-vCPU VM;
``--quick`` runs the same three steps, smaller (a quickstart with 10 subnets and two zoo models,
the standard suite's kernels of three types, then the zoo), in about a quarter of an hour, to
check the machinery and the direction of the figures.
Writes bench_results/bench_campaigns.json.

    python scripts/bench_campaigns.py [--quick] [--device local] [--max-time 0.3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

QUICK_TYPES = "add,dwconv,linear"
QUICK_ZOO = "mobilenet_v3_small,resnet18"


def _hwlat(env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run ``hwlat ARGS --json``; the parsed output, or exit with the command's error line."""
    cmd = [sys.executable, "-m", "hwlat", *args, "--json"]
    t = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode not in (0, 1):  # 1: some items failed, which the summary reports
        sys.exit(f"bench_campaigns: `hwlat {' '.join(args)}` failed: {r.stderr.strip().splitlines()[-1:]}")
    out = json.loads(r.stdout) if r.stdout.strip() else {}
    warnings = [ln.strip() for ln in r.stderr.splitlines() if "not trusted" in ln]
    return {"out": out, "seconds": time.monotonic() - t, "warnings": warnings}


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:5.1f} %"


def _scores(env: dict[str, str], device: str) -> dict[str, Any]:
    res = _hwlat(env, "train", device, "--kind", "gbdt")
    summary = res["out"]["evaluation"]["summary"]
    manifest = res["out"].get("manifest", {})
    drift = manifest.get("host_drift") or {}
    return {"kernels_acc10": (summary.get("kernel") or {}).get("acc10"),
            "models_acc10": (summary.get("model_default") or {}).get("acc10"),
            "n_kernels": (summary.get("kernel") or {}).get("n"),
            "n_models": (summary.get("model_default") or {}).get("n"),
            "target": manifest.get("target"), "drift_trusted": drift.get("trusted"),
            "drift_classes": drift.get("classes"), "train_s": res["seconds"], "warnings": res["warnings"]}


def _fixed_set(device: str, fixed: dict[str, list[str]] | None) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """±10 % of the trained GBDT predictor on the items held out after the first step (``fixed``;
    taken from this predictor's held-out items when None), and that set."""
    from hwlat.predictors.evaluation import evaluate
    from hwlat.predictors.predictor import Predictor
    from hwlat.predictors.training import host_drift, kernel_data, model_data, read_train_keys
    from hwlat.store import ProfileStore

    pred = Predictor.load(device, kind="gbdt")
    store = ProfileStore(device)
    target = str(pred.manifest.get("target", "median_ms"))
    drift = host_drift(store) if target == "floor_ms" else None
    kd = kernel_data(store, target, drift)
    md = model_data(store, pred.runtime, target=target, drift=drift)
    if fixed is None:
        tk = read_train_keys(pred.directory)
        fixed = {"kernels": [h for h in kd.hashes if h not in tk.get("kernels", set())],
                 "models": [k for k in md.item_keys if k not in tk.get("models", set())]}
    keep_k, keep_m = set(fixed["kernels"]), set(fixed["models"])
    others = {"kernels": [h for h in kd.hashes if h not in keep_k], "models": [k for k in md.item_keys if k not in keep_m]}
    s = evaluate(pred, store, train_keys=others, kd=kd, md=md, with_points=False)["summary"]
    return ({"kernels_acc10": (s.get("kernel") or {}).get("acc10"), "n_kernels": (s.get("kernel") or {}).get("n"),
             "models_acc10": (s.get("model_default") or {}).get("acc10"), "n_models": (s.get("model_default") or {}).get("n")},
            fixed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="local")
    ap.add_argument("--quick", action="store_true", help="smaller steps, minutes instead of hours")
    ap.add_argument("--max-time", type=float, default=None, help="time cap per item (s) for every step")
    ap.add_argument("--profiles", type=Path, default=Path("bench_results/campaigns/profiles"))
    ap.add_argument("--keep", action="store_true", help="keep an existing profiles folder (resume)")
    ap.add_argument("--out", type=Path, default=Path("bench_results/bench_campaigns.json"))
    args = ap.parse_args()

    if args.profiles.exists() and not args.keep:
        shutil.rmtree(args.profiles)
    args.profiles.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HWLAT_PROFILES": str(args.profiles.resolve())}
    os.environ["HWLAT_PROFILES"] = env["HWLAT_PROFILES"]  # for the fixed-set scoring in this process
    dev = args.device
    cap = ["--max-time", str(args.max_time)] if args.max_time else []
    if args.quick:
        small = ["--subnets", "10", "--subnet-kernels", "3", "--kind", "gbdt", "--zoo", QUICK_ZOO]
        steps = [("quickstart (small)", ["quickstart", "--device", dev, *small, *cap]),
                 ("profile --suite standard (3 types)", ["profile", dev, "--suite", "standard", "--types",
                                                        QUICK_TYPES, *cap]),
                 ("profile --zoo --model-kernels", ["profile", dev, "--zoo", "--model-kernels", *cap])]
    else:
        steps = [("quickstart", ["quickstart", "--device", dev]),
                 ("profile --suite standard", ["profile", dev, "--suite", "standard", *cap]),
                 ("profile --zoo --model-kernels", ["profile", dev, "--zoo", "--model-kernels", *cap])]
    results: list[dict[str, Any]] = []
    fixed: dict[str, list[str]] | None = None
    for name, cmd in steps:
        res = _hwlat(env, *cmd)
        scores = _scores(env, dev)
        scores["fixed"], fixed = _fixed_set(dev, fixed)
        results.append({"step": name, "command": "hwlat " + " ".join(cmd), "profile_s": res["seconds"],
                        "warnings": res["warnings"], **scores})
        k, m = scores["kernels_acc10"], scores["models_acc10"]
        print(f"{name:32s} profile {res['seconds']:6.0f} s  held-out kernels ±10 % "
              f"{'-' if k is None else f'{100 * k:5.1f} %'} (n={scores['n_kernels']})  models ±10 % "
              f"{'-' if m is None else f'{100 * m:5.1f} %'} (n={scores['n_models']})  "
              f"target {scores['target']}  drift trusted {scores['drift_trusted']}", flush=True)
        fx = scores["fixed"]
        print(f"{'':32s} on the first step's held-out items: kernels ±10 % {_pct(fx['kernels_acc10'])} "
              f"(n={fx['n_kernels']})  models ±10 % {_pct(fx['models_acc10'])} (n={fx['n_models']})", flush=True)
        for w in res["warnings"] + scores["warnings"]:
            print(f"  {w}")
        # Written after every step: a run of over an hour that dies late still leaves its figures.
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"device": dev, "quick": args.quick, "steps": results}, indent=1))
    drops = []
    for a, b in zip(results, results[1:]):
        for key in ("kernels_acc10", "models_acc10"):
            for label, x, z in (("held out", a, b), ("fixed set", a["fixed"], b["fixed"])):
                if x[key] is not None and z[key] is not None and z[key] < x[key] - 0.01:
                    drops.append(f"{b['step']}: {label} {key} {100 * x[key]:.1f} -> {100 * z[key]:.1f} %")
    last = results[-1]["kernels_acc10"]
    verdict = {"no_step_drops_over_1_point": not drops, "drops": drops,
               "last_kernels_acc10_at_least_93": last is not None and last >= 0.93}
    print("verdict:", json.dumps(verdict))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": dev, "quick": args.quick, "steps": results, "verdict": verdict},
                                   indent=1))


if __name__ == "__main__":
    main()
