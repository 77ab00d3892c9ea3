"""Per-device profile store: ``profiles/<device>/{kernels,models}/part-*.parquet`` + ``device.json``.

Durability model: every append writes a new part file (temp file, fsync, rename), so a
crash can never damage rows already stored. Readers drop duplicate ``row_id``s, which makes
compaction (write the merged file, then delete the parts) safe at any point of a crash.
A file lock serialises writers, and the item-key check happens under it, so two
processes profiling into one store neither lose nor duplicate rows.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import filelock
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hwlat.devices.inventory import validate_name
from hwlat.errors import StoreError
from hwlat.paths import profiles_root
from hwlat.store.drift import HostDrift
from hwlat.store.schema import META_KEY, SCHEMA_VERSION, TABLES, arrow_schema, columns

COMPACT_AFTER = 64  # parts; keeps reads fast during long campaigns


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + rename; a crash leaves the old file or the new one."""
    tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _disk_error(path, e) from None


def _disk_error(path: Path, e: OSError) -> StoreError:
    if e.errno == errno.ENOSPC:
        return StoreError(f"disk full while writing {path}; rows stored before this one are kept: "
                          "free some space and re-run the same command to continue")
    return StoreError(f"cannot write {path} ({e.strerror or e}); rows stored before this one are kept")


class ProfileStore:
    """Measurements of one device. ``ProfileStore("local").kernels()`` is a DataFrame."""

    def __init__(self, device: str, root: Path | str | None = None) -> None:
        self.device = validate_name(device)
        self.root = Path(root) if root else profiles_root()
        self.path = self.root / device
        self._keys: dict[str, set[str]] = {t: set() for t in TABLES}
        self._seen: dict[str, set[str]] = {t: set() for t in TABLES}

    # ---------------------------------------------------------------- paths & locking
    def table_dir(self, table: str) -> Path:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")
        return self.path / table

    @contextlib.contextmanager
    def lock(self, timeout: float = 120.0) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True)
        lk = filelock.FileLock(str(self.path / ".lock"), timeout=timeout)
        try:
            with lk:
                yield
        except filelock.Timeout:
            raise StoreError(f"profile store {self.path} is locked by another process for {timeout:.0f} s; "
                             "wait for it or remove a stale .lock file") from None

    def parts(self, table: str) -> list[Path]:
        d = self.table_dir(table)
        return sorted(d.glob("part-*.parquet")) if d.is_dir() else []

    # ---------------------------------------------------------------- reading
    def _read_part(self, p: Path) -> pa.Table:
        try:
            meta = pq.read_schema(p).metadata or {}
            version = int(meta.get(META_KEY, b"0"))
        except FileNotFoundError:
            raise  # removed by a concurrent compaction: callers retry, it is not corrupt
        except Exception as e:  # noqa: BLE001  (pyarrow raises several types for garbage)
            raise StoreError(f"corrupt profile file {p} ({type(e).__name__}); move it aside or delete it, "
                             "then re-run `hwlat profile` to re-measure its rows") from None
        if version > SCHEMA_VERSION:
            raise StoreError(f"{p} was written by a newer hwlat (profile schema {version} > {SCHEMA_VERSION}); "
                             "upgrade hwlat to read it")
        if version < 1:
            raise StoreError(f"{p} is not an hwlat profile file (no schema version); move it out of {p.parent}")
        try:
            return pq.read_table(p)
        except FileNotFoundError:
            raise
        except Exception as e:  # noqa: BLE001
            raise StoreError(f"corrupt profile file {p} ({type(e).__name__}); move it aside or delete it, "
                             "then re-run `hwlat profile` to re-measure its rows") from None

    def read(self, table: str) -> pd.DataFrame:
        """All rows of ``table`` (duplicates from an interrupted compaction dropped)."""
        for _ in range(3):  # a concurrent compaction may delete a part between glob and read
            try:
                tabs = [self._read_part(p) for p in self.parts(table)]
                break
            except FileNotFoundError:
                time.sleep(0.05)
        else:
            with self.lock():
                tabs = [self._read_part(p) for p in self.parts(table)]
        if not tabs:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in columns(table)})
        df = pa.concat_tables(tabs, promote_options="default").to_pandas()
        return df.drop_duplicates("row_id", keep="first").reset_index(drop=True)

    def kernels(self, latest: bool = True, expand: bool = True) -> pd.DataFrame:
        """Kernel measurements; ``latest`` keeps the newest row per item, ``expand`` adds
        the config fields as ``cfg_<field>`` columns."""
        df = self.read("kernels")
        if latest and len(df):
            df = df.sort_values("finished_at").drop_duplicates("item_key", keep="last").reset_index(drop=True)
        if expand and len(df):
            cfg = pd.DataFrame([json.loads(c) for c in df["config"]]).add_prefix("cfg_")
            df = pd.concat([df, cfg], axis=1)
        return df

    def models(self, latest: bool = True) -> pd.DataFrame:
        """Whole-model measurements (one row per model file / subnet and runtime setting)."""
        df = self.read("models")
        if latest and len(df):
            df = df.sort_values("finished_at").drop_duplicates("item_key", keep="last").reset_index(drop=True)
        return df

    def _refresh_keys(self, table: str) -> set[str]:
        for p in self.parts(table):
            if p.name not in self._seen[table]:
                try:
                    t = self._read_part(p)
                except FileNotFoundError:
                    continue
                self._keys[table].update(t.column("item_key").to_pylist())
                self._seen[table].add(p.name)
        return self._keys[table]

    def measured_keys(self, table: str) -> set[str]:
        """Item keys already in ``table`` (cached; only new part files are read)."""
        return set(self._refresh_keys(table))

    # ---------------------------------------------------------------- writing
    def append(self, table: str, rows: Iterable[Mapping[str, Any]], force: bool = False) -> int:
        """Store ``rows`` durably; rows whose item_key is already stored are skipped unless
        ``force``. Returns how many rows were written."""
        rows = [dict(r) for r in rows]
        if not rows:
            return 0
        for r in rows:
            _check_row(r)
            r.setdefault("row_id", uuid.uuid4().hex)
            r["schema_version"] = SCHEMA_VERSION
            r["device"] = self.device
        with self.lock():
            if not force:
                have = self._refresh_keys(table)
                rows = [r for r in rows if r["item_key"] not in have]
            if not rows:
                return 0
            schema = arrow_schema(table)
            cols = columns(table)
            tab = pa.Table.from_pylist([{c: r.get(c) for c in cols} for r in rows], schema=schema)
            d = self.table_dir(table)
            d.mkdir(parents=True, exist_ok=True)
            name = f"part-{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
            sink = pa.BufferOutputStream()
            pq.write_table(tab, sink)
            atomic_write_bytes(d / name, sink.getvalue().to_pybytes())
            self._keys[table].update(r["item_key"] for r in rows)
            self._seen[table].add(name)
            if len(self.parts(table)) > COMPACT_AFTER:
                self._compact_locked(table)
        return len(rows)

    def compact(self, table: str | None = None) -> None:
        """Merge part files into one (atomic; safe to interrupt at any point)."""
        with self.lock():
            for t in [table] if table else list(TABLES):
                self._compact_locked(t)

    def _compact_locked(self, table: str) -> None:
        parts = self.parts(table)
        if len(parts) < 2:
            return
        df = pa.concat_tables([self._read_part(p) for p in parts], promote_options="default")
        seen: set[str] = set()
        keep = []
        for i, rid in enumerate(df.column("row_id").to_pylist()):
            if rid not in seen:
                seen.add(rid)
                keep.append(i)
        df = df.take(keep).cast(arrow_schema(table))
        sink = pa.BufferOutputStream()
        pq.write_table(df, sink)
        name = f"part-{time.time_ns()}-{os.getpid()}-compact.parquet"
        atomic_write_bytes(self.table_dir(table) / name, sink.getvalue().to_pybytes())
        self._seen[table].add(name)
        for p in parts:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        _fsync_dir(self.table_dir(table))

    def remove_temp_files(self) -> int:
        """Delete temp files left by a writer that was killed mid-write."""
        if not self.path.is_dir():
            return 0
        with self.lock():  # writers hold the lock while their temp file exists
            return self._remove_temp_files_locked()

    def _remove_temp_files_locked(self) -> int:
        n = 0
        for d in [self.path, *(self.table_dir(t) for t in TABLES)]:  # device.json's temp files too
            if d.is_dir():
                for p in d.glob(".tmp-*"):
                    with contextlib.suppress(OSError):
                        p.unlink()
                        n += 1
        return n

    # ---------------------------------------------------------------- device.json
    def fingerprints(self) -> list[dict[str, Any]]:
        p = self.path / "device.json"
        if not p.exists():
            return []
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            return list(data["fingerprints"])
        except (ValueError, KeyError, TypeError):
            raise StoreError(f"corrupt {p}; move it aside (measurements are unaffected)") from None

    def record_fingerprint(self, fp: Mapping[str, Any], run_id: str) -> None:
        """Add ``fp`` to the fingerprint history (or mark it seen again)."""
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self.lock():
            hist = self.fingerprints()
            fid = fp.get("fingerprint_id")
            for h in hist:
                if h.get("fingerprint_id") == fid:
                    h["last_seen"] = now
                    h["runs"] = (h.get("runs", []) + [run_id])[-50:]
                    break
            else:
                hist.append({"fingerprint_id": fid, "first_seen": now, "last_seen": now,
                             "runs": [run_id], "fingerprint": dict(fp)})
            doc = {"schema_version": SCHEMA_VERSION, "device": self.device, "fingerprints": hist}
            atomic_write_bytes(self.path / "device.json", json.dumps(doc, indent=2, sort_keys=True).encode())

    def latest_fingerprint(self) -> dict[str, Any] | None:
        hist = self.fingerprints()
        return max(hist, key=lambda h: h["last_seen"])["fingerprint"] if hist else None


def _check_row(r: Mapping[str, Any]) -> None:
    for k in ("item_key", "median_ms"):
        if r.get(k) is None:
            raise StoreError(f"refusing a measurement row without {k!r} (item {r.get('name')!r})")
    for k in ("median_ms", "min_ms", "mean_ms"):
        v = r.get(k)
        if v is not None and (not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0):
            raise StoreError(f"refusing measurement of {r.get('name')!r}: {k}={v!r} is not a positive finite "
                             "number (faulty agent or runtime); the item stays unmeasured")


def with_floor(latest: pd.DataFrame, all_rows: pd.DataFrame, drift: HostDrift | None = None) -> pd.DataFrame:
    """``latest`` (one row per item) plus ``floor_ms``: the lowest ``min_ms`` over every stored row of
    the same item, i.e. over all passes of ``hwlat profile --passes N``; with ``drift``, each row's
    ``min_ms`` first divided by the host's speed factor when it ran (:mod:`hwlat.store.drift`)."""
    mins = all_rows["min_ms"] if drift is None else all_rows["min_ms"] / drift.factor(all_rows)
    floor = mins.groupby(all_rows["item_key"]).min()
    return latest.assign(floor_ms=latest["item_key"].map(floor).astype(float))
