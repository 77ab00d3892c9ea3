"""`hwlat quickstart`: profile → train → evaluate → predict on a local device, in minutes.

Resumable: measured items are skipped, so an interrupted quickstart continues where it stopped.
Exported models are released from the cache when it ends (a marker keeps each one's key), and
exported again only if they must be measured again (`hwlat cache` shows what is kept).
"""

from __future__ import annotations

import time
from typing import Any, Optional

import typer

from hwlat.cli.common import console, err_console, fmt_ms, print_json
from hwlat.errors import ConfigError, HwlatError
from hwlat.profiling.export_cache import releasing_exports

DEFAULT_ZOO = ("mobilenet_v3_small", "mobilenet_v2", "resnet18")
#: the corpus networks of the quickstart are small: the check needs many families, not big models
CORPUS_RESOLUTION = 128


@releasing_exports  # exported models are needed only while they are measured
def quickstart_command(
    device: str = typer.Option("local", "--device", "-d", help="Device to profile (built-in: local, local-2t, …)."),
    subnets: int = typer.Option(40, "--subnets", help="Random ofa_mbv3 subnets to profile."),
    subnet_kernels: Optional[int] = typer.Option(None, "--subnet-kernels", min=0,
                                                 help="Also profile the kernels of this many of those subnets, one "
                                                      "by one: the space's own kernels (default 20; 5 with --fast)."),
    zoo_models: str = typer.Option(",".join(DEFAULT_ZOO), "--zoo", help="Comma-separated zoo models to profile."),
    corpus_models: Optional[int] = typer.Option(
        None, "--corpus", min=0, help="Whole models of this many corpus networks, one family after another at "
                                      f"{CORPUS_RESOLUTION}x{CORPUS_RESOLUTION} (default: one per family; 0 with "
                                      "--fast): the networks of other families on which the whole-model stage is "
                                      "chosen and checked (their kernels are not measured alone)."),
    passes: Optional[int] = typer.Option(None, "--passes", min=1,
                                         help="Measurement passes per item; with 2+ the predictors learn the "
                                              "lowest time over the passes (default 2; 1 with --fast)."),
    confirm: float = typer.Option(0.03, "--confirm", min=0.001, metavar="TOL",
                                  help="With 2+ passes: re-measure, one pass at a time, the items whose two "
                                       "fastest passes differ by more than TOL, up to --max-passes."),
    max_passes: int = typer.Option(4, "--max-passes", min=1, help="Most passes any item gets with --confirm."),
    fast: bool = typer.Option(False, "--fast", help="Fewer subnets (15) and subnet kernels (5), one pass, shorter "
                                                    "measurements, GBDT only."),
    kind: Optional[str] = typer.Option(None, "--kind", help="gbdt, mlp or both (default: both; gbdt with --fast)."),
    max_time: Optional[float] = typer.Option(None, "--max-time", help="Time cap per measured item in seconds."),
    json_out: bool = typer.Option(False, "--json", help="JSON summary for scripting."),
) -> None:
    """The main job: profile the quick kernel suite, some ofa_mbv3 subnets (and the kernels of some of
    them), a few zoo models and one small network of each corpus family on DEVICE in confirmed passes,
    train the predictors, print held-out accuracy, the leave-one-family-out accuracy on networks of
    other families, and a zoo model's prediction next to its measurement."""
    from hwlat import corpus, zoo
    from hwlat.cli.predict_cmd import _metric_table, summary_rows, training_progress
    from hwlat.cli.progress import profiling_progress, simple_progress
    from hwlat.devices import Device, get_device
    from hwlat.predictors.training import is_holdout, train
    from hwlat.profiling import Item, profile
    from hwlat.profiling.passes import profile_passes, store_anchors
    from hwlat.profiling.runner import RunSummary
    from hwlat.profiling.sources import (
        corpus_items,
        file_kernels_path,
        kernel_items,
        record_model_kernels,
        space_items,
        space_kernel_items,
        zoo_items,
    )
    from hwlat.store import ProfileStore, with_floor

    t0 = time.monotonic()
    dev = get_device(device)
    if fast and subnets == 40:
        subnets = 15
    if subnet_kernels is None:
        subnet_kernels = 5 if fast else 20
    kinds = {"gbdt": ["gbdt"], "mlp": ["mlp"], "both": ["gbdt", "mlp"]}.get(kind or ("gbdt" if fast else "both"))
    if kinds is None:
        raise ConfigError(f"--kind {kind!r}: use gbdt, mlp or both")
    names = [z.strip() for z in zoo_models.split(",") if z.strip()]
    for z in names:
        if z not in zoo.names():
            raise ConfigError(f"--zoo: unknown zoo model {z!r}; known: {', '.join(zoo.names())}")
    passes = passes or (1 if fast else 2)
    # One short pass lands in whatever speed state a shared host is in (on our 2-vCPU VM a whole
    # quickstart once ran 20-35 % slow for 40 s of its 70: held-out kernels ±10 % fell from 85 to
    # 32 %); floors confirmed by a second pass reproduce.
    target = "floor_ms" if passes > 1 else "median_ms"
    measure = {"max_time_s": max_time if max_time is not None else (0.15 if fast else 0.3),
               "min_runs": 10, "warmup_max_s": 0.1}
    timings: dict[str, float] = {}

    # 1. export (cached by content: a re-run skips this)
    t = time.monotonic()
    quiet = json_out
    with _maybe(simple_progress, "exporting quick kernel suite", quiet) as tick:
        items = kernel_items("quick", dev.runtime, tick=tick)
    if subnets > 0:
        with _maybe(simple_progress, f"exporting {subnets} ofa_mbv3 subnets", quiet) as tick:
            items += space_items("ofa_mbv3", subnets, dev.runtime, seed=0, tick=tick)
    if subnets > 0 and subnet_kernels > 0:
        with _maybe(simple_progress, f"exporting the kernels of {min(subnets, subnet_kernels)} subnets", quiet) as tick:
            items += space_kernel_items("ofa_mbv3", min(subnets, subnet_kernels), dev.runtime, seed=0, tick=tick)
    if names:
        with _maybe(simple_progress, "exporting zoo models", quiet) as tick:
            items += zoo_items(dev.runtime, names, tick=tick)
    n_corpus = corpus_models if corpus_models is not None else (0 if fast else len(corpus.families()))
    corpus_whole: list[Item] = []
    if n_corpus:
        with _maybe(simple_progress, f"exporting {n_corpus} corpus networks", quiet) as tick:
            corpus_whole = corpus_items(corpus.families(), n_corpus, dev.runtime, seed=0, tick=tick,
                                        resolution=CORPUS_RESOLUTION)
        items += corpus_whole
    timings["export_s"] = time.monotonic() - t

    # 2. profile (resumable), in passes
    t = time.monotonic()
    store = ProfileStore(dev.name)

    def run(d: Device, its: list[Item], st: ProfileStore, force: bool) -> RunSummary:
        if quiet:
            return profile(d, its, st, force=force, measure=measure)
        with profiling_progress(d.name) as cb:
            return profile(d, its, st, force=force, measure=measure, progress=cb)

    # On a store grown by earlier campaigns, stored kernels re-measured among the new items tie this
    # run's host speed to the store's (the drift fit needs items measured in both).
    anchors = store_anchors(dev, items, store) if passes > 1 else []
    runs = profile_passes(dev, items, store, passes=passes, runner=run, confirm=confirm if passes > 1 else None,
                          max_passes=max_passes, anchors=anchors)
    timings["profile_s"] = time.monotonic() - t
    summary = runs[0]
    error = next((r.error for r in runs if r.error), None)
    if error:
        raise HwlatError(error)
    if not quiet:
        failed = dict(f for r in runs for f in r.failed)  # an item failing in each pass counts once
        console.print(f"[bold]{dev.name}[/]: measured {sum(r.measured for r in runs)} in {len(runs)} pass(es), "
                      f"already stored {summary.skipped}, failed {len(failed)} of {summary.planned}")
        for n, why in list(failed.items())[:5]:
            err_console.print(f"  [red]failed[/] {n}: {why}")
    # training reads a model file's kernels from the list recorded for its content
    for it in corpus_whole:
        if not file_kernels_path(it.sha256, dev.runtime).is_file():
            it.ensure_file()
    for n, why in record_model_kernels(corpus_whole, dev.runtime):
        err_console.print(f"  [yellow]note[/]: {n}: {why}")

    # 3. train + evaluate
    results = []
    for k in kinds:
        t = time.monotonic()
        with training_progress(f"training {k}", quiet) as cb:
            res = train(dev.name, k, fast=fast, progress=cb, target=target)
        timings[f"train_{k}_s"] = time.monotonic() - t
        results.append(res)
        if not quiet:
            console.print(_metric_table(f"{dev.name} {k}: held-out accuracy", summary_rows(res.evaluation)))
            for n in res.notes:
                err_console.print(f"  note: {n}")

    # 4. a zoo model: prediction next to its measurement
    shown: list[dict[str, Any]] = []
    if names:
        models = with_floor(store.models(), store.models(latest=False))
        for z in names:
            rows = models[(models["space"] == "zoo") & (models["name"] == z)]
            if not len(rows):
                continue
            row = rows.iloc[-1]
            measured = float(row[target])
            module, shape = zoo.get(z)
            for res in results:
                p = res.predictor.predict(module, input_shape=shape)
                shown.append({"model": z, "kind": res.predictor.kind, "predicted_ms": p.latency_ms,
                              "low_ms": p.low_ms, "high_ms": p.high_ms, "measured_ms": measured,
                              "statistic": target,
                              "held_out": is_holdout(str(row["item_key"]), res.predictor.manifest["holdout"]),
                              "error": p.latency_ms / measured - 1.0})
            break
    lofo = {r.predictor.kind: _lofo(r.predictor.manifest) for r in results}
    timings["total_s"] = time.monotonic() - t0
    if json_out:
        print_json({"device": dev.name, "profile": summary.to_dict(), "passes": [r.to_dict() for r in runs],
                    "target": target, "timings": timings, "zoo_prediction": shown, "leave_one_family_out": lofo,
                    "evaluation": {r.predictor.kind: r.evaluation["summary"] for r in results},
                    "predictors": [str(r.directory) for r in results]})
        return
    for s in shown:
        console.print(f"[bold]{s['model']}[/] ({s['kind']}): predicted [bold]{fmt_ms(s['predicted_ms'])} ms[/] "
                      f"(90 % interval {fmt_ms(s['low_ms'])}–{fmt_ms(s['high_ms'])}), measured "
                      f"{'(fastest of the passes) ' if s['statistic'] == 'floor_ms' else ''}"
                      f"{fmt_ms(s['measured_ms'])} ms, error {100 * s['error']:+.1f} % "
                      f"({'held out' if s['held_out'] else 'its measurement was in the training data'})")
    for k, f in lofo.items():
        if f:
            console.print(f"[bold]networks of families it was not fitted on[/] ({k}): {100 * f['within_10']:.0f} % "
                          f"within ±10 % (leave-one-family-out over {f['families']} families of measured whole "
                          f"models; whole-model stage: {f['stage']})")
    console.print(f"done in {timings['total_s']:.0f} s (export {timings['export_s']:.0f} s, profiling "
                  f"{timings['profile_s']:.0f} s). Next: `hwlat predict MODEL.onnx --device {dev.name}`, "
                  f"`hwlat eval {dev.name} --plot eval.png`")


def _lofo(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The whole-model stage's leave-one-family-out figure from a predictor's manifest (None when
    too few families were measured to hold one out)."""
    st = manifest.get("whole_model_stage") or {}
    within = (st.get("logo_within_10") or {}).get(st.get("chosen"))
    if within is None:
        return None
    return {"within_10": float(within), "mape": float(st["logo_mape"][st["chosen"]]),
            "families": int(st["families"]), "stage": str(st["chosen"])}


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


def _maybe(cm: Any, desc: str, quiet: bool) -> Any:
    return _Null() if quiet else cm(desc)
