#!/usr/bin/env python3
"""How well does the sum of a model's measured kernels match the measured whole model?

On a device (default the built-in ``local``): every zoo model and ``--subnets-per-space`` random
subnets of each CNN space (ofa_mbv3, ofa_resnet50, nb201, fbnet) are measured whole, decomposed
(``hwlat.decompose.kernels_of`` on the exported ONNX file), and each distinct kernel is exported
alone (``hwlat.kernels.export.export_kernel``) and measured with ``profile()``. Prints, per space,
the distribution of Σ measured kernels / measured whole model (median, p10, p90), for the median
and the min statistic, and writes bench_results/bench_kernel_sum.json.

Everything goes through the device's profile store, so a re-run only measures what is missing.

    python scripts/bench_kernel_sum.py [--device local] [--subnets-per-space 50] [--max-time 0.5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

CNN_SPACES = ("ofa_mbv3", "ofa_resnet50", "nb201", "fbnet")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="local")
    ap.add_argument("--subnets-per-space", type=int, default=50)
    ap.add_argument("--spaces", default=",".join(CNN_SPACES))
    ap.add_argument("--zoo", default="all", help="comma-separated zoo models, 'all' or 'none'")
    ap.add_argument("--max-time", type=float, default=0.5, help="time cap per measured item (s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force-models", action="store_true",
                    help="measure the whole models again even if stored (e.g. stored under heavy load)")
    ap.add_argument("--out", type=Path, default=Path("bench_results/bench_kernel_sum.json"))
    args = ap.parse_args()

    from hwlat import zoo
    from hwlat.cli.progress import profiling_progress, simple_progress
    from hwlat.decompose import kernels_of
    from hwlat.devices import get_device
    from hwlat.export.formats import format_for
    from hwlat.kernels.export import export_kernel
    from hwlat.profiling import Item, profile
    from hwlat.profiling.sources import cache_dir, space_items, zoo_items
    from hwlat.store import ProfileStore

    console = Console()
    t0 = time.monotonic()
    dev = get_device(args.device)
    fmt = format_for(dev.runtime)
    if fmt != "onnx":
        raise SystemExit(f"{dev.name} runs {dev.runtime}; this benchmark decomposes ONNX files (use an "
                         "onnxruntime device)")
    store = ProfileStore(dev.name)
    spaces = [s for s in args.spaces.split(",") if s]
    zoo_names = zoo.names() if args.zoo == "all" else [] if args.zoo == "none" else args.zoo.split(",")

    models = []  # (group, item)
    with simple_progress("exporting zoo models") as tick:
        models += [("zoo", it) for it in zoo_items(dev.runtime, zoo_names, tick=tick)]
    for sp in spaces:
        with simple_progress(f"exporting {sp} subnets") as tick:
            models += [(sp, it) for it in space_items(sp, args.subnets_per_space, dev.runtime, seed=args.seed,
                                                      tick=tick)]
    kernel_items: dict[str, Item] = {}
    model_kernels: list[list[str]] = []
    skipped: list[dict] = []
    with simple_progress("decomposing + exporting kernels") as tick:
        for i, (_, it) in enumerate(models):
            dec = kernels_of(it.ensure_file(), runtime=dev.runtime)  # released after an earlier run
            if dec.unsupported:
                skipped.append({"model": it.name, "unsupported": [u["op_type"] for u in dec.unsupported]})
            keys = []
            for k in dec.kernels:
                key = k.key()
                keys.append(key)
                if key not in kernel_items:
                    path = export_kernel(k, fmt, cache_dir("kernels", fmt))
                    kernel_items[key] = Item(table="kernels", name=f"{k.type}:{path.stem}", file=path,
                                             kernel_type=k.type, config=dict(k.config))
            model_kernels.append(keys)
            tick(i + 1, len(models))
    items = [it for _, it in models] + list(kernel_items.values())
    console.print(f"{len(models)} models, {len(kernel_items)} distinct kernels")
    measure = {"max_time_s": args.max_time}
    if args.force_models:
        with profiling_progress(f"{dev.name} (whole models, forced)") as cb:
            summary = profile(dev, [it for _, it in models], store, measure=measure, progress=cb, force=True)
        if summary.error:
            raise SystemExit(f"profiling stopped: {summary.error}")
    with profiling_progress(dev.name) as cb:
        summary = profile(dev, items, store, measure=measure, progress=cb)
    if summary.error:
        raise SystemExit(f"profiling stopped: {summary.error}")

    fp = summary.fingerprint or {}
    opts = dev.runtime_options()
    rv = str(fp.get("runtime_version", ""))
    kdf = store.kernels(expand=False).set_index("item_key")
    mdf = store.models().set_index("item_key")
    kstat = {key: kdf.loc[it.key(dev.runtime, rv, opts)] for key, it in kernel_items.items()
             if it.key(dev.runtime, rv, opts) in kdf.index}
    rows = []
    for (group, it), keys in zip(models, model_kernels, strict=True):
        mk = it.key(dev.runtime, rv, opts)
        if mk not in mdf.index or any(k not in kstat for k in keys) or not keys:
            continue
        m = mdf.loc[mk]
        rows.append({"group": group, "model": it.name, "n_kernels": len(keys),
                     "whole_median_ms": float(m["median_ms"]), "whole_min_ms": float(m["min_ms"]),
                     "sum_median_ms": float(sum(kstat[k]["median_ms"] for k in keys)),
                     "sum_min_ms": float(sum(kstat[k]["min_ms"] for k in keys))})
    table = Table("group", "models", "kernels/model", "Σ/whole median [p10, p90]", "Σ/whole (min stat) [p10, p90]",
                  title=f"{dev.name}: Σ measured kernels / measured whole model")
    groups: dict[str, dict] = {}
    for g in ["zoo", *spaces, "all"]:
        sel = [r for r in rows if g == "all" or r["group"] == g]
        if not sel:
            continue
        rm = np.array([r["sum_median_ms"] / r["whole_median_ms"] for r in sel])
        rn = np.array([r["sum_min_ms"] / r["whole_min_ms"] for r in sel])
        q = lambda a: [float(v) for v in np.quantile(a, [0.5, 0.1, 0.9])]  # noqa: E731
        groups[g] = {"n": len(sel), "kernels_per_model": float(np.mean([r["n_kernels"] for r in sel])),
                     "ratio_median_stat": dict(zip(("median", "p10", "p90"), q(rm), strict=True)),
                     "ratio_min_stat": dict(zip(("median", "p10", "p90"), q(rn), strict=True))}
        a, b = q(rm), q(rn)
        table.add_row(g, str(len(sel)), f"{groups[g]['kernels_per_model']:.0f}",
                      f"{a[0]:.3f} [{a[1]:.3f}, {a[2]:.3f}]", f"{b[0]:.3f} [{b[1]:.3f}, {b[2]:.3f}]")
    console.print(table)
    out = {"device": dev.name, "runtime": dev.runtime, "fingerprint_id": fp.get("fingerprint_id"),
           "subnets_per_space": args.subnets_per_space, "max_time_s": args.max_time, "groups": groups,
           "models": rows, "skipped_unsupported": skipped, "profile": summary.to_dict(),
           "seconds": time.monotonic() - t0}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    console.print(f"wrote {args.out} ({out['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
