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
