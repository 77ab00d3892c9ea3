#!/usr/bin/env python3
"""Fleet profiling throughput: N simulated SSH devices, `hwlat profile --all` with local threads vs Ray.

Each simulated device is its own OpenSSH sshd on 127.0.0.1 (tests/sshd_server.py) pinned to one core
(round-robin when N exceeds the cores): the device agent its sessions start inherits the pin, so
devices do not measure on each other's core while cores last. For every N and engine the real CLI
runs `hwlat profile --all --engine ENGINE --models DIR --passes 1` on a fresh store, and the table
reports wall time (Ray's cluster start included: it is what a user waits for) and items per second.
Every run is audited: each device's store must hold every model exactly once.

    .venv/bin/python scripts/bench_fleet.py                       # N = 1, 2, 4, 8; 12 models a device
    .venv/bin/python scripts/bench_fleet.py --n 1 2 --models 6    # quick look
    .venv/bin/python scripts/bench_fleet.py --transport local     # no sshd: local-transport devices, unpinned

Needs OpenSSH's sshd (apt-get install openssh-server) unless --transport local, and Ray (pip install -e '.[ray]').
Writes bench_results/bench_fleet.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import faultlib as fl  # noqa: E402
from sshd_server import SSHD, sshd_available  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def start_devices(root: Path, n: int) -> list[SSHD]:
    """``n`` sshd processes, each pinned to one core so its sessions' agents run there."""
    cores = sorted(os.sched_getaffinity(0))
    out = []
    for i in range(n):
        s = SSHD(root / f"sshd-{i}").start()
        assert s.proc is not None
        # children forked after this (sessions, the agent) inherit the affinity
        os.sched_setaffinity(s.proc.pid, {cores[i % len(cores)]})
        out.append(s)
    return out


def one_run(base: Path, servers: list[SSHD] | int, engine: str, models: Path, max_time: float,
            timeout: float) -> dict[str, Any]:
    """One fleet run; ``servers`` is the sshd per device, or a device count for local-transport devices."""
    home = fl.Home(base)
    n_dev = servers if isinstance(servers, int) else len(servers)
    names = [f"sim-{i}" for i in range(n_dev)]
    if isinstance(servers, int):
        home.write_devices({n: {"transport": "local", "workdir": str(base / f"work-{i}")}
                            for i, n in enumerate(names)})
    else:
        home.write_devices({n: s.device_table(workdir=str(base / f"work-{i}")) for i, (n, s) in
                            enumerate(zip(names, servers))})
        for n, s in zip(names, servers):
            fl.trust(home, n, s)
    files = sorted(models.glob("*.onnx"))
    t0 = time.monotonic()
    p = fl.hwlat(home, "profile", "--all", "--engine", engine, "--models", str(models), "--passes", "1",
                 "--max-time", str(max_time), "--json", timeout=timeout)
    wall = time.monotonic() - t0
    try:
        res = json.loads(p.stdout[p.stdout.index("["):])
    except ValueError:
        res = []
    audits = [fl.audit_store(home.profiles, n, files) for n in names]
    measured = sum(int(r.get("measured", 0)) for r in res)
    return {"engine": engine, "devices": n_dev, "items": len(files) * n_dev, "measured": measured,
            "wall_s": round(wall, 2), "items_per_s": round(measured / wall, 3) if wall > 0 else None,
            "exit": p.returncode, "errors": [f"{r['device']}: {r['error']}" for r in res if r.get("error")]
            + ([fl.error_line(p.stderr) or p.stderr.strip()[-300:]] if p.returncode and not res else []),
            "audit_ok": all(a.ok for a in audits), "lost": sum(a.missing for a in audits),
            "duplicates": sum(a.duplicates for a in audits)}


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"hwlat fleet profiling throughput ({title})")
    for col in ("devices", "engine", "items", "wall s", "items/s", "speed-up vs 1 device", "audit"):
        t.add_column(col, justify="right")
    base = {r["engine"]: r["items_per_s"] for r in rows if r["devices"] == min(x["devices"] for x in rows)}
    for r in rows:
        ok = r["audit_ok"] and r["exit"] == 0
        up = r["items_per_s"] / base[r["engine"]] if r["items_per_s"] and base.get(r["engine"]) else None
        t.add_row(str(r["devices"]), r["engine"], str(r["items"]), f"{r['wall_s']:.1f}",
                  "-" if r["items_per_s"] is None else f"{r['items_per_s']:.2f}",
                  "-" if up is None else f"{up:.2f}×",
                  "[green]ok[/]" if ok else f"[red]{'; '.join(r['errors'])[:80] or 'lost/duplicated rows'}[/]")
    Console(width=160).print(t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1, 2, 4, 8], help="fleet sizes (default 1 2 4 8)")
    ap.add_argument("--engines", nargs="+", default=["threads", "ray"], choices=["threads", "ray"])
    ap.add_argument("--models", type=int, default=12, help="models per device (default 12)")
    ap.add_argument("--max-time", type=float, default=0.3, help="time cap per item in seconds (default 0.3)")
    ap.add_argument("--timeout", type=float, default=900, help="limit per run in seconds")
    ap.add_argument("--transport", choices=["ssh", "local"], default="ssh",
                    help="ssh (default): one pinned sshd per device; local: agents on this host, unpinned")
    ap.add_argument("--out", type=Path, default=REPO / "bench_results" / "bench_fleet.json")
    args = ap.parse_args()
    why = sshd_available() if args.transport == "ssh" else None
    if why:
        print(f"bench_fleet: {why}; it simulates each device with its own sshd", file=sys.stderr)
        return 2
    if "ray" in args.engines:
        try:
            import ray  # noqa: F401
        except ImportError:
            print("bench_fleet: --engines ray needs Ray: pip install -c constraints.txt -e '.[ray]'", file=sys.stderr)
            return 2

    scratch = Path(tempfile.mkdtemp(prefix="hwlat-bench-fleet-"))
    models = scratch / "models"
    fl.make_models(models, args.models)
    rows: list[dict[str, Any]] = []
    servers: list[SSHD] = []
    try:
        for n in args.n:
            for s in servers:
                s.stop()
            servers = start_devices(scratch / f"servers-{n}", n) if args.transport == "ssh" else []
            for engine in args.engines:
                r = one_run(scratch / f"run-{n}-{engine}", servers or n, engine, models, args.max_time,
                            args.timeout)
                rows.append(r)
                print(f"N={n:2d} {engine:7s} {r['wall_s']:7.1f} s  {r['items_per_s']} items/s  "
                      f"audit {'ok' if r['audit_ok'] else 'FAILED'} {'; '.join(r['errors'])[:100]}", flush=True)
    finally:
        for s in servers:
            s.stop()
    print_table(rows, "simulated SSH devices on 127.0.0.1, one pinned sshd each" if args.transport == "ssh"
                else "local-transport devices on this host, unpinned")
    result = {"bench": "fleet", "transport": args.transport, "models_per_device": args.models, "max_time_s": args.max_time, "rows": rows,
              "machine": {"python": platform.python_version(), "platform": platform.platform(),
                          "cpus": len(os.sched_getaffinity(0)), "load_avg_1m_at_end": os.getloadavg()[0]}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    print(f"wrote {args.out}")
    bad = [r for r in rows if not r["audit_ok"] or r["exit"] != 0]
    if bad:
        print(f"FAILED runs kept under {scratch}", file=sys.stderr)
        return 1
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
