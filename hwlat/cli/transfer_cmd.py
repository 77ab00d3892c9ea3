"""`hwlat transfer`: a new device's predictor from a few measurements and trained source devices."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from hwlat.cli.common import console, err_console, print_json
from hwlat.errors import ConfigError, HwlatError


def _names(s: str, what: str) -> list[str]:
    out = list(dict.fromkeys(x.strip() for x in s.split(",") if x.strip()))
    if not out:
        raise ConfigError(f"{what} {s!r}: give one or more comma-separated names")
    return out


def transfer_command(
    name: str = typer.Argument(..., help="The new device (see `hwlat devices list`)."),
    from_: Optional[str] = typer.Option(None, "--from", help="Trained source device(s), comma-separated: "
                                                            "their predictors are mapped to NAME."),
    from_help: Optional[Path] = typer.Option(None, "--from-help", help="Folder of the public HELP latency tables "
                                                                      "(nb201_latency_ms.csv …): their devices "
                                                                      "are the sources, for --space nb201/fbnet."),
    help_devices: Optional[str] = typer.Option(None, "--help-devices", help="With --from-help: the table's "
                                                                            "device columns to use (default all)."),
    samples: int = typer.Option(20, "--samples", min=3, help="Models to have measured on NAME in all; those "
                                                             "already measured count, so a later larger "
                                                             "--samples measures only the difference."),
    space: str = typer.Option("ofa_mbv3", "--space", help="Search space(s) whose subnets are candidates, "
                                                          "comma-separated (with --from-help: nb201 or fbnet)."),
    pool: int = typer.Option(200, "--pool", min=1, help="Random candidate subnets per space."),
    zoo: bool = typer.Option(True, "--zoo/--no-zoo", help="Zoo models are candidates too (not with --from-help)."),
    kind: str = typer.Option("auto", "--kind", help="Sources' predictor kind: gbdt, mlp or auto (first trained)."),
    seed: int = typer.Option(7, "--seed", help="Seed of the candidate pool (keep it to resume a campaign)."),
    max_time: float = typer.Option(2.0, "--max-time", help="Time cap per measured model in seconds."),
    passes: int = typer.Option(1, "--passes", min=1, help="Measure every chosen model this many times, minutes "
                                                          "apart (the fit then uses the fastest pass)."),
    json_out: bool = typer.Option(False, "--json", help="JSON output for scripting."),
) -> None:
    """Few-shot transfer: measure a few informative models on a new device, map trained source
    devices' predictors to it, save the result as NAME's `transfer` predictor and report its
    leave-one-out accuracy.

    The models are chosen from a pool of search-space subnets and zoo models to spread over what the
    sources predict for them and over families. Resumable: models already measured on NAME are kept
    and count toward --samples. `hwlat predict --device NAME`, `hwlat.Predictor.load(NAME)` and
    `hwlat.Oracle(device=NAME)` then use the transfer predictor (kind `transfer`).
    """
    from hwlat.devices import get_device

    if bool(from_) == bool(from_help):
        raise ConfigError("give the sources with --from DEV[,DEV...] (trained devices) or --from-help DIR "
                          "(the HELP tables), one of the two")
    dev = get_device(name)
    spaces = _names(space, "--space")
    if from_help:
        from hwlat.predictors.help_transfer import run_help_transfer

        res = run_help_transfer(dev, from_help, spaces, samples=samples, pool=pool, seed=seed,
                                devices=_names(help_devices, "--help-devices") if help_devices else None,
                                measure=_measurer(dev, max_time, passes, json_out))
        _show(res, json_out)
        return
    assert from_ is not None
    srcs = _names(from_, "--from")
    if name in srcs:
        raise ConfigError(f"--from lists {name!r} itself; the sources are other, trained devices")
    from hwlat.cli.predict_cmd import resolve_kind
    from hwlat.predictors.predictor import Predictor
    from hwlat.predictors.transfer_flow import (
        candidate_kernels,
        candidate_pool,
        fit_and_save,
        measured_candidates,
        select,
        source_view,
    )

    sources = [Predictor.load(s, resolve_kind(s, kind)) for s in srcs]
    cands = candidate_pool(spaces, pool, zoo, seed)
    with _maybe(_simple, "the sources' view of the candidates", json_out) as tick:
        kls = candidate_kernels(sources[0], cands, tick)
    view = source_view(sources, [c.space for c in cands], [c.arch for c in cands], kls)
    have = measured_candidates(name, cands)
    chosen = select(view.source_ms, [c.family for c in cands], samples, have)
    new = [i for i in chosen if i not in set(have)]
    if not json_out:
        err_console.print(f"{name}: {len(chosen)} models chosen from {len(cands)} candidates "
                          f"({len(have)} already measured, {len(new)} to measure)")
    _measurer(dev, max_time, passes, json_out)([cands[i] for i in chosen])
    res = fit_and_save(name, sources, selection={
        "spaces": spaces, "pool_per_space": pool, "zoo": zoo, "seed": seed, "samples": samples,
        "chosen": [{"space": cands[i].space, "arch": cands[i].arch} for i in chosen]})
    _show(res.to_dict(), json_out)


class _maybe:
    """``ctx(desc)`` as a context manager, or a no-op yielding None when ``quiet``."""

    def __init__(self, ctx: Any, desc: str, quiet: bool) -> None:
        self.cm = None if quiet else ctx(desc)

    def __enter__(self) -> Any:
        return self.cm.__enter__() if self.cm is not None else None

    def __exit__(self, *exc: Any) -> None:
        if self.cm is not None:
            self.cm.__exit__(*exc)


def _measurer(dev: Any, max_time: float, passes: int, json_out: bool) -> Any:
    """A function measuring candidates on ``dev`` through the normal profiling path (resumable)."""

    def run(cands: list[Any]) -> None:
        from hwlat.cli.profile_cmd import run_profile
        from hwlat.predictors.transfer_flow import candidate_items

        with _maybe(_simple, f"exporting {len(cands)} models for {dev.name}", json_out) as tick:
            items = candidate_items(cands, dev.runtime, tick)
        measure = {"max_time_s": max_time}
        if passes > 1:
            from hwlat.profiling.passes import profile_passes

            runs = profile_passes(dev, items, passes=passes, measure=measure,
                                  runner=lambda d, its, st, f: run_profile(d, its, f, json_out, measure, store=st))
            summary = runs[-1]
        else:
            summary = run_profile(dev, items, False, json_out, measure)
        if summary.error:
            raise HwlatError(summary.error)
        if summary.failed:
            who, why = summary.failed[0]
            err_console.print(f"  [yellow]warning[/]: {len(summary.failed)} model(s) failed on {dev.name}, "
                              f"first {who}: {why}; the fit uses the others")

    return run


def _simple(desc: str) -> Any:
    from hwlat.cli.progress import simple_progress

    return simple_progress(desc)


def _show(res: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(res)
        return
    from hwlat.cli.predict_cmd import _metric_table

    rows: list[tuple[str, Optional[dict]]] = [("transfer (LOO)", res["cv"])]
    rows += [(f"{s} as is", r) for s, r in res["source_as_is"].items()]
    console.print(_metric_table(f"{res['device']}: accuracy on its {res['n_models']} measured models", rows))
    cv = res["cv"] or {}
    if cv:
        srcs = res["sources"] if len(res["sources"]) <= 4 else [*res["sources"][:3], f"{len(res['sources']) - 3} more"]
        console.print(f"[bold]{res['device']}[/]: transfer predictor from {', '.join(srcs)} saved to "
                      f"{res['directory']}: leave-one-out ±10 % {100 * cv['acc10']:.1f} %, MAPE "
                      f"{100 * cv['mape']:.1f} %, Spearman {cv['spearman']:.3f}"
                      + ("" if cv.get('interval_coverage') is None else
                         f", 90 % interval holds {100 * cv['interval_coverage']:.0f} %"))
    if res.get("skipped"):
        err_console.print(f"  note: {len(res['skipped'])} stored model(s) not usable: {res['skipped'][0][0]}: "
                          f"{res['skipped'][0][1]}")
