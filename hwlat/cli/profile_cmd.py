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
from hwlat.profiling.export_cache import releasing_exports
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
               model_kernels: bool = False, corpus: Optional[str] = None) -> list[Item]:
    from hwlat.profiling.items import items_from_dir
    from hwlat.profiling.sources import (
        corpus_items,
        kernel_items,
        model_kernel_items,
        space_items,
        space_kernel_items,
        zoo_items,
    )

    items: list[Item] = []
    whole: list[Item] = []  # the whole models of --models, --zoo and --corpus, for --model-kernels
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
    if corpus:
        fams = _parse_families(corpus)
        with simple_progress(f"exporting {samples} corpus models of {len(fams)} families") as tick:
            found = corpus_items(fams, samples, dev.runtime, seed=seed, tick=tick)
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


def _parse_families(text: str) -> list[str]:
    """``--corpus``: ``all`` or comma-separated corpus family names."""
    from hwlat import corpus

    if text.strip() == "all":
        return corpus.families()
    out = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in out if f not in corpus.families()]
    if bad or not out:
        raise ConfigError(f"--corpus {text!r}: unknown famil{'y' if len(bad) == 1 else 'ies'} "
                          f"{', '.join(bad) or '(none given)'}; known: all, {', '.join(corpus.families())}")
    return out


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


@releasing_exports  # exported models are needed only while they are measured
def profile_command(
    name: Optional[str] = typer.Argument(None, help="Device name; omit with --all."),
    models: Optional[Path] = typer.Option(None, "--models", help="Folder of model files to measure."),
    suite: Optional[str] = typer.Option(None, "--suite", help="Kernel benchmark suite: quick, standard or full."),
    space: Optional[str] = typer.Option(None, "--space", help="Search space to sample subnets from, e.g. ofa_mbv3."),
    samples: int = typer.Option(50, "--samples",
                                help="Number of random subnets with --space, and of corpus models (spread "
                                     "evenly over the families) with --corpus."),
    space_kernels: bool = typer.Option(False, "--space-kernels",
                                       help="With --space: also measure each distinct kernel of those subnets "
                                            "alone, so the kernel predictor learns the space's own kernels."),
    zoo: bool = typer.Option(False, "--zoo", help="Also measure the model zoo."),
    corpus: Optional[str] = typer.Option(None, "--corpus", metavar="FAMILIES",
                                         help="Measure --samples whole corpus models (random variants "
                                              "of real architecture families, e.g. resnet,vit,swin, or "
                                              "'all'), family-balanced and drawn with --seed; more "
                                              "--samples later keeps those already measured."),
    model_kernels: bool = typer.Option(False, "--model-kernels",
                                       help="With --models, --zoo and/or --corpus: also measure each "
                                            "distinct kernel of those models alone, so the kernel predictor learns their kernels."),
    all_devices: bool = typer.Option(False, "--all", help="Profile every device in devices.toml in parallel."),
    seed: int = typer.Option(0, help="Sampling seed."),
    force: bool = typer.Option(False, "--force", help="Measure again what is already stored."),
    max_time: float = typer.Option(2.0, help="Time cap per item in seconds."),
    passes: int = typer.Option(2, "--passes", min=1,
                               help="Measure every item this many times, minutes apart, in a new order "
                                    "each pass, and train on the fastest (floor_ms). Each pass costs about "
                                    "one more single-pass run; on a shared host one pass reproduced within "
                                    "±10 % for 67 % of kernels, two for 93 %. --passes 1: one pass, no "
                                    "confirmation (fastest, for dedicated hardware)."),
    confirm: Optional[float] = typer.Option(None, "--confirm", min=0.0, metavar="TOL",
                                            help="After the passes, re-measure, one pass at a time up to "
                                                 "--max-passes, only the items whose two lowest pass minima "
                                                 "differ by more than TOL (default 0.03 with 2+ passes; "
                                                 "0: off). "
                                                 "Costs about a sixth of a pass more at 0.03 on a shared VM "
                                                 "(3,033 of 17,399 items re-measured), and gives floors that "
                                                 "reproduce within TOL."),
    max_passes: Optional[int] = typer.Option(None, "--max-passes", min=1,
                                             help="Most passes any item gets with --confirm (default 4; more "
                                                  "passes cost time and did not raise accuracy)."),
    anchors: Optional[float] = typer.Option(None, "--anchors", min=0.0, metavar="SHARE",
                                            help="On a store that already holds kernels, with 2+ passes or "
                                                 "--confirm: also measure again stored kernels, this share "
                                                 "of the new items (or of each --adaptive round), among the "
                                                 "new ones, so host-speed drift is measured against the "
                                                 "store and the campaign joins its scale (default 0.25: "
                                                 "about a quarter more measurements; 0 for none)."),
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
    engine: str = typer.Option("threads", "--engine",
                               help="With --all: 'threads' (default, this process) or 'ray' (one Ray task "
                                    "per device, each device a Ray resource; needs pip install 'hwlat[ray]')."),
    address: Optional[str] = typer.Option(None, "--address",
                                          help="With --engine ray: an existing Ray cluster ('auto', "
                                               "'HOST:6379' or 'ray://HOST:10001'); default: a local one."),
) -> None:
    """Profile a device: a folder of models, a kernel suite, subnets of a space, the zoo and/or the corpus.

    By default items are measured in 2 passes, and again up to 4 passes where their floors differ
    by over 3 % (the quickstart's protocol, about 2.2 single passes); on a store that holds kernels,
    a quarter as many stored kernels are re-measured among the new ones (anchors, half a pass more).
    --passes 1: one pass, neither.

    Resumable: rows already stored are skipped, so after Ctrl-C, a killed agent or a
    dropped connection the same command continues where it stopped.

    --adaptive R: R rounds of nn-Meter-style adaptive sampling after the rest;
    rows are tagged extra={"source": "adaptive", "round": r, "seed": SEED}.
    The same command with the same --seed re-plans the same kernels.
    """
    if not (models or suite or space or zoo or corpus or adaptive):
        raise ConfigError("nothing to profile: give --models DIR, --suite quick|standard|full, --space NAME, "
                          "--zoo, --corpus FAMILIES or --adaptive ROUNDS")
    kernel_types = _parse_types(types)
    measure = {"max_time_s": max_time}
    if space_kernels and not space:
        raise ConfigError("--space-kernels needs --space NAME (the subnets whose kernels to measure)")
    if model_kernels and not (models or zoo or corpus):
        raise ConfigError("--model-kernels needs --models DIR or --zoo or --corpus FAMILIES (the models "
                          "whose kernels to measure)")
    # One short pass lands in whatever speed state a shared host is in; the quickstart's protocol
    # (2 passes, floors confirmed within 3 %, at most 4 passes) is the default unless asked for less.
    if confirm is None and passes >= 2:
        confirm = 0.03
    elif confirm == 0:
        confirm = None
    if max_passes is None and confirm is not None:
        max_passes = max(4, passes)
    in_passes = passes > 1 or confirm is not None
    if anchors and not in_passes:
        raise ConfigError("--anchors needs --passes 2 or more (or --confirm): host drift is told from items "
                          "measured several times")
    if all_devices and adaptive:
        raise ConfigError("--adaptive runs on one device at a time; give a device name instead of --all")
    if engine not in ("threads", "ray"):
        raise ConfigError(f"--engine {engine!r}: use threads or ray")
    if (engine == "ray" or address) and not all_devices:
        raise ConfigError("--engine ray and --address run a fleet: add --all (one device runs in this process)")
    if address and engine != "ray":
        raise ConfigError("--address is the Ray cluster of --engine ray; add --engine ray")
    if all_devices:
        devs = [d for d in load_devices().values() if not d.builtin]
        if not devs:
            raise ConfigError("--all: devices.toml defines no devices")
        results: dict[str, dict] = {}

        def one(dev: Device) -> dict:
            try:
                items = _items_for(dev, models, suite, space, samples, zoo, seed, kernel_types,
                                   space_kernels=space_kernels, model_kernels=model_kernels, corpus=corpus)
                if in_passes:
                    from hwlat.profiling.passes import profile_passes

                    runs = profile_passes(dev, items, passes=passes, seed=seed, confirm=confirm,
                                          max_passes=max_passes,
                                          runner=lambda d, its, st, f: profile(d, its, st, force=force or f,
                                                                               measure=measure))
                    # one summary for the table: the passes' measurements, failures (once each), error
                    summary = RunSummary(device=dev.name, run_id=runs[0].run_id, planned=runs[0].planned,
                                         skipped=runs[0].skipped, measured=sum(r.measured for r in runs),
                                         failed=list(dict(f for r in runs for f in r.failed).items()),
                                         error=next((r.error for r in runs if r.error), None))
                else:
                    summary = profile(dev, items, force=force, measure=measure)
                if not summary.error:
                    _record_kernels(items, dev.runtime, summary.failed)
                return summary.to_dict()
            except HwlatError as e:  # one device failing must not stop the others
                return {"device": dev.name, "error": str(e), "measured": 0, "failed": []}

        if engine == "ray":
            from hwlat.profiling.fleet_ray import profile_fleet

            for dev, res in zip(devs, profile_fleet(devs, one, address=address)):
                results[dev.name] = res
        else:
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
    if models or suite or space or zoo or corpus:
        items = _items_for(dev, models, suite, space, samples, zoo, seed, kernel_types,
                           space_kernels=space_kernels, model_kernels=model_kernels, corpus=corpus)
        if in_passes:
            from hwlat.profiling.passes import ANCHOR_SHARE, profile_passes, store_anchors

            store = ProfileStore(dev.name)
            share = ANCHOR_SHARE if anchors is None else anchors
            ride = store_anchors(dev, items, store, share=share, seed=seed)
            if ride and not json_out:
                err_console.print(f"{len(ride)} stored kernels measured again among the new items (anchors), "
                                  "so this campaign's host speed is tied to the store's")
            runs = profile_passes(dev, items, store, passes=passes, seed=seed, confirm=confirm,
                                  max_passes=max_passes, anchors=ride,
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


