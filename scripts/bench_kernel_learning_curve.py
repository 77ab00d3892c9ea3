#!/usr/bin/env python3
"""Kernel-level learning curve: held-out ±10 % accuracy of one type's GBDT/MLP vs training-set size.

Uses what the device's store already holds (nothing is measured): the same hash split as
``hwlat train`` (20 % of kernels held out), and for each fraction of the remaining training kernels
(a random subset, ``--seeds`` draws) fits the type's model and scores it on all held-out kernels of
that type. A curve still rising at 100 % says more kernels of that type will help; a flat one says
the model or the labels are the limit. Writes bench_results/bench_kernel_learning_curve.json.

    python scripts/bench_kernel_learning_curve.py --device local --types conv_bn_act,dwconv,conv2d
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="local")
    ap.add_argument("--types", default="conv_bn_act,dwconv,conv2d")
    ap.add_argument("--kind", default="gbdt", choices=("gbdt", "mlp"))
    ap.add_argument("--target", default="floor_ms", choices=("median_ms", "min_ms", "floor_ms"))
    ap.add_argument("--fractions", default="0.25,0.5,0.75,1.0")
    ap.add_argument("--seeds", type=int, default=2, help="random subsets per fraction below 1.0")
    ap.add_argument("--out", type=Path, default=Path("bench_results/bench_kernel_learning_curve.json"))
    args = ap.parse_args()

    from hwlat.predictors.features import kernel_feature_dict, kernel_feature_names
    from hwlat.predictors.kernel_models import POOLED, KernelLevelModel
    from hwlat.predictors.training import is_holdout, kernel_data
    from hwlat.store import ProfileStore

    kd = kernel_data(ProfileStore(args.device), target=args.target)
    held = np.array([is_holdout(h, 0.2) for h in kd.hashes], dtype=bool)
    fracs = [float(f) for f in args.fractions.split(",")]
    console = Console()
    table = Table("type", "held out", *[f"{f:.0%} of train" for f in fracs],
                  title=f"{args.device} ({args.kind}, {args.target}): held-out ±10 % vs training kernels")
    results: dict[str, dict] = {}
    for t in [x for x in args.types.split(",") if x]:
        idx = np.array([i for i, k in enumerate(kd.kernels) if k.type == t], dtype=int)
        tr, te = idx[~held[idx]], idx[held[idx]]
        if len(tr) < 24 or not len(te):
            console.print(f"{t}: {len(tr)} training / {len(te)} held-out kernels stored; skipped")
            continue
        row: dict[str, dict] = {}
        for f in fracs:
            accs = []
            for s in range(1 if f >= 1.0 else args.seeds):
                sub = np.random.default_rng(s).permutation(tr)[:max(24, int(round(f * len(tr))))]
                km = KernelLevelModel(args.kind)
                part = km._fit_part(t, [kernel_feature_dict(kd.kernels[i]) for i in sub], kd.y[sub],
                                    kernel_feature_names(t))
                km.parts = {t: part, POOLED: part}
                p = km.predict([kd.kernels[i] for i in te])[0]
                accs.append(float(np.mean(np.abs(p / kd.y[te] - 1.0) <= 0.1)))
            row[str(f)] = {"n_train": int(len(sub)), "acc10": float(np.mean(accs)), "draws": accs}
        results[t] = {"n_heldout": int(len(te)), "curve": row}
        table.add_row(t, str(len(te)), *[f"{100 * row[str(f)]['acc10']:.1f} % ({row[str(f)]['n_train']})"
                                         for f in fracs])
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": args.device, "kind": args.kind, "target": args.target,
                                    "types": results}, indent=1))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
