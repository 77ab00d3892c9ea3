"""Every command and sub-command answers ``--help``; the top-level listing gives each one's summary."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from hwlat.cli import app


def _paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    # typer vendors its own click: recognise a group by its sub-commands, not its class
    out = []
    for name, cmd in sorted(group.commands.items()):
        out.append((*prefix, name))
        if hasattr(cmd, "commands"):
            out += _paths(cmd, (*prefix, name))
    return out


ROOT = typer.main.get_command(app)
PATHS = _paths(ROOT)


def test_every_main_command_is_registered() -> None:
    assert {p[0] for p in PATHS} >= {"measure", "profile", "kernels", "train", "predict", "eval", "quickstart",
                                     "devices"}
    assert {p[1] for p in PATHS if p[0] == "devices" and len(p) > 1} >= {"list", "add", "show", "check", "trust"}


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_help(path: tuple[str, ...]) -> None:
    r = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert f"Usage: hwlat {' '.join(path)}" in r.output
    cmd = ROOT
    for p in path:
        cmd = cmd.commands[p]  # type: ignore[attr-defined]
    assert (cmd.help or "").strip(), f"hwlat {' '.join(path)} has no help text"


def test_listing_gives_each_summary_on_one_line() -> None:
    """The summary is the docstring's first paragraph, reflowed: a line break of the source must not
    survive into the listing (at 400 columns each summary fits one line)."""
    r = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "400"})
    assert r.exit_code == 0
    for name, cmd in ROOT.commands.items():  # type: ignore[attr-defined]
        summary = " ".join((cmd.short_help or cmd.help or "").split("\n\n")[0].split())
        line = next((ln for ln in r.output.splitlines() if f" {name} " in ln), "")
        assert summary in line, f"{name}: {line!r}"


def test_accuracy_table_fits_80_columns_without_cutting_cells() -> None:
    from rich.console import Console

    from hwlat.cli.predict_cmd import _metric_table

    r = {"n": 3492, "acc5": 0.858, "acc10": 1.0, "rmse": 12.345, "mape": 0.1234, "spearman": 0.998, "kendall": 0.951,
         "interval_coverage": 0.949}
    rows = [("kernels", r), ("models Σkernels", r), ("subnet model", r), ("models (predict)", None),
            ("ofa_proxyless", r)]
    con = Console(width=80, record=True, color_system=None)
    con.print(_metric_table("local gbdt: held-out accuracy", rows))
    out = con.export_text()
    assert "…" not in out and max(len(ln.rstrip()) for ln in out.splitlines()) <= 80
    for cell in ("3492", "85.8 %", "100.0 %", "12.35", "12.3 %", "0.998", "0.951", "94.9 %", "kernels",
                 "models Σkernels", "models (predict)", "ofa_proxyless", "RMSE ms", "Spearman", "in int."):
        assert cell in out, out


@pytest.mark.parametrize("name", ["profile", "train", "quickstart"])
def test_help_gives_each_docstring_paragraph_on_one_line(name: str) -> None:
    """At 400 columns every paragraph of the command's docstring is one line of its --help."""
    fn = ROOT.commands[name].callback  # type: ignore[attr-defined]
    r = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "400"})
    assert r.exit_code == 0
    lines = [" ".join(ln.split()) for ln in r.output.splitlines()]
    for para in (fn.__doc__ or "").strip().split("\n\n"):
        assert " ".join(para.split()) in lines, para
