"""hwlat MCU serial protocol (version 1): frame codec, message payloads and the host-side link.

One copy, used by the ``tflm`` agent plug-in (``hwlat_rt_tflm.py``), by the host package
(``hwlat.mcu``, which loads this file by path) and by the pty device emulator. Standard
library only; the host link takes any object with pyserial's ``read/write/reset_input_buffer``
and ``timeout``. The wire format is specified in docs/mcu.md. Python >= 3.8.

Frame:  A5 5A | type u8 | seq u8 | len u32le | payload[len] | crc32le(type..payload)
"""

from __future__ import annotations

import struct
import time
import zlib
from typing import Any

PROTO_VERSION = 1
MAGIC = b"\xa5\x5a"
HEADER = struct.Struct("<BBI")  # type, seq, payload length
MAX_PAYLOAD = 1 << 20  # hard sanity cap; devices advertise their own (smaller) limit in HELLO

# Requests (host -> device)
HELLO, UPLOAD_BEGIN, UPLOAD_CHUNK, UPLOAD_END, RUN, STATS, RESET = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
# Responses (device -> host): request | 0x80, plus OK and ERROR
OK, ERROR = 0x80, 0xFF
HELLO_R, LOADED_R, RUN_R, STATS_R = 0x81, 0x84, 0x85, 0x86

CMD_NAMES = {HELLO: "HELLO", UPLOAD_BEGIN: "UPLOAD_BEGIN", UPLOAD_CHUNK: "UPLOAD_CHUNK",
             UPLOAD_END: "UPLOAD_END", RUN: "RUN", STATS: "STATS", RESET: "RESET"}

# Error codes carried by ERROR frames (u16 code + UTF-8 text).
E_BAD_CRC, E_BAD_FRAME, E_UNKNOWN_CMD = 1, 2, 3
E_MODEL_TOO_LARGE, E_UPLOAD_SEQUENCE, E_MODEL_CRC = 4, 5, 6
E_BAD_MODEL, E_UNSUPPORTED_OP, E_ARENA_TOO_SMALL = 7, 8, 9
E_NO_MODEL, E_INVOKE_FAILED, E_INTERNAL = 10, 11, 12
ERROR_NAMES = {
    E_BAD_CRC: "BAD_CRC", E_BAD_FRAME: "BAD_FRAME", E_UNKNOWN_CMD: "UNKNOWN_CMD",
    E_MODEL_TOO_LARGE: "MODEL_TOO_LARGE", E_UPLOAD_SEQUENCE: "UPLOAD_SEQUENCE", E_MODEL_CRC: "MODEL_CRC",
    E_BAD_MODEL: "BAD_MODEL", E_UNSUPPORTED_OP: "UNSUPPORTED_OP", E_ARENA_TOO_SMALL: "ARENA_TOO_SMALL",
    E_NO_MODEL: "NO_MODEL", E_INVOKE_FAILED: "INVOKE_FAILED", E_INTERNAL: "INTERNAL",
}

HELLO_FMT = struct.Struct("<HIIIIII")  # proto, clock_hz, arena, ram_total, flash_total, max_model, max_payload
LOADED_FMT = struct.Struct("<IIHH")  # model_bytes, arena_used, n_inputs, n_outputs
RUN_REQ_FMT = struct.Struct("<III")  # n, warmup, seed
RUN_SAMPLE_FMT = struct.Struct("<QI")  # cycles, us
STATS_FMT = struct.Struct("<IIIIIII")  # arena_size, arena_used, ram_used, ram_total, flash_used, flash_total, model


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def encode_frame(ftype: int, seq: int, payload: bytes = b"") -> bytes:
    """One frame on the wire."""
    body = HEADER.pack(ftype & 0xFF, seq & 0xFF, len(payload)) + payload
    return MAGIC + body + struct.pack("<I", crc32(body))


class FrameError(Exception):
    """A corrupted frame (CRC mismatch, absurd length, truncated)."""


class LinkTimeout(Exception):
    """Nothing (or only part of a frame) arrived in time."""


class DeviceError(Exception):
    """The device answered ERROR: ``code`` (see ERROR_NAMES) and its text."""

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text
        super().__init__(f"{ERROR_NAMES.get(code, f'E{code}')}: {text}")


class LinkError(Exception):
    """The link is unusable: one line naming the port and what to do."""


class FrameParser:
    """Incremental decoder: feed bytes, get complete frames; resynchronises on MAGIC."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.buf = bytearray()
        self.max_payload = max_payload
        self.last_bad_seq = 0  # seq byte of the last damaged frame (to address the BAD_CRC reply)

    def feed(self, data: bytes) -> list[Any]:
        """Return a list of (type, seq, payload) tuples or FrameError instances, in order."""
        self.buf += data
        out: list[Any] = []
        while True:
            i = self.buf.find(MAGIC)
            if i < 0:
                # keep a trailing A5 that may start the next magic
                del self.buf[: max(0, len(self.buf) - 1)]
                return out
            if i:
                del self.buf[:i]
            if len(self.buf) < 2 + HEADER.size:
                return out
            ftype, seq, n = HEADER.unpack_from(self.buf, 2)
            if n > self.max_payload:
                out.append(FrameError(f"frame length {n} exceeds {self.max_payload}"))
                del self.buf[:2]
                continue
            total = 2 + HEADER.size + n + 4
            if len(self.buf) < total:
                return out
            body = bytes(self.buf[2: total - 4])
            (crc,) = struct.unpack_from("<I", self.buf, total - 4)
            if crc != crc32(body):
                self.last_bad_seq = seq
                out.append(FrameError(f"CRC mismatch on frame type 0x{ftype:02x}"))
                del self.buf[:2]  # resync: the real next frame may start inside this one
                continue
            del self.buf[:total]
            out.append((ftype, seq, body[HEADER.size:]))


# ---------------------------------------------------------------- payloads


def pack_str(s: str) -> bytes:
    b = s.encode("utf-8")[:255]
    return bytes([len(b)]) + b


def unpack_str(p: bytes, off: int) -> tuple[str, int]:
    n = p[off]
    return p[off + 1: off + 1 + n].decode("utf-8", "replace"), off + 1 + n


def pack_error(code: int, text: str) -> bytes:
    return struct.pack("<H", code) + text.encode("utf-8")[:1000]


def unpack_error(p: bytes) -> DeviceError:
    if len(p) < 2:
        return DeviceError(E_INTERNAL, "malformed ERROR frame")
    return DeviceError(struct.unpack_from("<H", p)[0], p[2:].decode("utf-8", "replace"))


def pack_hello(info: dict[str, Any]) -> bytes:
    return HELLO_FMT.pack(PROTO_VERSION, info["clock_hz"], info["arena_size"], info["ram_total"],
                          info["flash_total"], info["max_model_bytes"], info["max_payload"]) + \
        pack_str(info["board"]) + pack_str(info["tflm_version"])


def unpack_hello(p: bytes) -> dict[str, Any]:
    vals = HELLO_FMT.unpack_from(p)
    keys = ("proto_version", "clock_hz", "arena_size", "ram_total", "flash_total", "max_model_bytes",
            "max_payload")
    info: dict[str, Any] = {k: vals[i] for i, k in enumerate(keys)}
    board, off = unpack_str(p, HELLO_FMT.size)
    info["tflm_version"], _ = unpack_str(p, off)
    info["board"] = board
    return info


def pack_loaded(model_bytes: int, arena_used: int, n_in: int, n_out: int) -> bytes:
    return LOADED_FMT.pack(model_bytes, arena_used, n_in, n_out)


def unpack_loaded(p: bytes) -> dict[str, int]:
    vals = LOADED_FMT.unpack_from(p)
    return {k: vals[i] for i, k in enumerate(("model_bytes", "arena_used", "n_inputs", "n_outputs"))}


def pack_run_result(samples: list[tuple[int, int]]) -> bytes:
    return struct.pack("<I", len(samples)) + b"".join(RUN_SAMPLE_FMT.pack(c, u) for c, u in samples)


def unpack_run_result(p: bytes) -> list[tuple[int, int]]:
    (n,) = struct.unpack_from("<I", p)
    if len(p) != 4 + n * RUN_SAMPLE_FMT.size:
        raise FrameError(f"RUN result holds {len(p)} bytes for {n} samples")
    return [RUN_SAMPLE_FMT.unpack_from(p, 4 + i * RUN_SAMPLE_FMT.size) for i in range(n)]


def pack_stats(st: dict[str, int]) -> bytes:
    return STATS_FMT.pack(st["arena_size"], st["arena_used"], st["ram_used"], st["ram_total"],
                          st["flash_used"], st["flash_total"], st["model_bytes"])


def unpack_stats(p: bytes) -> dict[str, int]:
    keys = ("arena_size", "arena_used", "ram_used", "ram_total", "flash_used", "flash_total", "model_bytes")
    vals = STATS_FMT.unpack_from(p)
    return {k: vals[i] for i, k in enumerate(keys)}


def max_run_batch(max_payload: int) -> int:
    """How many samples one RUN response can carry under the device's payload limit."""
    return max(1, (max_payload - 4) // RUN_SAMPLE_FMT.size)


# ---------------------------------------------------------------- host side


def open_port(port: str, baud: int, timeout: float = 2.0) -> Any:
    """Open a serial port exclusively with pyserial; LinkError with one line on failure.

    DTR/RTS are left deasserted so that boards wired for auto-reset (ESP32, Arduino) do not
    reboot each time the port is opened.
    """
    import serial  # pyserial

    ser = serial.Serial()
    ser.port = port
    ser.baudrate = int(baud)
    ser.timeout = timeout
    ser.write_timeout = timeout
    ser.exclusive = True
    ser.dtr = False
    ser.rts = False
    try:
        ser.open()
    except serial.SerialException as e:
        msg = str(e)
        low = msg.lower()
        if "lock" in low or "busy" in low or "resource temporarily unavailable" in low or "errno 16" in low:
            raise LinkError(f"serial port {port} is busy: another program holds it (close serial monitors, "
                            "or another hwlat run)") from None
        if "no such file" in low or "errno 2" in low or "could not open port" in low and "not found" in low:
            raise LinkError(f"serial port {port} does not exist: check the cable and the port name "
                            "(ls /dev/ttyACM* /dev/ttyUSB*)") from None
        if "permission" in low or "errno 13" in low:
            raise LinkError(f"no permission to open serial port {port}: add yourself to the dialout group") from None
        raise LinkError(f"cannot open serial port {port}: {' '.join(msg.split())}") from None
    return ser


class Link:
    """Request/response over a serial object with CRC-checked frames, sequence numbers and retries.

    Every command is idempotent on the device (chunks carry their offset), so a request whose
    response was lost or corrupted is simply sent again with the same sequence number.
    """

    def __init__(self, ser: Any, name: str = "device", baud: int | None = None, retries: int = 3,
                 timeout: float = 2.0) -> None:
        self.ser = ser
        self.name = name
        self.baud = baud
        self.retries = retries
        self.timeout = timeout
        self.seq = 0
        self.parser = FrameParser()
        self.crc_errors = 0
        self.retransmits = 0
        self.info: dict[str, Any] | None = None

    # -- framing
    def _read_frame(self, deadline: float) -> Any:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkTimeout()
            self.ser.timeout = min(left, 0.2)
            waiting = getattr(self.ser, "in_waiting", 0) or 1
            data = self.ser.read(max(1, min(waiting, 65536)))
            if not data:
                continue
            frames = self.parser.feed(data)
            if frames:
                # anything after the first frame is stale (an answer to an earlier retry)
                self.parser.buf.clear()
                return frames[0]

    def request(self, ftype: int, payload: bytes = b"", timeout: float | None = None) -> tuple[int, bytes]:
        """Send one request and return (response type, payload); raises DeviceError for ERROR
        responses, LinkError when the link fails after the retries."""
        self.seq = (self.seq + 1) & 0xFF
        frame = encode_frame(ftype, self.seq, payload)
        wait = self.timeout if timeout is None else timeout
        cmd = CMD_NAMES.get(ftype, f"0x{ftype:02x}")
        got_anything = False
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.retransmits += 1
                time.sleep(0.05)  # let the rest of a damaged frame arrive, then drop it
                self.ser.reset_input_buffer()
                self.parser.buf.clear()
            self.ser.write(frame)
            self.ser.flush()
            deadline = time.monotonic() + wait
            while True:
                try:
                    fr = self._read_frame(deadline)
                except LinkTimeout:
                    last = "timeout"
                    break
                got_anything = True
                if isinstance(fr, FrameError):
                    self.crc_errors += 1
                    last = "crc"
                    break
                rtype, rseq, rpayload = fr
                if rseq != self.seq:
                    continue  # a late answer to an earlier attempt
                if rtype == ERROR:
                    err = unpack_error(rpayload)
                    if err.code == E_BAD_CRC:  # the device saw our request damaged: resend
                        self.crc_errors += 1
                        last = "crc"
                        break
                    raise err
                return rtype, rpayload
        if last == "crc":
            raise LinkError(f"serial link to {self.name} keeps corrupting frames ({self.crc_errors} CRC errors on "
                            f"{cmd}): check the baud rate ({self.baud or '?'}) and the cable")
        if not got_anything:
            raise LinkError(f"no response from {self.name} to {cmd} within {wait:.1f}s at {self.baud or '?'} baud: "
                            "is the hwlat TFLM firmware running and the baud rate right?")
        raise LinkError(f"{self.name} stopped answering {cmd} after {self.retries + 1} tries")

    def _expect(self, rtype: int, want: int, cmd: str) -> None:
        if rtype != want:
            raise LinkError(f"{self.name} answered {cmd} with frame type 0x{rtype:02x} (expected 0x{want:02x}): protocol mismatch; "
                            "reflash the hwlat TFLM firmware")

    # -- commands
    def hello(self) -> dict[str, Any]:
        rtype, p = self.request(HELLO, struct.pack("<H", PROTO_VERSION))
        self._expect(rtype, HELLO_R, "HELLO")
        info = unpack_hello(p)
        if info["proto_version"] != PROTO_VERSION:
            raise LinkError(f"{self.name} speaks hwlat serial protocol {info['proto_version']}, this host speaks "
                            f"{PROTO_VERSION}: update the firmware")
        self.info = info
        return info

    def upload(self, model: bytes) -> dict[str, int]:
        """Upload a model in chunks; the device loads it and allocates its tensors."""
        info = self.info or self.hello()
        if len(model) > info["max_model_bytes"]:
            raise DeviceError(E_MODEL_TOO_LARGE, f"model is {len(model)} bytes, {info['board']} takes at most "
                              f"{info['max_model_bytes']} bytes")
        rtype, _ = self.request(UPLOAD_BEGIN, struct.pack("<II", len(model), crc32(model)))
        self._expect(rtype, OK, "UPLOAD_BEGIN")
        chunk = max(16, info["max_payload"] - 4)
        for off in range(0, len(model), chunk):
            rtype, _ = self.request(UPLOAD_CHUNK, struct.pack("<I", off) + model[off: off + chunk])
            self._expect(rtype, OK, "UPLOAD_CHUNK")
        # Loading = AllocateTensors; large models on slow MCUs take a while.
        rtype, p = self.request(UPLOAD_END, b"", timeout=max(self.timeout, 30.0))
        self._expect(rtype, LOADED_R, "UPLOAD_END")
        return unpack_loaded(p)

    def run(self, n: int, warmup: int = 0, seed: int = 0, timeout: float | None = None) -> list[tuple[int, int]]:
        """Run the loaded model ``warmup`` untimed then ``n`` timed times: [(cycles, us), ...]."""
        rtype, p = self.request(RUN, RUN_REQ_FMT.pack(n, warmup, seed), timeout=timeout)
        self._expect(rtype, RUN_R, "RUN")
        out = unpack_run_result(p)
        if len(out) != n:
            raise LinkError(f"{self.name} returned {len(out)} samples for RUN {n}")
        return out

    def stats(self) -> dict[str, int]:
        rtype, p = self.request(STATS)
        self._expect(rtype, STATS_R, "STATS")
        return unpack_stats(p)

    def reset(self) -> None:
        rtype, _ = self.request(RESET)
        self._expect(rtype, OK, "RESET")
