"""hwlat agent runtime plug-in: TensorFlow Lite Micro on a microcontroller over a serial port.

Speaks the hwlat MCU serial protocol (docs/mcu.md, codec in ``hwlat_serial_proto.py``) to a
board running the reference firmware (firmware/tflm_reference/) or to the pty emulator
(``tflm_pty_device.py``). The board times each invoke itself (DWT cycle counter), so this
plug-in runs its own loop (``measure``) and returns the device-side samples.

Options: port (required, e.g. /dev/ttyACM0), baud (115200), timeout_s (2.0), retries (3).
Needs pyserial.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import importlib.util
import math
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hwlat_serial_proto as P  # noqa: E402

NAME = "tflm"
DEFAULT_BAUD = 115200
_LINKS: dict[tuple[str, int], Any] = {}


def _opts(options: dict[str, Any]) -> tuple[str, int, float, int]:
    port = options.get("port")
    if not isinstance(port, str) or not port:
        raise P.LinkError("tflm option port is required (e.g. {\"port\": \"/dev/ttyACM0\"})")
    baud = options.get("baud", DEFAULT_BAUD)
    if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
        raise P.LinkError(f"tflm option baud={baud!r} must be a positive integer")
    timeout = options.get("timeout_s", 2.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise P.LinkError(f"tflm option timeout_s={timeout!r} must be a positive number")
    retries = options.get("retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise P.LinkError(f"tflm option retries={retries!r} must be an integer >= 0")
    return port, baud, float(timeout), retries


def _link(options: dict[str, Any]) -> P.Link:
    """The open link to the board (one per port for the life of the agent; reopening a USB
    serial port can reset some boards)."""
    port, baud, timeout, retries = _opts(options)
    key = (port, baud)
    link = _LINKS.get(key)
    if link is None:
        ser = P.open_port(port, baud, timeout)
        link = P.Link(ser, name=port, baud=baud, retries=retries, timeout=timeout)
        try:
            link.hello()
        except Exception:
            ser.close()
            raise
        _LINKS[key] = link
    return link


@atexit.register
def _close_all() -> None:
    for link in _LINKS.values():
        with contextlib.suppress(Exception):
            link.ser.close()
    _LINKS.clear()


def version(options: dict[str, Any]) -> str:
    try:
        return str(_link(options).info["tflm_version"])
    except Exception:
        return "unknown"


def missing(options: dict[str, Any]) -> list[str]:
    """One line per missing thing: pyserial, the port option, a reachable board."""
    if importlib.util.find_spec("serial") is None:
        return ["python package pyserial is not installed: pip install pyserial"]
    try:
        _link(options)
    except (P.LinkError, P.DeviceError) as e:
        return [str(e)]
    return []


def fingerprint_extra(options: dict[str, Any]) -> dict[str, Any]:
    info = dict(_link(options).info or {})
    return {"provider": "tflm", "threads": 1, "board": info.get("board"), "clock_hz": info.get("clock_hz"),
            "arena_size": info.get("arena_size"), "ram_total": info.get("ram_total"),
            "flash_total": info.get("flash_total"), "tflm_version": info.get("tflm_version"),
            "baud": options.get("baud", DEFAULT_BAUD)}


def _ci_ok(xs: list[float], z: float, ci_rel: float) -> bool:
    """Distribution-free CI of the median of sorted xs within +-ci_rel (agent protocol step 3)."""
    n = len(xs)
    if n < 2:
        return False
    med = xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2.0
    half = z * math.sqrt(n) / 2.0
    j = max(1, int(math.floor(n / 2.0 - half)))
    k = min(n, int(math.ceil(1 + n / 2.0 + half)))
    return xs[j - 1] >= med * (1 - ci_rel) and xs[k - 1] <= med * (1 + ci_rel)


class Runner:
    """One model uploaded to the board; ``measure`` runs the agent protocol on device samples."""

    def __init__(self, path: str, options: dict[str, Any], seed: int) -> None:
        self.link = _link(options)
        self.seed = int(seed) & 0xFFFFFFFF
        with builtins.open(path, "rb") as f:  # the builtin: this module's own open() is the plug-in entry
            model = f.read()
        t0 = time.perf_counter()
        try:
            self.loaded = self.link.upload(model)
        except P.DeviceError as e:
            raise RuntimeError(_device_error_line(e, self.link)) from None
        self.upload_s = time.perf_counter() - t0
        self.clock = int(self.link.info["clock_hz"])
        self.last: dict[str, Any] = {}

    def _ms(self, cycles: int, us: int) -> float:
        # Cycle counts are the board's precise clock; microseconds are its coarser fallback.
        if self.clock > 0 and cycles > 0:
            return cycles * 1000.0 / self.clock
        return us / 1000.0

    def _run(self, n: int, warmup: int, est_ms: float) -> list[tuple[int, int]]:
        timeout = self.link.timeout + 3.0 * (n + warmup) * est_ms / 1000.0
        return self.link.run(n, warmup, self.seed, timeout=timeout)

    def run_once(self) -> float | None:
        (c, u), = self._run(1, 0, 60000.0)
        return self._ms(c, u)

    def measure(self, protocol: dict[str, Any]) -> dict[str, Any]:
        m = protocol
        z = statistics.NormalDist().inv_cdf((1.0 + float(m.get("confidence", 0.95))) / 2.0)
        max_batch = P.max_run_batch(self.link.info["max_payload"])
        t_w = time.perf_counter()
        wmin = int(m.get("warmup_min_runs", 3))
        # The probe's single sample is a warm-up run too; it sizes everything after it.
        (c, u), = self._run(1, max(0, wmin - 1), 60000.0)
        est = max(self._ms(c, u), 1e-3)
        warm = max(wmin, 1)
        more = min(int(m.get("warmup_max_runs", 100)) - warm, int(float(m.get("warmup_max_s", 0.5)) * 1000 / est))
        if more > 0:
            self._run(0, more, est)
            warm += more
        warmup_s = time.perf_counter() - t_w

        samples: list[float] = []
        cycles: list[int] = []
        us: list[int] = []
        min_runs, max_runs = int(m.get("min_runs", 10)), int(m.get("max_runs", 10000))
        t0 = time.perf_counter()
        batches = 0
        while True:
            # ~0.25 s of device time per RUN keeps the link busy without long silent waits.
            want = max(1, int(250.0 / est))
            if not samples:
                want = max(want, min_runs)
            n = max(1, min(want, max_batch, max_runs - len(samples)))
            out = self._run(n, 0, est)
            batches += 1
            for c, u in out:
                cycles.append(int(c))
                us.append(int(u))
                samples.append(self._ms(c, u))
            xs = sorted(samples)
            est = max(xs[len(xs) // 2], 1e-3)
            if len(xs) >= min_runs and _ci_ok(xs, z, float(m.get("ci_rel", 0.02))):
                break
            if len(xs) >= max_runs or time.perf_counter() - t0 >= float(m.get("max_time_s", 2.0)):
                break
        cs = sorted(cycles)
        self.last = {"cycles_median": cs[len(cs) // 2], "cycles_min": cs[0], "cycles_max": cs[-1],
                     "us_median": sorted(us)[len(us) // 2], "run_batches": batches}
        return {"samples_ms": samples, "warmup_runs": warm, "warmup_s": warmup_s,
                "measure_s": time.perf_counter() - t0, "extra": {}}

    def extra(self) -> dict[str, Any]:
        st = self.link.stats()
        info = self.link.info
        out = {"board": info["board"], "tflm_version": info["tflm_version"], "clock_hz": info["clock_hz"],
               "arena_size": st["arena_size"], "arena_used_bytes": st["arena_used"],
               "ram_used": st["ram_used"], "ram_total": st["ram_total"], "flash_used": st["flash_used"],
               "flash_total": st["flash_total"], "model_bytes": st["model_bytes"],
               "n_inputs": self.loaded["n_inputs"], "n_outputs": self.loaded["n_outputs"],
               "upload_s": round(self.upload_s, 6), "crc_errors": self.link.crc_errors,
               "retransmits": self.link.retransmits}
        out.update(self.last)
        return out

    def close(self) -> None:
        try:
            self.link.reset()  # free the arena for the next model
        except (P.LinkError, P.DeviceError) as e:
            print(f"hwlat_rt_tflm: RESET failed: {e}", file=sys.stderr)


def _device_error_line(e: P.DeviceError, link: P.Link) -> str:
    info = link.info or {}
    if e.code == P.E_ARENA_TOO_SMALL:
        return (f"model too large for the tensor arena of {info.get('board')} ({info.get('arena_size')} bytes): "
                f"{e.text}; use a smaller kernel or rebuild the firmware with a bigger HWLAT_ARENA_BYTES")
    if e.code == P.E_MODEL_TOO_LARGE:
        return f"model too large for {info.get('board')}: {e.text}"
    if e.code == P.E_UNSUPPORTED_OP:
        return f"{info.get('board')}: {e.text}; add the op to the firmware's op resolver or skip this kernel"
    return f"{info.get('board')} refused the model: {e}"


def open(path: str, options: dict[str, Any], seed: int) -> Runner:  # noqa: A001 - plug-in interface name
    return Runner(path, options, seed)
