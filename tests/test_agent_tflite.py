"""Device agent with the real LiteRT (TFLite) interpreter: XNNPACK on/off, errors, stats."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_agent_helpers import (  # noqa: E402
    FAST_MEASURE,
    check_stats,
    make_fc_tflite,
    make_rundir,
    run_agent,
    write_manifest,
)

pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed (pip install ai-edge-litert)")


def test_tflite_run_xnnpack_and_builtin(tmp_path: Path) -> None:
    run = make_rundir(tmp_path)
    models = run / "models"
    make_fc_tflite(models / "fc_small.tflite", 16, 16)
    make_fc_tflite(models / "fc_big.tflite", 512, 512, batch=8)
    (models / "corrupt.tflite").write_bytes(b"TFL3" + b"\x00" * 64)
    items = [("small", "models/fc_small.tflite"), ("corrupt", "models/corrupt.tflite"),
             ("big", "models/fc_big.tflite")]
    write_manifest(run, "tflite", items, options={"threads": 1, "xnnpack": True}, name="xnn.json")
    write_manifest(run, "tflite", items, options={"threads": 1, "xnnpack": False}, name="builtin.json")
    for name, delegated in (("xnn.json", True), ("builtin.json", False)):
        rc, ev, err = run_agent(run, "run", name)
        assert rc == 0, err
        assert [e["event"] for e in ev] == ["hello", "fingerprint", "result", "error", "result", "done"]
        assert ev[1]["fingerprint"]["provider"] == ("xnnpack" if delegated else "builtin")
        assert ev[-1] == {"event": "done", "ok": 2, "failed": 1}
        assert "corrupt.tflite" in ev[3]["reason"]
        small, big = ev[2], ev[4]
        for r in (small, big):
            check_stats(r["stats"], FAST_MEASURE)
            # XNNPACK replaces the FULLY_CONNECTED node with a DELEGATE node; builtin keeps it.
            assert ("DELEGATE" in r["extra"]["ops"]) == delegated, r["extra"]["ops"]
        assert small["extra"]["inputs"] == {"x": [1, 16]}
        assert big["stats"]["median_ms"] > 5 * small["stats"]["median_ms"]


def test_tflite_check_ok(tmp_path: Path) -> None:
    run = make_rundir(tmp_path)
    rc, ev, err = run_agent(run, "check", "--runtime", "tflite")
    assert rc == 0, err
    assert ev[-1]["ok"] and "ai-edge-litert" in ev[-1]["runtime_version"]
