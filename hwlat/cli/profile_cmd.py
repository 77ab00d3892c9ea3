"""`hwlat measure` and `hwlat profile`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from hwlat.cli.common import console, err_console, fmt_ms, print_json
from hwlat.cli.progress import profiling_progress, simple_progress
from hwlat.devices import Device, get_device, load_devices
from hwlat.errors import ConfigError, HwlatError
from hwlat.profiling import Item, RunSummary, check_format, model_item, profile
from hwlat.store import ProfileStore


def _report(summary: RunSummary, json_out: bool) -> None:
    if json_out:
        return
    console.print(f"[bold]{summary.device}[/]: measured {summary.measured}, already stored {summary.skipped}, "
                  f"failed {len(summary.failed)} of {summary.planned} (run {summary.run_id})")
    for name, reason in summary.failed[:20]:
        err_console.print(f"  [red]failed[/] {name}: {reason}")
    if len(summary.failed) > 20:
        err_console.print(f"  … and {len(summary.failed) - 20} more")


def run_profile(dev: Device, items: list[Item], force: bool, json_out: bool,
                measure: Optional[dict] = None, store: Optional[ProfileStore] = None) -> RunSummary:
    """Profile with a progress bar; raises when the run could not finish (rows are kept)."""
    with profiling_progress(dev.name) as cb:
        summary = profile(dev, items, store, force=force, progress=cb, measure=measure)
    _report(summary, json_out)
    return summary


def measure_command(
    model: Path = typer.Argument(..., help="Model file: .onnx (onnxruntime), .tflite (TFLite/TFLM), .pt2 (torch)."),
    device: str = typer.Option("local", "--device", "-d", help="Device name (see `hwlat devices list`)."),
    json_out: bool = typer.Option(False, "--json", help="JSON output for scripting."),
    force: bool = typer.Option(False, "--force", help="Measure again even if already stored."),
    max_time: float = typer.Option(2.0, help="Time cap per item in seconds."),
) -> None:
    """Measure one model on a device and store the result."""
    dev = get_device(device)
    check_format(model, dev.runtime, dev.name)
    item = model_item(model)
    summary = run_profile(dev, [item], force, json_out, measure={"max_time_s": max_time})
    if summary.error:
        raise HwlatError(summary.error)
    if summary.failed:
        raise HwlatError(f"{model.name} on {device!r}: {summary.failed[0][1]}")
    _record_kernels([item], dev.runtime)
    df = ProfileStore(dev.name).models()
    key = item.key(dev.runtime, str((summary.fingerprint or {}).get("runtime_version", "")), dev.runtime_options())
    row = df[df["item_key"] == key].iloc[-1].to_dict()
    out = {"device": dev.name, "model": str(model), "cached": summary.measured == 0,
           **{k: row[k] for k in ("median_ms", "mean_ms", "std_ms", "min_ms", "p10_ms", "p90_ms", "ci_low_ms",
                                  "ci_high_ms", "runs", "converged", "runtime", "runtime_version", "notes", "run_id")}}
    out["runs"] = int(out["runs"])
    out["converged"] = bool(out["converged"])
    if json_out:
        print_json(out)
        return
    t = Table("device", "model", "median ms", "p10–p90 ms", "runs", "converged", "notes")
    t.add_row(dev.name, model.name, fmt_ms(out["median_ms"]), f"{fmt_ms(out['p10_ms'])}–{fmt_ms(out['p90_ms'])}",
              str(out["runs"]), "yes" if out["converged"] else "no", out["notes"] or "")
    console.print(t)


def _record_kernels(items: list[Item], runtime: str, failed: Optional[list] = None) -> None:
    """After a run without error: keep each measured model file's kernel list for training (its
    measurement trains the overhead term). A run that stopped on an error writes nothing."""
    from hwlat.profiling.sources import record_model_kernels

    bad = {name for name, _ in failed or []}
    skipped = record_model_kernels([it for it in items if it.name not in bad], runtime)
    if skipped:
        model, reason = skipped[0]
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        err_console.print(f"  note: {model}{more}: measured, but not usable for training: {reason}")


def _items_for(dev: Device, models: Optional[Path], suite: Optional[str], space: Optional[str], samples: int,
               zoo: bool, seed: int, types: Optional[list[str]] = None, space_kernels: bool = False,
               model_kernels: bool = False) -> list[Item]:
    from hwlat.profiling.items import items_from_dir
    from hwlat.profiling.sources import (
        kernel_items,
        model_kernel_items,
        space_items,
        space_kernel_items,
        zoo_items,
    )

    items: list[Item] = []
    whole: list[Item] = []  # the whole models of --models and --zoo, for --model-kernels
    if models:
        if not models.is_dir():
            raise ConfigError(f"--models {models} is not a folder")
        found = items_from_dir(models, dev.runtime)
        if not found:
            raise ConfigError(f"no model files for runtime {dev.runtime!r} in {models}")
        for it in found:
            check_format(it.file, dev.runtime, dev.name)
        items += found
        whole += found
    if suite:
        if suite not in ("quick", "standard", "full"):
            raise ConfigError(f"--suite {suite!r}: use quick, standard or full")
        with simple_progress(f"exporting {suite} kernels") as tick:
            items += kernel_items(suite, dev.runtime, seed=seed, tick=tick, types=types)
    if space:
        with simple_progress(f"exporting {space} subnets") as tick:
            items += space_items(space, samples, dev.runtime, seed=seed, tick=tick)
        if space_kernels:
            with simple_progress(f"exporting the kernels of those {space} subnets") as tick:
                items += space_kernel_items(space, samples, dev.runtime, seed=seed, tick=tick)
    if zoo:
        with simple_progress("exporting zoo models") as tick:
            found = zoo_items(dev.runtime, tick=tick)
        items += found
        whole += found
    if model_kernels:
        what = f"{len(whole)} model{'' if len(whole) == 1 else 's'}"
        with simple_progress(f"exporting the kernels of {what}") as tick:
            found, skipped = model_kernel_items(whole, dev.runtime, tick=tick)
        for model, reason in skipped:
            err_console.print(f"  [yellow]warning[/]: --model-kernels: {model}: {reason}")
        items += found
    return items


def _parse_types(types: Optional[str]) -> Optional[list[str]]:
    if not types:
        return None
    from hwlat.kernels import names

    out = [t.strip() for t in types.split(",") if t.strip()]
    bad = [t for t in out if t not in names()]
    if bad or not out:
        raise ConfigError(f"--types {types!r}: unknown kernel type(s) {', '.join(bad) or '(none given)'}; "
                          f"known: {', '.join(names())}")
    return out


def _plan_table(plan) -> Table:  # noqa: ANN001  (RoundPlan; imported lazily)
    t = Table("kernel type", "rows", "±10 % (out of fold)", "new", "note",
              title=f"adaptive round {plan.round}: {len(plan.kernels)} new kernels")
    for r in plan.report:
        t.add_row(r.kernel_type, str(r.rows), "-" if r.acc10 is None else f"{100 * r.acc10:.0f} %",
                  str(r.new), r.note)
    return t


def _adaptive(dev: Device, rounds: int, size: Optional[int], seed: int, types: Optional[list[str]], force: bool,
              json_out: bool, measure: dict, passes: int = 1, confirm: Optional[float] = None,
              max_passes: Optional[int] = None, anchors: Optional[float] = None) -> list[dict]:
    """``rounds`` adaptive rounds with a table per round and a progress bar per measurement.
    With passes > 1 or confirm, each round's kernels are measured in passes, with ``anchors``
    (share of the round, default 25 %) stored kernels measured again among them, and rounds plan
    on ``floor_ms``, as the rest of the profile is."""
    from hwlat.profiling.adaptive import ANCHOR_SHARE, run_adaptive
    from hwlat.profiling.passes import profile_passes

    def on_plan(plan) -> None:  # noqa: ANN001
        if not json_out:
            console.print(_plan_table(plan))

    def one(d: Device, items: list[Item], store: ProfileStore, f: bool = False) -> RunSummary:
        return run_profile(d, items, force or f, json_out, measure, store=store)

    in_passes = passes > 1 or confirm is not None

    def runner(d: Device, items: list[Item], store: ProfileStore, anchor_items: list[Item]) -> RunSummary:
        if not in_passes:
            return one(d, items, store)
        runs = profile_passes(d, items, store, passes=passes, seed=seed, confirm=confirm, max_passes=max_passes,
                              runner=one, anchors=anchor_items)
        return next((r for r in runs if r.error), runs[0])

    def on_start(r: int) -> None:
        err_console.print(f"[bold]adaptive round {r}/{rounds}[/]: out-of-fold errors on stored kernels …")

    if anchors and not in_passes:
        raise ConfigError("--anchors needs --passes 2 or more (or --confirm): host drift is told from items "
                          "measured several times")
    share = (ANCHOR_SHARE if in_passes else 0.0) if anchors is None else anchors
    results = run_adaptive(dev, rounds, size, seed=seed, kernel_types=types, force=force, measure=measure,
                           anchors=share, runner=runner, on_plan=on_plan, on_start=on_start,
                           target="floor_ms" if in_passes else "median_ms")
    if results and all(r.plan.resumed and not (r.summary.measured or r.summary.failed) for r in results):
        # Rounds are numbered from 1 per seed, so repeating the command resumes instead of adding.
        err_console.print(f"note: adaptive rounds 1-{rounds} (seed {seed}) were already measured; "
                          f"--adaptive {rounds + 1} or more adds rounds after them, or use another --seed")
    return [r.to_dict() for r in results]


def profile_command(
    name: Optional[str] = typer.Argument(None, help="Device name; omit with --all."),
    models: Optional[Path] = typer.Option(None, "--models", help="Folder of model files to measure."),
    suite: Optional[str] = typer.Option(None, "--suite", help="Kernel benchmark suite: quick, standard or full."),
    space: Optional[str] = typer.Option(None, "--space", help="Search space to sample subnets from, e.g. ofa_mbv3."),
    samples: int = typer.Option(50, "--samples", help="Number of random subnets with --space."),
    space_kernels: bool = typer.Option(False, "--space-kernels",
                                       help="With --space: also measure each distinct kernel of those subnets "
                                            "alone, so the kernel predictor learns the space's own kernels."),
    zoo: bool = typer.Option(False, "--zoo", help="Also measure the model zoo."),
    model_kernels: bool = typer.Option(False, "--model-kernels",
                                       help="With --models and/or --zoo: also measure each distinct kernel of "
                                            "those models alone, so the kernel predictor learns their kernels."),
    all_devices: bool = typer.Option(False, "--all", help="Profile every device in devices.toml in parallel."),
    seed: int = typer.Option(0, help="Sampling seed."),
    force: bool = typer.Option(False, "--force", help="Measure again what is already stored."),
    max_time: float = typer.Option(2.0, help="Time cap per item in seconds."),
    passes: int = typer.Option(1, "--passes", min=1,
                               help="Measure every item this many times, minutes apart, in a new order each pass "
                                    "(for hosts whose speed fluctuates; `hwlat train` then learns the fastest "
                                    "pass, floor_ms)."),
    confirm: Optional[float] = typer.Option(None, "--confirm", min=0.001, metavar="TOL",
                                            help="After --passes: re-measure, one pass at a time, only the items "
                                                 "whose two lowest pass minima differ by more than TOL "
                                                 "(e.g. 0.03), up to --max-passes."),
    max_passes: Optional[int] = typer.Option(None, "--max-passes", min=1,
                                             help="Most passes any item gets with --confirm (default passes + 3)."),
    json_out: bool = typer.Option(False, "--json", help="JSON summary for scripting."),
    types: Optional[str] = typer.Option(None, "--types",
                                        help="Only these kernel types (comma-separated) for --suite and --adaptive."),
    adaptive: int = typer.Option(0, "--adaptive", min=0, metavar="ROUNDS",
                                 help="After the rest, adaptive rounds 1 to ROUNDS: train on the stored "
                                      "kernels, measure more where the out-of-fold error is largest. Rounds "
                                      "already measured (same --seed) are resumed, not repeated."),
    adaptive_size: Optional[int] = typer.Option(None, "--adaptive-size", min=1, metavar="N",
                                                help="New kernels per adaptive round "
                                                     "(default: 10 % of the stored kernel rows)."),
    anchors: Optional[float] = typer.Option(None, "--anchors", min=0.0, metavar="SHARE",
                                            help="With --adaptive and --passes/--confirm: also measure again this "
                                                 "share of each round's size of stored kernels, among the new "
                                                 "ones, so host-speed drift is measured against the store "
                                                 "(default 0.25; 0 for none)."),
) -> None:
    """Profile a device: a folder of models, a kernel suite, subnets of a space and/or the zoo.

    Resumable: rows already stored are skipped, so after Ctrl-C, a killed agent or a
    dropped connection the same command continues where it stopped.

    --adaptive R: R rounds of nn-Meter-style adaptive sampling after the rest;
    rows are tagged extra={"source": "adaptive", "round": r, "seed": SEED}.
    The same command with the same --seed re-plans the same kernels.
    """
    if not (models or suite or space or zoo or adaptive):
        raise ConfigError("nothing to profile: give --models DIR, --suite quick|standard|full, --space NAME, "
                          "--zoo or --adaptive ROUNDS")
    kernel_types = _parse_types(types)
    measure = {"max_time_s": max_time}
    if space_kernels and not space:
        raise ConfigError("--space-kernels needs --space NAME (the subnets whose kernels to measure)")
    if model_kernels and not (models or zoo):
        raise ConfigError("--model-kernels needs --models DIR or --zoo (the models whose kernels to measure)")
    if anchors is not None and not adaptive:
        raise ConfigError("--anchors goes with --adaptive ROUNDS (stored kernels measured again beside new ones)")
    if all_devices and adaptive:
        raise ConfigError("--adaptive runs on one device at a time; give a device name instead of --all")
    if all_devices:
        devs = [d for d in load_devices().values() if not d.builtin]
        if not devs:
            raise ConfigError("--all: devices.toml defines no devices")
        results: dict[str, dict] = {}

        def one(dev: Device) -> dict:
            try:
                items = _items_for(dev, models, suite, space, samples, zoo, seed, kernel_types,
                                   space_kernels=space_kernels, model_kernels=model_kernels)
                summary = profile(dev, items, force=force, measure=measure)
                if not summary.error:
                    _record_kernels(items, dev.runtime, summary.failed)
                return summary.to_dict()
            except HwlatError as e:  # one device failing must not stop the others
                return {"device": dev.name, "error": str(e), "measured": 0, "failed": []}

        with ThreadPoolExecutor(max_workers=min(8, len(devs))) as ex:
            for dev, res in zip(devs, ex.map(one, devs)):
                results[dev.name] = res
        if json_out:
            print_json(list(results.values()))
        else:
            t = Table("device", "measured", "skipped", "failed", "error", title="fleet run")
            for r in results.values():
                t.add_row(r["device"], str(r.get("measured", 0)), str(r.get("skipped", 0)),
                          str(len(r.get("failed", []))), r.get("error") or "")
            console.print(t)
        if any(r.get("error") or r.get("failed") for r in results.values()):
            raise typer.Exit(1)
        return
    if not name:
        raise ConfigError("give a device name, or --all")
    dev = get_device(name)
    out: dict = {"device": dev.name}
    failed = False
    if models or suite or space or zoo:
        items = _items_for(dev, models, suite, space, samples, zoo, seed, kernel_types,
                           space_kernels=space_kernels, model_kernels=model_kernels)
        if passes > 1 or confirm is not None:
            from hwlat.profiling.passes import profile_passes

            runs = profile_passes(dev, items, passes=passes, seed=seed, confirm=confirm, max_passes=max_passes,
                                  runner=lambda d, its, st, f: run_profile(d, its, force or f, json_out, measure,
                                                                           store=st))
            summary = runs[-1]
            out = {**runs[0].to_dict(), "passes": [r.to_dict() for r in runs]}
        else:
            summary = run_profile(dev, items, force, json_out, measure)
            out = summary.to_dict()
        if summary.error:
            if json_out:
                print_json(out)
            raise HwlatError(summary.error)
        failed = bool(summary.failed)
        _record_kernels(items, dev.runtime, summary.failed)
    if adaptive:
        out["adaptive"] = rounds = _adaptive(dev, adaptive, adaptive_size, seed, kernel_types, force, json_out,
                                             measure, passes, confirm, max_passes, anchors)
        failed = failed or any(r["failed"] for r in rounds)
        error = next((r["error"] for r in rounds if r["error"]), None)
        if error:
            if json_out:
                print_json(out)
            raise HwlatError(error)
    if json_out:
        print_json(out)
    if failed:
        raise typer.Exit(1)


