#!/usr/bin/env python3
"""Accuracy of the device predictors (GBDT and MLP) on held-out kernels, zoo models and subnets,
plus the few-shot transfer curve to a second device.

On ``--device`` (default ``local``), using its profile store (a re-run only measures what is missing).
Every item is measured in ``--passes`` passes (default 3), then re-measured while its two lowest
pass minima are more than ``--confirm`` apart (default 3 %, up to ``--max-passes`` 6); the models
learn ``--target floor_ms`` (why 3 %: README, "Confirmed floors").

1. the kernel suite ``--suite`` (default standard) in nine random draws (``--suite-seeds 0,...,8``:
   the grid configs once, nine times the random ones) and the kernels of the training subnets are
   profiled; 20 % of them (hash split) are held out; ``--adaptive R`` adds R nn-Meter-style
   adaptive rounds planned on the training kernels only, each with ``--anchors`` (share of the
   round) stored training kernels measured again among its new ones so the host-drift fit ties the
   round to the store (held-out accuracy is reported for all kernels, for the suite's own
   kernels, a test set adaptive rounds leave unchanged, and for the first draw and space kernels,
   the further draws and the adaptive kernels separately);
2. ``--subnets-per-space`` training subnets (seed 0) and ``--test-per-space`` test subnets (seed 1000,
   drawn on past any that are also training subnets, so each space has that many never trained on),
   and every zoo model (never trained on), are profiled;
3. for each kind: ``hwlat.predictors.training.train`` → kernel-level held-out ±10 % accuracy
   (target ≥ 95 %), whole-model ±10 % on zoo + test subnets (target ≥ 90 %), RMSE, Spearman —
   both for what ``Predictor.predict`` returns (subnet model where the space has one) and for
   the kernel sum alone;
4. transfer: the same models measured on ``--transfer-device`` (default local-2t); a
   TransferRegressor from the source predictor fitted on N = 10/20/50/100 of them, scored on the rest.

Writes bench_results/bench_accuracy.json. A reduced run in minutes:

    python scripts/bench_accuracy.py --suite quick --suite-seeds 0 --subnets-per-space 10 --test-per-space 5 --max-time 0.2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

CNN_SPACES = ("ofa_mbv3", "ofa_resnet50", "nb201", "fbnet")


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, Any] | None:
    from hwlat.predictors.metrics import report

    return report(y, p) if len(y) else None


def _profile(dev: Any, items: list, max_time: float, console: Console, passes: int = 1,
             confirm: float | None = None, max_passes: int | None = None, store: Any = None,
             anchors: list | None = None) -> Any:
    from hwlat.cli.progress import profiling_progress
    from hwlat.profiling import profile
    from hwlat.profiling.passes import profile_passes
    from hwlat.store import ProfileStore

    def run(d: Any, its: list, store: ProfileStore, force: bool) -> Any:
        with profiling_progress(d.name) as cb:
            s = profile(d, its, store, force=force, measure={"max_time_s": max_time}, progress=cb)
        console.print(f"{d.name}: measured {s.measured}, already stored {s.skipped}, failed {len(s.failed)}")
        return s

    runs = profile_passes(dev, items, store or ProfileStore(dev.name), passes=passes, runner=run, confirm=confirm,
                          max_passes=max_passes, anchors=anchors or ())
    if runs[-1].error:
        raise SystemExit(f"profiling {dev.name} stopped: {runs[-1].error}")
    return runs[0]


def _test_subnets(space: str, n: int, runtime: str, train_shas: set[str], tick: Any) -> list:
    """``n`` subnets of ``space`` drawn with seed 1000 that are not training subnets.

    A small space repeats training archs (nb201 drew 4 of its 50); the seeded draw's prefix is
    stable, so drawing further replaces them without changing the others.
    """
    from hwlat.profiling.sources import space_items

    want = n
    while True:
        drawn = space_items(space, want, runtime, seed=1000, tick=tick)
        te = [it for it in drawn if it.sha256 not in train_shas]
        if len(te) >= n or want >= 4 * n:
            return te[:n]
        want += n - len(te)


def _adaptive(dev: Any, args: argparse.Namespace, console: Console, confirm: float | None,
              test_kernels: set[str]) -> None:
    """nn-Meter-style adaptive rounds, measured with the same passes; the held-out kernels and every
    kernel of a test model are left out of the planning, so their errors never pick training data."""
    from hwlat.predictors.training import is_holdout
    from hwlat.profiling.adaptive import run_adaptive
    from hwlat.store import ProfileStore

    class HeldOut:
        """Held-out kernels, also those of earlier rounds: never planned on, never re-measured as anchors."""

        def __contains__(self, h: object) -> bool:
            return h in test_kernels or (isinstance(h, str) and is_holdout(h, 0.2))

    store = ProfileStore(dev.name)
    held = HeldOut()

    def runner(d: Any, items: list, st: Any, anchors: list) -> Any:
        return _profile(d, items, args.max_time, console, args.passes, confirm, args.max_passes, store=st,
                        anchors=anchors)

    for r in run_adaptive(dev, args.adaptive, args.adaptive_size, store=store, target=args.target,
                          seed=args.adaptive_seed, exclude_kernels=held, anchors=args.anchors, runner=runner,
                          on_start=lambda r: console.print(f"adaptive round {r}/{args.adaptive}: planning …")):
        console.print(f"adaptive round {r.plan.round}: planned {len(r.plan.kernels)}, {r.anchors} anchors, "
                      f"measured {r.summary.measured}; "
                      + ", ".join(f"{t.kernel_type} {t.new}" for t in r.plan.report if t.new))


def _kernel_split(pred: Any, device: str, target: str, extra_draws: set[str]) -> dict[str, Any]:
    """Held-out kernel accuracy split by where the kernels came from: the first suite draw (grid
    configs, random configs) and space kernels; the further random draws of ``--suite-seeds``
    (``extra_draws``, kernel hashes; random configs only, so harder); adaptive rounds (drawn near
    hard configs)."""
    from hwlat.predictors.features import kernels_from_rows
    from hwlat.predictors.training import kernel_data, kernel_hash, read_train_keys
    from hwlat.profiling.adaptive import is_adaptive
    from hwlat.store import ProfileStore

    store = ProfileStore(device)
    kd = kernel_data(store, target)
    trained = read_train_keys(pred.directory).get("kernels", set())
    df = store.kernels(expand=False)
    adaptive = set()
    for t, c, e in zip(df["kernel_type"], df["config"], df["extra"], strict=True):
        if is_adaptive(e):
            try:
                adaptive.add(kernel_hash(kernels_from_rows([t], [c])[0]))
            except (KeyError, ValueError, TypeError):
                continue
    idx = [i for i, h in enumerate(kd.hashes) if h not in trained]
    m = pred.predict_kernels([kd.kernels[i] for i in idx], return_interval=False)
    ad = np.array([kd.hashes[i] in adaptive for i in idx], dtype=bool)
    ex = np.array([kd.hashes[i] in extra_draws for i in idx], dtype=bool) & ~ad
    base = ~ad & ~ex
    y = kd.y[idx]
    return {"suite": _metrics(y[~ad], m[~ad]), "base": _metrics(y[base], m[base]), "extra_draws": _metrics(y[ex], m[ex]),
            "adaptive": _metrics(y[ad], m[ad])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="local")
    ap.add_argument("--suite", default="standard", choices=("quick", "standard", "full"))
    ap.add_argument("--suite-seeds", default="0,1,2,3,4,5,6,7,8",
                    help="comma-separated suite seeds: each seed is another random draw of the suite's kernels "
                         "(grid configs are shared), e.g. 0,1 for twice the random kernels")
    ap.add_argument("--subnets-per-space", type=int, default=50, help="training subnets per space")
    ap.add_argument("--test-per-space", type=int, default=50, help="held-out test subnets per space")
    ap.add_argument("--spaces", default=",".join(CNN_SPACES))
    ap.add_argument("--no-space-kernels", action="store_true",
                    help="do not measure the training subnets' kernels alone (suite kernels only)")
    ap.add_argument("--kinds", default="gbdt,mlp")
    ap.add_argument("--target", default="floor_ms", choices=("median_ms", "min_ms", "floor_ms"),
                    help="measured statistic to predict (floor_ms: lowest over all passes)")
    ap.add_argument("--passes", type=int, default=3,
                    help="measure every item this many times, minutes apart (see hwlat.profiling.passes)")
    ap.add_argument("--confirm", type=float, default=0.03,
                    help="then re-measure items whose two lowest pass minima differ by more than this (0: off)")
    ap.add_argument("--max-passes", type=int, default=6, help="most passes any item gets with --confirm")
    ap.add_argument("--adaptive", type=int, default=0, metavar="ROUNDS",
                    help="adaptive sampling rounds 1 to ROUNDS after the base profile (planned without held-out "
                         "kernels; rounds already in the store are resumed, so 4 after 2 adds two)")
    ap.add_argument("--adaptive-size", type=int, default=None, help="kernels per adaptive round (default 10 %%)")
    ap.add_argument("--adaptive-seed", type=int, default=0,
                    help="seed of the adaptive rounds: each seed numbers its rounds from 1, with its own saved plans")
    ap.add_argument("--anchors", type=float, default=0.25, metavar="SHARE",
                    help="stored training kernels measured again beside each adaptive round's new ones, as a share "
                         "of the round (ties the round's host speed to the store's; 0 for none)")
    ap.add_argument("--max-time", type=float, default=0.5, help="time cap per measured item (s)")
    ap.add_argument("--transfer-device", default="local-2t", help="'' to skip the transfer curve")
    ap.add_argument("--transfer-ns", default="10,20,50,100")
    ap.add_argument("--fast", action="store_true", help="smaller hyper-parameter search")
    ap.add_argument("--profile-only", action="store_true",
                    help="measure what is missing (e.g. one more pass) and stop before training")
    ap.add_argument("--zoo-kernels", action="store_true",
                    help="also measure the zoo models' kernels alone (what `hwlat profile --zoo --model-kernels` "
                         "does) and train each kind a second time on them: zoo accuracy without and with its "
                         "own kernels (the zoo's whole models stay untrained on)")
    ap.add_argument("--out", type=Path, default=Path("bench_results/bench_accuracy.json"))
    args = ap.parse_args()

    from hwlat import zoo
    from hwlat.cli.progress import simple_progress
    from hwlat.devices import get_device
    from hwlat.kernels import get as get_kernel
    from hwlat.predictors.training import kernel_hash, model_data, read_train_keys, train, transfer_data
    from hwlat.predictors.transfer import transfer_curve
    from hwlat.profiling.sources import (
        kernel_items,
        model_kernel_items,
        space_items,
        space_kernel_items,
        zoo_items,
    )
    from hwlat.store import ProfileStore

    console = Console()
    t0 = time.monotonic()
    dev = get_device(args.device)
    spaces = [s for s in args.spaces.split(",") if s]
    seeds = [int(x) for x in args.suite_seeds.split(",") if x.strip()]
    kitems, seen_k, extra_items = [], set(), []
    for j, seed in enumerate(seeds):
        with simple_progress(f"exporting {args.suite} kernels (seed {seed})") as tick:
            for it in kernel_items(args.suite, dev.runtime, seed=seed, tick=tick):
                if it.sha256 not in seen_k:
                    seen_k.add(it.sha256)
                    kitems.append(it)
                    if j:
                        extra_items.append(it)
    train_items, test_items = [], []
    for sp in spaces:
        with simple_progress(f"exporting {sp} subnets") as tick:
            tr = space_items(sp, args.subnets_per_space, dev.runtime, seed=0, tick=tick)
            te = _test_subnets(sp, args.test_per_space, dev.runtime, {it.sha256 for it in tr}, tick)
        if not args.no_space_kernels:
            with simple_progress(f"exporting the kernels of the {sp} training subnets") as tick:
                kitems += space_kernel_items(sp, args.subnets_per_space, dev.runtime, seed=0, tick=tick)
        train_items += tr
        test_items += te
    with simple_progress("exporting zoo models") as tick:
        zitems = zoo_items(dev.runtime, zoo.names(), tick=tick)
    zkitems = []
    if args.zoo_kernels:
        with simple_progress("exporting the zoo models' kernels") as tick:
            zkitems = model_kernel_items(zitems, dev.runtime, tick=tick)[0]
    confirm = args.confirm or None
    summary = _profile(dev, kitems + train_items + test_items + zitems + zkitems, args.max_time, console,
                       args.passes, confirm, args.max_passes)
    fp = summary.fingerprint or {}
    rv, opts = str(fp.get("runtime_version", "")), dev.runtime_options()
    test_keys = {it.key(dev.runtime, rv, opts) for it in test_items + zitems}

    md = model_data(ProfileStore(dev.name), dev.runtime, target=args.target)
    te_idx = [i for i, k in enumerate(md.item_keys) if k in test_keys]
    test = md.subset(te_idx)
    if args.adaptive:
        _adaptive(dev, args, console, confirm, {kernel_hash(k) for ks in test.kernels for k in ks})
    if args.profile_only:
        console.print(f"{dev.name}: profiled ({args.passes} passes); --profile-only, so no training")
        return
    # Kernels known before the test models (suite, training subnets') stay; any other kernel of a
    # test model that sits in the store (e.g. measured by bench_kernel_sum) is never trained on.
    def item_hash(it: Any) -> str:
        return kernel_hash(get_kernel(it.kernel_type).make(**it.config))

    known = {item_hash(it) for it in kitems}
    extra_hashes = {item_hash(it) for it in extra_items}
    excl_k = {kernel_hash(k) for ks in test.kernels for k in ks} - known
    groups = np.array([s or "?" for s in test.spaces])
    results: dict[str, Any] = {"device": dev.name, "suite": args.suite, "suite_seeds": seeds, "target": args.target,
                               "subnets_per_space": args.subnets_per_space, "test_per_space": args.test_per_space,
                               "n_test_models": len(te_idx), "kinds": {}}
    table = Table("kind", "kernels ±10%", "suite kernels ±10% (not adaptive)", "first draw+space kernels ±10%", "extra draws ±10%", "adaptive kernels ±10%", "kernels Spearman", "models ±10%", "models RMSE ms", "models Spearman",
                  "Σkernels ±10%", "zoo ±10%", "subnets ±10%", "90% interval cover kernels/models", "train s",
                  title=f"{dev.name}: held-out accuracy ({args.suite} suite, seeds {args.suite_seeds}, {len(te_idx)} test models)")
    preds = {}
    zoo_hashes = {item_hash(it) for it in zkitems}
    for kind in [k for k in args.kinds.split(",") if k]:
        if zoo_hashes:  # first, so the predictor left saved is the standard one
            res = train(dev.name, kind, fast=args.fast, target=args.target, exclude_models=test_keys,
                        exclude_kernels=excl_k - zoo_hashes)
            zm = res.predictor.predict_models(test.spaces, test.archs, test.kernels)[0]
            own = groups == "zoo"
            results.setdefault("zoo_with_own_kernels", {})[kind] = {
                "zoo": _metrics(test.y[own], zm[own]), "n_zoo_kernels": len(zoo_hashes),
                "n_zoo_kernels_trained": len(zoo_hashes & read_train_keys(res.predictor.directory)["kernels"]),
                "per_model": {n: {"measured_ms": float(y), "predicted_ms": float(p)}
                              for n, y, p, g in zip(test.names, test.y, zm, groups, strict=True) if g == "zoo"}}
        t = time.monotonic()
        res = train(dev.name, kind, fast=args.fast, target=args.target, exclude_models=test_keys,
                    exclude_kernels=excl_k)
        secs = time.monotonic() - t
        pred = res.predictor
        results["host_drift"] = pred.manifest.get("host_drift")
        preds[kind] = pred
        kern = res.evaluation["summary"]["kernel"]
        m, lo, hi, method = pred.predict_models(test.spaces, test.archs, test.kernels)
        ksum = pred.predict_kernel_lists(test.kernels)[0]
        per_group = {g: _metrics(test.y[groups == g], m[groups == g]) for g in sorted(set(groups))}
        sub = groups != "zoo"
        split = _kernel_split(pred, dev.name, args.target, extra_hashes)
        r = {"kernel_holdout": kern, "kernel_holdout_by_source": split, "kernel_per_type": {t: {k: v for k, v in d.items() if k in ("acc10", "n",
                                                                                                "model")}
                                                          for t, d in res.evaluation["kernel"]["per_type"].items()},
             "models": _metrics(test.y, m), "models_kernel_sum": _metrics(test.y, ksum),
             "models_interval_coverage": float(np.mean((lo <= test.y) & (test.y <= hi))) if len(m) else None,
             "zoo": _metrics(test.y[~sub], m[~sub]), "subnets": _metrics(test.y[sub], m[sub]),
             "per_group": per_group, "methods": {x: method.count(x) for x in set(method)},
             "residual": pred.manifest.get("residual"), "overhead": pred.manifest.get("overhead"),
             "train_seconds": secs, "notes": res.notes}
        results["kinds"][kind] = r

        def f(d: dict | None, k: str = "acc10", pct: bool = True) -> str:
            if not d or d.get(k) is None:
                return "-"
            return f"{100 * d[k]:.1f} %" if pct else f"{d[k]:.3f}"

        table.add_row(kind, f(kern), f(split["suite"]), f(split["base"]), f(split["extra_draws"]), f(split["adaptive"]), f(kern, "spearman", False), f(r["models"]), f(r["models"], "rmse", False),
                      f(r["models"], "spearman", False), f(r["models_kernel_sum"]), f(r["zoo"]), f(r["subnets"]),
                      f"{f(kern, 'interval_coverage')} / {f(r, 'models_interval_coverage')}", f"{secs:.0f}")
    console.print(table)
    if results.get("host_drift"):
        spread = ", ".join(f"class {c}: {d['p5_pct']:+.1f} .. {d['p95_pct']:+.1f} %"
                           for c, d in results["host_drift"]["classes"].items())
        hd = results["host_drift"]
        console.print(f"host speed drift divided out of the floors (5-95 % of {hd['bin_s'] / 60:.0f}-min bins, by "
                      f"size class {hd['edges_ms']} ms): {spread or 'none fitted'}")
    gt = Table("kind", "group", "n", "±10%", "RMSE ms", "Spearman", title="whole models by group (predict)")
    for kind, r in results["kinds"].items():
        for g, d in r["per_group"].items():
            if d:
                gt.add_row(kind, g, str(d["n"]), f"{100 * d['acc10']:.1f} %", f"{d['rmse']:.3f}",
                           "-" if d["spearman"] != d["spearman"] else f"{d['spearman']:.3f}")
    console.print(gt)
    if results.get("zoo_with_own_kernels"):
        zt = Table("kind", "zoo ±10% (kernels excluded)", "zoo ±10% (own kernels trained)", "MAPE excluded → trained",
                   "zoo kernels trained", title="zoo models with their own kernels measured (--zoo-kernels)")
        for kind, z in results["zoo_with_own_kernels"].items():
            std = results["kinds"][kind]["zoo"]
            zt.add_row(kind, f"{100 * std['acc10']:.1f} %", f"{100 * z['zoo']['acc10']:.1f} %",
                       f"{100 * std['mape']:.1f} % → {100 * z['zoo']['mape']:.1f} %",
                       f"{z['n_zoo_kernels_trained']} of {z['n_zoo_kernels']}")
        console.print(zt)

    if args.transfer_device and preds:
        tdev = get_device(args.transfer_device)
        t_items = train_items + test_items + zitems
        if tdev.runtime != dev.runtime:  # the same models, in the format the transfer device runs
            with simple_progress(f"exporting the models for {tdev.name} ({tdev.runtime})") as tick:
                t_items = [it for sp in spaces for seed, n in ((0, args.subnets_per_space), (1000, args.test_per_space))
                           for it in space_items(sp, n, tdev.runtime, seed=seed, tick=tick)]
                t_items += zoo_items(tdev.runtime, zoo.names(), tick=tick)
        _profile(tdev, t_items, args.max_time, console, args.passes, confirm, args.max_passes)
        kind = "gbdt" if "gbdt" in preds else next(iter(preds))
        td = transfer_data(tdev.name, preds[kind])
        ns = tuple(n for n in (int(x) for x in args.transfer_ns.split(",")) if n < len(td.md.y))
        curve = transfer_curve(td.source_ms, td.features, td.md.y, ns=ns, seeds=(0, 1, 2), score_on="rest")
        base = _metrics(td.md.y, td.source_ms)
        agg = {}
        ct = Table("N target samples", "±10%", "MAPE", "Spearman", "residual used",
                   title=f"transfer {dev.name} ({kind}) → {tdev.name}: {len(td.md.y)} models, scored on the rest")
        ct.add_row(f"0 ({dev.name} as is)", f"{100 * base['acc10']:.1f} %", f"{100 * base['mape']:.1f} %",
                   f"{base['spearman']:.3f}", "-")
        for n in ns:
            rows = [c for c in curve if c["n_samples"] == n]
            agg[n] = {k: float(np.mean([c[k] for c in rows])) for k in ("acc10", "acc5", "mape", "rmse", "spearman")}
            agg[n]["residual_share"] = float(np.mean([c["residual"] for c in rows]))
            ct.add_row(str(n), f"{100 * agg[n]['acc10']:.1f} %", f"{100 * agg[n]['mape']:.1f} %",
                       f"{agg[n]['spearman']:.3f}", f"{agg[n]['residual_share']:.0%}")
        console.print(ct)
        results["transfer"] = {"source": dev.name, "source_kind": kind, "target": tdev.name,
                               "n_models": len(td.md.y), "source_as_is": base, "curve": agg, "draws": curve}
    results["seconds"] = time.monotonic() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=float))
    console.print(f"wrote {args.out} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
