"""`hwlat kernels MODEL`: the kernels a runtime executes for a model, with their cost-model numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from hwlat.cli.common import console, print_json
from hwlat.errors import ModelFileError


def _load(model: Path) -> tuple[Any, tuple[int, ...] | None]:
    """An ONNX file path, or a zoo model name (``resnet18`` or ``zoo:resnet18``) when no such file exists."""
    if model.is_file():
        return model, None
    name = str(model)
    name = name[4:] if name.startswith("zoo:") else name
    from hwlat import zoo

    if name in zoo.names():
        return zoo.get(name)
    raise ModelFileError(f"model file {str(model)!r} not found; give an .onnx file or a zoo model "
                         f"({', '.join(zoo.names())})")


def _costs(k: Any) -> dict[str, float | None]:
    from hwlat import kernels

    try:
        kt = kernels.get(k.type)
    except KeyError:
        return {"flops": None, "params": None, "bytes_read": None, "bytes_written": None}
    c = k.config
    return {"flops": float(kt.flops(c)), "params": float(kt.params(c)), "bytes_read": float(kt.bytes_read(c)),
            "bytes_written": float(kt.bytes_written(c))}


def _human(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.2f}{suf}{unit}"
    return f"{v:.0f}{unit}"


def kernels_command(
    model: Path = typer.Argument(..., help="ONNX file, or a zoo model name such as resnet18."),
    json_out: bool = typer.Option(False, "--json", help="JSON object {kernels, unsupported} for scripting."),
    runtime: str = typer.Option("onnxruntime", help="Fusion rules of this runtime (onnxruntime, tflite)."),
    strict: bool = typer.Option(False, "--strict", help="Fail when an operator maps to no kernel."),
) -> None:
    """List the kernels MODEL decomposes into (type, config, FLOPs, bytes, output shape) and any
    operator that maps to no kernel."""
    from hwlat.decompose import kernels_of

    m, shape = _load(model)
    d = kernels_of(m, input_shape=shape, runtime=runtime, strict=strict)
    rows = [(k, _costs(k)) for k in d.kernels]
    total_flops = sum(c["flops"] or 0.0 for _, c in rows)
    total_bytes = sum((c["bytes_read"] or 0.0) + (c["bytes_written"] or 0.0) for _, c in rows)
    if json_out:
        print_json({"runtime": runtime, "input_shapes": d.input_shapes,
                    "kernels": [{**k.to_dict(), **c} for k, c in rows], "unsupported": d.unsupported,
                    "totals": {"kernels": len(rows), "flops": total_flops, "bytes": total_bytes}})
        return
    t = Table("#", "type", "config", "FLOPs", "bytes", "output shape",
              title=f"{model} — {len(rows)} kernels ({runtime})")
    for i, (k, c) in enumerate(rows):
        by = None if c["bytes_read"] is None else (c["bytes_read"] or 0.0) + (c["bytes_written"] or 0.0)
        cfg = " ".join(f"{a}={v}" for a, v in k.config.items())
        out = ", ".join("x".join(str(v) for v in s) for s in k.outputs)
        t.add_row(str(i), k.type, cfg, _human(c["flops"]), _human(by, "B"), out)
    t.add_section()
    t.add_row("", "total", "", _human(total_flops), _human(total_bytes, "B"), "")
    console.print(t)
    if d.unsupported:
        u = Table("operator", "count", "example node", "reason", title="operators mapped to no kernel",
                  title_style="bold red")
        for e in d.unsupported:
            op = f"{e['domain']}::{e['op_type']}" if e["domain"] else e["op_type"]
            u.add_row(op, str(e["count"]), e["node"], e["reason"])
        console.print(u)
        console.print(f"[red]{sum(e['count'] for e in d.unsupported)} node(s) not covered: their latency is "
                      "missing from any prediction[/]")
    else:
        console.print("all operators mapped to kernels")

