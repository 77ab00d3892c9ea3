"""The export cache under ``<profiles>/.cache``: what it keeps, releasing exported models, clearing it.

Exported models (kernels, subnets, zoo models) carry their weights, so a quickstart's exports
take about a gigabyte. They are needed only while they are measured: every profiling command
releases them when it ends. A released file leaves a marker ``<file>.sha256`` holding the file's
sha256, so a later run still knows the item's store key (models are keyed by file content) without
exporting it, and exports it again only if it has to be measured again. Exports are seeded by their
content key, so the file exported again is the file that was released.
"""

from __future__ import annotations

import functools
import os
import shutil
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hwlat.errors import ConfigError
from hwlat.paths import profiles_root
from hwlat.profiling.items import file_sha256

#: Cache folders of exports hwlat can write again from their key. The others (``decomp``: kernel
#: lists; ``timm``: exports of downloaded models) are kept: small, or not reproducible offline.
EXPORT_KINDS = ("kernels", "spaces", "zoo")
MARKER = ".sha256"

F = TypeVar("F", bound=Callable[..., Any])


def cache_root(root: Path | None = None) -> Path:
    """``<profiles>/.cache`` of ``root`` (default: the current profiles root)."""
    return (root or profiles_root()) / ".cache"


def _marker(path: Path) -> Path:
    return path.with_name(path.name + MARKER)


def released_sha(path: Path) -> str | None:
    """The sha256 recorded when ``path`` was released, or None (never released, or no readable marker)."""
    try:
        text = _marker(path).read_text().strip()
    except OSError:
        return None
    return text if len(text) == 64 and all(c in string.hexdigits for c in text) else None


def _is_export(f: Path) -> bool:
    # dot-files are exports still being written (renamed into place when complete)
    return f.is_file() and not f.name.startswith(".") and not f.name.endswith(MARKER)


def release_exports(root: Path | None = None) -> tuple[int, int]:
    """Delete the exported model files of the cache (kernels, subnets, zoo models), leaving a
    marker with each one's sha256. Returns (files, bytes) released."""
    base = cache_root(root)
    files = size = 0
    for kind in EXPORT_KINDS:
        folder = base / kind
        if not folder.is_dir():
            continue
        for f in sorted(folder.rglob("*")):
            if not _is_export(f):
                continue
            try:
                n, sha = f.stat().st_size, file_sha256(f)
                marker = _marker(f)
                tmp = marker.with_name(f".{marker.name}.{os.getpid()}.tmp")
                tmp.write_text(sha + "\n")
                os.replace(tmp, marker)
                f.unlink()
            except FileNotFoundError:  # another hwlat process released it first
                continue
            files += 1
            size += n
    return files, size


def releasing_exports(command: F) -> F:
    """Wrap a CLI command so that the exports it made are released however it ends (an interrupted
    run resumes by exporting again only what it has not measured)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        finally:
            release_exports()

    return run  # type: ignore[return-value]


@dataclass(frozen=True)
class KindUsage:
    """What the cache keeps of one kind (its top folder): files, their bytes, released exports."""

    kind: str
    files: int
    bytes: int
    released: int

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "files": self.files, "bytes": self.bytes, "released": self.released}


def usage(root: Path | None = None) -> list[KindUsage]:
    """One :class:`KindUsage` per folder of the cache, by name; markers count as released, not as files."""
    base = cache_root(root)
    if not base.is_dir():
        return []
    out = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        files = size = released = 0
        for f in folder.rglob("*"):
            if not f.is_file():
                continue
            if f.name.endswith(MARKER):
                released += 1
                continue
            files += 1
            size += f.stat().st_size
        out.append(KindUsage(folder.name, files, size, released))
    return out


def clear(kinds: list[str] | None = None, root: Path | None = None) -> list[KindUsage]:
    """Delete the cache's ``kinds`` folders (default: all of them); returns what they held.

    Everything there is derived: exports are made again and kernel lists decomposed again when needed.
    """
    held = {u.kind: u for u in usage(root)}
    if kinds:
        unknown = [k for k in kinds if k not in held]
        if unknown:
            raise ConfigError(f"--kind {', '.join(unknown)}: not in the cache {cache_root(root)}; "
                              f"it holds: {', '.join(held) or 'nothing'}")
    gone = [held[k] for k in (kinds or list(held))]
    for u in gone:
        shutil.rmtree(cache_root(root) / u.kind, ignore_errors=True)
    return gone
