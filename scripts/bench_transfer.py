"""Few-shot transfer curves from one trained device to others, on what their stores already hold.

For each ``--targets`` device: every whole model measured there (subnets of known spaces, zoo) is
predicted by the ``--source`` device's trained predictor; a TransferRegressor is fitted on N =
10/20/50 of them (3 random draws each) and scored on the rest. Also prints each target's
pass-to-pass repeatability (models measured in ≥ 2 passes): no predictor can beat the noise of the
measurements it is scored on. Nothing is measured here; profile the targets first (e.g.
``scripts/bench_accuracy.py --device local-tflite ...``). Writes bench_results/bench_transfer.json.

    python scripts/bench_transfer.py --source local --targets local-2t,local-torch,local-tflite
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table


def _repeatability(device: str) -> dict[str, Any] | None:
    from hwlat.store import ProfileStore

    df = ProfileStore(device).models(latest=False)
    if not len(df):
        return None
    g = df.sort_values("finished_at").groupby("item_key")["min_ms"]
    n = g.size()
    r = (g.last() / g.first())[n >= 2]
    if not len(r):
        return None
    return {"n": len(r), "within10": float(np.mean(np.abs(r - 1) < 0.1))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default="local")
    ap.add_argument("--kind", default="gbdt")
    ap.add_argument("--targets", default="local-2t,local-torch,local-tflite,local-tflite-noxnn")
    ap.add_argument("--ns", default="10,20,50")
    ap.add_argument("--out", type=Path, default=Path("bench_results/bench_transfer.json"))
    args = ap.parse_args()

    from hwlat.errors import HwlatError
    from hwlat.predictors.metrics import report
    from hwlat.predictors.predictor import Predictor
    from hwlat.predictors.training import transfer_data
    from hwlat.predictors.transfer import transfer_curve

    console = Console()
    src = Predictor.load(args.source, kind=args.kind)
    out: dict[str, Any] = {"source": args.source, "kind": args.kind, "target_stat": src.manifest.get("target"),
                           "targets": {}}
    t = Table("target", "models", "repeatability ±10%", "as is ±10%", *[f"N={n} ±10%" for n in args.ns.split(",")],
              f"N={args.ns.split(',')[-1]} Spearman", title=f"transfer from {args.source} ({args.kind})")
    for target in [x for x in args.targets.split(",") if x]:
        try:
            td = transfer_data(target, src)
        except HwlatError as e:
            console.print(f"[yellow]{target}: skipped ({e})[/]")
            continue
        y = td.md.y
        ns = tuple(n for n in (int(x) for x in args.ns.split(",")) if n < len(y))
        if not ns:
            console.print(f"[yellow]{target}: only {len(y)} measured models; skipped[/]")
            continue
        curve = transfer_curve(td.source_ms, td.features, y, ns=ns, seeds=(0, 1, 2), score_on="rest")
        agg = {n: {k: float(np.mean([c[k] for c in curve if c["n_samples"] == n]))
                   for k in ("acc10", "acc5", "mape", "spearman")} for n in ns}
        base = report(y, td.source_ms)
        rep = _repeatability(target)
        out["targets"][target] = {"n_models": len(y), "repeatability": rep, "source_as_is": base, "curve": agg}
        t.add_row(target, str(len(y)), "-" if rep is None else f"{100 * rep['within10']:.0f} % (n={rep['n']})",
                  f"{100 * base['acc10']:.1f} %", *[f"{100 * agg[n]['acc10']:.1f} %" if n in agg else "-"
                                                   for n in (int(x) for x in args.ns.split(","))],
                  f"{agg[ns[-1]]['spearman']:.3f}")
    console.print(t)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=float))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
