"""benchmark_model plug-in: parser on real pasted outputs (tests/fixtures/benchmark_model/README.md
names each source), argv/quoting of the commands it runs, and its one-line missing() reasons."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "device_agents"))
import hwlat_rt_benchmark_model as B  # noqa: E402

FIX = Path(__file__).parent / "fixtures" / "benchmark_model"


def parse(name: str) -> dict:
    return B.parse_output((FIX / name).read_text())


def test_tf24_cpu_summary_and_peak_memory_line() -> None:
    r = parse("tf2.4_android_yolov5s_fp32_cpu.txt")
    assert r["regular"] == {"count": 50, "first": 249042, "curr": 250889, "min": 247067, "max": 254474,
                            "avg": 249684, "std": 1442}
    assert (r["init_us"], r["first_inference_us"], r["warmup_avg_us"], r["inference_avg_us"]) == (
        16242, 360262, 304586, 249684)
    assert (r["mem_init_mb"], r["mem_overall_mb"]) == (4.92969, 138.809)  # "Peak memory footprint" (2.4)
    assert not r["failed"] and "op_profile" not in r


def test_nightly_memory_delta_line() -> None:
    r = parse("nightly_android_yolov5s_fp32_cpu.txt")
    assert r["inference_avg_us"] == 220000 and r["init_us"] == 1430
    assert (r["mem_init_mb"], r["mem_overall_mb"]) == (5.66016, 140.508)  # "Memory footprint delta" (later)


def test_full_log_with_op_profiling() -> None:
    r = parse("riscv64_mobilenet_v1_op_profiling.txt")
    assert [x["count"] for x in r["runs"]] == [1, 50]  # warm-up line first, regular runs last
    assert r["regular"]["avg"] == pytest.approx(2.95034e6) and r["inference_avg_us"] == pytest.approx(2.95034e6)
    assert r["warmup_avg_us"] == pytest.approx(3.51239e6)  # scientific notation
    assert r["session_init_ms"] == 17.187 and r["model_size_mb"] == 16.9008
    assert r["init_profile"]["run_order"][0]["node type"] == "AllocateTensors"
    op = r["op_profile"]
    assert len(op["run_order"]) == 31 and len(op["top"]) == 10
    first = op["run_order"][0]
    assert first["node type"] == "CONV_2D" and first["avg ms"] == 60.957 and first["%"] == 2.066
    assert first["name"] == "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0" and first["times called"] == 1
    by_type = {row["node type"]: row for row in op["by_node_type"]}
    assert by_type["CONV_2D"]["count"] == 15 and by_type["CONV_2D"]["avg ms"] == 2651.853
    assert sum(row["avg %"] for row in op["by_node_type"]) == pytest.approx(100, abs=0.01)
    # the per-op averages add up to the profiled run's mean latency (2.9499e6 us)
    assert sum(row["avg ms"] for row in op["run_order"]) == pytest.approx(op["timings_us"]["avg"] / 1000, rel=0.01)


def test_delegate_op_profiling_names_with_commas() -> None:
    op = parse("tf2.4_android_yolov5s_nnapi_op_profiling.txt")["op_profile"]
    deleg = [row for row in op["run_order"] if row["node type"] == "TfLiteNnapiDelegate"]
    assert len(deleg) == 3 and deleg[0]["avg ms"] == 79.01
    assert deleg[2]["name"] == "[Identity, Identity_1, Identity_2]:233"
    assert op["timings_us"]["count"] == 50


def test_failed_run_names_first_error() -> None:
    r = parse("tf2.4_android_nnapi_failed.txt")
    assert r["failed"] and "inference_avg_us" not in r
    assert r["error"].startswith("NN API returned error ANEURALNETWORKS_OP_FAILED")


def test_logcat_and_info_prefixes_are_stripped() -> None:
    text = (FIX / "tf2.4_android_yolov5s_fp32_cpu.txt").read_text()
    for prefix in ("INFO: ", "I tflite  : "):
        r = B.parse_output("".join(prefix + ln + "\n" for ln in text.splitlines()))
        assert r["inference_avg_us"] == 249684 and r["regular"]["std"] == 1442


def test_commands_are_argv_lists_with_quoting() -> None:
    hostile = "/data/local/tmp/m; rm -rf $HOME `id`.tflite"
    opts = {"threads": 4, "use_gpu": False, "use_xnnpack": True, "extra_args": ["--nnapi_allow_fp16=true"]}
    args = B.bench_args(hostile, opts, warmup=3, runs=10)
    assert args[0] == "--graph=" + hostile and "--num_threads=4" in args and "--use_xnnpack=true" in args
    argv = B.local_argv("/opt/bm/benchmark_model", args, "f0")
    assert argv[:3] == ["taskset", "f0", "/opt/bm/benchmark_model"]
    line = B.remote_command("/data/local/tmp/hwlat/ab-benchmark_model", args, "f0")
    assert shlex.split(line) == ["taskset", "f0", "/data/local/tmp/hwlat/ab-benchmark_model", *args]


def test_missing_reasons_are_one_line_each(tmp_path: Path) -> None:
    miss = B.missing({"binary": str(tmp_path / "nope"), "threads": 0, "taskset": "f0; reboot",
                      "extra_args": ["--ok=1", "rm -rf /"]})
    assert len(miss) == 4 and all("\n" not in m for m in miss)
    assert any("threads" in m for m in miss) and any("taskset" in m for m in miss)
    assert any("extra_args" in m for m in miss) and any("not found" in m for m in miss)
    exe = tmp_path / "benchmark_model"
    exe.write_text("#!/bin/sh\n")
    assert any("not executable" in m for m in B.missing({"binary": str(exe)}))
    exe.chmod(0o755)
    assert B.missing({"binary": str(exe)}) == []
    assert B.missing({"adb_serial": "emulator-5554", "adb": str(tmp_path / "no-adb")})[0].startswith("adb not found")
