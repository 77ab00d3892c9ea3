"""The ``hwlat`` command line (typer). Every error prints one line and exits non-zero."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from hwlat.cli import cache_cmd, devices_cmd
from hwlat.cli.profile_cmd import measure_command, profile_command
from hwlat.errors import HwlatError

app = typer.Typer(
    name="hwlat",
    help="Hardware-aware latency profiler and predictor for neural networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(devices_cmd.app, name="devices")
app.add_typer(cache_cmd.app, name="cache")


def _add(name: str, fn: object) -> None:
    """Register a command; its help is the docstring with each paragraph reflowed to one line, and
    its listing line the first paragraph (rich would keep the source's line breaks in both)."""
    doc = (getattr(fn, "__doc__", None) or "").strip()
    paragraphs = [" ".join(p.split()) for p in doc.split("\n\n") if p.strip()]
    app.command(name, help="\n\n".join(paragraphs) or None, short_help=paragraphs[0] if paragraphs else None)(fn)


_add("measure", measure_command)
_add("profile", profile_command)


def _register_optional() -> None:
    """Commands whose modules may need optional parts; each registers itself if importable."""
    import importlib

    for mod, attr, name in [
        ("hwlat.cli.kernels_cmd", "kernels_command", "kernels"),
        ("hwlat.cli.predict_cmd", "train_command", "train"),
        ("hwlat.cli.predict_cmd", "predict_command", "predict"),
        ("hwlat.cli.predict_cmd", "eval_command", "eval"),
        ("hwlat.cli.quickstart_cmd", "quickstart_command", "quickstart"),
        ("hwlat.cli.doctor_cmd", "doctor_command", "doctor"),
        ("hwlat.cli.transfer_cmd", "transfer_command", "transfer"),
    ]:
        try:
            fn = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError):
            continue
        _add(name, fn)


_register_optional()


@app.callback()
def _global(
    profiles: Optional[Path] = typer.Option(None, "--profiles", envvar="HWLAT_PROFILES",
                                            help="Profiles root (default ./profiles)."),
    devices: Optional[Path] = typer.Option(None, "--devices", envvar="HWLAT_DEVICES",
                                           help="Device inventory file (default <profiles>/devices.toml)."),
) -> None:
    """Global options."""
    if profiles:
        os.environ["HWLAT_PROFILES"] = str(profiles)
    if devices:
        os.environ["HWLAT_DEVICES"] = str(devices)


def main() -> None:
    """Console-script entry point: one-line errors, non-zero exit codes."""
    import logging

    from rich.logging import RichHandler

    from hwlat.cli.common import err_console

    logging.basicConfig(level=logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err_console, show_time=False, show_path=False)])
    try:
        app()
    except HwlatError as e:
        print(f"hwlat: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("hwlat: interrupted; measurements already taken are stored", file=sys.stderr)
        sys.exit(130)
