"""A kernel suite measured end to end on the TFLM pty emulator through the real CLI.

Starts ``device_agents/tflm_pty_device.py`` (the hwlat serial protocol on a pseudo-terminal,
models run by the real TensorFlow Lite Micro runtime from the ``tflite-micro`` package), writes a
``tflm-pty`` device (transport local, runtime tflm, options port=<pty>) into a profiles folder and
runs ``hwlat profile tflm-pty --suite quick --json`` as a subprocess: every kernel is exported to
an int8 .tflite (cached under ``<profiles>/.cache``), uploaded over the serial protocol and timed
by the emulated board. Kernels that cannot run (no int8 export, an operator the TFLM build lacks,
an arena too small) are listed by name with the reason; they never stop the run.

    nice -n 19 .venv/bin/python scripts/bench_tflm_pty.py                 # quick suite, temp profiles
    nice -n 19 .venv/bin/python scripts/bench_tflm_pty.py --profiles /tmp/p --arena-bytes 524288

Prints a table per kernel type (measured / unsupported, median µs and cycles, peak arena) and
writes bench_results/bench_tflm_pty.json. The emulator's times are host-CPU times of TFLM's
reference kernels, not MCU numbers; arena, model and op-support results do carry over to a board.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EMULATOR = REPO / "device_agents" / "tflm_pty_device.py"
DEVICE = "tflm-pty"
MCU_FIELDS = ("arena_used_bytes", "arena_size", "ram_used", "ram_total", "flash_used", "flash_total", "model_bytes")


class Emulator:
    """A tflm_pty_device.py process; ``port`` is its pseudo-terminal."""

    def __init__(self, workdir: Path, *args: str) -> None:
        link = workdir / f"tflm-pty-{os.getpid()}-{time.monotonic_ns()}"
        self.log = (workdir / "emulator.log").open("wb")
        self.proc = subprocess.Popen([sys.executable, str(EMULATOR), "--link", str(link), *args],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        t0 = time.monotonic()
        while not link.exists():
            if self.proc.poll() is not None or time.monotonic() - t0 > 60:
                self.stop()
                raise RuntimeError("TFLM emulator did not start: "
                                   + (workdir / "emulator.log").read_text(errors="replace")[-500:])
            time.sleep(0.05)
        self.port = link.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def write_devices(profiles: Path, port: str, timeout_s: float) -> Path:
    """devices.toml with one ``tflm-pty`` device on the emulator's port."""
    from hwlat.devices.inventory import Device, save_device

    dev = Device(name=DEVICE, transport="local", runtime="tflm",
                 options={"port": port, "baud": 115200, "timeout_s": timeout_s},
                 description="TFLM pty emulator (tflite-micro on the host CPU)")
    return save_device(dev, profiles / "devices.toml")


def run_cli(profiles: Path, suite: str, max_time: float, timeout: float) -> tuple[int, dict[str, Any], str, float]:
    """``hwlat profile tflm-pty --suite SUITE --json`` as a subprocess: (rc, summary, stderr, seconds)."""
    env = {**os.environ, "HWLAT_PROFILES": str(profiles), "HWLAT_DEVICES": str(profiles / "devices.toml")}
    # --force: a re-run into the same profiles folder (other arena size) measures everything again
    argv = [sys.executable, "-m", "hwlat", "profile", DEVICE, "--suite", suite, "--json", "--force",
            "--max-time", str(max_time)]
    t0 = time.monotonic()
    p = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    dt = time.monotonic() - t0
    summary: dict[str, Any] = {}
    start = p.stdout.find("{")
    if start >= 0:
        try:
            summary = json.loads(p.stdout[start:])
        except ValueError:
            summary = {}
    return p.returncode, summary, p.stderr, dt


def export_failures(suite: str, profiles: Path, seed: int = 0) -> dict[str, tuple[str, str]]:
    """Kernels of the suite with no int8 file in the cache after the run: name -> (type, reason).

    The CLI skips them with a log line; exporting them again here (failures are not cached)
    recovers each one's reason.
    """
    from hwlat.export.tflite_export import export_kernels
    from hwlat.kernels.export import export_path
    from hwlat.kernels.suites import suite as make_suite

    cache = profiles / ".cache" / "kernels" / "tflite_int8"
    missing = [k for k in make_suite(suite, seed=seed) if not export_path(k, "tflite_int8", cache).exists()]
    out: dict[str, tuple[str, str]] = {}
    if missing:
        with quiet_fds():  # litert-torch prints its progress to fd 1/2
            outcomes = export_kernels(missing, cache, quantize="int8", workers=1)
        for o in outcomes:
            name = f"{o.kernel.type}:{export_path(o.kernel, 'tflite_int8', cache).stem}"
            out[name] = (o.kernel.type, o.error or "exported on the second try (flaky export)")
    return out


@contextlib.contextmanager
def quiet_fds() -> Iterator[None]:
    """Send what native code and libraries print to fds 1 and 2 to /dev/null."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def short_reason(reason: str) -> str:
    """One line: torch's lowering errors carry a whole traceback after the first sentence."""
    for cut in (" While executing", " Original traceback"):
        reason = reason.split(cut, 1)[0]
    return reason[:300]


def reason_class(reason: str) -> str:
    """A short class for a failure reason, for the per-type table."""
    low = reason.lower()
    if "is not in this tflm build" in low:
        op = reason.split("operator ", 1)[1].split()[0] if "operator " in reason else "?"
        return f"op {op}"
    if "tensor arena" in low:
        return "arena"
    if "too large for" in low:
        return "flash"
    if "lowering not found: " in low:
        return "no litert lowering for " + reason.split("owering not found: ", 1)[1].split()[0]
    if "quantiz" in low:
        return "int8 quantization"
    if "litert-torch" in low or "convert" in low:
        return "tflite export"
    return reason[:40]


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suite", default="quick", choices=("quick", "standard", "full"))
    ap.add_argument("--profiles", type=Path, help="profiles folder (default: a temp folder, removed after)")
    ap.add_argument("--arena-bytes", type=int, default=16 << 20,
                    help="emulated tensor arena (default 16 MiB: every quick kernel fits; 524288 for a 512 KiB MCU)")
    ap.add_argument("--flash-bytes", type=int, default=16 << 20, help="emulated flash (largest model accepted)")
    ap.add_argument("--max-time", type=float, default=1.0, help="time cap per kernel in seconds")
    ap.add_argument("--timeout", type=float, default=3600.0, help="limit for the whole CLI run in seconds")
    ap.add_argument("--out", type=Path, default=REPO / "bench_results" / "bench_tflm_pty.json")
    args = ap.parse_args()

    tmp = None
    if args.profiles is None:
        tmp = Path(tempfile.mkdtemp(prefix="hwlat-tflm-pty-"))
        profiles = tmp
    else:
        profiles = args.profiles.resolve()
        profiles.mkdir(parents=True, exist_ok=True)
    os.environ["HWLAT_PROFILES"] = str(profiles)  # for the store reads below
    os.environ["HWLAT_DEVICES"] = str(profiles / "devices.toml")
    emu = Emulator(profiles, "--arena-bytes", str(args.arena_bytes), "--flash-bytes", str(args.flash_bytes),
                   "--ram-bytes", str(args.arena_bytes + (64 << 10)))
    try:
        write_devices(profiles, emu.port, timeout_s=5.0)
        print(f"emulator on {emu.port}, arena {args.arena_bytes} B; running hwlat profile {DEVICE} "
              f"--suite {args.suite} (profiles {profiles})", flush=True)
        rc, summary, stderr, wall = run_cli(profiles, args.suite, args.max_time, args.timeout)
    finally:
        emu.stop()
    if not summary:
        print(f"hwlat profile gave no JSON summary (exit {rc}):\n{stderr[-2000:]}", file=sys.stderr)
        return 1
    if summary.get("error"):
        print(f"hwlat profile stopped: {summary['error']}\n{stderr[-2000:]}", file=sys.stderr)

    from hwlat.kernels.suites import suite as make_suite
    from hwlat.store import ProfileStore

    n_suite = len(make_suite(args.suite, seed=0))
    df = ProfileStore(DEVICE).kernels(expand=False)
    if len(df):
        df = df[df["run_id"] == summary.get("run_id")]
    failures: dict[str, tuple[str, str]] = {}
    for f in summary.get("failed", []):
        failures[f["name"]] = (f["name"].split(":", 1)[0], short_reason(f["reason"]))
    failures.update({n: (t, short_reason(r)) for n, (t, r) in export_failures(args.suite, profiles).items()})

    rows = []
    missing_mcu = []
    for r in df.to_dict("records"):
        x = json.loads(r["extra"] or "{}")
        if any(not isinstance(x.get(k), int) or x.get(k) <= 0 for k in MCU_FIELDS):
            missing_mcu.append(r["name"])
        rows.append({"name": r["name"], "type": r["kernel_type"], "config": json.loads(r["config"]),
                     "median_ms": r["median_ms"], "runs": int(r["runs"]), "converged": bool(r["converged"]),
                     "us_median": x.get("us_median"), "cycles_median": x.get("cycles_median"),
                     **{k: x.get(k) for k in MCU_FIELDS}, "upload_s": x.get("upload_s")})

    by_type: dict[str, dict[str, Any]] = defaultdict(lambda: {"measured": [], "failed": []})
    for r in rows:
        by_type[r["type"]]["measured"].append(r)
    for name, (kt, reason) in failures.items():
        by_type[kt]["failed"].append({"name": name, "reason": reason, "class": reason_class(reason)})

    types = []
    hdr = f"{'kernel type':<16} {'meas':>4} {'unsup':>5} {'median µs':>10} {'median cycles':>14} {'peak arena B':>12}  reasons"
    print(hdr)
    print("-" * len(hdr))
    for kt in sorted(by_type):
        d = by_type[kt]
        ms = d["measured"]
        us = statistics.median(r["us_median"] for r in ms) if ms else None
        cyc = statistics.median(r["cycles_median"] for r in ms) if ms else None
        arena = max(r["arena_used_bytes"] or 0 for r in ms) if ms else None
        classes: dict[str, int] = defaultdict(int)
        for f in d["failed"]:
            classes[f["class"]] += 1
        reasons = ", ".join(f"{c} ×{n}" for c, n in sorted(classes.items()))
        types.append({"type": kt, "measured": len(ms), "unsupported": len(d["failed"]), "median_us": us,
                      "median_cycles": cyc, "peak_arena_bytes": arena, "reasons": dict(classes)})
        print(f"{kt:<16} {len(ms):>4} {len(d['failed']):>5} {_num(us):>10} {_num(cyc):>14} {_num(arena):>12}  "
              f"{reasons}")
    n_meas, n_fail = len(rows), len(failures)
    print("-" * len(hdr))
    print(f"{n_meas} of {n_suite} kernels measured through the serial protocol, {n_fail} unsupported, "
          f"{n_suite - n_meas - n_fail} unaccounted; CLI exit {rc}, {wall:.0f} s wall")
    for name, (_, reason) in sorted(failures.items()):
        print(f"  unsupported {name}: {reason}")
    if missing_mcu:
        print(f"  {len(missing_mcu)} rows lack arena/RAM/flash fields: {missing_mcu[:5]}")
    arenas = sorted(r["arena_used_bytes"] for r in rows if r["arena_used_bytes"])
    fits = {f"{kb}KiB": sum(a <= kb * 1024 for a in arenas) for kb in (64, 256, 512, 1024)}
    print(f"  kernels whose arena fits: {fits}")

    result = {
        "suite": args.suite, "device": DEVICE, "kernels": n_suite, "measured": n_meas, "unsupported": n_fail,
        "unaccounted": n_suite - n_meas - n_fail, "cli_exit": rc, "cli_error": summary.get("error"),
        "wall_s": round(wall, 1), "arena_bytes": args.arena_bytes, "flash_bytes": args.flash_bytes,
        "max_time_s": args.max_time, "rows_missing_mcu_fields": missing_mcu, "arena_fits": fits,
        "host": {"machine": platform.machine(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "fingerprint": (ProfileStore(DEVICE).latest_fingerprint() or {}),
        "types": types, "failures": [{"name": n, "type": t, "reason": r} for n, (t, r) in sorted(failures.items())],
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {args.out}")
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if n_meas and not missing_mcu and n_suite == n_meas + n_fail else 1


if __name__ == "__main__":
    sys.exit(main())
