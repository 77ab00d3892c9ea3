"""Rich progress bars for long work (profiling, exporting, training)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hwlat.cli.common import err_console
from hwlat.profiling.items import Item


def make_progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[current]}"),
                    console=err_console, transient=False)


@contextmanager
def profiling_progress(device: str) -> Iterator:
    """A callback for :func:`hwlat.profiling.profile` drawing one bar per run."""
    with make_progress() as prog:
        task = prog.add_task(f"profiling {device}", total=None, current="")

        def cb(event: str, item: Item | None, done: int, total: int) -> None:
            if event == "plan":
                prog.update(task, total=total, completed=done, current=f"{done} already stored" if done else "")
            elif event == "start" and item:
                prog.update(task, current=item.name[:40])
            else:
                prog.update(task, completed=done, total=total)

        yield cb


@contextmanager
def simple_progress(desc: str) -> Iterator:
    with make_progress() as prog:
        task = prog.add_task(desc, total=None, current="")

        def tick(done: int, total: int) -> None:
            prog.update(task, completed=done, total=total)

        yield tick
