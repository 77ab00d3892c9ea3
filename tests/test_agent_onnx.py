"""Device agent with the real ONNX Runtime: protocol, statistics, safety, failure modes."""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_agent_helpers import (  # noqa: E402
    AGENT_DIR,
    FAST_MEASURE,
    check_stats,
    make_conv_onnx,
    make_matmul_onnx,
    make_rundir,
    run_agent,
    write_manifest,
)

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def onnx_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One agent run over good, bad, missing and escaping items (shared by several tests)."""
    tmp = tmp_path_factory.mktemp("agent_onnx")
    run = make_rundir(tmp)
    models = run / "models"
    make_conv_onnx(models / "conv_small.onnx", channels=3, hw=8)
    make_conv_onnx(models / "conv_big.onnx", channels=32, hw=56)
    make_matmul_onnx(models / "mm.onnx", 16, 64, 64)
    (models / "corrupt.onnx").write_bytes(b"\x08\x07this is not a protobuf model" * 3)
    outside = tmp / "outside.onnx"
    make_conv_onnx(outside, channels=3, hw=8)
    os.symlink(outside, models / "escape.onnx")
    os.symlink("conv_small.onnx", models / "inside_link.onnx")  # stays inside: allowed
    items = [("small", "models/conv_small.onnx"), ("corrupt", "models/corrupt.onnx"),
             ("big", "models/conv_big.onnx"), ("missing", "models/nope.onnx"),
             ("escape", "models/escape.onnx"), ("dotdot", "../outside.onnx"),
             ("absolute", str(outside)), ("mm", "models/mm.onnx"), ("link", "models/inside_link.onnx")]
    write_manifest(run, "onnxruntime", items)
    before = sorted(os.listdir(tmp))
    rc, events, err = run_agent(run, "run", "manifest.json")
    return {"rc": rc, "events": events, "stderr": err, "items": items, "tmp": tmp, "before": before,
            "after": sorted(os.listdir(tmp))}


def test_protocol_order_and_counts(onnx_run: dict) -> None:
    ev = onnx_run["events"]
    assert onnx_run["rc"] == 0, onnx_run["stderr"]
    assert [e["event"] for e in ev[:2]] == ["hello", "fingerprint"]
    assert ev[0]["protocol_version"] == 1
    assert ev[-1] == {"event": "done", "ok": 4, "failed": 5}
    body = ev[2:-1]
    assert [e["id"] for e in body] == [i for i, _ in onnx_run["items"]]  # one event per item, in order
    kinds = {e["id"]: e["event"] for e in body}
    assert kinds == {"small": "result", "corrupt": "error", "big": "result", "missing": "error",
                     "escape": "error", "dotdot": "error", "absolute": "error", "mm": "result", "link": "result"}
    for e in body:
        if e["event"] == "error":
            assert e["reason"] and "\n" not in e["reason"]


def test_result_stats_and_env(onnx_run: dict) -> None:
    results = [e for e in onnx_run["events"] if e["event"] == "result"]
    assert len(results) == 4
    for r in results:
        check_stats(r["stats"], FAST_MEASURE)
        assert r["started_at"].endswith("Z") and r["started_at"] <= r["finished_at"]
        assert set(r["env"]) >= {"load_avg_1m", "temp_c", "notes"}
        assert ("not converged" in r["env"]["notes"]) == (not r["stats"]["converged"])
        assert r["extra"]["providers"][0] == "CPUExecutionProvider"
    by_id = {r["id"]: r for r in results}
    assert by_id["small"]["extra"]["inputs"] == {"x": [1, 3, 8, 8]}  # dynamic batch -> 1


def test_bigger_model_is_slower(onnx_run: dict) -> None:
    med = {e["id"]: e["stats"]["median_ms"] for e in onnx_run["events"] if e["event"] == "result"}
    # 32->32 3x3 conv at 56x56 is ~29 MMAC vs ~1.7 kMAC: orders of magnitude apart.
    assert med["big"] > 10 * med["small"], med


def test_failures_are_named(onnx_run: dict) -> None:
    reasons = {e["id"]: e["reason"] for e in onnx_run["events"] if e["event"] == "error"}
    assert "corrupt.onnx" in reasons["corrupt"]
    assert "does not exist" in reasons["missing"]
    for key in ("escape", "dotdot", "absolute"):
        assert reasons[key].startswith("refused"), reasons[key]


def test_writes_nothing_outside_run_dir(onnx_run: dict) -> None:
    assert onnx_run["after"] == onnx_run["before"]


def test_bad_manifests_exit_2(tmp_path: Path) -> None:
    run = make_rundir(tmp_path)
    make_conv_onnx(run / "models" / "a.onnx", 3, 8)
    good = {"protocol_version": 1, "run_id": "r", "runtime": "onnxruntime", "runtime_options": {},
            "measure": dict(FAST_MEASURE), "items": [{"id": "a", "file": "models/a.onnx"}]}
    bad_variants = {
        "notjson.json": "{not json",
        "list.json": json.dumps([good]),
        "version.json": json.dumps(dict(good, protocol_version=99)),
        "noitems.json": json.dumps({k: v for k, v in good.items() if k != "items"}),
        "dupid.json": json.dumps(dict(good, items=good["items"] * 2)),
        "badmeasure.json": json.dumps(dict(good, measure=dict(FAST_MEASURE, min_runs=0))),
        "unknownfield.json": json.dumps(dict(good, measure=dict(FAST_MEASURE, min_run=3))),
        "runtime.json": json.dumps(dict(good, runtime="../evil")),
    }
    for name, text in bad_variants.items():
        (run / name).write_text(text)
        rc, events, err = run_agent(run, "run", name)
        assert rc == 2, (name, err)
        assert [e["event"] for e in events] == ["hello"], name
        assert len(err.strip().splitlines()) == 1 and "manifest" in err, (name, err)
    rc, _, err = run_agent(run, "run", "does_not_exist.json")
    assert rc == 2 and "cannot read manifest" in err


def test_check_reports_missing_runtime(tmp_path: Path) -> None:
    run = make_rundir(tmp_path)
    rc, events, err = run_agent(run, "check", "--runtime", "nosuchruntime")
    assert rc == 3
    assert events[-1]["event"] == "check" and events[-1]["ok"] is False
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "nosuchruntime" in lines[0] and "onnxruntime" in lines[0]  # lists known ones

    rc, events, err = run_agent(run, "check", "--runtime", "onnxruntime")
    assert rc == 0, err
    assert events[-1]["ok"] is True and events[-1]["missing"] == [] and events[-1]["runtime_version"]

    rc, events, err = run_agent(run, "check", "--runtime", "onnxruntime",
                                "--options", json.dumps({"provider": "NoSuchExecutionProvider"}))
    assert rc == 3 and "NoSuchExecutionProvider" in err and len(err.strip().splitlines()) == 1


def test_run_with_unavailable_provider_exits_3(tmp_path: Path) -> None:
    run = make_rundir(tmp_path)
    make_conv_onnx(run / "models" / "a.onnx", 3, 8)
    write_manifest(run, "onnxruntime", [("a", "models/a.onnx")], options={"provider": "NoSuchExecutionProvider"})
    rc, events, err = run_agent(run, "run", "manifest.json")
    assert rc == 3 and "NoSuchExecutionProvider" in err and len(err.strip().splitlines()) == 1
    assert [e["event"] for e in events] == ["hello"]


def test_fingerprint_fields_and_stable_id(tmp_path: Path) -> None:
    run = make_rundir(tmp_path)
    fps = []
    for opts in ({"threads": 1}, {"threads": 1}, {"threads": 2}):
        rc, events, err = run_agent(run, "fingerprint", "--runtime", "onnxruntime", "--options", json.dumps(opts))
        assert rc == 0, err
        assert [e["event"] for e in events] == ["hello", "fingerprint"]
        fps.append(events[1]["fingerprint"])
    fp = fps[0]
    for key in ("cpu_model", "cores_logical", "cores_physical", "cpu_max_mhz", "governor", "mem_total_mb", "os",
                "kernel", "machine", "hostname", "python", "runtime", "runtime_version", "provider", "threads",
                "fingerprint_id"):
        assert key in fp, key
    assert fp["cores_logical"] == os.cpu_count()
    assert fp["runtime"] == "onnxruntime" and fp["provider"] == "CPUExecutionProvider" and fp["threads"] == 1
    assert len(fp["fingerprint_id"]) == 16
    assert fps[0]["fingerprint_id"] == fps[1]["fingerprint_id"]
    assert fps[2]["fingerprint_id"] != fps[0]["fingerprint_id"]  # threads are part of the config
    rc, events, _ = run_agent(run, "fingerprint")  # no runtime: hardware only
    assert rc == 0 and events[1]["fingerprint"]["runtime"] is None


def test_caps_stop_unconverged_runs(tmp_path: Path) -> None:
    """ci_rel=0 cannot converge on real timings: the run must stop at max_runs, flagged."""
    run = make_rundir(tmp_path)
    make_matmul_onnx(run / "models" / "mm.onnx", 4, 32, 32)
    measure = {"min_runs": 5, "max_runs": 25, "ci_rel": 0.0, "max_time_s": 30.0,
               "warmup_min_runs": 4, "warmup_max_runs": 4}
    write_manifest(run, "onnxruntime", [("mm", "models/mm.onnx")], measure=measure)
    rc, events, err = run_agent(run, "run", "manifest.json")
    assert rc == 0, err
    res = events[2]
    assert res["event"] == "result"
    check_stats(res["stats"], dict(FAST_MEASURE, **measure))
    assert res["stats"]["warmup_runs"] == 4
    if not res["stats"]["converged"]:  # all 25 samples equal to the ns would converge legitimately
        assert res["stats"]["runs"] == 25 and "not converged" in res["env"]["notes"]


def test_agent_is_standalone_and_py38_syntax() -> None:
    """Agent files parse as Python 3.8 and import nothing from hwlat."""
    files = sorted(AGENT_DIR.glob("*.py"))
    assert {"hwlat_agent.py", "hwlat_rt_onnxruntime.py", "hwlat_rt_tflite.py", "hwlat_rt_torch.py"} <= {
        f.name for f in files}
    for f in files:
        tree = ast.parse(f.read_text(), filename=str(f), feature_version=(3, 8))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n == "hwlat" or n.startswith("hwlat.") for n in names), (f.name, names)
            # Runtime features newer than 3.8 that the 3.8 grammar check cannot see.
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "zip":
                assert not any(k.arg == "strict" for k in node.keywords), (f.name, node.lineno, "zip(strict=) is 3.10+")
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("isinstance", "issubclass"):
                assert not any(isinstance(a, ast.BinOp) for a in node.args), (f.name, node.lineno, "X | Y is 3.10+")


def _cuda_ep_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_ep_available(), reason="onnxruntime has no CUDAExecutionProvider here (no GPU build)")
def test_onnx_cuda_provider(tmp_path: Path) -> None:
    run = make_rundir(tmp_path)
    make_conv_onnx(run / "models" / "big.onnx", channels=32, hw=56)
    write_manifest(run, "onnxruntime", [("big", "models/big.onnx")], options={"provider": "CUDAExecutionProvider"})
    rc, events, err = run_agent(run, "run", "manifest.json")
    assert rc == 0, err
    assert events[1]["fingerprint"]["provider"] == "CUDAExecutionProvider"
    res = events[2]
    assert res["event"] == "result", res
    assert res["extra"]["providers"][0] == "CUDAExecutionProvider"
    check_stats(res["stats"], FAST_MEASURE)
