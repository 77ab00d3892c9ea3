"""Benchmark hwlat's subnet-level predictors on the public HELP latency tables.

(a) Per device: GBDT and MLP trained on a fixed number of random archs (1,000 and 100), scored
    on all the other archs (acc±5/10 %, RMSE, MAPE, Spearman, Kendall, 90 % interval coverage).
(b) The HELP protocol: few-shot transfer to each of HELP's meta-test devices from its
    meta-train devices with 10 target samples, Spearman over all archs of the unseen device,
    beside the figures published in HELP's README; plus accuracy vs N ∈ {10, 20, 50, 100}.

Data: the CSVs in shared/data/help (see its README); nothing is copied into the repo.

    .venv/bin/python scripts/bench_public.py                 # ~10 min on 2 cores
    .venv/bin/python scripts/bench_public.py --quick         # smoke run, ~1 min

Writes bench_results/bench_public.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hwlat.errors import ConfigError  # noqa: E402
from hwlat.predictors.artifacts import library_versions  # noqa: E402
from hwlat.predictors.gbdt import GBDTRegressor  # noqa: E402
from hwlat.predictors.help_data import SPACES, arch_features, load_help  # noqa: E402
from hwlat.predictors.metrics import report, spearman  # noqa: E402
from hwlat.predictors.mlp import MLPRegressor  # noqa: E402
from hwlat.predictors.transfer import arch_smoothed_sources, transfer_curve  # noqa: E402

# ---- protocol (from shared/data/help/README.md, i.e. HELP's README) ---------------------------
# HELP's NB201 hardware-embedding archs: the 10 target samples HELP measures on a new device.
HELP_NB201_SAMPLES = [11982, 431, 55, 9, 14451, 8636, 9881, 13479, 6196, 1462]

# Meta-train devices (sources) and meta-test devices (targets). FBNet's GPUs run batch 64, not 256.
# OFA is not in HELP's published tables: our own split (2080ti + titan_xp -> titan_rtx + v100).
PROTOCOL: dict[str, dict[str, list[str]]] = {
    "nb201": {"sources": ["1080ti_1", "1080ti_32", "1080ti_256", "silver_4114", "silver_4210r", "samsung_a50",
                          "pixel3", "essential_ph_1", "samsung_s7"],
              "targets": ["titan_rtx_256", "gold_6226", "pixel2", "raspi4", "eyeriss", "fpga"]},
    "fbnet": {"sources": ["1080ti_1", "1080ti_32", "1080ti_64", "silver_4114", "silver_4210r", "samsung_a50",
                          "pixel3", "essential_ph_1", "samsung_s7"],
              "targets": ["titan_rtx_64", "gold_6226", "pixel2", "raspi4", "eyeriss", "fpga"]},
    "ofa": {"sources": ["2080ti_1", "2080ti_32", "2080ti_64", "titan_xp_1", "titan_xp_32", "titan_xp_64"],
            "targets": ["titan_rtx_1", "titan_rtx_32", "titan_rtx_64", "v100_1", "v100_32", "v100_64"]},
}

# Simulated accelerators (estimates, not timings): their ±10 % figures are reported apart.
ESTIMATED = ("eyeriss", "fpga")

# Published Spearman rho on the unseen device with 10 target samples (HELP README, Tables 2/3).
PUBLISHED: dict[str, dict[str, dict[str, float]]] = {
    "nb201": {
        "HELP (10)": {"titan_rtx_256": 0.987, "gold_6226": 0.989, "pixel2": 0.802, "raspi4": 0.890,
                      "eyeriss": 0.940, "fpga": 0.985},
        "FLOPs": {"titan_rtx_256": 0.950, "gold_6226": 0.826, "pixel2": 0.765, "raspi4": 0.846,
                  "eyeriss": 0.437, "fpga": 0.900},
        "BRP-NAS (900)": {"titan_rtx_256": 0.814, "gold_6226": 0.796, "pixel2": 0.666, "raspi4": 0.847,
                          "eyeriss": 0.811, "fpga": 0.801},
    },
    "fbnet": {
        "HELP (10)": {"raspi4": 0.887, "eyeriss": 0.943, "fpga": 0.892},
        "MAML (10)": {"raspi4": 0.718, "eyeriss": 0.763, "fpga": 0.727},
    },
    "ofa": {},
}

# Devices for part (a): one per device family (HELP's meta-test set) to fit the time budget;
# --all-devices runs every column.
SUBNET_DEVICES = {
    "nb201": ["titan_rtx_256", "1080ti_1", "gold_6226", "pixel2", "raspi4", "eyeriss", "fpga"],
    "fbnet": ["titan_rtx_64", "1080ti_1", "gold_6226", "pixel2", "raspi4", "eyeriss", "fpga"],
    "ofa": ["2080ti_1", "titan_rtx_64", "v100_1", "titan_xp_32"],
}

# A reduced GBDT search (3 of the 5 default configs, 3 folds, 10 s each fit) to fit ~15 min on 2 cores.
GBDT_SEARCH = {"configs": (
    {"max_depth": 6, "eta": 0.05, "subsample": 0.8, "colsample_bytree": 0.8, "min_child_weight": 1.0},
    {"max_depth": 4, "eta": 0.1, "subsample": 0.8, "colsample_bytree": 0.8, "min_child_weight": 1.0},
    {"max_depth": 3, "eta": 0.1, "subsample": 1.0, "colsample_bytree": 1.0, "min_child_weight": 1.0},
), "n_folds": 3, "budget_s": 10.0}
MLP_PARAMS = {"hidden": (128, 128), "n_models": 3, "max_epochs": 200, "patience": 20}
# Fixed-config GBDT used to *predict* source-device latencies (variant "predicted sources").
SOURCE_GBDT = {"configs": ({"max_depth": 6, "eta": 0.1, "subsample": 0.8, "colsample_bytree": 0.8},),
               "n_folds": 3, "interval": False}
# Variant "measured src + FLOPs/bytes": the space's cost-model totals as two analytical pseudo-sources.
COST_PSEUDO_SOURCES = ("total_flops", "total_bytes_read")


def bench_subnet(space: str, X: np.ndarray, lat: Any, devices: list[str], sizes: list[int], seed: int,
                 log: Any) -> list[dict[str, Any]]:
    rows = []
    for dev in devices:
        y = lat[dev].to_numpy()
        for n_train in sizes:
            idx = np.random.default_rng(seed).permutation(len(y))
            tr, te = idx[:n_train], idx[n_train:]
            for name, make in (("gbdt", lambda: GBDTRegressor(**GBDT_SEARCH, seed=seed)),
                               ("mlp", lambda: MLPRegressor(**MLP_PARAMS, seed=seed))):
                t0 = time.monotonic()
                model = make().fit(X[tr], y[tr])
                fit_s = time.monotonic() - t0
                mean, low, high = model.predict(X[te], return_interval=True)
                r = report(y[te], mean)
                r["coverage90"] = float(np.mean((y[te] >= low) & (y[te] <= high)))
                rows.append({"space": space, "device": dev, "model": name, "n_train": n_train,
                             "fit_s": round(fit_s, 2), **r})
                log(f"  [{space}] {dev:>14} {name:>4} n={n_train:<5} acc10={r['acc10']:.3f} "
                    f"rho={r['spearman']:.3f} ({fit_s:.1f}s)")
    return rows


def bench_transfer(space: str, X: np.ndarray, names: list[str], lat: Any, seeds: int, curve_ns: list[int],
                   seed: int, log: Any) -> dict[str, Any]:
    proto = PROTOCOL[space]
    S_meas = lat[proto["sources"]].to_numpy()
    # Analytical "devices": the space's FLOPs and bytes read, appended as pseudo-source columns.
    cost_cols = [names.index(c) for c in COST_PSEUDO_SOURCES if c in names]
    S_cost = np.hstack([S_meas, np.maximum(X[:, cost_cols], 1.0)]) if cost_cols else None
    # Realistic variant: source latencies of *unseen* archs come from each source device's own
    # predictor (GBDT on 1,000 measured archs), not from measurements.
    idx = np.random.default_rng(seed).permutation(len(X))[:1000]
    S_pred = np.stack([GBDTRegressor(**SOURCE_GBDT, seed=seed).fit(X[idx], S_meas[idx, j]).predict(X)
                       for j in range(S_meas.shape[1])], axis=1)
    # Headline variant: measured + arch-smoothed sources + FLOPs/bytes, chosen leave-one-source-out
    # among the meta-train devices (see arch_smoothed_sources); the targets were not consulted.
    S_msc = np.hstack([S_meas, arch_smoothed_sources(S_meas, X, seed=seed)]
                      + ([np.maximum(X[:, cost_cols], 1.0)] if cost_cols else []))
    fixed = {10: HELP_NB201_SAMPLES} if space == "nb201" else None
    out: dict[str, Any] = {"sources": proto["sources"], "targets": {}, "curve": {}}
    # FLOPs proxy row: the space's own FLOPs count (hwlat.spaces cost model) as the "prediction".
    flops = X[:, names.index("total_flops")] if "total_flops" in names else None
    for tgt in proto["targets"]:
        y = lat[tgt].to_numpy()
        row: dict[str, Any] = {}
        variants = [("measured_sources", S_meas), ("predicted_sources", S_pred)]
        if S_cost is not None:
            variants.append(("measured_plus_cost_sources", S_cost))
        variants.append(("measured_smoothed_cost_sources", S_msc))
        for variant, S in variants:
            rows = transfer_curve(S, X, y, ns=(10,), seeds=tuple(range(seeds)), fixed_samples=fixed, score_on="all")
            rhos = [r["spearman"] for r in rows]
            row[variant] = {"spearman_first": rhos[0], "spearman_mean": float(np.mean(rhos)),
                            "spearman_std": float(np.std(rhos)), "acc10_mean": float(np.mean([r["acc10"] for r in rows])),
                            "draws": len(rows)}
        row["best_single_source_spearman"] = max(spearman(y, S_meas[:, j]) for j in range(S_meas.shape[1]))
        if flops is not None:
            row["flops_spearman"] = spearman(y, flops)
        keep = ("n_samples", "seed", "spearman", "acc10", "mape", "residual", "coverage90")
        for name, S in (("curve", S_msc), ("curve_measured", S_meas)):
            curve = transfer_curve(S, X, y, ns=tuple(curve_ns), seeds=tuple(range(seeds)), score_on="rest")
            out.setdefault(name, {})[tgt] = [{k: r[k] for k in keep} for r in curve]
        out["targets"][tgt] = row
        log(f"  [{space}] -> {tgt:>14} rho@10 measured={row['measured_sources']['spearman_mean']:.3f} "
            f"predicted={row['predicted_sources']['spearman_mean']:.3f} "
            f"measured+smoothed+cost={row['measured_smoothed_cost_sources']['spearman_mean']:.3f}")
    return out




def _print_tables(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=160)
    sub = results["subnet"]
    if sub:
        t = Table(title="(a) subnet-level predictors, scored on all held-out archs", show_lines=False)
        for c in ("space", "device", "model", "n_train", "acc5", "acc10", "RMSE ms", "MAPE", "Spearman",
                  "Kendall", "cov90", "fit s"):
            t.add_column(c, justify="right" if c not in ("space", "device", "model") else "left")
        for r in sub:
            t.add_row(r["space"], r["device"], r["model"], str(r["n_train"]), f"{r['acc5']:.3f}",
                      f"{r['acc10']:.3f}", f"{r['rmse']:.3f}", f"{100 * r['mape']:.1f}%", f"{r['spearman']:.3f}",
                      f"{r['kendall']:.3f}", f"{r['coverage90']:.2f}", f"{r['fit_s']:.1f}")
        con.print(t)
    for space, tr in results["transfer"].items():
        targets = list(tr["targets"])
        t = Table(title=f"(b) {space}: Spearman on the unseen device, 10 target samples "
                        f"(sources: {', '.join(tr['sources'])})")
        t.add_column("method")
        for d in targets:
            t.add_column(d, justify="right")
        t.add_column("mean", justify="right")

        def add(name: str, vals: list[float | None], t: Table = t) -> None:
            got = [v for v in vals if v is not None]
            mean = f"{np.mean(got):.3f}" if len(got) == len(vals) else "-"
            t.add_row(name, *[f"{v:.3f}" if v is not None else "-" for v in vals], mean)

        for name, pub in PUBLISHED[space].items():
            add(f"published {name}", [pub.get(d) for d in targets])
        if all("flops_spearman" in tr["targets"][d] for d in targets):
            add("ours: FLOPs proxy", [tr["targets"][d]["flops_spearman"] for d in targets])
        add("oracle: best single source (picked on all archs)", [tr["targets"][d]["best_single_source_spearman"] for d in targets])
        first = "HELP's 10 archs" if space == "nb201" else "draw 0"
        add(f"ours: transfer, measured src ({first})",
            [tr["targets"][d]["measured_sources"]["spearman_first"] for d in targets])
        add("ours: transfer, measured src (mean of draws)",
            [tr["targets"][d]["measured_sources"]["spearman_mean"] for d in targets])
        add("ours: transfer, predicted src (mean of draws)",
            [tr["targets"][d]["predicted_sources"]["spearman_mean"] for d in targets])
        if all("measured_plus_cost_sources" in tr["targets"][d] for d in targets):
            add("ours: transfer, measured src + FLOPs/bytes (mean)",
                [tr["targets"][d]["measured_plus_cost_sources"]["spearman_mean"] for d in targets])
        if all("measured_smoothed_cost_sources" in tr["targets"][d] for d in targets):
            add(f"ours: transfer, measured + smoothed src + FLOPs/bytes ({first})",
                [tr["targets"][d]["measured_smoothed_cost_sources"]["spearman_first"] for d in targets])
            add("ours: transfer, measured + smoothed src + FLOPs/bytes (mean)",
                [tr["targets"][d]["measured_smoothed_cost_sources"]["spearman_mean"] for d in targets])
        con.print(t)
        for key, what in (("curve", "measured + smoothed src + FLOPs/bytes"), ("curve_measured", "measured src")):
            if key not in tr:
                continue
            ns = sorted({r["n_samples"] for rows in tr[key].values() for r in rows})
            c = Table(title=f"(b) {space}: transfer curve ({what}), mean on the other archs vs N: "
                            f"Spearman / ±10 % / in 90 % interval")
            c.add_column("target")
            for n in ns:
                c.add_column(f"N={n}", justify="right")

            def cell(rows: list[dict[str, Any]], n: int) -> str:
                sel = [r for r in rows if r["n_samples"] == n]
                cov = [r["coverage90"] for r in sel if r.get("coverage90") is not None]
                return (f"{np.mean([r['spearman'] for r in sel]):.3f} / {100 * np.mean([r['acc10'] for r in sel]):.1f} %"
                        + (f" / {100 * np.mean(cov):.0f} %" if cov else ""))

            for d, rows in tr[key].items():
                c.add_row(d, *[cell(rows, n) for n in ns])
            # eyeriss/fpga are simulator estimates, not timings: their mean is reported apart
            for label, group in (("mean, measured devices", [d for d in tr[key] if d not in ESTIMATED]),
                                 ("mean, eyeriss/fpga (estimates)", [d for d in tr[key] if d in ESTIMATED])):
                if group:
                    c.add_row(label, *[f"{np.mean([np.mean([r['spearman'] for r in tr[key][d] if r['n_samples'] == n]) for d in group]):.3f} / "
                                       f"{100 * np.mean([np.mean([r['acc10'] for r in tr[key][d] if r['n_samples'] == n]) for d in group]):.1f} %"
                                       for n in ns])
            con.print(c)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "help",
                    help="directory with the HELP CSVs (default: ../shared/data/help from the repo root)")
    ap.add_argument("--spaces", default="nb201,fbnet,ofa", help="comma-separated subset of nb201,fbnet,ofa")
    ap.add_argument("--sizes", default="1000,100", help="training-set sizes for part (a)")
    ap.add_argument("--all-devices", action="store_true", help="part (a) on every device, not one per family")
    ap.add_argument("--seeds", type=int, default=5, help="random draws of the N target samples in part (b)")
    ap.add_argument("--no-subnet", action="store_true", help="skip part (a), the per-device subnet predictors")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 devices, size 100, 2 draws, N<=20")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "bench_results" / "bench_public.json")
    args = ap.parse_args(argv)

    spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]
    bad = [s for s in spaces if s not in SPACES]
    if bad:
        print(f"error: unknown space(s) {', '.join(bad)}; choose from {', '.join(SPACES)}", file=sys.stderr)
        return 2
    if not args.data_dir.is_dir():
        print(f"error: HELP data directory {args.data_dir} not found; pass --data-dir DIR "
              f"(the folder with nb201_latency_ms.csv, see shared/data/help/README.md)", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",")]
    seeds, curve_ns = args.seeds, [10, 20, 50, 100]
    if args.quick:
        sizes, seeds, curve_ns = [100], 2, [10, 20]
    start = time.monotonic()

    def log(msg: str) -> None:
        print(f"{time.monotonic() - start:6.0f}s {msg}", flush=True)

    results: dict[str, Any] = {
        "config": {"sizes": sizes, "seeds": seeds, "curve_ns": curve_ns, "seed": args.seed,
                   "gbdt": {**GBDT_SEARCH, "configs": list(GBDT_SEARCH["configs"])}, "mlp": MLP_PARAMS,
                   "source_gbdt": {**SOURCE_GBDT, "configs": list(SOURCE_GBDT["configs"]), "n_train": 1000},
                   "protocol": PROTOCOL, "help_nb201_samples": HELP_NB201_SAMPLES,
                   "transfer_model": "mean of ridge / NNLS / LOO-weighted single-source maps on log source latencies"
                                     " + ridge residual on arch features (N>=20, kept if LOO improves); "
                                     "headline sources: measured + arch-smoothed (ridge on 1000 archs) + "
                                     "FLOPs/bytes"},
        "environment": {"python": platform.python_version(), "machine": platform.machine(),
                        "libraries": library_versions()},
        "published": PUBLISHED, "subnet": [], "transfer": {},
    }
    for space in spaces:
        try:
            data = load_help(space, args.data_dir)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        X, names = arch_features(space, data.archs)
        log(f"[{space}] {len(data.archs)} archs x {len(data.devices)} devices, {X.shape[1]} features")
        devices = data.devices if args.all_devices else SUBNET_DEVICES[space]
        if args.quick:
            devices = devices[:2]
        if not args.no_subnet:
            results["subnet"] += bench_subnet(space, X, data.latency, devices, sizes, args.seed, log)
        results["transfer"][space] = bench_transfer(space, X, names, data.latency, seeds, curve_ns, args.seed, log)
    results["elapsed_s"] = round(time.monotonic() - start, 1)
    _print_tables(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=float))
    print(f"wrote {args.out} ({results['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
