#!/usr/bin/env python3
"""A TFLM "board" on a pseudo-terminal: speaks the hwlat MCU serial protocol (docs/mcu.md) and
runs uploaded models with the real TensorFlow Lite Micro runtime (pip ``tflite-micro``).

    python tflm_pty_device.py [--clock-hz HZ] [--arena-bytes N] [--link PATH]

Prints ``PTY <slave path>`` on stdout once ready (and writes the path to ``--link`` if given);
the host opens that path as a serial port. Timings are real: each invoke is timed with
``perf_counter_ns``; ``cycles`` = microseconds x the nominal ``--clock-hz`` (a host CPU has no
single cycle counter the way a Cortex-M DWT has). Arena usage is what TFLM's recording
allocator reports. ``--corrupt-responses K`` damages the first K response frames (fault
injection for the host's CRC-retry path). Standard library + tflite-micro + numpy.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import select
import signal
import struct
import sys
import tempfile
import time
import tty
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hwlat_serial_proto as P  # noqa: E402

_MISSING_OP = re.compile(r"Didn't find op for builtin opcode '([A-Z0-9_]+)'")
_ARENA_SHORT = re.compile(r"Requested: (\d+), available (\d+), missing: (\d+)")
_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_PROBE_ARENA = 256 << 20  # scratch arena for sizing a model that did not fit


class Captured:
    """Collects what native code writes to fds 1 and 2 (TFLM reports through printf)."""

    def __enter__(self) -> Captured:
        sys.stdout.flush()
        sys.stderr.flush()
        self.tmp = tempfile.TemporaryFile()
        self.saved = [os.dup(1), os.dup(2)]
        os.dup2(self.tmp.fileno(), 1)
        os.dup2(self.tmp.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, *exc: Any) -> None:
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in self.saved:
            os.close(fd)
        self.tmp.seek(0)
        self.text = self.tmp.read().decode("utf-8", "replace")
        self.tmp.close()


def nominal_clock_hz() -> int:
    """The host CPU's max clock as the nominal cycle rate (1 GHz when unknown)."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
            return int(f.read().strip()) * 1000
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return int(float(line.split(":")[1]) * 1e6)
    except (OSError, ValueError, IndexError):
        pass
    return 1_000_000_000


class Device:
    """State machine of one board: model buffer, interpreter, counters."""

    def __init__(self, args: argparse.Namespace) -> None:
        import tflite_micro

        self.args = args
        self.info = {
            "clock_hz": args.clock_hz, "arena_size": args.arena_bytes, "ram_total": args.ram_bytes,
            "flash_total": args.flash_bytes, "max_model_bytes": args.flash_bytes,
            "max_payload": args.max_payload, "board": args.board,
            "tflm_version": "tflite-micro " + str(getattr(tflite_micro, "__version__", "?")),
        }
        self.expect_size = 0
        self.expect_crc = 0
        self.buf = bytearray()
        self.model: bytes | None = None
        self.interp: Any = None
        self.arena_used = 0
        self.n_in = self.n_out = 0
        self.seed: int | None = None

    def handle(self, ftype: int, p: bytes) -> tuple[int, bytes]:
        try:
            return self._handle(ftype, p)
        except struct.error as e:
            return P.ERROR, P.pack_error(P.E_BAD_FRAME, f"malformed {P.CMD_NAMES.get(ftype, hex(ftype))} payload: {e}")

    def _handle(self, ftype: int, p: bytes) -> tuple[int, bytes]:
        if ftype == P.HELLO:
            return P.HELLO_R, P.pack_hello(self.info)
        if ftype == P.UPLOAD_BEGIN:
            size, crc = struct.unpack_from("<II", p)
            if size > self.info["max_model_bytes"]:
                return P.ERROR, P.pack_error(P.E_MODEL_TOO_LARGE, f"model is {size} bytes, flash holds at most "
                                             f"{self.info['max_model_bytes']}")
            self._unload()
            self.expect_size, self.expect_crc, self.buf = size, crc, bytearray()
            return P.OK, b""
        if ftype == P.UPLOAD_CHUNK:
            (off,) = struct.unpack_from("<I", p)
            data = p[4:]
            if off == len(self.buf) and off + len(data) <= self.expect_size:
                self.buf += data
            elif off + len(data) == len(self.buf) and self.buf[off:] == data:
                pass  # retransmission of the chunk we already have
            else:
                return P.ERROR, P.pack_error(P.E_UPLOAD_SEQUENCE, f"chunk at offset {off} of {len(data)} bytes, "
                                             f"expected offset {len(self.buf)}")
            return P.OK, struct.pack("<I", len(self.buf))
        if ftype == P.UPLOAD_END:
            if self.interp is not None and self.model is not None and P.crc32(self.model) == self.expect_crc:
                return P.LOADED_R, P.pack_loaded(len(self.model), self.arena_used, self.n_in, self.n_out)
            if len(self.buf) != self.expect_size:
                return P.ERROR, P.pack_error(P.E_UPLOAD_SEQUENCE, f"received {len(self.buf)} of {self.expect_size} model bytes")
            if P.crc32(bytes(self.buf)) != self.expect_crc:
                return P.ERROR, P.pack_error(P.E_MODEL_CRC, "model CRC mismatch after upload")
            return self._load(bytes(self.buf))
        if ftype == P.RUN:
            n, warmup, seed = P.RUN_REQ_FMT.unpack_from(p)
            if self.interp is None:
                return P.ERROR, P.pack_error(P.E_NO_MODEL, "no model loaded: upload one first")
            if n > P.max_run_batch(self.info["max_payload"]):
                return P.ERROR, P.pack_error(P.E_BAD_FRAME, f"RUN {n} exceeds {P.max_run_batch(self.info['max_payload'])} samples per frame")
            return self._run(n, warmup, seed)
        if ftype == P.STATS:
            mb = len(self.model) if self.model else 0
            return P.STATS_R, P.pack_stats({
                "arena_size": self.info["arena_size"], "arena_used": self.arena_used,
                "ram_used": self.arena_used, "ram_total": self.info["ram_total"],
                "flash_used": mb, "flash_total": self.info["flash_total"], "model_bytes": mb})
        if ftype == P.RESET:
            self._unload()
            self.buf = bytearray()
            return P.OK, b""
        return P.ERROR, P.pack_error(P.E_UNKNOWN_CMD, f"unknown command 0x{ftype:02x}")

    def _unload(self) -> None:
        self.interp = None
        self.model = None
        self.arena_used = 0
        self.seed = None

    def _load(self, model: bytes) -> tuple[int, bytes]:
        from tflite_micro.python.tflite_micro import runtime

        interp = None
        err = None
        with Captured() as cap:
            try:
                interp = runtime.Interpreter.from_bytes(model, arena_size=self.info["arena_size"])
                interp.print_allocations()
            except Exception as e:  # TFLM raises RuntimeError/ValueError with little detail
                err = e
        log = cap.text
        if interp is None:
            m = _MISSING_OP.search(log)
            if m:
                return P.ERROR, P.pack_error(P.E_UNSUPPORTED_OP, f"operator {m.group(1)} is not in this TFLM build")
            m = _ARENA_SHORT.search(log)
            if m:
                return P.ERROR, P.pack_error(P.E_ARENA_TOO_SMALL, self._arena_short_text(model, int(m.group(3))))
            tail = " ".join(log.split())[-300:]
            return P.ERROR, P.pack_error(P.E_BAD_MODEL, f"TFLM cannot load the model: {err} {tail}")
        m = _ARENA_TOTAL.search(log)
        self.arena_used = int(m.group(1)) if m else 0
        self.interp, self.model, self.seed = interp, model, None
        with Captured():  # probing past the last index makes TFLM print a complaint
            self.n_in = self._count(interp.get_input_details)
            self.n_out = self._count(interp.get_output_details)
        return P.LOADED_R, P.pack_loaded(len(model), self.arena_used, self.n_in, self.n_out)

    def _arena_short_text(self, model: bytes, missing: int) -> str:
        """What the model needs: TFLM only reports the first allocation that failed, so the
        emulator (unlike a board) loads it again in a big scratch arena to learn the total."""
        from tflite_micro.python.tflite_micro import runtime

        have = self.info["arena_size"]
        need = None
        with Captured() as cap:
            try:
                probe = runtime.Interpreter.from_bytes(model, arena_size=max(_PROBE_ARENA, 4 * have))
                probe.print_allocations()
                del probe
            except Exception:  # even the scratch arena is too small: report the lower bound
                pass
        m = _ARENA_TOTAL.search(cap.text)
        if m:
            need = int(m.group(1))
        if need is None or need <= have:
            return f"model needs at least {have + missing} bytes of tensor arena ({missing} more)"
        return f"model needs {need} bytes of tensor arena ({need - have} more)"

    @staticmethod
    def _count(details: Any) -> int:
        n = 0
        while True:
            try:
                details(n)
            except Exception:
                return n
            n += 1
            if n > 64:
                return n

    def _fill_inputs(self, seed: int) -> None:
        import numpy as np

        rng = np.random.default_rng(seed)
        for i in range(self.n_in):
            d = self.interp.get_input_details(i)
            dt = np.dtype(d["dtype"])
            shape = [max(1, int(s)) for s in d["shape"]]
            if dt.kind == "f":
                x = rng.uniform(-1.0, 1.0, size=shape).astype(dt)
            else:
                info = np.iinfo(dt)
                x = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dt)
            self.interp.set_input(x, i)
        self.seed = seed

    def _run(self, n: int, warmup: int, seed: int) -> tuple[int, bytes]:
        if self.seed != seed:
            self._fill_inputs(seed)
        clock = self.info["clock_hz"]
        out = []
        with Captured() as cap:
            try:
                for _ in range(warmup):
                    self.interp.invoke()
                for _ in range(n):
                    t0 = time.perf_counter_ns()
                    self.interp.invoke()
                    ns = time.perf_counter_ns() - t0
                    out.append((ns * clock // 1_000_000_000, (ns + 500) // 1000))
            except Exception as e:
                err = e
            else:
                err = None
        if err is not None:
            return P.ERROR, P.pack_error(P.E_INVOKE_FAILED, f"invoke failed: {err} {' '.join(cap.text.split())[-200:]}")
        return P.RUN_R, P.pack_run_result(out)


def serve(master: int, dev: Device, corrupt: int) -> None:
    parser = P.FrameParser(max_payload=dev.info["max_payload"] + 16)
    last_rx = time.monotonic()
    while True:
        r, _, _ = select.select([master], [], [], 0.2)
        if not r:
            # Inter-frame timeout: a frame whose length field was damaged would otherwise
            # swallow the following requests while we wait for bytes that never come.
            if parser.buf and time.monotonic() - last_rx > 0.5:
                parser.buf.clear()
            continue
        last_rx = time.monotonic()
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: no slave open at the moment
            time.sleep(0.05)
            continue
        for fr in parser.feed(data):
            if isinstance(fr, P.FrameError):
                # The host matches answers by seq; the damaged frame's seq is the best guess.
                reply = P.encode_frame(P.ERROR, parser.last_bad_seq, P.pack_error(P.E_BAD_CRC, str(fr)))
            else:
                ftype, seq, payload = fr
                rtype, rp = dev.handle(ftype, payload)
                reply = P.encode_frame(rtype, seq, rp)
                if corrupt > 0:
                    corrupt -= 1
                    reply = reply[:-1] + bytes([reply[-1] ^ 0xFF])
            os.write(master, reply)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clock-hz", type=int, default=nominal_clock_hz())
    ap.add_argument("--arena-bytes", type=int, default=256 * 1024)
    ap.add_argument("--ram-bytes", type=int, default=512 * 1024)
    ap.add_argument("--flash-bytes", type=int, default=2 * 1024 * 1024)
    ap.add_argument("--max-payload", type=int, default=4096)
    ap.add_argument("--board", default="tflm-pty-emulator")
    ap.add_argument("--corrupt-responses", type=int, default=0)
    ap.add_argument("--link", help="also write the slave path to this file")
    args = ap.parse_args(argv)
    dev = Device(args)
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line discipline: a byte pipe like a UART
    path = os.ttyname(slave)
    # Keep our slave fd open so the master never sees EIO between host sessions.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.link:
        tmp = args.link + ".tmp"
        with open(tmp, "w") as f:
            f.write(path)
        os.replace(tmp, args.link)
    print("PTY " + path, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        serve(master, dev, args.corrupt_responses)
    return 0


if __name__ == "__main__":
    sys.exit(main())
