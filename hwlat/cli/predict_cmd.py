"""`hwlat train`, `hwlat predict` and `hwlat eval`: device latency predictors."""

from __future__ import annotations

import json
import shlex
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich import box
from rich.table import Table

from hwlat.cli.common import console, err_console, fmt_ms, print_json
from hwlat.errors import ConfigError, ModelFileError, UnsupportedOperatorWarning

KIND_ORDER = ("gbdt", "mlp", "transfer")
MAX_TABLE_KERNELS = 60  # beyond this, `hwlat predict` lists only the TOP_KERNELS slowest
TOP_KERNELS = 25


@contextmanager
def training_progress(desc: str, quiet: bool = False) -> Iterator[Any]:
    """A ``progress(stage, done, total)`` callback drawing one rich bar (stderr)."""
    if quiet:
        yield None
        return
    from hwlat.cli.progress import make_progress

    with make_progress() as prog:
        task = prog.add_task(desc, total=None, current="")

        def cb(stage: str, done: int, total: int) -> None:
            prog.update(task, completed=done, total=max(total, 1), current=stage[:40])

        yield cb


def resolve_kind(device: str, kind: str) -> str:
    """``auto`` → the first trained kind of gbdt, mlp, transfer for ``device``."""
    if kind != "auto":
        return kind
    from hwlat.predictors.predictor import MANIFEST, no_predictor, predictor_dir

    for k in KIND_ORDER:
        if (predictor_dir(device, k) / MANIFEST).is_file():
            return k
    raise no_predictor(device, predictor_dir(device, KIND_ORDER[0]).parent)


def _metric_table(title: str, rows: list[tuple[str, Optional[dict]]]) -> Table:
    # no vertical rules, one space between columns: the table fits an 80-column terminal without
    # cutting cells, and row labels up to 18 characters stay on one line
    caption = ("in int.: share measured inside the 90 % interval"
               if any(r and r.get("interval_coverage") is not None for _, r in rows) else None)
    t = Table(box=box.SIMPLE_HEAD, title=title, caption=caption, pad_edge=False, padding=0)
    t.add_column("held-out", min_width=9)
    for h in ("n", "±5%", "±10%", "RMSE ms", "MAPE", "Spearman", "Kendall", "in int."):
        t.add_column(h, justify="right", no_wrap=True)

    def f(v: Any, pct: bool = False) -> str:
        if v is None:
            return "-"
        return f"{100 * v:.1f} %" if pct else f"{v:.3f}"

    for name, r in rows:
        if not r:
            t.add_row(name, "0", *["-"] * 7)
            continue
        t.add_row(name, str(r["n"]), f(r["acc5"], True), f(r["acc10"], True), fmt_ms(r["rmse"]),
                  f(r["mape"], True), f(r["spearman"]), f(r["kendall"]), f(r.get("interval_coverage"), True))
    return t


def summary_rows(ev: dict[str, Any]) -> list[tuple[str, Optional[dict]]]:
    s = ev.get("summary", {})
    rows = [("kernels", s.get("kernel")), ("models Σkernels", s.get("model_kernel_sum"))]
    if s.get("model_subnet"):
        rows.append(("subnet model", s.get("model_subnet")))
    rows.append(("models (predict)", s.get("model_default")))
    return rows


def train_command(
    name: str = typer.Argument(..., help="Device name whose profiles to train on."),
    kind: str = typer.Option("gbdt", "--kind", help="gbdt, mlp or both."),
    transfer_from: Optional[str] = typer.Option(None, "--transfer-from",
                                                help="Few-shot: map this trained source device's predictor "
                                                     "to NAME using NAME's whole-model measurements."),
    samples: Optional[int] = typer.Option(None, "--samples", help="With --transfer-from: use only this many "
                                                                   "of NAME's measured models."),
    holdout: float = typer.Option(0.2, "--holdout", help="Share of kernels/models kept out for evaluation."),
    min_samples: int = typer.Option(24, "--min-samples", help="Kernel types with fewer measurements use the "
                                                              "pooled model."),
    fast: bool = typer.Option(False, "--fast", help="Smaller hyper-parameter search and shorter MLP training."),
    target: str = typer.Option("auto", "--target", help="Statistic to predict: median_ms, min_ms (robust "
                                                         "when the device was busy), floor_ms (lowest over all "
                                                         "passes of `hwlat profile --passes N`, with the host's "
                                                         "speed drift divided out: for hosts whose speed "
                                                         "switches between states), or auto: floor_ms "
                                                         "when most items have 2+ passes, else median_ms."),
    json_out: bool = typer.Option(False, "--json", help="JSON output for scripting."),
) -> None:
    """Train the latency predictor(s) of a device from its profile store (GBDT and/or MLP, kernel
    and subnet level), evaluate on held-out data and save under profiles/NAME/predictors/."""
    from hwlat.predictors.training import train, train_transfer

    if not 0.0 <= holdout < 0.9:
        raise ConfigError(f"--holdout {holdout}: use a share between 0 and 0.9")
    if transfer_from:
        src_kind = resolve_kind(transfer_from, "auto" if kind in ("both",) else kind)
        res = train_transfer(name, transfer_from, src_kind, n_samples=samples, holdout=holdout)
        if json_out:
            print_json(res.to_dict())
            return
        console.print(f"[bold]{name}[/]: transfer predictor from {transfer_from} ({src_kind}) saved to "
                      f"{res.directory} in {res.seconds:.1f} s")
        console.print(_metric_table("held-out whole models", [
            ("transfer", res.evaluation.get("model")), (f"{transfer_from} as is", res.evaluation.get("source_only"))]))
        return
    kinds = ["gbdt", "mlp"] if kind == "both" else [kind]
    for k in kinds:
        if k not in ("gbdt", "mlp"):
            raise ConfigError(f"--kind {kind!r}: use gbdt, mlp or both")
    results = []
    for k in kinds:
        with training_progress(f"training {name} {k}", quiet=json_out) as cb:
            res = train(name, k, holdout=holdout, min_samples=min_samples, fast=fast, target=target, progress=cb)
        results.append(res)
        if not json_out:
            console.print(f"[bold]{name}[/] {k} (target {res.predictor.manifest['target']}): saved to "
                          f"{res.directory} in {res.seconds:.1f} s")
            for n in res.notes:
                err_console.print(f"  note: {n}")
            console.print(_metric_table(f"{name} {k}: held-out accuracy", summary_rows(res.evaluation)))
    if json_out:
        out = [{**r.to_dict(), "evaluation": {k: v for k, v in r.evaluation.items() if k != "points"}}
               for r in results]
        print_json(out[0] if len(out) == 1 else out)


def load_model_arg(model: str, space: Optional[str], input_shape: Optional[str]) -> tuple[Any, Any]:
    """(thing to predict, input shape) from the MODEL argument: an arch encoding with --space
    (JSON, or a plain string), an .onnx file, a zoo model name, or ``timm:NAME``."""
    shape = _parse_shape(input_shape)
    if space:
        try:
            return json.loads(model), None
        except json.JSONDecodeError:
            return model, None  # e.g. an NB201 arch string
    p = Path(model)
    if p.is_file():
        return p, shape
    if model.startswith("timm:"):
        from hwlat.zoo import timm_models

        proto, tshape = timm_models.load(model, shape)  # exported once into the profiles cache
        return proto, tshape
    from hwlat import zoo

    zname = model[4:] if model.startswith("zoo:") else model
    if zname in zoo.names():
        module, zshape = zoo.get(zname)
        return module, shape or zshape
    raise ModelFileError(f"model {model!r} not found; give an .onnx file, a zoo model ({', '.join(zoo.names())}), "
                         "timm:NAME (timm installed) or an arch encoding with --space NAME")


def _parse_shape(s: Optional[str]) -> Optional[tuple[int, ...]]:
    if not s:
        return None
    try:
        shape = tuple(int(v) for v in s.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--input-shape {s!r}: give comma-separated ints such as 1,3,224,224") from None
    if not shape or any(v <= 0 for v in shape):
        raise ConfigError(f"--input-shape {s!r}: give positive ints such as 1,3,224,224")
    return shape


def _measure_hint(device: str, x: Any, space: Optional[str]) -> str:
    """How to get an extrapolated model's kernels into the device's training data."""
    q = shlex.quote
    if space:
        return (f"measure more of the space's kernels with `hwlat profile {q(device)} --space {q(space)} "
                "--space-kernels`")
    if isinstance(x, Path):
        return (f"measure them with `hwlat profile {q(device)} --models DIR --model-kernels` "
                f"(DIR holding {q(x.name)})")
    return f"measure them with `hwlat profile {q(device)} --zoo --model-kernels`"


def _whole_model_hint(device: str, x: Any, space: Optional[str]) -> str:
    """How to get whole models like ``x`` into the device's overhead fit."""
    q = shlex.quote
    if space:
        return f"measure more subnets with `hwlat profile {q(device)} --space {q(space)} --samples 50`"
    if isinstance(x, Path):
        return f"measure whole models like this one with `hwlat profile {q(device)} --models DIR` (DIR holding {q(x.name)})"
    return f"measure the zoo with `hwlat profile {q(device)} --zoo`"


def predict_command(
    model: str = typer.Argument(..., help="ONNX file, zoo model name, timm:NAME (random weights; needs timm), "
                                          "or an arch encoding (JSON) with --space."),
    device: str = typer.Option("local", "--device", "-d", help="Device whose predictor to use."),
    kind: str = typer.Option("auto", "--kind", help="gbdt, mlp, transfer, or auto (first trained)."),
    space: Optional[str] = typer.Option(None, "--space", help="MODEL is an arch of this search space."),
    method: Optional[str] = typer.Option(None, "--method", help="subnet or kernel-sum (default: best available)."),
    input_shape: Optional[str] = typer.Option(None, "--input-shape", "--input",
                                              help="e.g. 1,3,224,224 or 1x3x224x224 (ONNX files with dynamic "
                                                   "dims; timm models: default from their config)."),
    strict: bool = typer.Option(False, "--strict", help="Refuse a model with operators no kernel covers (exit "
                                                        "2) instead of predicting it with a widened interval."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a per-kernel breakdown bar chart (PNG)."),
    json_out: bool = typer.Option(False, "--json", help="JSON output for scripting."),
) -> None:
    """Predict the latency of a model on a device, with a 90 % interval and per-kernel breakdown."""
    from hwlat.predictors.predictor import Predictor

    pred = Predictor.load(device, resolve_kind(device, kind))
    x, shape = load_model_arg(model, space, input_shape)
    source = x
    if isinstance(x, Path) and shape is not None:
        x = _fix_shape(x, shape)
    with warnings.catch_warnings():
        # the CLI says it below, once, in its own words
        warnings.simplefilter("ignore", UnsupportedOperatorWarning)
        p = pred.predict(x, input_shape=shape, space=space, method=method, strict=strict)
    if plot:
        from hwlat.predictors.plots import plot_breakdown

        plot_breakdown(p, plot)
    if json_out:
        d = p.to_dict()
        d["model"] = model
        d["unsupported_share"] = 1.0 - p.coverage
        if plot:
            d["plot"] = str(plot)
        print_json(d)
        return
    # a long model's table would scroll its answer away: show its slowest kernels, in model order
    shown = list(range(len(p.kernels)))
    caption = None
    if len(shown) > MAX_TABLE_KERNELS:
        shown = sorted(sorted(shown, key=lambda i: -p.kernels[i]["ms"])[:TOP_KERNELS])
        caption = f"the {len(shown)} slowest of {len(p.kernels)} kernels; all of them: --json or --plot FILE"
    t = Table("#", "kernel", "config", "ms", "90 % interval", "model", caption=caption)
    for i in shown:
        k = p.kernels[i]
        cfg = " ".join(f"{a}={b}" for a, b in k["config"].items())
        t.add_row(str(i), k["type"], cfg, fmt_ms(k["ms"]), f"{fmt_ms(k['low'])}–{fmt_ms(k['high'])}",
                  "pooled" if k["model"] == "_pooled" else "own")
    if p.kernels:
        console.print(t)
    console.print(f"[bold]{model}[/] on [bold]{device}[/] ({pred.kind}, {p.method}): "
                  f"[bold]{fmt_ms(p.latency_ms)} ms[/] (90 % interval {fmt_ms(p.low_ms)}–{fmt_ms(p.high_ms)} ms; "
                  f"{len(p.kernels)} kernels, Σ alone {fmt_ms(p.kernel_sum_ms)} ms)")
    if p.pooled_types:
        err_console.print(f"  note: kernel types served by the pooled fallback model: {', '.join(p.pooled_types)}")
    overhead = [o.removeprefix("overhead: ") for o in p.out_of_range if o.startswith("overhead: ")]
    features = [o for o in p.out_of_range if not o.startswith("overhead: ")]
    if features:
        err_console.print(f"  [yellow]warning[/]: outside the training range: {', '.join(features[:12])}"
                          + (f" … (+{len(features) - 12})" if len(features) > 12 else "")
                          + f"; those kernels are extrapolated: {_measure_hint(device, source, space)} and retrain")
    if overhead and p.method == "kernel-sum":
        err_console.print(f"  [yellow]warning[/]: whole-model overhead extrapolated ({'; '.join(overhead)}): "
                          f"{_whole_model_hint(device, source, space)} and retrain")
    if p.unsupported:
        err_console.print(f"  [bold red]WARNING: incomplete prediction[/]: operators with no kernel are left out "
                          f"of {fmt_ms(p.latency_ms)} ms: {', '.join(p.unsupported)}; the kernels cover "
                          f"{100 * p.coverage:.0f} % of the model ({p.coverage_basis}), so the interval's high end "
                          f"is divided by that share; `--strict` refuses such models")
    if plot:
        console.print(f"breakdown plot: {plot}")


def _fix_shape(path: Path, shape: tuple[int, ...]) -> Any:
    """An ONNX model with its first input's dims set to ``shape`` (dynamic dims need this)."""
    import onnx

    m = onnx.load(str(path))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != len(shape):
        raise ConfigError(f"--input-shape has {len(shape)} dims, {path.name}'s input has {len(dims)}")
    for d, v in zip(dims, shape, strict=True):
        d.ClearField("dim_param")
        d.dim_value = v
    return m


def eval_command(
    name: str = typer.Argument(..., help="Device whose predictor to evaluate."),
    kind: str = typer.Option("auto", "--kind", help="gbdt, mlp, transfer, or auto (first trained)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a predicted-vs-measured scatter (PNG)."),
    json_out: bool = typer.Option(False, "--json", help="JSON output for scripting."),
) -> None:
    """Accuracy of a device's predictor on held-out kernels and whole models (±5 %/±10 %, RMSE,
    MAPE, Spearman, Kendall, interval coverage)."""
    from hwlat.predictors.evaluation import evaluate
    from hwlat.predictors.predictor import Predictor

    pred = Predictor.load(name, resolve_kind(name, kind))
    ev = evaluate(pred)
    if plot:
        from hwlat.predictors.plots import plot_scatter

        plot_scatter(ev, plot)
    if json_out:
        out = {k: v for k, v in ev.items() if k != "points"}
        if plot:
            out["plot"] = str(plot)
        print_json(out)
        return
    console.print(_metric_table(f"{name} {pred.kind}: held-out accuracy", summary_rows(ev)))
    per_space = ((ev.get("model") or {}).get("default") or {}).get("per_space") or {}
    if per_space:
        console.print(_metric_table("whole models by space (default method)", sorted(per_space.items())))
    if plot:
        console.print(f"scatter plot: {plot}")
