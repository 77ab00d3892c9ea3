"""`hwlat cache`: show and clear what ``<profiles>/.cache`` keeps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import typer
from rich.table import Table

from hwlat.cli.common import console, print_json
from hwlat.profiling.export_cache import KindUsage, cache_root, clear, usage

app = typer.Typer(help="The export cache (<profiles>/.cache): show what it keeps, clear it.",
                  invoke_without_command=True)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    x = float(n)
    for unit in ("KB", "MB"):
        x /= 1024
        if x < 1024:
            return f"{x:.1f} {unit}"
    return f"{x / 1024:.1f} GB"


def _table(rows: list[KindUsage], title: str) -> Table:
    t = Table("kind", "files", "size", "released exports", title=title)
    for u in rows:
        t.add_row(u.kind, str(u.files), _size(u.bytes), str(u.released))
    t.add_row("[bold]total[/]", str(sum(u.files for u in rows)), _size(sum(u.bytes for u in rows)),
              str(sum(u.released for u in rows)))
    return t


@app.callback()
def _default(ctx: typer.Context) -> None:
    """Show what the export cache keeps (as `hwlat cache show`)."""
    if ctx.invoked_subcommand is None:
        show(json_out=False)


def _reflowed(fn: Callable[..., None]) -> str:
    """A docstring as one paragraph: rich would keep the source's line breaks in --help."""
    return " ".join((fn.__doc__ or "").split())


def show(json_out: bool = typer.Option(False, "--json", help="JSON for scripting.")) -> None:
    """Show what the cache keeps per kind: files, their size, and exports released after they were
    measured (exported again only if they are measured again)."""
    rows = usage()
    if json_out:
        print_json({"cache": str(cache_root()), "kinds": [u.to_dict() for u in rows],
                    "total_bytes": sum(u.bytes for u in rows)})
        return
    if not rows:
        console.print(f"the cache {cache_root()} is empty")
        return
    console.print(_table(rows, str(cache_root())))


def clear_command(
    kind: Optional[list[str]] = typer.Option(None, "--kind", help="Only this kind (repeatable), e.g. kernels, "
                                                                  "spaces, zoo, decomp; default: all."),
    json_out: bool = typer.Option(False, "--json", help="JSON for scripting."),
) -> None:
    """Delete what the cache keeps (all of it, or --kind KIND). Everything there is derived: models
    are exported again and kernel lists decomposed again when they are needed."""
    gone = clear(kind or None)
    if json_out:
        print_json({"cache": str(cache_root()), "cleared": [u.to_dict() for u in gone],
                    "freed_bytes": sum(u.bytes for u in gone)})
        return
    if not gone:
        console.print(f"the cache {cache_root()} is empty: nothing to clear")
        return
    console.print(f"cleared {', '.join(u.kind for u in gone)} from {cache_root()}: "
                  f"{_size(sum(u.bytes for u in gone))} freed")


app.command("show", help=_reflowed(show))(show)
app.command("clear", help=_reflowed(clear_command))(clear_command)
