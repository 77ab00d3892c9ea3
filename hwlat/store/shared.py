"""A profile store a team shares on S3-compatible object storage (AWS S3, MinIO, Ceph RGW, ...).

Same layout as the local store, under a URL: ``s3://bucket/profiles/<device>/{kernels,models}/part-*.parquet``
and ``<device>/device.json``; a shared *path* (NFS, SMB) needs nothing new: it is a local store
(``ProfileStore(device, root="/mnt/lab/profiles")``) whose file lock and rename already hold.

The guarantees of the local store, on storage that has neither renames nor file locks:

* **atomic append**: a part is one PUT of a complete Parquet object, created with ``If-None-Match: *``
  so no object is ever overwritten; a writer that dies mid-upload leaves nothing.
* **no duplicates under concurrent writers** (other processes, other hosts): appends hold a lease,
  the object ``<device>/.lock``, created with ``If-None-Match: *``, so one writer holds it; the
  item-key check and the write happen under it, as under the local store's file lock. A lease
  whose holder died is taken over after ``lease_s`` by a conditional PUT on its ETag
  (``If-Match``), so of two writers that find it stale exactly one takes it. A holder with less than
  a third of its lease left renews it (a conditional PUT on its own ETag) before it writes, so the
  lease cannot run out under a write; one that finds its lease taken writes nothing.
* readers drop duplicate ``row_id`` s, so compaction (write the merged object, then delete the parts)
  is safe at any point of a crash, as in the local store.

DuckDB reads it in place (docs/scale.md): ``SELECT ... FROM read_parquet('s3://bucket/profiles/*/kernels/*.parquet')``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hwlat.devices.inventory import validate_name
from hwlat.errors import ConfigError, StoreError
from hwlat.store.profile_store import COMPACT_AFTER, ProfileStore, _check_row
from hwlat.store.schema import META_KEY, SCHEMA_VERSION, TABLES, arrow_schema, columns

#: protocols whose conditional PUTs (If-None-Match / If-Match) the lease relies on
PROTOCOLS = ("s3", "s3a")


def is_url(where: str | Path) -> bool:
    return isinstance(where, str) and "://" in where and not where.startswith("file://")


def open_store(device: str, where: str | Path | None = None, storage_options: Mapping[str, Any] | None = None
               ) -> ProfileStore | SharedProfileStore:
    """The store of ``device`` at ``where``: an ``s3://`` URL (shared object storage), or a folder
    (``file://`` or a plain path, shared or not; default: the profiles root)."""
    if where is not None and is_url(where):
        return SharedProfileStore(device, str(where), storage_options)
    root = str(where)[len("file://"):] if isinstance(where, str) and where.startswith("file://") else where
    return ProfileStore(device, root=root)


class SharedProfileStore:
    """Measurements of one device at an ``s3://`` URL; the interface of :class:`ProfileStore` that
    profiling and reading use (``append``, ``measured_keys``, ``kernels()``, ``models()``, ...)."""

    def __init__(self, device: str, url: str, storage_options: Mapping[str, Any] | None = None,
                 lease_s: float = 60.0) -> None:
        import fsspec

        self.device = validate_name(device)
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.lease_s = float(lease_s)
        protocol = self.url.split("://", 1)[0]
        if protocol not in PROTOCOLS:
            raise ConfigError(f"shared store {url!r}: {protocol}:// is not supported; use s3:// (S3, MinIO, any "
                              "S3-compatible server) or a folder on a shared file system")
        try:
            self.fs, root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        except ImportError:
            raise ConfigError(f"shared store {url!r} needs s3fs: pip install 'hwlat[store]'") from None
        self.root = root
        self.path = f"{root}/{device}"
        self._keys: dict[str, set[str]] = {t: set() for t in TABLES}
        self._seen: dict[str, set[str]] = {t: set() for t in TABLES}
        self._lease: tuple[str, float, str] | None = None  # (token, monotonic expiry, ETag) while held

    # Ray and multiprocessing send the store to workers: the URL travels, the client is made there.
    def __getstate__(self) -> dict[str, Any]:
        return {"device": self.device, "url": self.url, "storage_options": self.storage_options,
                "lease_s": self.lease_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["device"], state["url"], state["storage_options"], state["lease_s"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"SharedProfileStore({self.device!r}, {self.url!r})"

    # ---------------------------------------------------------------- paths & the lease
    def table_dir(self, table: str) -> str:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")
        return f"{self.path}/{table}"

    def _where(self, key: str) -> str:
        return f"{self.url.split('://', 1)[0]}://{key}"

    def _put_new(self, key: str, data: bytes) -> None:
        """Create ``key``; FileExistsError when it exists (If-None-Match: *)."""
        self.fs.pipe_file(key, data, mode="create")

    def _lock_key(self) -> str:
        return f"{self.path}/.lock"

    def _lease_body(self, token: str) -> bytes:
        return json.dumps({"token": token, "host": socket.gethostname(), "pid": os.getpid(),
                           "expires": time.time() + self.lease_s}).encode()

    def _etag_of(self, out: Any, key: str) -> str:
        """The ETag a PUT answered (s3fs returns the response), else the object's current one."""
        etag = out.get("ETag") if isinstance(out, dict) else None
        return str(etag or self.fs.info(key, refresh=True).get("ETag", ""))

    def _acquire(self, timeout: float) -> None:
        key = self._lock_key()
        token = uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            t0 = time.monotonic()
            body = self._lease_body(token)
            try:
                out = self.fs.pipe_file(key, body, mode="create")
                self._lease = (token, t0 + self.lease_s, self._etag_of(out, key))
                return
            except FileExistsError:
                pass
            out = self._take_stale(key, body)
            if out is not None:
                self._lease = (token, t0 + self.lease_s, self._etag_of(out, key))
                return
            if time.monotonic() > deadline:
                raise StoreError(f"shared store {self._where(self.path)} is locked by another writer for "
                                 f"{timeout:.0f} s; wait, or delete {self._where(key)} if its holder is gone")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)  # appends hold the lease for a few requests only

    def _take_stale(self, key: str, body: bytes) -> Any:
        """Replace an expired lease by a conditional PUT on its ETag (one taker wins); the PUT's answer
        when this writer took it, else None."""
        try:
            info = self.fs.info(key, refresh=True)
            held = json.loads(self.fs.cat_file(key))
            expires = float(held["expires"])
        except FileNotFoundError:
            return None  # released meanwhile: the next create attempt takes it
        except (ValueError, KeyError, TypeError):
            expires = 0.0  # unreadable lease: treat as stale (a writer always writes valid JSON)
        if expires > time.time():
            return None
        etag = str(info.get("ETag", ""))
        if not etag:
            return None
        try:
            return self.fs.pipe_file(key, body, IfMatch=etag) or {}
        except OSError:  # 412: another writer took it first (or it was released and re-created)
            return None

    def _release(self) -> None:
        if self._lease is None:
            return
        token = self._lease[0]
        self._lease = None
        key = self._lock_key()
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
            if json.loads(self.fs.cat_file(key))["token"] == token:  # never delete a lease we lost
                self.fs.rm_file(key)

    def _check_lease(self) -> None:
        """Before a write: a lease with under a third of its time left is renewed, by a conditional PUT
        on its own ETag, so it cannot expire (and be taken by another writer) while the write lands;
        a lease that was taken meanwhile stops the write."""
        if self._lease is not None and self._lease[1] - time.monotonic() >= self.lease_s / 3:
            return
        if self._lease is not None:
            token, _, etag = self._lease
            key = self._lock_key()
            t0 = time.monotonic()
            try:
                out = self.fs.pipe_file(key, self._lease_body(token), IfMatch=etag) or {}
                self._lease = (token, t0 + self.lease_s, self._etag_of(out, key))
                return
            except OSError:  # 412: no longer ours
                self._lease = None
        raise StoreError(f"lost the lease on shared store {self._where(self.path)} (a write took over "
                         f"{self.lease_s:.0f} s and another writer took it); nothing was written, re-run to continue")

    @contextlib.contextmanager
    def lock(self, timeout: float = 120.0) -> Iterator[None]:
        if self._lease is not None:  # re-entrant, as compaction inside append needs
            yield
            return
        self._acquire(timeout)
        try:
            yield
        finally:
            self._release()

    def parts(self, table: str) -> list[str]:
        try:
            names = self.fs.ls(self.table_dir(table), detail=False, refresh=True)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if n.rsplit("/", 1)[-1].startswith("part-") and n.endswith(".parquet"))

    # ---------------------------------------------------------------- reading
    def _read_part(self, key: str) -> pa.Table:
        data = self.fs.cat_file(key)  # FileNotFoundError: removed by a concurrent compaction
        where = self._where(key)
        try:
            version = int((pq.read_schema(pa.BufferReader(data)).metadata or {}).get(META_KEY, b"0"))
        except Exception as e:  # noqa: BLE001  (pyarrow raises several types for garbage)
            raise StoreError(f"corrupt profile object {where} ({type(e).__name__}); delete it, then re-run "
                             "`hwlat profile` to re-measure its rows") from None
        if version > SCHEMA_VERSION:
            raise StoreError(f"{where} was written by a newer hwlat (profile schema {version} > "
                             f"{SCHEMA_VERSION}); upgrade hwlat to read it")
        if version < 1:
            raise StoreError(f"{where} is not an hwlat profile object (no schema version); move it out of "
                             f"{self._where(self.table_dir(key.rsplit('/', 2)[-2]))}")
        return pq.read_table(pa.BufferReader(data))

    def read(self, table: str) -> pd.DataFrame:
        """All rows of ``table`` (duplicates from an interrupted compaction dropped)."""
        for _ in range(3):  # a concurrent compaction may delete a part between listing and reading
            try:
                tabs = [self._read_part(p) for p in self.parts(table)]
                break
            except FileNotFoundError:
                time.sleep(0.1)
        else:
            with self.lock():
                tabs = [self._read_part(p) for p in self.parts(table)]
        if not tabs:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in columns(table)})
        df = pa.concat_tables(tabs, promote_options="default").to_pandas()
        return df.drop_duplicates("row_id", keep="first").reset_index(drop=True)

    def kernels(self, latest: bool = True, expand: bool = True) -> pd.DataFrame:
        df = self.read("kernels")
        if latest and len(df):
            df = df.sort_values("finished_at").drop_duplicates("item_key", keep="last").reset_index(drop=True)
        if expand and len(df):
            cfg = pd.DataFrame([json.loads(c) for c in df["config"]]).add_prefix("cfg_")
            df = pd.concat([df, cfg], axis=1)
        return df

    def models(self, latest: bool = True) -> pd.DataFrame:
        df = self.read("models")
        if latest and len(df):
            df = df.sort_values("finished_at").drop_duplicates("item_key", keep="last").reset_index(drop=True)
        return df

    def _refresh_keys(self, table: str) -> set[str]:
        for p in self.parts(table):
            name = p.rsplit("/", 1)[-1]
            if name not in self._seen[table]:
                try:
                    t = self._read_part(p)
                except FileNotFoundError:
                    continue
                self._keys[table].update(t.column("item_key").to_pylist())
                self._seen[table].add(name)
        return self._keys[table]

    def measured_keys(self, table: str) -> set[str]:
        return set(self._refresh_keys(table))

    # ---------------------------------------------------------------- writing
    def append(self, table: str, rows: Iterable[Mapping[str, Any]], force: bool = False) -> int:
        """Store ``rows`` as one new object; rows whose item_key is stored are skipped unless ``force``."""
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
            tab = pa.Table.from_pylist([{c: r.get(c) for c in columns(table)} for r in rows],
                                       schema=arrow_schema(table))
            name = f"part-{time.time_ns()}-{socket.gethostname()[:20]}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
            sink = io.BytesIO()
            pq.write_table(tab, sink)
            self._check_lease()
            try:
                self._put_new(f"{self.table_dir(table)}/{name}", sink.getvalue())
            except OSError as e:
                raise StoreError(f"cannot write to shared store {self._where(self.path)} ({e}); rows stored "
                                 "before this one are kept, re-run to continue") from None
            self._keys[table].update(r["item_key"] for r in rows)
            self._seen[table].add(name)
            if len(self.parts(table)) > COMPACT_AFTER:
                self._compact_locked(table)
        return len(rows)

    def compact(self, table: str | None = None) -> None:
        """Merge part objects into one (safe to interrupt at any point: readers drop duplicate row_ids)."""
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
        sink = io.BytesIO()
        pq.write_table(df, sink)
        name = f"part-{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}-compact.parquet"
        self._check_lease()
        self._put_new(f"{self.table_dir(table)}/{name}", sink.getvalue())
        self._seen[table].add(name)
        for p in parts:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(p)

    def remove_temp_files(self) -> int:
        """Object PUTs leave no temp files (the local store's crash debris); nothing to remove."""
        return 0

    # ---------------------------------------------------------------- device.json
    def fingerprints(self) -> list[dict[str, Any]]:
        key = f"{self.path}/device.json"
        try:
            data = json.loads(self.fs.cat_file(key))
        except FileNotFoundError:
            return []
        except ValueError:
            raise StoreError(f"corrupt {self._where(key)}; delete it (measurements are unaffected)") from None
        try:
            return list(data["fingerprints"])
        except (KeyError, TypeError):
            raise StoreError(f"corrupt {self._where(key)}; delete it (measurements are unaffected)") from None

    def record_fingerprint(self, fp: Mapping[str, Any], run_id: str) -> None:
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
            self._check_lease()
            # a PUT replaces the object whole: readers see the old document or the new one
            self.fs.pipe_file(f"{self.path}/device.json", json.dumps(doc, indent=2, sort_keys=True).encode())

    def latest_fingerprint(self) -> dict[str, Any] | None:
        hist = self.fingerprints()
        return max(hist, key=lambda h: h["last_seen"])["fingerprint"] if hist else None
