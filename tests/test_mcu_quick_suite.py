"""Quick-suite int8 kernels measured through the real CLI over the TFLM pty emulator.

``hwlat profile tflm-pty --models DIR`` (subprocess) → agent → ``tflm`` plug-in → hwlat serial
protocol → ``tflm_pty_device.py`` running the real TFLM runtime. The kernels are a deterministic
subset of the quick suite (the cheapest of each type, a GELU activation, and one kernel whose
tensors cannot fit the emulated 128 KiB arena), exported by the same int8 exporter and cache
the CLI's ``--suite`` path uses. scripts/bench_tflm_pty.py runs the whole suite.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("serial", reason="pyserial is not installed (dev extra)")
pytest.importorskip("tflite_micro", reason="tflite-micro is not installed (pip install tflite-micro; dev extra)")
pytest.importorskip("litert_torch", reason="litert-torch is not installed (dev extra)")

from hwlat.kernels.base import Kernel  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EMULATOR = REPO / "device_agents" / "tflm_pty_device.py"
ARENA = 128 * 1024
TYPES = ("conv2d", "dwconv", "conv_bn_act", "linear", "mbconv", "pool", "add", "softmax", "layernorm",
         "matmul", "mha", "transpose")
BIG_FROM = ("add", "mul", "transpose", "channel_shuffle")  # cheap to export, large tensors


def _io_bytes(k: Kernel) -> int:
    """int8 bytes of the graph inputs and outputs: all live in the arena at once."""
    return sum(math.prod(s) for s in (*k.inputs, *k.outputs))


def subset() -> tuple[list[Kernel], Kernel | None, Kernel]:
    """(kernels, the GELU activation or None, the one too big for ARENA), deterministic."""
    from hwlat.kernels.sampling import estimate_ms
    from hwlat.kernels.suites import suite

    quick = suite("quick", seed=0)
    picked = [min((k for k in quick if k.type == t), key=lambda k: (estimate_ms(k), k.key())) for t in TYPES]
    gelus = [k for k in quick if k.type == "activation" and k.config.get("act") == "gelu"]
    gelu = min(gelus, key=lambda k: (estimate_ms(k), k.key())) if gelus else None
    big = max((k for k in quick if k.type in BIG_FROM), key=lambda k: (_io_bytes(k), k.key()))
    assert _io_bytes(big) > ARENA
    return [*picked, *([gelu] if gelu else []), big], gelu, big


@pytest.fixture()
def pty_board(tmp_path: Path) -> Iterator[str]:
    link = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, str(EMULATOR), "--link", str(link), "--arena-bytes", str(ARENA)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    while not link.exists():
        if proc.poll() is not None or time.monotonic() - t0 > 60:
            proc.kill()
            raise RuntimeError("emulator did not start: " + proc.stderr.read().decode()[-500:])
        time.sleep(0.05)
    yield link.read_text()
    proc.terminate()
    proc.wait(timeout=10)


def test_quick_subset_through_cli_over_pty(tmp_path: Path, pty_board: str) -> None:
    from hwlat.devices.inventory import Device, save_device
    from hwlat.export.tflite_export import export_kernels

    profiles = tmp_path / "profiles"
    kernels, gelu, big = subset()
    # the cache folder `hwlat profile --suite` uses, so the files are the ones it would measure
    cache = profiles / ".cache" / "kernels" / "tflite_int8"
    outcomes = export_kernels(kernels, cache, quantize="int8", workers=2)
    models = tmp_path / "models"
    models.mkdir()
    by_file: dict[str, Kernel] = {}
    export_failed = {}
    for i, o in enumerate(outcomes):
        if o.path is None:
            export_failed[o.kernel.type] = o.error
            continue
        name = f"{i:02d}-{o.kernel.type}.tflite"
        (models / name).write_bytes(o.path.read_bytes())
        by_file[name] = o.kernel
    for t, reason in export_failed.items():
        assert reason and t, "an export failure must carry a reason"
    assert len(by_file) >= len(kernels) - 2, export_failed

    save_device(Device(name="tflm-pty", runtime="tflm", options={"port": pty_board, "timeout_s": 5.0}),
                profiles / "devices.toml")
    env = {**os.environ, "HWLAT_PROFILES": str(profiles), "HWLAT_DEVICES": str(profiles / "devices.toml")}
    p = subprocess.run([sys.executable, "-m", "hwlat", "profile", "tflm-pty", "--models", str(models), "--json",
                        "--max-time", "0.2", "--passes", "1"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    summary = json.loads(p.stdout[p.stdout.find("{"):])
    assert summary["error"] is None, p.stderr[-2000:]
    failed = {f["name"]: f["reason"] for f in summary["failed"]}
    assert p.returncode == (1 if failed else 0)

    from hwlat.store import ProfileStore

    os.environ["HWLAT_PROFILES"] = str(profiles)
    try:
        rows = ProfileStore("tflm-pty").models().to_dict("records")
    finally:
        os.environ.pop("HWLAT_PROFILES")
    measured = {r["name"]: r for r in rows}
    # every kernel is accounted for: measured, or named with its reason
    assert set(measured) | set(failed) == set(by_file) and not set(measured) & set(failed)
    assert len(measured) >= 10, failed
    for name, r in measured.items():
        x = json.loads(r["extra"])
        assert r["median_ms"] > 0 and x["us_median"] > 0 and x["cycles_median"] > 0, (name, x)
        assert x["cycles_min"] <= x["cycles_median"] <= x["cycles_max"]
        assert 0 < x["arena_used_bytes"] <= x["arena_size"] == ARENA
        assert x["arena_used_bytes"] >= _io_bytes(by_file[name])  # graph I/O tensors live in the arena
        assert 0 < x["ram_used"] <= x["ram_total"] and 0 < x["flash_used"] <= x["flash_total"]
        assert x["model_bytes"] == (models / name).stat().st_size
        assert r["median_ms"] == pytest.approx(x["cycles_median"] / x["clock_hz"] * 1e3, rel=0.05)
    for reason in failed.values():
        assert reason.strip() and "\n" not in reason
    big_name = next(n for n, k in by_file.items() if k is big)
    # the too-big kernel fails on its own, naming the arena size and what the model needs
    assert big_name in failed and f"tensor arena of tflm-pty-emulator ({ARENA} bytes)" in failed[big_name]
    need = int(failed[big_name].split("model needs ")[1].split()[0])
    assert need >= _io_bytes(big) > ARENA
    if gelu is not None:
        gelu_name = next(n for n, k in by_file.items() if k is gelu)
        assert gelu_name in failed and "operator GELU is not in this TFLM build" in failed[gelu_name]
