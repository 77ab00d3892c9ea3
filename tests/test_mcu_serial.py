"""MCU path end to end: int8 kernels → .tflite → pty "board" running the real TFLM runtime →
hwlat serial protocol → agent plug-in ``tflm`` (through the agent CLI) and ``hwlat.mcu``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_agent_helpers import AGENT_DIR, FAST_MEASURE, check_stats, make_rundir, run_agent, write_manifest  # noqa: E402

pytest.importorskip("serial", reason="pyserial is not installed")
pytest.importorskip("tflite_micro", reason="tflite-micro is not installed (pip install tflite-micro)")
pytest.importorskip("litert_torch", reason="litert-torch is not installed")

from hwlat.errors import DeviceError  # noqa: E402
from hwlat.mcu import McuHost, proto  # noqa: E402

EMULATOR = AGENT_DIR / "tflm_pty_device.py"


@pytest.fixture(scope="module")
def int8_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real int8 kernels (litert-torch + ai-edge-quantizer), exported once for the module."""
    import hwlat.kernels as K
    from hwlat.export.tflite_export import export_kernels

    kernels = {
        "conv_small": K.get("conv2d").make(h=8, w=8, cin=8, cout=8, k=3, s=1, groups=1, residual=0),
        "conv_big": K.get("conv2d").make(h=16, w=16, cin=32, cout=32, k=3, s=1, groups=1, residual=0),
        "softmax": K.get("softmax").make(rows=8, cols=64),
        "gelu": K.get("activation").make(c=8, hw=16, act="gelu"),
    }
    out = tmp_path_factory.mktemp("int8")
    res = export_kernels(list(kernels.values()), out, quantize="int8", workers=2)
    paths = {}
    for name, r in zip(kernels, res, strict=True):
        assert r.path is not None, r.error
        paths[name] = r.path
    return paths


class Board:
    """A tflm_pty_device.py process; ``port`` is its pseudo-terminal."""

    def __init__(self, tmp: Path, *args: str) -> None:
        link = tmp / f"port-{time.monotonic_ns()}"
        self.proc = subprocess.Popen([sys.executable, str(EMULATOR), "--link", str(link), *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.monotonic()
        while not link.exists():
            if self.proc.poll() is not None or time.monotonic() - t0 > 30:
                raise RuntimeError("emulator did not start: " + self.proc.stderr.read().decode()[-500:])
            time.sleep(0.05)
        self.port = link.read_text()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture()
def board(tmp_path: Path) -> Iterator[Board]:
    b = Board(tmp_path)
    yield b
    b.stop()


def test_agent_cli_measures_kernels_over_serial(tmp_path: Path, int8_models: dict[str, Path], board: Board) -> None:
    run = make_rundir(tmp_path)
    for name, p in int8_models.items():
        (run / "models" / f"{name}.tflite").write_bytes(p.read_bytes())
    items = [(n, f"models/{n}.tflite") for n in ("conv_small", "gelu", "conv_big", "softmax")]
    write_manifest(run, "tflm", items, options={"port": board.port, "baud": 115200})
    rc, ev, err = run_agent(run, "run", "manifest.json")
    assert rc == 0, err
    assert [e["event"] for e in ev] == ["hello", "fingerprint", "result", "error", "result", "result", "done"]
    fp = ev[1]["fingerprint"]
    assert fp["runtime"] == "tflm" and fp["runtime_version"].startswith("tflite-micro")
    assert fp["runtime_extra"]["board"] == "tflm-pty-emulator" and fp["runtime_extra"]["clock_hz"] > 0
    assert "GELU" in ev[3]["reason"]  # this TFLM build has no GELU kernel: a named, one-line error
    res = {e["id"]: e for e in ev if e["event"] == "result"}
    for r in res.values():
        check_stats(r["stats"], FAST_MEASURE)
        x = r["extra"]
        assert 0 < x["arena_used_bytes"] <= x["arena_size"]
        assert x["model_bytes"] == (run / "models" / f"{r['id']}.tflite").stat().st_size
        assert x["cycles_min"] <= x["cycles_median"] <= x["cycles_max"]
        # cycles and microseconds come from the same device timer: they must agree
        assert x["cycles_median"] / x["clock_hz"] * 1e6 == pytest.approx(x["us_median"], rel=0.05, abs=2)
        assert r["stats"]["median_ms"] == pytest.approx(x["cycles_median"] / x["clock_hz"] * 1e3, rel=0.05)
    small, big = res["conv_small"], res["conv_big"]
    # 16x more MACs and a bigger activation footprint → clearly slower and more arena
    assert big["stats"]["median_ms"] > 4 * small["stats"]["median_ms"]
    assert big["extra"]["arena_used_bytes"] > small["extra"]["arena_used_bytes"]


def test_host_api_and_arena_too_small(tmp_path: Path, int8_models: dict[str, Path]) -> None:
    b = Board(tmp_path, "--arena-bytes", "4096")
    try:
        with McuHost(b.port) as host:
            assert host.info["arena_size"] == 4096 and host.info["tflm_version"].startswith("tflite-micro")
            loaded = host.upload(int8_models["conv_small"])
            assert 0 < loaded["arena_used"] <= 4096
            runs = host.run(5, warmup=2)
            assert len(runs) == 5 and all(c > 0 and u >= 0 for c, u in runs)
            assert host.stats()["arena_used"] == loaded["arena_used"]
            with pytest.raises(DeviceError, match="too large for the tensor arena"):
                host.upload(int8_models["conv_big"])
            host.reset()
            with pytest.raises(DeviceError, match="NO_MODEL"):
                host.run(1)
    finally:
        b.stop()


def test_busy_port(board: Board, tmp_path: Path) -> None:
    import serial

    holder = serial.Serial(board.port, 115200, exclusive=True)
    try:
        with pytest.raises(DeviceError, match="busy"):
            McuHost(board.port)
        run = make_rundir(tmp_path)
        rc, ev, _ = run_agent(run, "check", "--runtime", "tflm", "--options", json.dumps({"port": board.port}))
        assert rc == 3 and "busy" in ev[-1]["missing"][0]
    finally:
        holder.close()
    with McuHost(board.port) as host:  # free again
        assert host.info["board"] == "tflm-pty-emulator"


def test_missing_port_and_silent_port(tmp_path: Path) -> None:
    run = make_rundir(tmp_path)
    rc, ev, _ = run_agent(run, "check", "--runtime", "tflm", "--options", json.dumps({"port": "/dev/ttyNOPE9"}))
    assert rc == 3 and "does not exist" in ev[-1]["missing"][0]
    master, slave = os.openpty()  # a port where nobody answers
    try:
        with pytest.raises(DeviceError, match="no response"):
            McuHost(os.ttyname(slave), timeout=0.3, retries=1)
    finally:
        os.close(master)
        os.close(slave)


def test_bad_crc_is_retried(tmp_path: Path) -> None:
    b = Board(tmp_path, "--corrupt-responses", "2")
    try:
        with McuHost(b.port, retries=3) as host:
            assert host.info["board"] == "tflm-pty-emulator"
            assert host.link.crc_errors == 2 and host.link.retransmits == 2
    finally:
        b.stop()
    b = Board(tmp_path, "--corrupt-responses", "10")
    try:
        with pytest.raises(DeviceError, match="corrupting frames"):
            McuHost(b.port, retries=2)
    finally:
        b.stop()


def test_device_rejects_damaged_request(board: Board) -> None:
    import serial

    P = proto()
    frame = bytearray(P.encode_frame(P.HELLO, 7, b"\x01\x00"))
    frame[-1] ^= 0x55  # break the CRC
    with serial.Serial(board.port, 115200, timeout=5) as ser:
        ser.write(bytes(frame))
        parser = P.FrameParser()
        got: list = []
        t0 = time.monotonic()
        while not got and time.monotonic() - t0 < 5:
            got = parser.feed(ser.read(64))
    rtype, seq, payload = got[0]
    assert rtype == P.ERROR and seq == 7
    err = P.unpack_error(payload)
    assert err.code == P.E_BAD_CRC and "CRC" in err.text
