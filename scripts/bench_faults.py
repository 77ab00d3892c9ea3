"""Fault-injection campaign: does any fault lose, duplicate or corrupt a stored measurement?

Every fault is real (scripts/faultlib.py): the device agent or the whole host process SIGKILLed
at random points, two profilers racing on one store, the store's disk filling up (tmpfs), the
SSH connection cut from the device side, traffic dropped inside a network namespace (blip and
long cut), a device reboot (sshd restarted, workdir wiped or changed), a fleet run with one
device down. After each trial the campaign is re-run until it completes and the store is
audited: every model exactly once (by item_key, model hash and row_id), every part file
readable by pyarrow with the right schema, no temp file left.

    .venv/bin/python scripts/bench_faults.py            # full campaign, ~10 min on 2 cores
    .venv/bin/python scripts/bench_faults.py --quick    # smoke run, ~2 min

Writes bench_results/bench_faults.json. Needs root for the tmpfs and network-namespace faults
(reported as unavailable otherwise) and OpenSSH's sshd for the SSH faults.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import faultlib as fl  # noqa: E402
from sshd_server import SSHD, sshd_available  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def plan(quick: bool, kill_trials: int, kill_items: int) -> list[tuple[str, int, int]]:
    """(fault, trials, items per trial)."""
    if quick:
        return [("sigkill_agent", 3, 20), ("sigkill_host", 2, 16), ("concurrent_same_device", 1, 16),
                ("concurrent_two_devices", 1, 12), ("disk_full", 2, 16), ("ssh_session_kill", 1, 12),
                ("device_reboot", 1, 12), ("link_blip", 1, 10), ("link_cut", 1, 10), ("fleet_one_down", 1, 5)]
    return [("sigkill_agent", kill_trials, kill_items), ("sigkill_host", 5, 30),
            ("concurrent_same_device", 3, 24), ("concurrent_two_devices", 2, 24), ("disk_full", 5, 24),
            ("ssh_session_kill", 5, 16), ("device_reboot", 5, 16), ("link_blip", 3, 12), ("link_cut", 3, 12),
            ("fleet_one_down", 2, 6)]


class Servers:
    """sshd instances, started on first use and stopped at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.plain: SSHD | None = None
        self.ns: fl.NetNS | None = None
        self.ns_sshd: fl.NetnsSSHD | None = None
        self.fleet: list[SSHD] = []

    def sshd(self) -> SSHD:
        if self.plain is None:
            why = sshd_available()
            if why:
                raise fl.FaultUnavailable(why)
            self.plain = SSHD(self.root / "sshd").start()
        return self.plain

    def netns_sshd(self) -> fl.NetnsSSHD:
        if self.ns_sshd is None:
            why = sshd_available() or fl.netns_unavailable()
            if why:
                raise fl.FaultUnavailable(why)
            self.ns = fl.NetNS()
            self.ns_sshd = fl.NetnsSSHD(self.root / "sshd-ns", self.ns).start()
        return self.ns_sshd

    def fleet_of(self, n: int) -> list[SSHD]:
        why = sshd_available()
        if why:
            raise fl.FaultUnavailable(why)
        for s in self.fleet:
            s.stop()
        self.fleet = [SSHD(self.root / f"fleet{len(self.fleet)}-{i}-{time.time_ns()}").start() for i in range(n)]
        return self.fleet

    def stop(self) -> None:
        for s in [self.plain, self.ns_sshd, *self.fleet]:
            if s is not None:
                s.stop()
        if self.ns:
            self.ns.destroy()


def run_trial(fault: str, base: Path, seed: int, items: int, servers: Servers) -> fl.Trial:
    runners: dict[str, Callable[[], fl.Trial]] = {
        "sigkill_agent": lambda: fl.trial_sigkill_agent(base, seed, items),
        "sigkill_host": lambda: fl.trial_sigkill_host(base, seed, items),
        "concurrent_same_device": lambda: fl.trial_concurrent(base, seed, items, same_device=True),
        "concurrent_two_devices": lambda: fl.trial_concurrent(base, seed, items, same_device=False),
        "disk_full": lambda: fl.trial_disk_full(base, seed, items),
        "ssh_session_kill": lambda: fl.trial_ssh_session_kill(base, servers.sshd(), seed, items),
        "device_reboot": lambda: fl.trial_reboot(base, servers.sshd(), seed, items, new_workdir=seed % 2 == 1),
        "link_blip": lambda: fl.trial_link_cut(base, servers.netns_sshd(), seed, items, hold_s=1.5, idle_timeout=8.0),
        "link_cut": lambda: fl.trial_link_cut(base, servers.netns_sshd(), seed, items, hold_s=6.0, idle_timeout=3.0),
        "fleet_one_down": lambda: fl.trial_fleet(base, servers.fleet_of(4), seed, items)[0],
    }
    return runners[fault]()


def summarize(fault: str, trials: list[fl.Trial], unavailable: str | None) -> dict[str, Any]:
    audits = [t.audit for t in trials if t.audit]
    return {
        "fault": fault, "trials": len(trials), "unavailable": unavailable,
        "injected": sum(t.injected for t in trials),
        "rows_expected": sum(a.expected for a in audits),
        "rows_present": sum(a.present for a in audits),
        "lost": sum(a.missing for a in audits),
        "duplicates": sum(a.duplicates + a.unexpected for a in audits),
        "corrupt_files": sum(len(a.corrupt_files) for a in audits),
        "tmp_left": sum(len(a.tmp_files) for a in audits),
        "self_recovered": sum(t.recovered_in_run for t in trials),
        "runs": sum(t.runs for t in trials),
        "seconds": round(sum(t.seconds for t in trials), 1),
        "ok": all(t.ok for t in trials) and unavailable is None,
    }


def print_table(rows: list[dict[str, Any]], total_s: float) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"hwlat fault campaign ({total_s / 60:.1f} min)")
    for col in ("fault", "trials", "faults injected", "rows expected", "rows present", "lost", "duplicates",
                "corrupt files", "temp files left", "recovered in-run", "hwlat runs", "s", "ok"):
        t.add_column(col, justify="left" if col == "fault" else "right")
    for r in rows:
        if r["unavailable"]:
            t.add_row(r["fault"], "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-",
                      f"[yellow]skipped: {r['unavailable']}[/]")
            continue
        t.add_row(r["fault"], str(r["trials"]), str(r["injected"]), str(r["rows_expected"]), str(r["rows_present"]),
                  str(r["lost"]), str(r["duplicates"]), str(r["corrupt_files"]), str(r["tmp_left"]),
                  str(r["self_recovered"]), str(r["runs"]), f"{r['seconds']:.0f}",
                  "[green]yes[/]" if r["ok"] else "[red]NO[/]")
    Console(width=200).print(t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few trials of each fault (~2 min)")
    ap.add_argument("--only", nargs="*", help="run only these faults")
    ap.add_argument("--kill-trials", type=int, default=20, help="SIGKILL-the-agent trials (default 20)")
    ap.add_argument("--kill-items", type=int, default=50, help="models per SIGKILL trial (default 50)")
    ap.add_argument("--out", type=Path, default=REPO / "bench_results" / "bench_faults.json")
    args = ap.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="hwlat-bench-faults-"))
    servers = Servers(scratch / "servers")
    rows, details = [], []
    t_start = time.monotonic()
    try:
        for fault, n_trials, items in plan(args.quick, args.kill_trials, args.kill_items):
            if args.only and fault not in args.only:
                continue
            trials: list[fl.Trial] = []
            unavailable = None
            for seed in range(n_trials):
                base = scratch / f"{fault}-{seed}"
                try:
                    t = run_trial(fault, base, seed, items, servers)
                except fl.FaultUnavailable as e:
                    unavailable = str(e)
                    break
                trials.append(t)
                details.append(t.to_dict())
                mark = "ok" if t.ok else "FAILED"
                print(f"{fault:24s} seed {seed:2d}: {mark}  injected={t.injected} runs={t.runs} "
                      f"{t.seconds:5.1f}s {'; '.join(t.errors)[:110]}", flush=True)
                if t.ok:
                    shutil.rmtree(base, ignore_errors=True)
            rows.append(summarize(fault, trials, unavailable))
    finally:
        servers.stop()
    total = time.monotonic() - t_start
    print_table(rows, total)
    result = {
        "bench": "faults", "quick": args.quick, "total_s": round(total, 1),
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": __import__("os").cpu_count()},
        "summary": rows, "trials": details,
        "totals": {k: sum(r[k] for r in rows if not r["unavailable"])
                   for k in ("rows_expected", "rows_present", "lost", "duplicates", "corrupt_files", "tmp_left")},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    failed = [r["fault"] for r in rows if not r["ok"] and not r["unavailable"]]
    if failed:
        print(f"FAILED: {', '.join(failed)} (kept under {scratch})")
        return 1
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
