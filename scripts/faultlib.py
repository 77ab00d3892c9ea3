"""Fault injection with real processes, shared by ``tests/test_faults_*.py`` and ``scripts/bench_faults.py``.

Every fault is real: agents and hwlat processes die by SIGKILL, sshd sessions are killed, the
network link to a device in a network namespace is taken down, the store lives on a tiny tmpfs
that fills up. Nothing is mocked; after each fault the campaign is re-run with the real CLI and
the store is audited (every model exactly once by item_key and row_id, every part file
readable, no temp file left).

Root-only facilities (``ip netns``, ``mount -t tmpfs``) raise :class:`FaultUnavailable` with the
reason, so tests can skip visibly and the bench can report it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
for _p in (REPO, TESTS):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import tomli_w  # noqa: E402
from sshd_server import SSHD, SSHD_BIN  # noqa: E402

HWLAT = [sys.executable, "-m", "hwlat"]
# one pass: the fault scenarios count rows and runs of a single pass (`hwlat profile` defaults to
# confirmed passes)
FAST = ("--max-time", "0.2", "--passes", "1")


class FaultUnavailable(RuntimeError):
    """A fault needs a facility this machine does not offer (the message says which and why)."""


# ---------------------------------------------------------------- models


def conv_onnx(path: Path, c: int, hw: int, k: int, seed: int) -> Path:
    """One Conv(c→c, k×k) on a c×hw×hw input; weights from ``seed`` make every file distinct."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(seed).standard_normal((c, c, k, k)).astype(np.float32)
    g = helper.make_graph([helper.make_node("Conv", ["x", "W"], ["y"], pads=[k // 2] * 4)], "conv",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, hw, hw])],
                          [numpy_helper.from_array(w, "W")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(path))
    return path


def make_models(folder: Path, n: int, offset: int = 0) -> list[Path]:
    """``n`` distinct small conv models (≈0.05–1 ms a run, so an item takes ≈0.1–0.3 s to measure and
    a kill can land mid-item); ``offset`` shifts the set so two folders can overlap or not."""
    shapes = [(c, hw, k) for k in (3, 5) for hw in (12, 16, 20, 24, 28) for c in (16, 24, 32, 40, 48)]
    out = []
    for i in range(offset, offset + n):
        c, hw, k = shapes[i % len(shapes)]
        out.append(conv_onnx(folder / f"conv{i:03d}_c{c}_hw{hw}_k{k}.onnx", c, hw, k, seed=1000 + i))
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- isolated hwlat home


@dataclass
class Home:
    """An isolated hwlat home: profiles root, devices file, known_hosts, $HOME."""

    root: Path
    profiles: Path | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.profiles = self.profiles or self.root / "profiles"
        self.profiles.mkdir(parents=True, exist_ok=True)
        (self.root / "home").mkdir(exist_ok=True)

    @property
    def devices(self) -> Path:
        # outside the profiles root, so a full or unmounted profiles disk does not hide it
        return self.root / "devices.toml"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        env.update(HWLAT_PROFILES=str(self.profiles), HWLAT_DEVICES=str(self.devices),
                   HWLAT_KNOWN_HOSTS=str(self.root / "known_hosts"), HOME=str(self.root / "home"),
                   PYTHONUNBUFFERED="1", COLUMNS="200")
        return env

    def write_devices(self, devices: dict[str, dict[str, Any]]) -> None:
        self.devices.write_text(tomli_w.dumps({"devices": devices}))


def hwlat(home: Home, *args: str, timeout: float = 300, check: bool = False) -> subprocess.CompletedProcess:
    """Run the real CLI with stdin closed (nothing may prompt)."""
    p = subprocess.run([*HWLAT, *args], capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, env=home.env(), cwd=home.root)
    if check and p.returncode != 0:
        raise AssertionError(f"hwlat {' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return p


def start_hwlat(home: Home, *args: str) -> subprocess.Popen:
    """Start the real CLI in its own session (so a host crash can kill the whole group)."""
    return subprocess.Popen([*HWLAT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env=home.env(), cwd=home.root, start_new_session=True)


def error_line(stderr: str) -> str:
    """The ``hwlat: error: ...`` line of a failed command ('' when there is none)."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("hwlat: error:")]
    return lines[-1] if lines else ""


def complete(home: Home, device: str, folder: Path, max_runs: int = 5, timeout: float = 300) -> int:
    """Re-run ``hwlat profile`` until it succeeds; returns how many runs it took."""
    last = ""
    for i in range(1, max_runs + 1):
        p = hwlat(home, "profile", device, "--models", str(folder), *FAST, timeout=timeout)
        if p.returncode == 0:
            return i
        last = p.stderr.strip()[-600:]
    raise AssertionError(f"campaign on {device!r} did not complete in {max_runs} runs: {last}")


# ---------------------------------------------------------------- processes


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (children first)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            pp = _ppid(int(d.name))
            if pp is not None:
                children.setdefault(pp, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def agent_pids(under: Path) -> list[int]:
    """PIDs of any ``hwlat_agent.py`` command whose working directory lies under ``under``."""
    base = str(under.resolve())
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(d / "cwd")
        except OSError:
            continue
        if any(c.endswith(b"hwlat_agent.py") for c in cmd) and (cwd == base or cwd.startswith(base + "/")):
            out.append(int(d.name))
    return out


def kill_pids(pids: list[int], sig: int = signal.SIGKILL) -> int:
    n = 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
            n += 1
    return n


_ROWS_CACHE: dict[Path, int] = {}


def stored_count(profiles: Path, device: str, table: str = "models") -> int:
    """Rows visible in the store right now, cheaply: the runner appends one row per part file,
    so only compacted files are opened (their footers, once: part files are immutable)."""
    n = 0
    d = profiles / device / table
    for p in d.glob("part-*.parquet") if d.is_dir() else []:
        if not p.name.endswith("-compact.parquet"):
            n += 1
            continue
        if p not in _ROWS_CACHE:
            try:
                _ROWS_CACHE[p] = pq.read_metadata(p).num_rows
            except OSError:
                continue
        n += _ROWS_CACHE[p]
    return n


def wait_rows(profiles: Path, device: str, n: int, proc: subprocess.Popen, timeout: float = 120) -> bool:
    """Wait until ``n`` rows are stored or ``proc`` ends; True when the rows are there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stored_count(profiles, device) >= n:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def finish(proc: subprocess.Popen, timeout: float = 180) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


# ---------------------------------------------------------------- store audit


@dataclass
class Audit:
    """What a store holds against what was asked for."""

    expected: int
    present: int = 0            # expected models with a row
    missing: int = 0            # expected models without a row
    duplicates: int = 0         # rows beyond one per item_key / per model / per row_id
    unexpected: int = 0         # rows for models that were not asked for
    corrupt_files: list[str] = field(default_factory=list)
    tmp_files: list[str] = field(default_factory=list)
    parts: int = 0

    @property
    def ok(self) -> bool:
        return (self.present == self.expected and not self.missing and not self.duplicates
                and not self.unexpected and not self.corrupt_files and not self.tmp_files)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def audit_store(profiles: Path, device: str, models: list[Path], table: str = "models") -> Audit:
    """Check the store of ``device`` holds each of ``models`` exactly once, in readable files."""
    from hwlat.store.schema import META_KEY, SCHEMA_VERSION, columns

    want = {sha256(p) for p in models}
    a = Audit(expected=len(want))
    dev = profiles / device
    a.tmp_files = sorted(str(p.relative_to(profiles)) for p in dev.rglob(".tmp-*")) if dev.is_dir() else []
    tabs = []
    d = dev / table
    for p in sorted(d.glob("part-*.parquet")) if d.is_dir() else []:
        try:
            meta = pq.read_schema(p).metadata or {}
            t = pq.read_table(p)
            if int(meta.get(META_KEY, b"0")) != SCHEMA_VERSION or t.column_names != columns(table):
                raise ValueError("schema")
            tabs.append(t.to_pandas())
        except Exception as e:  # noqa: BLE001  (any failure to read is a corrupt file)
            a.corrupt_files.append(f"{p.name} ({type(e).__name__})")
    if (dev / "device.json").exists():
        try:
            json.loads((dev / "device.json").read_text())
        except ValueError:
            a.corrupt_files.append("device.json")
    a.parts = len(tabs)
    if not tabs:
        a.missing = len(want)
        return a
    import pandas as pd

    df = pd.concat(tabs, ignore_index=True)
    row_dups = int(df["row_id"].duplicated().sum())   # a row_id in two files: readers drop one
    df = df.drop_duplicates("row_id")
    key_dups = int(df["item_key"].duplicated().sum())
    sha_dups = int(df["file_sha256"].duplicated().sum())
    # the final compaction leaves one file, so a row_id twice on disk is also counted
    a.duplicates = max(key_dups, sha_dups) + row_dups
    have = set(df["file_sha256"])
    a.present = len(want & have)
    a.missing = len(want - have)
    a.unexpected = int((~df["file_sha256"].isin(want)).sum())
    return a


# ---------------------------------------------------------------- trial bookkeeping


@dataclass
class Trial:
    """One fault-injection trial."""

    fault: str
    seed: int
    injected: int = 0           # faults actually delivered (kills, cuts, reboots, ENOSPC hits)
    runs: int = 0               # hwlat runs until the campaign completed (the last one verifies)
    recovered_in_run: int = 0   # faulted runs that still finished every item (retried by themselves)
    seconds: float = 0.0
    audit: Audit | None = None
    errors: list[str] = field(default_factory=list)  # the one-line errors the faulted runs printed
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.audit is not None and self.audit.ok

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["audit"] = self.audit.to_dict() if self.audit else None
        d["ok"] = self.ok
        return d


def _faulted_run(t: Trial, proc: subprocess.Popen, timeout: float = 180) -> None:
    """Collect a run that was hit by a fault: it must end with a one-line error (or succeed)."""
    rc, out, err = finish(proc, timeout)
    t.runs += 1
    if os.environ.get("FAULTLIB_DEBUG"):
        print(f"[{t.fault} seed {t.seed}] rc={rc}\n{out[-1500:]}\n{err[-1500:]}", file=sys.stderr)
    if rc == 0:
        t.recovered_in_run += 1
    else:
        line = error_line(err)
        t.errors.append(line or f"(exit {rc}, no 'hwlat: error:' line) {err.strip()[-200:]}")


# ---------------------------------------------------------------- faults: local agent / host process


def local_device(home: Home, name: str = "loc") -> Path:
    """A ``local`` device with its own workdir (so its agents can be found and killed)."""
    work = home.root / f"work-{name}"
    home.write_devices({name: {"transport": "local", "workdir": str(work)}})
    return work


def trial_sigkill_agent(base: Path, seed: int, n_items: int = 50, max_kills: int = 3) -> Trial:
    """SIGKILL the device agent at random points (1..max_kills times), re-running after each."""
    rng = random.Random(seed)
    t = Trial("sigkill_agent", seed)
    t0 = time.monotonic()
    home = Home(base)
    work = local_device(home)
    models = make_models(base / "models", n_items, offset=seed % 7)
    for _ in range(rng.randint(1, max_kills)):
        have = stored_count(home.profiles, "loc")
        if have >= n_items:
            break
        proc = start_hwlat(home, "profile", "loc", "--models", str(base / "models"), *FAST)
        target = have + rng.randint(0, max(0, n_items - have - 2))
        if wait_rows(home.profiles, "loc", target, proc):
            time.sleep(rng.uniform(0.0, 0.15))  # land anywhere: mid-item, mid-write, between items
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and proc.poll() is None:
                if kill_pids(agent_pids(work)):
                    t.injected += 1
                    break
                time.sleep(0.01)
        _faulted_run(t, proc)
    t.runs += complete(home, "loc", base / "models")
    t.audit = audit_store(home.profiles, "loc", models)
    if work.is_dir() and list(work.iterdir()):
        t.notes.append(f"run dirs left in workdir: {sorted(p.name for p in work.iterdir())}")
        t.audit.tmp_files.append("workdir not cleaned")
    t.seconds = time.monotonic() - t0
    return t


def trial_sigkill_host(base: Path, seed: int, n_items: int = 30, max_kills: int = 2) -> Trial:
    """SIGKILL the whole ``hwlat profile`` process group (a host crash) at random points."""
    rng = random.Random(seed)
    t = Trial("sigkill_host", seed)
    t0 = time.monotonic()
    home = Home(base)
    local_device(home)
    models = make_models(base / "models", n_items, offset=seed % 5)
    for _ in range(rng.randint(1, max_kills)):
        have = stored_count(home.profiles, "loc")
        if have >= n_items:
            break
        proc = start_hwlat(home, "profile", "loc", "--models", str(base / "models"), *FAST)
        target = have + rng.randint(0, max(0, n_items - have - 2))
        if wait_rows(home.profiles, "loc", target, proc):
            time.sleep(rng.uniform(0.0, 0.1))
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                    t.injected += 1
        finish(proc)
        t.runs += 1
        # readers must never see a half-written file, even before the next run cleans up
        mid = audit_store(home.profiles, "loc", models)
        if mid.corrupt_files:
            t.notes.append(f"corrupt right after the crash: {mid.corrupt_files}")
    t.runs += complete(home, "loc", base / "models")
    t.audit = audit_store(home.profiles, "loc", models)
    t.seconds = time.monotonic() - t0
    return t


# ---------------------------------------------------------------- faults: concurrency


def trial_concurrent(base: Path, seed: int, n_items: int = 24, same_device: bool = True) -> Trial:
    """Two ``hwlat profile`` processes at once on one store: same device with overlapping
    model sets, or two devices. No row may be lost or duplicated."""
    t = Trial("concurrent_same_device" if same_device else "concurrent_two_devices", seed)
    t0 = time.monotonic()
    home = Home(base)
    home.write_devices({"a": {"transport": "local", "workdir": str(base / "wa")},
                        "b": {"transport": "local", "workdir": str(base / "wb")}})
    half = n_items // 2
    # same device: folders overlap by half, so both processes race for the shared models
    m1 = make_models(base / "m1", n_items, offset=seed % 9)
    m2 = make_models(base / "m2", n_items, offset=seed % 9 + (half if same_device else 0))
    devs = ("a", "a") if same_device else ("a", "b")
    procs = [start_hwlat(home, "profile", d, "--models", str(f), *FAST) for d, f in zip(devs, (base / "m1", base / "m2"))]
    for p in procs:
        rc, _, err = finish(p)
        t.runs += 1
        t.injected += 1
        if rc != 0:
            t.errors.append(error_line(err) or err.strip()[-200:])
    if same_device:
        t.audit = audit_store(home.profiles, "a", list({sha256(p): p for p in m1 + m2}.values()))
    else:
        a1, a2 = audit_store(home.profiles, "a", m1), audit_store(home.profiles, "b", m2)
        t.audit = Audit(expected=a1.expected + a2.expected, present=a1.present + a2.present,
                        missing=a1.missing + a2.missing, duplicates=a1.duplicates + a2.duplicates,
                        unexpected=a1.unexpected + a2.unexpected, corrupt_files=a1.corrupt_files + a2.corrupt_files,
                        tmp_files=a1.tmp_files + a2.tmp_files, parts=a1.parts + a2.parts)
    t.seconds = time.monotonic() - t0
    return t


# ---------------------------------------------------------------- faults: disk full


def mount_unavailable() -> str | None:
    """None when a tmpfs can be mounted here, else why not."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    if not shutil.which("mount"):
        return "no mount command"
    return None


@contextlib.contextmanager
def tmpfs(path: Path, size_kib: int) -> Iterator[Path]:
    """A tmpfs of ``size_kib`` KiB mounted at ``path`` for the duration of the block."""
    why = mount_unavailable()
    if why:
        raise FaultUnavailable(why)
    path.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise FaultUnavailable(f"mount -t tmpfs not permitted here: {p.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder: Path, leave_kib: int) -> Path:
    """Fill the file system of ``folder`` up to ``leave_kib`` KiB free with a filler file."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    filler = folder / "filler.bin"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave_kib * 1024))
    return filler


def trial_disk_full(base: Path, seed: int, n_items: int = 24) -> Trial:
    """The profiles root is a small tmpfs that fills up mid-campaign; after freeing space the
    re-run completes and nothing already stored is damaged."""
    rng = random.Random(seed)
    t = Trial("disk_full", seed)
    t0 = time.monotonic()
    root = base / "profiles"
    with tmpfs(root, 2048):
        home = Home(base, profiles=root)
        local_device(home)
        models = make_models(base / "models", n_items, offset=seed % 11)
        # room for a few single-row part files (~14 KiB each) and device.json, then ENOSPC
        filler = fill(root, rng.randint(24, 120))
        p = hwlat(home, "profile", "loc", "--models", str(base / "models"), *FAST)
        t.runs += 1
        line = error_line(p.stderr)
        if p.returncode != 0 and "disk full" in line:
            t.injected += 1
        if p.returncode != 0:
            t.errors.append(line or p.stderr.strip()[-200:])
        mid = audit_store(home.profiles, "loc", models)
        if mid.corrupt_files or mid.tmp_files:
            t.notes.append(f"while full: corrupt={mid.corrupt_files} tmp={mid.tmp_files}")
            t.audit = mid
        stored_before = mid.present
        filler.unlink()  # the user frees some space
        t.runs += complete(home, "loc", base / "models")
        final = audit_store(home.profiles, "loc", models)
        if t.audit is not None:  # keep the worst: a problem seen while full must fail the trial
            final.corrupt_files += t.audit.corrupt_files
            final.tmp_files += t.audit.tmp_files
        t.audit = final
        t.notes.append(f"{stored_before} rows stored before the disk filled")
    t.seconds = time.monotonic() - t0
    return t


# ---------------------------------------------------------------- SSH devices


def sshd_sessions(sshd: SSHD) -> list[int]:
    """PIDs of the per-connection sshd processes (and what they run) under a test sshd."""
    return descendants(sshd.proc.pid) if sshd.proc else []


def kill_sessions(sshd: SSHD) -> int:
    """Cut every SSH connection from the device side: SIGKILL the per-connection sshd processes
    (not what they run: the agent then dies of the hang-up, as on a real device)."""
    def is_sshd(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sshd")
        except OSError:
            return False

    return kill_pids([p for p in sshd_sessions(sshd) if is_sshd(p)])


def trust(home: Home, name: str, sshd: SSHD) -> None:
    """Pin ``sshd``'s host key for device ``name`` in the home's known_hosts, as
    ``hwlat devices trust NAME`` would after checking the fingerprint (no connection needed)."""
    table = sshd.device_table()
    host = table["host"] if table["port"] == 22 else f"[{table['host']}]:{table['port']}"
    kind, b64 = sshd.host_key.with_suffix(".pub").read_text().split()[:2]
    with open(home.root / "known_hosts", "a") as f:
        f.write(f"{host} {kind} {b64}\n")


def reboot(sshd: SSHD, workdir: Path, down_s: float = 1.0) -> None:
    """A device reboot: sshd and every session die, the device's scratch space is wiped, and
    sshd comes back (same host key) a moment later."""
    pids = sshd_sessions(sshd)
    if sshd.proc:
        sshd.proc.kill()
        sshd.proc.wait()
        sshd.proc = None
    kill_pids(list(reversed(pids)))
    shutil.rmtree(workdir, ignore_errors=True)
    time.sleep(down_s)
    sshd.start()


def trial_ssh_session_kill(base: Path, sshd: SSHD, seed: int, n_items: int = 16) -> Trial:
    """Kill the sshd session processes (connection cut from the device side) mid-stream."""
    rng = random.Random(seed)
    t = Trial("ssh_session_kill", seed)
    t0 = time.monotonic()
    home = Home(base)
    work = base / "remote work"
    home.write_devices({"dev": sshd.device_table(workdir=str(work))})
    trust(home, "dev", sshd)
    models = make_models(base / "models", n_items, offset=seed % 13)
    proc = start_hwlat(home, "profile", "dev", "--models", str(base / "models"), *FAST)
    if wait_rows(home.profiles, "dev", rng.randint(1, n_items // 2), proc):
        time.sleep(rng.uniform(0.0, 0.1))
        if kill_sessions(sshd):
            t.injected += 1
    _faulted_run(t, proc)
    if t.errors:
        t.runs += complete(home, "dev", base / "models")
    t.audit = audit_store(home.profiles, "dev", models)
    t.seconds = time.monotonic() - t0
    return t


def trial_reboot(base: Path, sshd: SSHD, seed: int, n_items: int = 16, new_workdir: bool = False) -> Trial:
    """Reboot the device mid-campaign (sshd restarted, its workdir wiped); with ``new_workdir``
    the device also comes back with a different workdir in devices.toml."""
    rng = random.Random(seed)
    t = Trial("device_reboot", seed)
    t0 = time.monotonic()
    home = Home(base)
    work = base / "dev work 1"
    table = sshd.device_table(workdir=str(work))
    home.write_devices({"dev": table})
    trust(home, "dev", sshd)
    models = make_models(base / "models", n_items, offset=seed % 13)
    proc = start_hwlat(home, "profile", "dev", "--models", str(base / "models"), *FAST)
    if wait_rows(home.profiles, "dev", rng.randint(1, n_items // 2), proc):
        reboot(sshd, work, down_s=rng.uniform(0.5, 2.0))
        t.injected += 1
    _faulted_run(t, proc)
    if new_workdir:
        shutil.rmtree(work, ignore_errors=True)
        work = base / "dev work 2"
        home.write_devices({"dev": {**table, "workdir": str(work)}})
    if t.errors or new_workdir:
        t.runs += complete(home, "dev", base / "models")
    t.audit = audit_store(home.profiles, "dev", models)
    if work.is_dir() and list(work.iterdir()):
        t.notes.append("run dir left on the device after a clean run")
        t.audit.tmp_files.append("device workdir not cleaned")
    t.seconds = time.monotonic() - t0
    return t


# ---------------------------------------------------------------- network namespace


def netns_unavailable() -> str | None:
    """None when network namespaces and veth pairs can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip"):
        return "iproute2 (ip) is not installed"
    name = f"hwlatprobe{os.getpid()}"
    p = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if p.returncode != 0:
        return f"ip netns add not permitted here: {p.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", "netns", "exec", ns, "ip", *args] if ns else ["ip", *args]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise FaultUnavailable(f"{' '.join(cmd)} failed: {p.stderr.strip()}")


class NetNS:
    """A network namespace joined to this host by a veth pair on a private link-local /30.

    Only the two addresses of that /30 (169.254.x.y, which exists nowhere but on this veth
    pair) carry traffic; ``cut()`` takes the host end of the link down, so packets are dropped
    silently (no RST), like a pulled cable or a dead Wi-Fi link.
    """

    def __init__(self) -> None:
        why = netns_unavailable()
        if why:
            raise FaultUnavailable(why)
        tag = f"{os.getpid() % 10000}{random.randrange(100):02d}"
        self.name = f"hwlatns{tag}"
        self.host_if, self.ns_if = f"hwh{tag}", f"hwn{tag}"
        rnd = random.Random(os.getpid() ^ time.time_ns())
        a, b = rnd.randrange(1, 254), rnd.randrange(0, 64) * 4
        self.host_ip, self.ns_ip = f"169.254.{a}.{b + 1}", f"169.254.{a}.{b + 2}"
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            _ip("link", "set", self.ns_if, "netns", self.name)
            _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            _ip("addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if, ns=self.name)
            _ip("link", "set", self.ns_if, "up", ns=self.name)
            _ip("link", "set", "lo", "up", ns=self.name)
        except FaultUnavailable:
            self.destroy()
            raise

    def cut(self) -> None:
        _ip("link", "set", self.host_if, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_if, "up")

    def destroy(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


class NetnsSSHD(SSHD):
    """A test sshd that runs inside a :class:`NetNS` and listens on its link-local address."""

    def __init__(self, root: Path, ns: NetNS) -> None:
        self.ns = ns
        super().__init__(root)

    def write_config(self) -> None:
        super().write_config()
        text = self.config.read_text().replace("ListenAddress 127.0.0.1", f"ListenAddress {self.ns.ns_ip}")
        self.config.write_text(text + "ClientAliveInterval 2\nClientAliveCountMax 3\n")

    def start(self) -> NetnsSSHD:
        import socket

        os.makedirs("/run/sshd", exist_ok=True)
        self.write_config()
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns.name, SSHD_BIN, "-D", "-e", "-f", str(self.config)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.root / "sshd.log", "ab"))  # noqa: SIM115
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()[-500:]}")
            try:
                with socket.create_connection((self.ns.ns_ip, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd in the namespace did not start listening")

    def device_table(self, **over: object) -> dict:
        return super().device_table(**{"host": self.ns.ns_ip, **over})


def trial_link_cut(base: Path, sshd: NetnsSSHD, seed: int, n_items: int = 16, hold_s: float = 1.5,
                   idle_timeout: float = 6.0) -> Trial:
    """Drop all traffic to the device for ``hold_s`` seconds mid-stream. A blip shorter than the
    device's idle_timeout must not cost a single row; a longer cut ends the run with a one-line
    error, and the re-run after the link is back completes the campaign."""
    rng = random.Random(seed)
    t = Trial("link_blip" if hold_s < idle_timeout else "link_cut", seed)
    t0 = time.monotonic()
    home = Home(base)
    work = base / "remote work"
    home.write_devices({"dev": sshd.device_table(workdir=str(work), idle_timeout=idle_timeout,
                                                 connect_timeout=3.0)})
    trust(home, "dev", sshd)
    models = make_models(base / "models", n_items, offset=seed % 13)
    proc = start_hwlat(home, "profile", "dev", "--models", str(base / "models"), *FAST)
    if wait_rows(home.profiles, "dev", rng.randint(1, n_items // 2), proc):
        sshd.ns.cut()
        t.injected += 1
        time.sleep(hold_s)
        sshd.ns.restore()
    _faulted_run(t, proc, timeout=240)
    if t.errors:
        t.runs += complete(home, "dev", base / "models")
    t.audit = audit_store(home.profiles, "dev", models)
    t.seconds = time.monotonic() - t0
    return t


# ---------------------------------------------------------------- fleet


def trial_fleet(base: Path, servers: list[SSHD], seed: int, n_items: int = 5) -> tuple[Trial, dict[str, Any]]:
    """``hwlat profile --all`` over one device per sshd in ``servers``, the last one down. Returns
    the trial (audit over the working devices) and the fleet run's JSON per device."""
    t = Trial("fleet_one_down", seed)
    t0 = time.monotonic()
    home = Home(base)
    names = ["rpi 4", "jetson's", "nuc;x", "board $(x)", "phone `y`", "npu"][: len(servers) - 1] + ["dead board"]
    home.write_devices({n: s.device_table(workdir=str(base / f"work{i}"), connect_timeout=2.0)
                        for i, (n, s) in enumerate(zip(names, servers))})
    for n, s in zip(names, servers):
        trust(home, n, s)
    servers[-1].stop()  # the broken device: pinned and configured, but its sshd is down
    t.injected = 1
    models = make_models(base / "models", n_items, offset=seed % 13)
    r = hwlat(home, "profile", "--all", "--models", str(base / "models"), *FAST, "--json")
    t.runs = 1
    try:
        res = {d["device"]: d for d in json.loads(r.stdout[r.stdout.index("["):])}
    except ValueError:
        res = {}
        t.notes.append(f"no JSON from the fleet run (exit {r.returncode}): {r.stderr.strip()[-300:]}")
    t.errors = [f"{n}: {d['error']}" for n, d in res.items() if d.get("error")]
    audits = [audit_store(home.profiles, n, models) for n in names[:-1]]
    t.audit = Audit(expected=sum(a.expected for a in audits), present=sum(a.present for a in audits),
                    missing=sum(a.missing for a in audits), duplicates=sum(a.duplicates for a in audits),
                    unexpected=sum(a.unexpected for a in audits),
                    corrupt_files=[f for a in audits for f in a.corrupt_files],
                    tmp_files=[f for a in audits for f in a.tmp_files], parts=sum(a.parts for a in audits))
    for i, n in enumerate(names[:-1]):
        if res.get(n, {}).get("error") or (base / f"work{i}").is_dir() and list((base / f"work{i}").iterdir()):
            t.notes.append(f"{n}: error or run dir left: {res.get(n)}")
            t.audit.tmp_files.append(f"{n}: not clean")
    if r.returncode != 1 or "dead board" not in res or "cannot connect" not in str(res["dead board"].get("error")):
        t.notes.append(f"the broken device was not reported as such (exit {r.returncode})")
        t.audit.missing += 1
    t.seconds = time.monotonic() - t0
    return t, res
