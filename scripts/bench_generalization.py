#!/usr/bin/env python3
"""Leave-one-family-out: how well does a device's predictor do on networks of a family it never saw?

On a device (default the built-in ``local``) this

1. samples ``--per-family`` random variants of every family of the model corpus (:mod:`hwlat.corpus`,
   deterministic per seed) and exports each to ONNX;
2. profiles them the way a user profiles their own networks: the whole models and every distinct
   kernel of them alone (``hwlat profile DEV --models DIR --model-kernels``), plus a kernel suite
   (``--suite``), all in passes minutes apart with confirmed floors (``--passes``, ``--confirm``);
3. for each family F in turn trains the predictor (GBDT and/or MLP) on everything but F: F's whole
   models are excluded, and so are the kernels that occur only in F's models (a kernel that another
   family or the suite also has is knowledge the device legitimately holds), then predicts F's
   models from their ONNX files exactly as ``hwlat predict`` would.

**Reference.** Each model's *floor*: the lowest per-window minimum over all its measurement windows
(the same agent and timing loop a user's ``hwlat measure`` runs, at least ``--passes`` windows
minutes apart), raw, with no drift correction. The script prints the number of windows.

Printed per family and overall: share within ±10 % / ±5 %, MAPE, median signed error, the share of
measured floors inside the predicted 90 % interval (coverage), the plain sum of predicted kernels
(no whole-model stage) within ±10 %, and Σ kernels measured alone / whole model measured (where the
time goes). Writes JSON (``--out``). Everything lives in a profiles root of its own (``--root``), so
its LOFO predictors never replace the device's own; a rerun measures only what is missing.

    python scripts/bench_generalization.py [--device local] [--per-family 6] [--suite quick]
        [--passes 3] [--confirm 0.03] [--max-passes 6] [--kinds gbdt,mlp] [--families a,b]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table


def _score(pred: np.ndarray, lo: np.ndarray, hi: np.ndarray, y: np.ndarray, plain: np.ndarray) -> dict[str, Any]:
    rel = pred / y - 1.0
    return {"n": len(y), "within_10": float(np.mean(np.abs(rel) <= 0.10)) if len(y) else float("nan"),
            "within_5": float(np.mean(np.abs(rel) <= 0.05)) if len(y) else float("nan"),
            "mape": float(np.mean(np.abs(rel))) if len(y) else float("nan"),
            "median_err": float(np.median(rel)) if len(y) else float("nan"),
            "coverage_90": float(np.mean((lo <= y) & (y <= hi))) if len(y) else float("nan"),
            "plain_sum_within_10": float(np.mean(np.abs(plain / y - 1.0) <= 0.10)) if len(y) else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="local")
    ap.add_argument("--root", type=Path, default=Path("bench_results/generalization_profiles"),
                    help="profiles root of this benchmark (kept apart from ./profiles)")
    ap.add_argument("--per-family", type=int, default=6, help="random variants per corpus family")
    ap.add_argument("--families", default="all", help="comma-separated corpus families, or 'all'")
    ap.add_argument("--seed", type=int, default=0, help="first corpus seed")
    ap.add_argument("--suite", default="quick", help="kernel suite measured beside the corpus ('none' to skip)")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--confirm", type=float, default=0.03)
    ap.add_argument("--max-passes", type=int, default=6)
    ap.add_argument("--max-time", type=float, default=1.0, help="time cap per measured item (s)")
    ap.add_argument("--kinds", default="gbdt,mlp")
    ap.add_argument("--fast", action="store_true", help="train with the fast (smaller) estimator settings")
    ap.add_argument("--profile-only", action="store_true", help="measure, do not train")
    ap.add_argument("--out", type=Path, default=Path("bench_results/bench_generalization.json"))
    args = ap.parse_args()

    args.root.mkdir(parents=True, exist_ok=True)
    os.environ["HWLAT_PROFILES"] = str(args.root.resolve())

    from hwlat import corpus
    from hwlat.cli.progress import profiling_progress, simple_progress
    from hwlat.decompose.records import read_kernel_list
    from hwlat.devices import get_device
    from hwlat.export.onnx_export import torch_to_onnx
    from hwlat.predictors.training import kernel_data, kernel_hash, train
    from hwlat.profiling.items import model_item
    from hwlat.profiling.passes import profile_passes
    from hwlat.profiling.runner import profile
    from hwlat.profiling.sources import (
        file_kernels_path,
        kernel_items,
        model_kernel_items,
        record_model_kernels,
    )
    from hwlat.store import ProfileStore

    console = Console()
    t_start = time.monotonic()
    dev = get_device(args.device)
    if dev.runtime != "onnxruntime":
        raise SystemExit(f"{dev.name} runs {dev.runtime}; this benchmark decomposes ONNX files (use an "
                         "onnxruntime device)")
    store = ProfileStore(dev.name)
    fams = corpus.families() if args.families == "all" else [f for f in args.families.split(",") if f]
    folder = args.root / "corpus_models"
    folder.mkdir(parents=True, exist_ok=True)

    family_of: dict[str, str] = {}
    models = []
    with simple_progress("exporting corpus models") as tick:
        total = len(fams) * args.per_family
        for i, fam in enumerate(fams):
            for j in range(args.per_family):
                spec = corpus.sample(fam, args.seed + j)
                path = folder / f"{spec.name}.onnx"
                if not path.is_file():
                    torch_to_onnx(corpus.build(spec), spec.input_shape, path)
                family_of[path.name] = fam
                models.append(model_item(path))
                tick(i * args.per_family + j + 1, total)
    failed = record_model_kernels(models, dev.runtime)
    if failed:
        console.print(f"[yellow]{len(failed)} corpus models did not decompose: {failed[:5]}[/]")
    with simple_progress("kernels of the corpus models") as tick:
        kitems, _ = model_kernel_items(models, dev.runtime, tick=tick)
    sitems = [] if args.suite == "none" else kernel_items(args.suite, dev.runtime)
    items = models + kitems + sitems
    console.print(f"{len(models)} models of {len(fams)} families, {len(kitems)} distinct corpus kernels, "
                  f"{len(sitems)} suite kernels")
    t_prof = time.monotonic()
    measure = {"max_time_s": args.max_time}

    def run(d: Any, its: list[Any], st: ProfileStore, force: bool) -> Any:
        with profiling_progress(d.name) as cb:
            return profile(d, its, st, force=force, measure=measure, progress=cb)

    summaries = profile_passes(dev, items, store, passes=args.passes, confirm=args.confirm,
                               max_passes=args.max_passes, runner=run)
    err = next((s.error for s in summaries if s.error), None)
    if err:
        raise SystemExit(f"profiling stopped: {err} (rerun to continue; nothing measured is lost)")
    profiling_s = time.monotonic() - t_prof
    if args.profile_only:
        console.print(f"profiled in {profiling_s:.0f} s")
        return

    # reference: raw floor over every window of each whole model
    rows = store.models(latest=False)
    rows = rows[rows["name"].isin(family_of)]
    ref = rows.groupby("name")["min_ms"].min()
    windows = rows.groupby("name").size()
    # kernels of each model, and which family's models each kernel occurs in
    kd = kernel_data(store, "floor_ms")
    k_floor = dict(zip(kd.hashes, kd.y, strict=True))
    kernels_of_model: dict[str, list[str]] = {}
    fams_of_kernel: dict[str, set[str]] = {}
    for it in models:
        p = file_kernels_path(it.sha256, dev.runtime, args.root)
        if not p.is_file():
            continue
        ks, unsup = read_kernel_list(p)
        if unsup:
            continue
        hs = [kernel_hash(k) for k in ks]
        kernels_of_model[it.name] = hs
        for h in hs:
            fams_of_kernel.setdefault(h, set()).add(family_of[it.name])
    key_of = dict(zip(rows["name"], rows["item_key"], strict=False))

    results: dict[str, Any] = {"device": dev.name, "reference": "raw floor: lowest per-window min_ms over all "
                               "windows (no drift correction)", "per_family_models": args.per_family,
                               "profiling_s": round(profiling_s, 1), "kinds": {}}
    ksum_ratio: dict[str, list[float]] = {}
    for name, hs in kernels_of_model.items():
        if name in ref and all(h in k_floor for h in hs):
            ksum_ratio.setdefault(family_of[name], []).append(sum(k_floor[h] for h in hs) / float(ref[name]))

    for kind in [k for k in args.kinds.split(",") if k]:
        per_fam: dict[str, Any] = {}
        allp: list[np.ndarray] = [[], [], [], [], []]  # type: ignore[list-item]
        for fam in fams:
            names = [n for n in kernels_of_model if family_of[n] == fam and n in ref]
            if not names:
                continue
            only_f = {h for n in names for h in kernels_of_model[n] if fams_of_kernel[h] == {fam}}
            res = train(dev.name, kind, root=args.root, holdout=0.0, fast=args.fast, target="floor_ms",
                        exclude_models=[key_of[n] for n in names], exclude_kernels=only_f)
            pred = res.predictor
            out = np.array([[p.latency_ms, p.low_ms, p.high_ms, p.kernel_sum_ms]
                            for p in (pred.predict(folder / n) for n in names)])
            y = np.array([float(ref[n]) for n in names])
            sc = _score(out[:, 0], out[:, 1], out[:, 2], y, out[:, 3])
            sc["kernel_sum_ratio_median"] = float(np.median(ksum_ratio[fam])) if fam in ksum_ratio else None
            sc["windows_median"] = int(np.median([windows[n] for n in names]))
            per_fam[fam] = sc
            for lst, v in zip(allp, (out[:, 0], out[:, 1], out[:, 2], y, out[:, 3]), strict=True):
                lst.append(v)
            console.print(f"{kind} {fam}: {sc['within_10']:.0%} within ±10 % ({sc['n']} models, "
                          f"{time.monotonic() - t_start:.0f} s)")
        cat = [np.concatenate(v) for v in allp]
        overall = _score(*cat)
        overall["families_below_80"] = sorted(f for f, s in per_fam.items() if s["within_10"] < 0.8)
        results["kinds"][kind] = {"per_family": per_fam, "overall": overall}
        tab = Table(title=f"{dev.name} leave-one-family-out, {kind} (reference: raw floor over windows)")
        for col in ("family", "models", "±10 %", "±5 %", "MAPE", "median err", "90 % cover", "plain Σ ±10 %",
                    "Σ alone / whole"):
            tab.add_column(col, justify="right")
        for fam, s in [*per_fam.items(), ("overall", overall)]:
            ratio = s.get("kernel_sum_ratio_median")
            tab.add_row(fam, str(s["n"]), f"{s['within_10']:.1%}", f"{s['within_5']:.1%}", f"{s['mape']:.1%}",
                        f"{s['median_err']:+.1%}", f"{s['coverage_90']:.1%}", f"{s['plain_sum_within_10']:.1%}",
                        "" if ratio is None else f"{ratio:.2f}")
        console.print(tab)
    results["seconds"] = round(time.monotonic() - t_start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    console.print(f"profiling {profiling_s:.0f} s, total {results['seconds']:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
