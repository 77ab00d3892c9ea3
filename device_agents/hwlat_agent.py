#!/usr/bin/env python3
"""hwlat device agent: measures model latency on the device it runs on.

Shipped by the host into a per-run directory together with the ``hwlat_rt_<runtime>.py``
plug-ins and run there (cwd = run directory). Standard library only, plus whatever the
runtime being measured brings. Must not import hwlat. Python >= 3.8.

    python hwlat_agent.py run manifest.json
    python hwlat_agent.py fingerprint [--runtime R] [--options JSON]
    python hwlat_agent.py check --runtime R [--options JSON]

stdout carries JSON-lines events only (see docs/agent_protocol.md); everything else,
including anything a native runtime library prints, is sent to stderr.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib
import json
import math
import os
import platform
import re
import socket
import statistics
import sys
import time
from bisect import insort
from datetime import datetime, timezone
from typing import Any

PROTOCOL_VERSION = 1
AGENT_VERSION = "1.0.0"

EXIT_OK, EXIT_BAD_MANIFEST, EXIT_RUNTIME_MISSING = 0, 2, 3

MEASURE_DEFAULTS: dict[str, Any] = {
    "warmup_min_runs": 3, "warmup_max_runs": 100, "warmup_max_s": 0.5,
    "min_runs": 10, "max_runs": 10000, "max_time_s": 2.0,
    "ci_rel": 0.02, "confidence": 0.95, "seed": 0,
}
_INT_FIELDS = ("warmup_min_runs", "warmup_max_runs", "min_runs", "max_runs", "seed")
GOOD_GOVERNORS = ("performance", "ondemand", "schedutil")
HOT_C = 80.0
_RUNTIME_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# Fingerprint fields that identify a device configuration (hashed into fingerprint_id).
# Plug-in extras are hashed too, except the volatile ones below.
ID_FIELDS = ("cpu_model", "cores_logical", "cores_physical", "cpu_max_mhz", "mem_total_gb", "machine",
             "runtime", "runtime_version", "provider", "threads")
VOLATILE_EXTRA = ("gpu_clocks", "gpu_temp_c", "gpu_util")

AGENT_DIR = os.path.dirname(os.path.abspath(__file__))


class ManifestError(Exception):
    """The manifest is unusable: one line, exit 2."""


class RuntimeMissing(Exception):
    """The runtime (or a provider/binary it needs) is absent: one line, exit 3."""


class ItemError(Exception):
    """One item failed; the agent reports it and goes on."""


# ---------------------------------------------------------------- output


class Events:
    """JSON-lines writer on the real stdout; fd 1 itself is pointed at stderr so that
    native libraries that print to stdout cannot corrupt the event stream."""

    def __init__(self) -> None:
        sys.stdout.flush()
        fd = os.dup(1)
        os.dup2(2, 1)
        self._out = os.fdopen(fd, "w", encoding="utf-8")
        sys.stdout = sys.stderr

    def emit(self, event: str, **fields: Any) -> None:
        obj = {"event": event}
        obj.update(fields)
        self._out.write(json.dumps(obj, separators=(",", ":"), allow_nan=False, default=str) + "\n")
        self._out.flush()


def one_line(msg: Any) -> str:
    """Collapse any message (exception text, tracebacks) to a single line."""
    text = " ".join(str(msg).split())
    return text[:500] if text else "unknown error"


def exc_line(e: BaseException) -> str:
    return one_line(f"{type(e).__name__}: {e}")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _finite(x: Any) -> Any:
    """JSON has no NaN/inf: report them as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _jsonable(obj: Any) -> Any:
    """Plug-in output made JSON-safe: NaN/inf -> null, unknown objects -> str."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return _finite(obj)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    try:  # numpy scalars
        return _finite(float(obj)) if not isinstance(obj, (bytes, bytearray)) else str(obj)
    except (TypeError, ValueError):
        return str(obj)


# ---------------------------------------------------------------- statistics


def z_value(confidence: float) -> float:
    return statistics.NormalDist().inv_cdf((1.0 + confidence) / 2.0)


def median_ci_ranks(n: int, z: float) -> tuple[int, int]:
    """1-based ranks (j, k) of the distribution-free CI of the median (binomial order
    statistics, normal approximation): j = floor(n/2 - z*sqrt(n)/2), k = ceil(1 + n/2 + z*sqrt(n)/2),
    clamped to [1, n]."""
    half = z * math.sqrt(n) / 2.0
    j = int(math.floor(n / 2.0 - half))
    k = int(math.ceil(1 + n / 2.0 + half))
    return max(1, j), min(n, k)


def median_sorted(xs: list[float]) -> float:
    n = len(xs)
    m = n // 2
    return xs[m] if n % 2 else (xs[m - 1] + xs[m]) / 2.0


def quantile_sorted(xs: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of a sorted list."""
    pos = (len(xs) - 1) * q
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def ci_ok(xs: list[float], z: float, ci_rel: float) -> bool:
    """True when the CI of the median of sorted ``xs`` lies within +-ci_rel of the median."""
    n = len(xs)
    if n < 2:
        return False
    med = median_sorted(xs)
    j, k = median_ci_ranks(n, z)
    return xs[j - 1] >= med * (1.0 - ci_rel) and xs[k - 1] <= med * (1.0 + ci_rel)


def summarize(samples: list[float], z: float, ci_rel: float, min_runs: int) -> dict[str, Any]:
    """The result statistics of the timed samples (ms)."""
    xs = sorted(samples)
    n = len(xs)
    j, k = median_ci_ranks(n, z)
    mean = sum(xs) / n
    std = statistics.stdev(xs) if n > 1 else 0.0
    return {
        "median_ms": median_sorted(xs), "mean_ms": mean, "std_ms": std,
        "min_ms": xs[0], "max_ms": xs[-1],
        "p10_ms": quantile_sorted(xs, 0.10), "p90_ms": quantile_sorted(xs, 0.90),
        "ci_low_ms": xs[j - 1], "ci_high_ms": xs[k - 1],
        "runs": n, "converged": bool(n >= min_runs and ci_ok(xs, z, ci_rel)),
    }


# ---------------------------------------------------------------- system readings


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def load_avg_1m() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def temp_c() -> float | None:
    """Hottest readable thermal zone, in deg C."""
    best = None
    for p in glob.glob("/sys/class/thermal/thermal_zone*/temp"):
        raw = _read(p)
        try:
            v = int(raw.strip()) / 1000.0 if raw else None
        except ValueError:
            v = None
        # Some zones report garbage (-273, 0 or absurd values) when a sensor is absent.
        if v is not None and 0.0 < v < 150.0 and (best is None or v > best):
            best = v
    return best


def governor() -> str | None:
    raw = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    return raw.strip() if raw else None


def _cpuinfo() -> list[dict[str, str]]:
    raw = _read("/proc/cpuinfo") or ""
    blocks: list[dict[str, str]] = [{}]
    for line in raw.splitlines():
        if not line.strip():
            if blocks[-1]:
                blocks.append({})
            continue
        key, _, val = line.partition(":")
        blocks[-1][key.strip()] = val.strip()
    return [b for b in blocks if b]


def _sysctl(name: str) -> str | None:
    import subprocess

    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def cpu_model(blocks: list[dict[str, str]]) -> str | None:
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        for b in blocks:
            if b.get(key):
                return b[key]
    if sys.platform == "darwin":
        return _sysctl("machdep.cpu.brand_string")
    # ARM boards often give only the part number: better than nothing.
    if blocks and blocks[0].get("CPU part"):
        return "CPU implementer {} part {}".format(blocks[0].get("CPU implementer", "?"), blocks[0]["CPU part"])
    return platform.processor() or None


def cores_physical(blocks: list[dict[str, str]]) -> int | None:
    ids = set()
    for p in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/topology/core_id"):
        core = _read(p)
        pkg = _read(os.path.join(os.path.dirname(p), "physical_package_id"))
        if core is not None:
            ids.add(((pkg or "0").strip(), core.strip()))
    if ids:
        return len(ids)
    pairs = {(b.get("physical id", "0"), b["core id"]) for b in blocks if "core id" in b}
    if pairs:
        return len(pairs)
    if sys.platform == "darwin":
        v = _sysctl("hw.physicalcpu")
        return int(v) if v and v.isdigit() else None
    return None


def cpu_max_mhz() -> float | None:
    best = None
    for p in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq"):
        raw = _read(p)
        try:
            v = int(raw.strip()) / 1000.0 if raw else None
        except ValueError:
            v = None
        if v and (best is None or v > best):
            best = v
    return best


def mem_total_mb() -> int | None:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            try:
                return int(line.split()[1]) // 1024
            except (IndexError, ValueError):
                return None
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024))
    except (ValueError, OSError, AttributeError):
        return None


def os_name() -> str:
    for line in (_read("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.system() + " " + platform.release()


def fingerprint_id(fp: dict[str, Any]) -> str:
    """sha256[:16] of the fields that identify the device configuration (not hostname/load)."""
    ident = {k: fp.get(k) for k in ID_FIELDS}
    for k, v in (fp.get("runtime_extra") or {}).items():
        if k not in VOLATILE_EXTRA:
            ident["extra." + k] = v
    blob = json.dumps(ident, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def fingerprint(runtime: str | None, plugin: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Hardware, OS and runtime description of this device configuration."""
    blocks = _cpuinfo()
    mem = mem_total_mb()
    fp: dict[str, Any] = {
        "cpu_model": cpu_model(blocks),
        "cores_logical": os.cpu_count(),
        "cores_physical": cores_physical(blocks),
        "cpu_max_mhz": cpu_max_mhz(),
        "governor": governor(),
        "mem_total_mb": mem,
        # Rounded so that kernel memory reservations changing by a few MB keep the id stable.
        "mem_total_gb": round(mem / 1024.0) if mem else None,
        "os": os_name(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
        "python": platform.python_version(),
        "runtime": runtime,
        "runtime_version": None,
        "provider": options.get("provider") if runtime else None,
        "threads": options.get("threads") if runtime else None,
        "runtime_extra": {},
    }
    if plugin is not None:
        fp["runtime_version"] = plugin.version(options)
        extra = dict(plugin.fingerprint_extra(options) or {})
        # Plug-ins may pin the effective provider/threads; top-level keys win for these.
        for key in ("provider", "threads"):
            if key in extra:
                fp[key] = extra.pop(key)
        for key in ("gpu_name", "gpu_driver", "gpu_clocks"):
            if key in extra:
                fp[key] = extra[key]
        fp["runtime_extra"] = _jsonable(extra)
    fp["fingerprint_id"] = fingerprint_id(fp)
    return fp


def env_notes(load: float | None, temp: float | None, gov: str | None, converged: bool,
              threads: int) -> str:
    """What makes a figure suspect, '; '-separated ('' when nothing)."""
    notes = []
    cores = os.cpu_count() or 1
    # Our own run contributes about `threads` to the load average; flag only other load.
    limit = 0.5 * cores + threads
    if load is not None and load > limit:
        notes.append(f"load_avg_1m {load:.2f} > {limit:.1f} (0.5*cores + threads)")
    if temp is not None and temp >= HOT_C:
        notes.append(f"temp {temp:.0f}C")
    if gov and gov not in GOOD_GOVERNORS:
        notes.append(f"governor {gov}")
    if not converged:
        notes.append("not converged")
    return "; ".join(notes)


# ---------------------------------------------------------------- manifest & plug-ins


def _num(m: dict[str, Any], key: str, lo: float, hi: float | None = None) -> None:
    v = m[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ManifestError(f"measure.{key} must be a number, got {v!r}")
    if key in _INT_FIELDS and int(v) != v:
        raise ManifestError(f"measure.{key} must be an integer, got {v!r}")
    if v < lo or (hi is not None and v > hi):
        raise ManifestError("measure.{}={!r} is out of range [{}, {}]".format(key, v, lo, "inf" if hi is None else hi))


def load_manifest(path: str) -> dict[str, Any]:
    """Read and validate manifest.json; fills measure defaults. Raises ManifestError."""
    try:
        with open(path, encoding="utf-8") as f:
            man = json.load(f)
    except OSError as e:
        raise ManifestError(f"cannot read manifest {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise ManifestError(f"manifest {path} is not valid JSON: {e}") from None
    if not isinstance(man, dict):
        raise ManifestError(f"manifest {path} must be a JSON object")
    if man.get("protocol_version") != PROTOCOL_VERSION:
        raise ManifestError(f"manifest protocol_version {man.get('protocol_version')!r} is not supported "
                            f"(agent speaks {PROTOCOL_VERSION}); update the agent")
    rt = man.get("runtime")
    if not isinstance(rt, str) or not _RUNTIME_NAME.match(rt):
        raise ManifestError(f"manifest runtime must be a lower-case name like 'onnxruntime', got {rt!r}")
    opts = man.setdefault("runtime_options", {})
    if not isinstance(opts, dict):
        raise ManifestError("manifest runtime_options must be a JSON object")
    meas = man.get("measure", {})
    if not isinstance(meas, dict):
        raise ManifestError("manifest measure must be a JSON object")
    unknown = sorted(set(meas) - set(MEASURE_DEFAULTS))
    if unknown:
        raise ManifestError("manifest measure has unknown field(s) {}".format(", ".join(unknown)))
    m = dict(MEASURE_DEFAULTS)
    m.update(meas)
    for key in ("warmup_min_runs", "warmup_max_runs", "seed"):
        _num(m, key, 0)
    for key in ("min_runs", "max_runs"):
        _num(m, key, 1)
    for key in ("warmup_max_s", "max_time_s"):
        _num(m, key, 0)
    _num(m, "ci_rel", 0, 1)
    _num(m, "confidence", 0.5, 0.9999)
    if m["confidence"] <= 0.5:
        raise ManifestError("measure.confidence must be > 0.5")
    for key in _INT_FIELDS:
        m[key] = int(m[key])
    if m["max_runs"] < m["min_runs"]:
        raise ManifestError(f"measure.max_runs ({m['max_runs']}) < min_runs ({m['min_runs']})")
    if m["warmup_max_runs"] < m["warmup_min_runs"]:
        raise ManifestError(f"measure.warmup_max_runs ({m['warmup_max_runs']}) < "
                            f"warmup_min_runs ({m['warmup_min_runs']})")
    man["measure"] = m
    items = man.get("items")
    if not isinstance(items, list):
        raise ManifestError("manifest items must be a list")
    seen = set()
    for i, it in enumerate(items):
        if not isinstance(it, dict) or not isinstance(it.get("id"), str) or not it["id"]:
            raise ManifestError(f"manifest items[{i}] needs a non-empty string id")
        if not isinstance(it.get("file"), str) or not it["file"]:
            raise ManifestError(f"manifest items[{i}] ({it['id']}) needs a non-empty string file")
        if it["id"] in seen:
            raise ManifestError("manifest item id {!r} appears twice".format(it["id"]))
        seen.add(it["id"])
    return man


def load_plugin(runtime: str) -> Any:
    """Import hwlat_rt_<runtime> from the agent directory; RuntimeMissing when there is none."""
    if not _RUNTIME_NAME.match(runtime or ""):
        raise RuntimeMissing(f"runtime name {runtime!r} is not valid (lower-case letters, digits, _)")
    if AGENT_DIR not in sys.path:
        sys.path.insert(0, AGENT_DIR)
    modname = "hwlat_rt_" + runtime
    if not os.path.isfile(os.path.join(AGENT_DIR, modname + ".py")):
        known = sorted(os.path.basename(p)[9:-3] for p in glob.glob(os.path.join(AGENT_DIR, "hwlat_rt_*.py")))
        raise RuntimeMissing("unknown runtime {!r}: no {}.py next to the agent (known: {})".format(runtime, modname, ", ".join(known) or "none"))
    try:
        return importlib.import_module(modname)
    except Exception as e:  # a broken plug-in must still give one line
        raise RuntimeMissing(f"runtime plug-in {modname} failed to import: {exc_line(e)}") from None


def missing_lines(plugin: Any, options: dict[str, Any]) -> list[str]:
    try:
        return [one_line(m) for m in plugin.missing(options)]
    except Exception as e:
        return [f"{plugin.NAME} check failed: {exc_line(e)}"]


# ---------------------------------------------------------------- measurement


def resolve_item(rundir: str, rel: str) -> str:
    """Absolute real path of an item file; refuses anything that leaves the run directory."""
    if os.path.isabs(rel):
        raise ItemError(f"refused {rel}: absolute paths are not allowed, give it relative to the run directory")
    real = os.path.realpath(os.path.join(rundir, rel))
    if os.path.commonpath([rundir, real]) != rundir or real == rundir:
        raise ItemError(f"refused {rel}: it resolves to {real}, outside the run directory")
    if not os.path.exists(real):
        raise ItemError(f"model file {rel} does not exist in the run directory")
    if not os.path.isfile(real):
        raise ItemError(f"model file {rel} is not a regular file")
    return real


def _sample(runner: Any) -> float:
    t0 = time.perf_counter_ns()
    ms = runner.run_once()
    t1 = time.perf_counter_ns()
    if ms is None:
        ms = (t1 - t0) / 1e6
    ms = float(ms)
    if not math.isfinite(ms) or ms < 0:
        raise ItemError(f"runtime reported a non-finite or negative time ({ms!r} ms)")
    return ms


def measure_loop(runner: Any, m: dict[str, Any], z: float) -> dict[str, Any]:
    """Warm-up then timed runs until the median's CI is within +-ci_rel or a cap is hit."""
    t_w = time.perf_counter()
    warm = 0
    while warm < m["warmup_max_runs"] and (
            warm < m["warmup_min_runs"] or time.perf_counter() - t_w < m["warmup_max_s"]):
        _sample(runner)
        warm += 1
    warmup_s = time.perf_counter() - t_w

    samples: list[float] = []
    xs: list[float] = []  # kept sorted for the CI check
    t0 = time.perf_counter()
    while True:
        ms = _sample(runner)
        samples.append(ms)
        insort(xs, ms)
        n = len(xs)
        if n >= m["min_runs"]:
            if ci_ok(xs, z, m["ci_rel"]):
                break
            if n >= m["max_runs"] or time.perf_counter() - t0 >= m["max_time_s"]:
                break
    return {"samples": samples, "warmup_runs": warm, "warmup_s": warmup_s,
            "measure_s": time.perf_counter() - t0, "extra": {}}


def measure_plugin_loop(runner: Any, m: dict[str, Any]) -> dict[str, Any]:
    """For runtimes with their own loop (benchmark binaries, MCUs): they return the samples."""
    t0 = time.perf_counter()
    out = runner.measure(dict(m))
    dt = time.perf_counter() - t0
    if not isinstance(out, dict) or not isinstance(out.get("samples_ms"), list):
        raise ItemError("runtime measure() returned no samples_ms list")
    samples = []
    for v in out["samples_ms"]:
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise ItemError(f"runtime measure() returned a non-numeric sample {v!r}") from None
        if not math.isfinite(v) or v < 0:
            raise ItemError(f"runtime reported a non-finite or negative time ({v!r} ms)")
        samples.append(v)
    if not samples:
        raise ItemError("runtime measure() returned no samples")
    return {"samples": samples, "warmup_runs": int(out.get("warmup_runs", 0)),
            "warmup_s": float(out.get("warmup_s", 0.0)), "measure_s": float(out.get("measure_s", dt)),
            "extra": dict(out.get("extra") or {})}


def measure_item(plugin: Any, path: str, man: dict[str, Any], z: float) -> dict[str, Any]:
    """Open, measure and close one model; returns the fields of a result event."""
    m = man["measure"]
    opts = man["runtime_options"]
    started = utc_now()
    load0, temp0 = load_avg_1m(), temp_c()
    t_open = time.perf_counter()
    try:
        runner = plugin.open(path, opts, m["seed"])
    except ItemError:
        raise
    except Exception as e:
        raise ItemError(f"cannot load {os.path.basename(path)}: {exc_line(e)}") from None
    load_s = time.perf_counter() - t_open
    try:
        try:
            if hasattr(runner, "measure"):
                meas = measure_plugin_loop(runner, m)
            else:
                meas = measure_loop(runner, m, z)
            extra = dict(runner.extra() or {})
        except ItemError:
            raise
        except Exception as e:
            raise ItemError(f"run failed: {exc_line(e)}") from None
    finally:
        try:
            runner.close()
        except Exception as e:
            print(f"hwlat_agent: close failed: {exc_line(e)}", file=sys.stderr)
    finished = utc_now()
    stats = summarize(meas["samples"], z, m["ci_rel"], m["min_runs"])
    stats.update(warmup_runs=meas["warmup_runs"], warmup_s=round(meas["warmup_s"], 6),
                 measure_s=round(meas["measure_s"], 6))
    stats = {k: _finite(v) for k, v in stats.items()}
    loads = [x for x in (load0, load_avg_1m()) if x is not None]
    temps = [x for x in (temp0, temp_c()) if x is not None]
    load = max(loads) if loads else None
    temp = max(temps) if temps else None
    threads = opts.get("threads") if isinstance(opts.get("threads"), int) else 1
    env = {"load_avg_1m": load, "temp_c": temp, "load_avg_1m_before": load0, "temp_c_before": temp0,
           "notes": env_notes(load, temp, governor(), stats["converged"], max(1, threads))}
    extra.update(meas["extra"])
    extra.setdefault("load_s", round(load_s, 6))
    return {"stats": stats, "started_at": started, "finished_at": finished, "env": env,
            "extra": _jsonable(extra)}


# ---------------------------------------------------------------- commands


def _isolate_writes(rundir: str) -> None:
    """Keep caches and temp files of runtimes inside the run directory."""
    sys.dont_write_bytecode = True
    tmp = os.path.join(rundir, ".tmp")
    cache = os.path.join(rundir, ".cache")
    for d in (tmp, cache):
        os.makedirs(d, exist_ok=True)
    os.environ["TMPDIR"] = tmp
    os.environ["XDG_CACHE_HOME"] = cache
    # Overridden, not defaulted: an inherited value (torch sets TORCHINDUCTOR_CACHE_DIR in its
    # own process env) would point outside the run directory.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(cache, "torchinductor")
    os.environ["TRITON_CACHE_DIR"] = os.path.join(cache, "triton")
    os.environ["TORCH_HOME"] = os.path.join(cache, "torch")
    os.environ["CUDA_CACHE_PATH"] = os.path.join(cache, "nv")
    import tempfile

    tempfile.tempdir = tmp


def cmd_run(ev: Events, manifest_path: str) -> int:
    ev.emit("hello", protocol_version=PROTOCOL_VERSION, agent_version=AGENT_VERSION)
    try:
        man = load_manifest(manifest_path)
    except ManifestError as e:
        print(f"hwlat_agent: bad manifest: {one_line(e)}", file=sys.stderr)
        return EXIT_BAD_MANIFEST
    rundir = os.path.realpath(os.getcwd())
    _isolate_writes(rundir)
    opts = man["runtime_options"]
    try:
        plugin = load_plugin(man["runtime"])
        miss = missing_lines(plugin, opts)
        if miss:
            raise RuntimeMissing("; ".join(miss))
    except RuntimeMissing as e:
        print(f"hwlat_agent: runtime missing: {one_line(e)}", file=sys.stderr)
        return EXIT_RUNTIME_MISSING
    try:
        fp = fingerprint(man["runtime"], plugin, opts)
    except Exception as e:
        print(f"hwlat_agent: fingerprint failed: {exc_line(e)}", file=sys.stderr)
        fp = {"runtime": man["runtime"], "error": exc_line(e)}
    ev.emit("fingerprint", fingerprint=fp)
    z = z_value(man["measure"]["confidence"])
    ok = failed = 0
    for it in man["items"]:
        try:
            path = resolve_item(rundir, it["file"])
            res = measure_item(plugin, path, man, z)
        except ItemError as e:
            ev.emit("error", id=it["id"], reason=one_line(e))
            failed += 1
            continue
        except Exception as e:  # never let one item end the run
            ev.emit("error", id=it["id"], reason="agent failure: " + exc_line(e))
            failed += 1
            continue
        ev.emit("result", id=it["id"], **res)
        ok += 1
    ev.emit("done", ok=ok, failed=failed)
    return EXIT_OK


def _parse_options(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        opts = json.loads(text)
    except ValueError as e:
        raise ManifestError(f"--options is not valid JSON: {e}") from None
    if not isinstance(opts, dict):
        raise ManifestError("--options must be a JSON object")
    return opts


def cmd_fingerprint(ev: Events, runtime: str | None, options_text: str | None) -> int:
    ev.emit("hello", protocol_version=PROTOCOL_VERSION, agent_version=AGENT_VERSION)
    try:
        opts = _parse_options(options_text)
    except ManifestError as e:
        print(f"hwlat_agent: {one_line(e)}", file=sys.stderr)
        return EXIT_BAD_MANIFEST
    plugin = None
    if runtime:
        _isolate_writes(os.path.realpath(os.getcwd()))
        try:
            plugin = load_plugin(runtime)
            miss = missing_lines(plugin, opts)
            if miss:
                raise RuntimeMissing("; ".join(miss))
        except RuntimeMissing as e:
            print(f"hwlat_agent: runtime missing: {one_line(e)}", file=sys.stderr)
            return EXIT_RUNTIME_MISSING
    ev.emit("fingerprint", fingerprint=fingerprint(runtime, plugin, opts))
    return EXIT_OK


def cmd_check(ev: Events, runtime: str, options_text: str | None) -> int:
    ev.emit("hello", protocol_version=PROTOCOL_VERSION, agent_version=AGENT_VERSION)
    try:
        opts = _parse_options(options_text)
    except ManifestError as e:
        print(f"hwlat_agent: {one_line(e)}", file=sys.stderr)
        return EXIT_BAD_MANIFEST
    _isolate_writes(os.path.realpath(os.getcwd()))
    version = None
    try:
        plugin = load_plugin(runtime)
        miss = missing_lines(plugin, opts)
        if not miss:
            version = plugin.version(opts)
    except RuntimeMissing as e:
        miss = [one_line(e)]
    except Exception as e:
        miss = [f"{runtime} version check failed: {exc_line(e)}"]
    ev.emit("check", runtime=runtime, runtime_version=version, missing=miss, ok=not miss)
    for line in miss:
        print(line, file=sys.stderr)
    return EXIT_RUNTIME_MISSING if miss else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hwlat_agent.py", description="hwlat device agent")
    sub = ap.add_subparsers(dest="cmd")
    p_run = sub.add_parser("run", help="measure the items of a manifest")
    p_run.add_argument("manifest")
    p_fp = sub.add_parser("fingerprint", help="describe this device")
    p_fp.add_argument("--runtime")
    p_fp.add_argument("--options")
    p_ck = sub.add_parser("check", help="report what is missing for a runtime")
    p_ck.add_argument("--runtime", required=True)
    p_ck.add_argument("--options")
    args = ap.parse_args(argv)
    if not args.cmd:
        ap.print_usage(sys.stderr)
        return EXIT_BAD_MANIFEST
    ev = Events()
    if args.cmd == "run":
        return cmd_run(ev, args.manifest)
    if args.cmd == "fingerprint":
        return cmd_fingerprint(ev, args.runtime, args.options)
    return cmd_check(ev, args.runtime, args.options)


if __name__ == "__main__":
    sys.exit(main())
