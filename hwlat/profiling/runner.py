"""Profiling runs: ship the agent and models to a device, stream results into the store.

Every result is stored the moment it arrives, so a killed agent, a dropped connection or
Ctrl-C loses nothing already measured; the next run skips what is stored (unless ``force``).
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from hwlat.devices import Device
from hwlat.errors import AgentError, DeviceError, HwlatError
from hwlat.paths import agent_dir
from hwlat.profiling.items import Item, canonical_json
from hwlat.store import ProfileStore
from hwlat.transports import Session, connect

PROTOCOL_VERSION = 1

#: default measurement settings (see docs/agent_protocol.md and the README)
DEFAULT_MEASURE: dict[str, Any] = {
    "warmup_min_runs": 3, "warmup_max_runs": 200, "warmup_max_s": 0.3,
    "min_runs": 20, "max_runs": 10000, "max_time_s": 2.0,
    "ci_rel": 0.02, "confidence": 0.95, "seed": 0,
}

Progress = Callable[[str, "Item | None", int, int], None]


@dataclass
class RunSummary:
    """What a profiling run did."""

    device: str
    run_id: str
    planned: int = 0
    skipped: int = 0
    measured: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    fingerprint: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "run_id": self.run_id, "planned": self.planned, "skipped": self.skipped,
                "measured": self.measured, "failed": [{"name": n, "reason": r} for n, r in self.failed],
                "error": self.error}


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def upload_agent(sess: Session) -> None:
    for f in sorted(agent_dir().glob("hwlat_*.py")):
        sess.put_file(f, f.name)


def parse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue  # runtimes sometimes print banners to stdout; they are not events
        try:
            ev = json.loads(line)
        except ValueError:
            raise AgentError(f"agent sent a malformed line: {line[:120]!r}") from None
        if isinstance(ev, dict) and "event" in ev:
            yield ev


def fingerprint(sess: Session, device: Device) -> dict[str, Any]:
    """Run the agent's ``fingerprint`` command in an open session."""
    args = ["fingerprint", "--runtime", device.runtime, "--options", canonical_json(device.runtime_options())]
    for ev in parse_events(sess.run_agent(args, idle_timeout=max(60.0, device.connect_timeout))):
        if ev["event"] == "fingerprint":
            return dict(ev["fingerprint"])
    raise AgentError(f"device {device.name!r}: agent gave no fingerprint")


def check(device: Device) -> tuple[dict[str, Any] | None, list[str]]:
    """Connect, fingerprint, and ask the agent what is missing for the device's runtime."""
    with connect(device) as sess:
        sess.make_run_dir()
        upload_agent(sess)
        missing: list[str] = []
        args = ["check", "--runtime", device.runtime, "--options", canonical_json(device.runtime_options())]
        try:
            for ev in parse_events(sess.run_agent(args, idle_timeout=60.0)):
                if ev["event"] == "check":
                    missing = list(ev.get("missing", []))
        except AgentError as e:
            if not missing:
                missing = [str(e)]
        fp = None
        if not missing:
            fp = fingerprint(sess, device)
        return fp, missing


def _valid_stats(st: Any) -> str | None:
    if not isinstance(st, dict):
        return "no stats"
    for k in ("median_ms", "mean_ms", "min_ms", "runs"):
        v = st.get(k)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
            return f"{k}={v!r} is not a positive finite number"
    return None


def _row(item: Item, ev: dict[str, Any], key: str, run_id: str, fp: dict[str, Any], device: Device) -> dict[str, Any]:
    st, env = ev["stats"], ev.get("env") or {}
    notes = env.get("notes") or ""
    row: dict[str, Any] = {
        "item_key": key, "run_id": run_id, "name": item.name,
        **{k: st.get(k) for k in ("median_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "p10_ms", "p90_ms",
                                  "ci_low_ms", "ci_high_ms", "measure_s", "warmup_s")},
        "runs": int(st.get("runs", 0)), "warmup_runs": int(st.get("warmup_runs", 0)),
        "converged": bool(st.get("converged", False)),
        "started_at": ev.get("started_at"), "finished_at": ev.get("finished_at"),
        "runtime": device.runtime, "runtime_version": fp.get("runtime_version", ""),
        "runtime_options": canonical_json(device.runtime_options()),
        "agent_version": fp.get("agent_version", ""), "fingerprint_id": fp.get("fingerprint_id", ""),
        "load_avg_1m": env.get("load_avg_1m"), "temp_c": env.get("temp_c"),
        "suspect": bool(notes), "notes": notes, "extra": canonical_json(ev.get("extra") or {}),
    }
    if item.table == "kernels":
        row.update(kernel_type=item.kernel_type, config=canonical_json(item.config or {}))
    else:
        row.update(file_sha256=item.sha256, space=item.space,
                   arch=canonical_json(item.arch) if item.arch is not None else None, format=item.fmt)
    return row


def _put_item(sess: Session, item: Item, rel: str) -> None:
    """Upload ``item``'s file, exporting it again if it was released from the export cache, also
    when another hwlat process releases it between the export and the upload."""
    for attempt in range(3):
        path = item.ensure_file()
        try:
            sess.put_file(path, rel)
            return
        except (OSError, DeviceError):
            if attempt == 2 or item.export is None or path.is_file():
                raise


def _run_once(sess: Session, device: Device, todo: list[tuple[Item, str]], store: ProfileStore, run_id: str,
              fp: dict[str, Any], measure: dict[str, Any], summary: RunSummary, force: bool,
              progress: Progress | None, done_offset: int, total: int) -> list[tuple[Item, str]]:
    """Measure ``todo`` in an open session; returns the items still unmeasured."""
    by_id: dict[str, tuple[Item, str]] = {}
    manifest_items = []
    for i, (item, key) in enumerate(todo):
        rel = f"models/{i:05d}{item.file.suffix.lower()}"
        _put_item(sess, item, rel)
        by_id[key] = (item, key)
        manifest_items.append({"id": key, "file": rel, "name": item.name})
    manifest = {"protocol_version": PROTOCOL_VERSION, "run_id": run_id, "runtime": device.runtime,
                "runtime_options": device.runtime_options(), "measure": measure, "items": manifest_items}
    sess.put_text(json.dumps(manifest, indent=1), "manifest.json")
    remaining = dict(by_id)
    done = done_offset
    for ev in parse_events(sess.run_agent(["run", "manifest.json"], idle_timeout=device.idle_timeout)):
        kind = ev["event"]
        if kind == "start" and progress:
            it = by_id.get(ev.get("id", ""))
            progress("start", it[0] if it else None, done, total)
        elif kind in ("result", "error"):
            entry = remaining.pop(ev.get("id", ""), None)
            if entry is None:
                continue
            item, key = entry
            done += 1
            if kind == "result":
                bad = _valid_stats(ev.get("stats"))
                if bad:
                    summary.failed.append((item.name, f"faulty measurement from agent: {bad}"))
                else:
                    summary.measured += store.append(item.table, [_row(item, ev, key, run_id, fp, device)], force=force)
            else:
                summary.failed.append((item.name, str(ev.get("reason", "unknown error"))))
            if progress:
                progress(kind, item, done, total)
    return list(remaining.values())


def profile(device: Device, items: list[Item], store: ProfileStore | None = None, *, force: bool = False,
            measure: dict[str, Any] | None = None, progress: Progress | None = None,
            retries: int = 2, batch_size: int = 200) -> RunSummary:
    """Measure ``items`` on ``device`` into ``store``; resumable, never loses stored rows.

    Transient connection failures are retried ``retries`` times with backoff, continuing
    with the items not yet measured. Other failures end the run; ``summary.error`` says why.
    """
    store = store or ProfileStore(device.name)
    run_id = new_run_id()
    summary = RunSummary(device=device.name, run_id=run_id, planned=len(items))
    meas = {**DEFAULT_MEASURE, **(measure or {})}
    store.remove_temp_files()
    try:  # a corrupt or future-schema store must stop the run before anything is written
        store.measured_keys("models"), store.measured_keys("kernels")
    except HwlatError as e:
        summary.error = str(e)
        return summary
    attempt = 0
    pending: list[tuple[Item, str]] | None = None
    total = len(items)
    run_dir: str | None = None
    stale: list[str] = []  # run dirs of sessions whose connection dropped (not removed then)
    while True:
        try:
            with connect(device) as sess:
                for old in stale:
                    sess.run_dir = old
                    sess.remove_run_dir()
                stale.clear()
                run_dir = sess.make_run_dir()
                upload_agent(sess)
                fp = fingerprint(sess, device)
                summary.fingerprint = fp
                store.record_fingerprint(fp, run_id)
                if pending is None:
                    have = set() if force else store.measured_keys("models") | store.measured_keys("kernels")
                    opts = device.runtime_options()
                    keyed = [(it, it.key(device.runtime, str(fp.get("runtime_version", "")), opts)) for it in items]
                    # the same item listed twice (a suite kernel that is also a subnet's kernel) is measured once
                    pending, seen = [], set(have)
                    for it, k in keyed:
                        if k not in seen:
                            seen.add(k)
                            pending.append((it, k))
                    summary.skipped = len(items) - len(pending)
                    if progress:
                        progress("plan", None, summary.skipped, total)
                while pending:
                    batch, rest = pending[:batch_size], pending[batch_size:]
                    left = _run_once(sess, device, batch, store, run_id, fp, meas, summary, force, progress,
                                     total - len(pending), total)
                    if left:  # agent ended without reporting these: treat as a lost run
                        pending = left + rest
                        raise AgentError(f"device {device.name!r}: agent stopped before measuring "
                                         f"{len(left)} item(s)")
                    pending = rest
            break
        except DeviceError as e:
            transient = not isinstance(e, AgentError) and "host key" not in str(e).lower() \
                and "authentication" not in str(e).lower() and pending is not None
            if transient and attempt < retries:
                attempt += 1
                if run_dir:
                    stale.append(run_dir)
                run_dir = None
                time.sleep(min(30.0, 2.0 * 2 ** (attempt - 1)))
                continue
            summary.error = str(e)
            break
        except HwlatError as e:
            summary.error = str(e)
            break
        except KeyboardInterrupt:
            summary.error = "interrupted; measured rows are stored, re-run the same command to continue"
            break
    try:
        store.compact()
    except HwlatError as e:
        summary.error = summary.error or str(e)
    return summary

