"""hwlat agent runtime plug-in: TensorFlow Lite's official ``benchmark_model`` binary.

Runs the binary locally (e.g. on a phone under Termux, or a Linux SBC) or, in adb mode, on an
Android phone attached to the machine running the agent (``adb -s SERIAL shell ...``; model and
binary are pushed once to ``remote_dir``, named by content hash).

benchmark_model prints only aggregates (count/avg/min/max/std), so ``measure`` runs it in
batches: each invocation does ``warmup_min_runs`` warm-up runs then ``runs_per_sample`` timed
runs, and its ``Inference (avg)`` is one sample (a batch mean). Batches repeat until the
median's CI converges (agent protocol) or a cap is hit. With ``enable_op_profiling`` one more
invocation profiles the operators (kept out of the samples: profiling slows the runs).

Options: binary (path; default ``benchmark_model`` on PATH, or pushed from the host path in adb
mode), threads, use_gpu, use_nnapi, use_xnnpack, enable_op_profiling, taskset (CPU mask such as
"f0" for the big cores), runs_per_sample (10), adb_serial, adb (path, default "adb"),
remote_dir ("/data/local/tmp/hwlat"), remote_binary (already on the phone), timeout_s (600),
extra_args (list of "--flag=value"). Commands are argv lists; the adb remote command line is
built with shlex.quote. Standard library only.
"""

from __future__ import annotations

import builtins
import hashlib
import math
import os
import re
import shlex
import shutil
import statistics
import subprocess
import time
from typing import Any

NAME = "benchmark_model"
_BOOL_OPTS = ("use_gpu", "use_nnapi", "use_xnnpack", "enable_op_profiling")
_FLAG_RE = re.compile(r"^--[A-Za-z0-9_]+=[^\s]*$")
_MASK_RE = re.compile(r"^(0x)?[0-9a-fA-F]{1,16}$")
_SERIAL_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
_PREFIX_RE = re.compile(r"^(?:INFO: |[VDIWE] tflite\s*: ?|[VDIWE]/tflite\s*\(\s*\d+\): ?)")
_NUM = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


# ---------------------------------------------------------------- output parser


def _num(s: str) -> float | str:
    t = s.strip().rstrip("%")
    try:
        return float(t)
    except ValueError:
        return s.strip()


def _split_row(line: str) -> list[str]:
    parts = line.strip("\n").split("\t") if "\t" in line else re.split(r"\s{2,}", line)
    return [p.strip() for p in parts if p.strip()]


def _parse_table(lines: list[str], start: int) -> tuple[list[dict[str, Any]], int]:
    """Rows of the table whose header (``[node type] ... [Name]``) is at ``start``."""
    cols = [c.strip().lower() for c in re.findall(r"\[([^\]]+)\]", lines[start])]
    rows = []
    i = start + 1
    while i < len(lines) and lines[i].strip() and not lines[i].lstrip().startswith("="):
        cells = _split_row(lines[i])
        if len(cells) >= len(cols):
            # the [Name] column may itself contain double spaces: glue the tail back
            cells = cells[: len(cols) - 1] + [" ".join(cells[len(cols) - 1:])]
            rows.append({c: (cells[k] if c in ("node type", "name") else _num(cells[k])) for k, c in enumerate(cols)})
        i += 1
    return rows, i


def _parse_profile(lines: list[str], start: int) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    i = start + 1
    section = None
    while i < len(lines):
        s = lines[i].strip()
        if s.startswith("=====") and "Run Order" in s:
            section = "run_order"
        elif s.startswith("=====") and "Top by" in s:
            section = "top"
        elif s.startswith("=====") and "Summary by node type" in s:
            section = "by_node_type"
        elif s.startswith("Timings (microseconds):"):
            out["timings_us"] = _kv(s)
        elif s.endswith("nodes observed"):
            return out, i + 1
        elif ("Profiling Info" in s) and i != start:
            return out, i
        elif section and "[node type]" in s.lower():
            rows, i = _parse_table(lines, i)
            out[section] = rows
            continue
        i += 1
    return out, i


def _kv(s: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"([a-z0-9_]+)=" + _NUM, s)}


def parse_output(text: str) -> dict[str, Any]:
    """Everything useful in a benchmark_model log (any version since ~2.3, with or without the
    ``INFO:``/logcat prefixes). Times stay in the tool's units (us, ms, MB) and are named so."""
    lines = [_PREFIX_RE.sub("", ln.rstrip("\r")) for ln in text.splitlines()]
    res: dict[str, Any] = {"runs": [], "failed": False}
    i = 0
    while i < len(lines):
        s = lines[i].strip()
        if re.match(r"^count=\d+", s):
            res["runs"].append(_kv(s))
        elif s.startswith("Inference timings in us:"):
            for key, name in (("Init", "init_us"), ("First inference", "first_inference_us"),
                              (r"Warmup \(avg\)", "warmup_avg_us"), (r"Inference \(avg\)", "inference_avg_us")):
                m = re.search(key + ": " + _NUM, s)
                if m:
                    res[name] = float(m.group(1))
        elif "footprint" in s and "init=" in s and "overall=" in s:
            kv = _kv(s)
            res["mem_init_mb"], res["mem_overall_mb"] = kv.get("init"), kv.get("overall")
        elif s.startswith("Overall peak memory footprint (MB) via periodic monitoring:"):
            res["peak_mem_mb"] = float(s.rsplit(":", 1)[1])
        elif s.startswith("Initialized session in"):
            m = re.search(_NUM + "ms", s)
            if m:
                res["session_init_ms"] = float(m.group(1))
        elif s.startswith("The input model file size (MB):"):
            res["model_size_mb"] = float(s.rsplit(":", 1)[1])
        elif s.startswith("Replacing") and "with delegate" in s:
            m = re.search(r"Replacing (\d+) out of (\d+) node\(s\)", s)
            if m:
                res["delegated_nodes"], res["total_nodes"] = int(m.group(1)), int(m.group(2))
        elif s.startswith("Profiling Info for Benchmark Initialization"):
            res["init_profile"], i = _parse_profile(lines, i)
            continue
        elif s.startswith("Operator-wise Profiling Info for Regular Benchmark Runs"):
            res["op_profile"], i = _parse_profile(lines, i)
            continue
        elif s.startswith("ERROR:"):
            res.setdefault("error", s[len("ERROR:"):].strip())  # the first error is the cause
        elif s == "Benchmarking failed.":
            res["failed"] = True
        i += 1
    if res["runs"]:
        res["regular"] = res["runs"][-1]  # warm-up stats come first, the regular runs last
    return res


# ---------------------------------------------------------------- commands


def _opt_errors(options: dict[str, Any]) -> list[str]:
    out = []
    t = options.get("threads")
    if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t < 1):
        out.append(f"benchmark_model option threads={t!r} must be an integer >= 1")
    for k in _BOOL_OPTS:
        if k in options and not isinstance(options[k], bool):
            out.append(f"benchmark_model option {k}={options[k]!r} must be true or false")
    mask = options.get("taskset")
    if mask is not None and (not isinstance(mask, str) or not _MASK_RE.match(mask)):
        out.append(f"benchmark_model option taskset={mask!r} must be a hex CPU mask like \"f0\"")
    serial = options.get("adb_serial")
    if serial is not None and (not isinstance(serial, str) or not _SERIAL_RE.match(serial)):
        out.append(f"benchmark_model option adb_serial={serial!r} is not a device serial (see adb devices)")
    extra = options.get("extra_args", [])
    if not isinstance(extra, list) or not all(isinstance(a, str) and _FLAG_RE.match(a) for a in extra):
        out.append("benchmark_model option extra_args must be a list of \"--flag=value\" strings")
    rps = options.get("runs_per_sample", 10)
    if isinstance(rps, bool) or not isinstance(rps, int) or rps < 1:
        out.append(f"benchmark_model option runs_per_sample={rps!r} must be an integer >= 1")
    return out


def bench_args(graph: str, options: dict[str, Any], warmup: int, runs: int, profile: bool = False,
               max_secs: float = 150.0) -> list[str]:
    """benchmark_model's own flags (argv tail) for one invocation."""
    args = [f"--graph={graph}", f"--warmup_runs={int(warmup)}", "--warmup_min_secs=0",
            f"--num_runs={int(runs)}", "--min_secs=0", f"--max_secs={max_secs:g}"]
    if options.get("threads") is not None:
        args.append(f"--num_threads={int(options['threads'])}")
    for k in ("use_gpu", "use_nnapi", "use_xnnpack"):
        if k in options:
            args.append(f"--{k}={'true' if options[k] else 'false'}")
    if profile:
        args.append("--enable_op_profiling=true")
    args += list(options.get("extra_args", []))
    return args


def _is_adb(options: dict[str, Any]) -> bool:
    return bool(options.get("adb_serial"))


def _adb(options: dict[str, Any]) -> list[str]:
    return [options.get("adb", "adb"), "-s", options["adb_serial"]]


def remote_command(binary: str, args: list[str], taskset: str | None) -> str:
    """The one shell line ``adb shell`` runs on the phone: every word shlex-quoted."""
    argv = (["taskset", taskset] if taskset else []) + [binary] + args
    return " ".join(shlex.quote(a) for a in argv)


def local_argv(binary: str, args: list[str], taskset: str | None) -> list[str]:
    return (["taskset", taskset] if taskset else []) + [binary] + args


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, errors="replace")


def _sha(path: str) -> str:
    h = hashlib.sha256()
    with builtins.open(path, "rb") as f:  # this module's own open() is the plug-in entry point
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _local_binary(options: dict[str, Any]) -> str | None:
    b = options.get("binary", "benchmark_model")
    if not isinstance(b, str) or not b:
        return None
    return b if os.sep in b else shutil.which(b)


class _Adb:
    """adb helpers for one device: push-once by content hash, shell with quoted argv."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.base = _adb(options)
        self.dir = options.get("remote_dir", "/data/local/tmp/hwlat")

    def shell(self, argv: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess:
        return _run(self.base + ["shell", " ".join(shlex.quote(a) for a in argv)], timeout)

    def push_cached(self, local: str, executable: bool = False) -> str:
        remote = f"{self.dir}/{_sha(local)[:16]}-{os.path.basename(local)}"
        if self.shell(["test", "-f", remote]).returncode != 0:
            self.shell(["mkdir", "-p", self.dir])
            r = _run(self.base + ["push", local, remote], 600.0)
            if r.returncode != 0:
                raise RuntimeError(f"adb push {local} failed: {' '.join((r.stderr or r.stdout).split())[-300:]}")
            if executable:
                self.shell(["chmod", "755", remote])
        return remote

    def binary(self) -> str:
        if self.options.get("remote_binary"):
            return str(self.options["remote_binary"])
        local = _local_binary(self.options)
        if not local:
            raise RuntimeError("benchmark_model binary for the phone not found: set option binary to the "
                               "android_arm64 benchmark_model on this host, or remote_binary")
        return self.push_cached(local, executable=True)


# ---------------------------------------------------------------- plug-in interface


def version(options: dict[str, Any]) -> str:
    """benchmark_model has no --version: identify the build by its content hash."""
    if _is_adb(options) and options.get("remote_binary"):
        r = _Adb(options).shell(["sha256sum", str(options["remote_binary"])])
        return "benchmark_model sha256:" + (r.stdout.split()[0][:12] if r.returncode == 0 and r.stdout else "unknown")
    local = _local_binary(options)
    if local and os.path.isfile(local):
        return "benchmark_model sha256:" + _sha(local)[:12]
    return "unknown"


def missing(options: dict[str, Any]) -> list[str]:
    out = _opt_errors(options)
    if _is_adb(options):
        adb = options.get("adb", "adb")
        if not (shutil.which(adb) or os.path.isfile(adb)):
            return out + [f"adb not found ({adb}): install android-tools-adb / platform-tools"]
        try:
            r = _run(_adb(options) + ["get-state"], 20.0)
        except subprocess.TimeoutExpired:
            return out + [f"adb device {options['adb_serial']} did not answer within 20s"]
        if r.returncode != 0 or r.stdout.strip() != "device":
            out.append(f"adb device {options['adb_serial']} is not online ({' '.join((r.stderr or r.stdout).split())}):"
                       " check adb devices, USB debugging and the authorization prompt")
        if not options.get("remote_binary") and not _local_binary(options):
            out.append("benchmark_model binary not found on this host: set option binary (android_arm64 build)")
    else:
        b = _local_binary(options)
        if not b or not os.path.isfile(b):
            out.append(f"benchmark_model binary not found ({options.get('binary', 'benchmark_model')}): set option "
                       "binary to its path (see docs/phones.md)")
        elif not os.access(b, os.X_OK):
            out.append(f"benchmark_model binary {b} is not executable: chmod +x it")
        if options.get("taskset") and not shutil.which("taskset"):
            out.append("taskset not found (util-linux): install it or drop the taskset option")
    return out


def fingerprint_extra(options: dict[str, Any]) -> dict[str, Any]:
    provider = "gpu" if options.get("use_gpu") else "nnapi" if options.get("use_nnapi") else (
        "cpu" if options.get("use_xnnpack") is False else "xnnpack")
    extra: dict[str, Any] = {"provider": provider, "taskset": options.get("taskset"),
                             "mode": "adb" if _is_adb(options) else "local"}
    if _is_adb(options):
        a = _Adb(options)
        for prop in ("ro.product.model", "ro.board.platform", "ro.build.version.release", "ro.soc.model"):
            r = a.shell(["getprop", prop])
            extra[prop] = r.stdout.strip() if r.returncode == 0 else None
        r = a.shell(["cat", "/sys/devices/system/cpu/cpufreq/policy0/cpuinfo_max_freq"])
        extra["cpu0_max_khz"] = r.stdout.strip() if r.returncode == 0 else None
    return extra


def _ci_ok(xs: list[float], z: float, ci_rel: float) -> bool:
    n = len(xs)
    if n < 2:
        return False
    med = xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2.0
    half = z * math.sqrt(n) / 2.0
    j = max(1, int(math.floor(n / 2.0 - half)))
    k = min(n, int(math.ceil(1 + n / 2.0 + half)))
    return xs[j - 1] >= med * (1 - ci_rel) and xs[k - 1] <= med * (1 + ci_rel)


class Runner:
    """One model; each ``_invoke`` is one benchmark_model process."""

    def __init__(self, path: str, options: dict[str, Any], seed: int) -> None:
        errs = _opt_errors(options)
        if errs:
            raise ValueError("; ".join(errs))
        self.options = options
        self.timeout = float(options.get("timeout_s", 600))
        self.taskset = options.get("taskset")
        if _is_adb(options):
            self.adb: _Adb | None = _Adb(options)
            self.binary = self.adb.binary()
            self.graph = self.adb.push_cached(path)
        else:
            self.adb = None
            self.binary = _local_binary(options) or "benchmark_model"
            self.graph = path
        self.parsed: list[dict[str, Any]] = []
        self.profile: dict[str, Any] | None = None

    def _invoke(self, warmup: int, runs: int, profile: bool = False) -> dict[str, Any]:
        args = bench_args(self.graph, self.options, warmup, runs, profile)
        if self.adb is not None:
            argv = self.adb.base + ["shell", remote_command(self.binary, args, self.taskset)]
        else:
            argv = local_argv(self.binary, args, self.taskset)
        r = _run(argv, self.timeout)
        text = (r.stdout or "") + "\n" + (r.stderr or "")
        res = parse_output(text)
        if r.returncode != 0 or res["failed"] or "inference_avg_us" not in res:
            why = res.get("error") or " ".join(text.split())[-300:] or f"exit code {r.returncode}"
            raise RuntimeError(f"benchmark_model failed: {why}")
        return res

    def run_once(self) -> float | None:
        return self._invoke(0, 1)["inference_avg_us"] / 1000.0

    def measure(self, protocol: dict[str, Any]) -> dict[str, Any]:
        m = protocol
        z = statistics.NormalDist().inv_cdf((1.0 + float(m.get("confidence", 0.95))) / 2.0)
        per = int(self.options.get("runs_per_sample", 10))
        warm = int(m.get("warmup_min_runs", 3))
        min_runs, max_runs = int(m.get("min_runs", 10)), int(m.get("max_runs", 10000))
        samples: list[float] = []
        t0 = time.perf_counter()
        while True:
            res = self._invoke(warm, per)
            self.parsed.append(res)
            samples.append(res["inference_avg_us"] / 1000.0)
            xs = sorted(samples)
            if len(xs) >= min_runs and _ci_ok(xs, z, float(m.get("ci_rel", 0.02))):
                break
            if len(xs) >= max_runs or time.perf_counter() - t0 >= float(m.get("max_time_s", 2.0)):
                break
        measure_s = time.perf_counter() - t0
        if self.options.get("enable_op_profiling"):
            self.profile = self._invoke(warm, per, profile=True).get("op_profile")
        # every invocation warms up afresh: report the per-invocation warm-up count
        return {"samples_ms": samples, "warmup_runs": warm, "measure_s": measure_s,
                "extra": {"runs_per_sample": per, "invocations": len(samples)}}

    def extra(self) -> dict[str, Any]:
        def med(key: str, scale: float = 1.0) -> float | None:
            vals = [p[key] * scale for p in self.parsed if p.get(key) is not None]
            return statistics.median(vals) if vals else None

        out: dict[str, Any] = {
            "init_ms": med("init_us", 1e-3), "first_inference_ms": med("first_inference_us", 1e-3),
            "warmup_avg_ms": med("warmup_avg_us", 1e-3),
            "mem_init_mb": med("mem_init_mb"),
            "mem_overall_mb": max((p["mem_overall_mb"] for p in self.parsed if p.get("mem_overall_mb")), default=None),
            "run_min_ms": min((p["regular"]["min"] / 1000.0 for p in self.parsed if "min" in p.get("regular", {})),
                              default=None),
            "run_max_ms": max((p["regular"]["max"] / 1000.0 for p in self.parsed if "max" in p.get("regular", {})),
                              default=None),
        }
        if self.parsed and "delegated_nodes" in self.parsed[-1]:
            out["delegated_nodes"] = self.parsed[-1]["delegated_nodes"]
            out["total_nodes"] = self.parsed[-1]["total_nodes"]
        if self.profile:
            out["op_profile"] = [{"type": r.get("node type"), "avg_ms": r.get("avg ms"), "pct": r.get("%"),
                                  "name": r.get("name"), "times_called": r.get("times called")}
                                 for r in self.profile.get("run_order", [])]
            out["op_by_type"] = {r.get("node type"): r.get("avg ms") for r in self.profile.get("by_node_type", [])}
        return out

    def close(self) -> None:
        pass  # pushed files stay cached on the phone by content hash


def open(path: str, options: dict[str, Any], seed: int) -> Runner:  # noqa: A001 - plug-in interface name
    return Runner(path, options, seed)
