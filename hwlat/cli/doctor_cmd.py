"""`hwlat doctor DEV`: can this store's labels be trusted? Reproducibility, drift, speed states."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import typer

from hwlat.cli.common import console, print_json

#: floors whose two lowest pass minima agree within this reproduce (the profile default --confirm)
REPRODUCE_WITHIN = 0.03
#: below this share of reproducing floors, labels are too noisy for a ±10 % accuracy target
#: (held-out kernels with unconfirmed floors scored 77-80 % where confirmed ones scored 95 %)
GOOD_SHARE = 0.90
#: window medians of one tiny kernel further apart than this mean the host switches speed states
#: (the 2-vCPU VM: 9.7 µs or 15-19 µs for the same Add)
STATE_GAP = 0.15
_PROBE_WINDOWS = 8
_PROBE_MEASURE = {"max_time_s": 0.1, "min_runs": 20, "warmup_max_s": 0.05}


def reproducibility(store: Any) -> dict[str, Any]:
    """Share of stored items (kernels and models) with two or more rows whose floor reproduces:
    the two lowest drift-corrected pass minima within ``REPRODUCE_WITHIN``."""
    from hwlat.profiling.passes import stored_counts, unconfirmed_floors

    counts = stored_counts(store)
    multi = {k for k, c in counts.items() if c >= 2}
    open_ = unconfirmed_floors(store, multi, REPRODUCE_WITHIN) if multi else set()
    return {"items": len(counts), "repeated": len(multi), "once": len(counts) - len(multi),
            "reproduce": len(multi) - len(open_), "within": REPRODUCE_WITHIN,
            "share": (len(multi) - len(open_)) / len(multi) if multi else None}


def stored_states(store: Any) -> dict[str, Any] | None:
    """From the stored rows of tiny kernels (median under 30 µs) measured more than once: how far a
    row's ``min_ms`` sits above the item's floor. Rows 15 % or more above it were caught in a slow
    state; none is needed for a host without states."""
    rows = store.kernels(latest=False, expand=False)
    if not len(rows):
        return None
    ms = rows["min_ms"].astype(float)
    med = ms.groupby(rows["item_key"]).transform("median")
    n = rows.groupby("item_key")["item_key"].transform("size")
    tiny = (med < 0.03) & (n >= 2)
    if tiny.sum() < 20:
        return None
    ratio = (ms / ms.groupby(rows["item_key"]).transform("min"))[tiny]
    return {"rows": int(tiny.sum()), "slow_share": float((ratio >= 1 + STATE_GAP).mean()),
            "p95_ratio": float(np.quantile(ratio, 0.95))}


def probe_states(device: Any) -> dict[str, Any]:
    """A fresh probe: one tiny Add kernel measured ``_PROBE_WINDOWS`` times in a row (about a
    second each), into a scratch store; the spread of the windows' medians. A host that switches
    speed states puts windows at two or more levels."""
    from hwlat.kernels import get
    from hwlat.profiling.runner import profile
    from hwlat.profiling.sources import items_for_kernels
    from hwlat.store import ProfileStore

    item = items_for_kernels([get("add").make(c=32, hw=784, broadcast=0)], device.runtime)[0]
    medians: list[float] = []
    with tempfile.TemporaryDirectory(prefix="hwlat-doctor-") as tmp:
        store = ProfileStore(device.name, root=Path(tmp))
        for _ in range(_PROBE_WINDOWS):
            s = profile(device, [item], store, force=True, measure=_PROBE_MEASURE)
            if s.error or s.failed:
                why = s.error or s.failed[0][1]
                return {"error": f"probe on {device.name!r} failed: {why}"}
        df = store.kernels(latest=False, expand=False)
        medians = sorted(float(v) for v in df["median_ms"])
    lo, hi = medians[0], medians[-1]
    return {"windows": len(medians), "median_us": [round(1000 * v, 2) for v in medians],
            "spread": hi / lo - 1.0, "switches": hi / lo - 1.0 > STATE_GAP}


def advice(report: dict[str, Any], device: str) -> list[str]:
    """What to do about what the report found, one line each."""
    out: list[str] = []
    rep, drift, states = report["reproducibility"], report["drift"], report.get("speed_states") or {}
    if not rep["items"]:
        return [f"nothing stored for {device!r}: run `hwlat quickstart --device {device}` or "
                f"`hwlat profile {device} --suite quick`"]
    if rep["once"] > rep["repeated"]:
        out.append(f"{rep['once']} of {rep['items']} items were measured once: their labels are one pass's "
                   f"measurement. Re-run the same `hwlat profile {device} ...` command without --passes 1 "
                   "(stored rows are kept; each item gets its second pass and confirmation)")
    if rep["share"] is not None and rep["share"] < GOOD_SHARE:
        out.append(f"only {100 * rep['share']:.0f} % of repeated floors reproduce within "
                   f"{100 * rep['within']:.0f} %: re-run the same `hwlat profile {device} ...` command with "
                   "--max-passes 5 (only the items whose floors are not confirmed are measured again)")
    if drift.get("bins") and not drift.get("trusted"):
        out.append(f"the host-drift fit is not trusted ({drift['reason']}), so training takes the floors as "
                   "measured; new campaigns on this store measure anchors by default (--anchors 0.25) so "
                   "later fits can tie them together")
    if states.get("switches") or (report.get("stored_states") or {}).get("slow_share", 0) > 0.05:
        out.append("this host switches between speed states: keep the default passes and confirmation "
                   "(never --passes 1), profile while the machine is otherwise idle, and train on floor_ms "
                   "(the default for a store measured in passes)")
    if not out:
        out.append("labels look trustworthy: nothing to do")
    return out


def doctor_command(
    name: str = typer.Argument(..., help="Device name whose store to check."),
    measure: bool = typer.Option(False, "--measure",
                                 help="Also time a tiny kernel in 8 short windows now (about 10 s on local; "
                                      "nothing is stored) to see whether the host switches speed states."),
    json_out: bool = typer.Option(False, "--json", help="JSON report for scripting."),
) -> None:
    """Check whether a device's stored labels can be trusted: the share of floors that reproduce
    within 3 %, the host-speed drift the store shows (and whether training applies it), and whether
    the host switches between speed states; then what to do about it."""
    from hwlat.devices import get_device
    from hwlat.store import HostDrift, ProfileStore

    dev = get_device(name)
    store = ProfileStore(dev.name)
    drift = HostDrift().fit(store.kernels(latest=False, expand=False))
    report: dict[str, Any] = {"device": dev.name, "reproducibility": reproducibility(store),
                              "drift": drift.summary(), "stored_states": stored_states(store),
                              "speed_states": probe_states(dev) if measure else None}
    report["advice"] = advice(report, dev.name)
    if json_out:
        print_json(report)
        return
    rep = report["reproducibility"]
    console.print(f"[bold]{dev.name}[/]: {rep['items']} stored items, {rep['repeated']} measured two or more "
                  f"times, {rep['once']} once")
    if rep["share"] is not None:
        console.print(f"  label reproducibility: {100 * rep['share']:.1f} % of repeated floors "
                      f"({rep['reproduce']} of {rep['repeated']}) reproduce within "
                      f"{100 * rep['within']:.0f} %")
    d = report["drift"]
    if not d["bins"]:
        console.print("  host drift: no time bins to fit (too few items measured in more than one "
                      "2-min bin); floors are taken as measured")
    elif all(v["p5_pct"] == v["p95_pct"] == 0 for v in d["classes"].values()):
        console.print(f"  host drift: none found over {d['bins']} fitted {d['bin_s'] / 60:.0f}-min bins; "
                      "floors are taken as measured")
    else:
        spans = ", ".join(f"class {c}: {v['p5_pct']:+.1f} to {v['p95_pct']:+.1f} %"
                          for c, v in d["classes"].items())
        state = ("divided out of floor_ms labels" if d["trusted"]
                 else f"NOT trusted, not applied: {d['reason']}")
        console.print(f"  host drift (5-95 % of {d['bin_s'] / 60:.0f}-min bins): {spans}; {state}")
    st = report["stored_states"]
    if st:
        console.print(f"  stored tiny kernels: {100 * st['slow_share']:.0f} % of repeated rows 15 % or more "
                      f"above their floor (95th percentile {st['p95_ratio']:.2f} x)")
    probe = report["speed_states"]
    if probe:
        if "error" in probe:
            console.print(f"  speed states: {probe['error']}")
        else:
            console.print(f"  speed states now: window medians {probe['median_us'][0]:.1f}-"
                          f"{probe['median_us'][-1]:.1f} µs ({100 * probe['spread']:.0f} % apart): "
                          f"{'switches between states' if probe['switches'] else 'steady'}")
    for line in report["advice"]:
        console.print(f"  [bold]advice[/]: {line}")
