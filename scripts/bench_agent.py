"""Benchmark the device agent itself: per-item overhead, run counts and convergence.

Builds ~10 small ONNX models (convs and matmuls), ships the agent into a temp run directory
like the host does, runs it once with the given measure budget and times every event line as
it arrives. Per item: wall = time since the previous event; overhead = wall - measure_s
(includes warm-up) and wall - measure_s - warmup_s (load, input build, stats, I/O).

    .venv/bin/python scripts/bench_agent.py [--max-time 1.0] [--threads 1] [--out bench_agent.json]
"""

from __future__ import annotations

import argparse
import glob
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

AGENT_DIR = Path(__file__).resolve().parent.parent / "device_agents"


def conv(path: Path, c: int, hw: int) -> None:
    w = np.random.default_rng(c + hw).standard_normal((c, c, 3, 3)).astype(np.float32)
    shape = [1, c, hw, hw]
    g = helper.make_graph([helper.make_node("Conv", ["x", "W"], ["y"], pads=[1] * 4)], "conv",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
                          [numpy_helper.from_array(w, "W")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))


def matmul(path: Path, m_: int, k: int, n: int) -> None:
    w = np.random.default_rng(k + n).standard_normal((k, n)).astype(np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "mm",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m_, k])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m_, n])],
                          [numpy_helper.from_array(w, "W")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))


MODELS = [("conv_c4_hw8", conv, (4, 8)), ("conv_c8_hw16", conv, (8, 16)), ("conv_c16_hw16", conv, (16, 16)),
          ("conv_c16_hw32", conv, (16, 32)), ("conv_c32_hw28", conv, (32, 28)), ("conv_c32_hw56", conv, (32, 56)),
          ("mm_1x64x64", matmul, (1, 64, 64)), ("mm_8x256x256", matmul, (8, 256, 256)),
          ("mm_16x512x512", matmul, (16, 512, 512)), ("mm_64x1024x1024", matmul, (64, 1024, 1024))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-time", type=float, default=1.0, help="measure.max_time_s")
    ap.add_argument("--warmup-max-s", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="bench_agent.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        (run / "models").mkdir(parents=True)
        for f in glob.glob(str(AGENT_DIR / "*.py")):
            shutil.copy(f, run)
        for name, fn, a in MODELS:
            fn(run / "models" / f"{name}.onnx", *a)
        man = {"protocol_version": 1, "run_id": "bench", "runtime": "onnxruntime",
               "runtime_options": {"threads": args.threads},
               "measure": {"max_time_s": args.max_time, "warmup_max_s": args.warmup_max_s},
               "items": [{"id": n, "file": f"models/{n}.onnx"} for n, _, _ in MODELS]}
        (run / "manifest.json").write_text(json.dumps(man))
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-I", "hwlat_agent.py", "run", "manifest.json"], cwd=run,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None
        stamped: list[tuple[float, dict[str, Any]]] = []
        for line in proc.stdout:
            stamped.append((time.perf_counter() - t0, json.loads(line)))
        rc = proc.wait()
    total = time.perf_counter() - t0
    rows = []
    prev = next(t for t, e in stamped if e["event"] == "fingerprint")
    startup = prev
    for t, e in stamped:
        if e["event"] not in ("result", "error"):
            continue
        wall = t - prev
        prev = t
        if e["event"] == "error":
            rows.append({"id": e["id"], "error": e["reason"]})
            continue
        s = e["stats"]
        rows.append({"id": e["id"], "median_ms": s["median_ms"], "runs": s["runs"], "warmup_runs": s["warmup_runs"],
                     "converged": s["converged"], "ci_halfwidth_rel": (s["ci_high_ms"] - s["ci_low_ms"]) / 2 / s["median_ms"],
                     "wall_s": wall, "measure_s": s["measure_s"], "warmup_s": s["warmup_s"],
                     "load_s": e["extra"].get("load_s"), "overhead_s": wall - s["measure_s"],
                     "overhead_excl_warmup_s": wall - s["measure_s"] - s["warmup_s"]})
    ok = [r for r in rows if "error" not in r]
    print(f"{'model':18} {'median_ms':>10} {'runs':>6} {'warm':>5} {'conv':>5} {'ci±%':>6} {'wall_s':>7} "
          f"{'meas_s':>7} {'warm_s':>7} {'ovh_s':>7} {'ovh-w_s':>8}")
    for r in rows:
        if "error" in r:
            print(f"{r['id']:18} ERROR {r['error']}")
            continue
        print(f"{r['id']:18} {r['median_ms']:10.4f} {r['runs']:6d} {r['warmup_runs']:5d} {str(r['converged']):>5} "
              f"{100 * r['ci_halfwidth_rel']:6.2f} {r['wall_s']:7.3f} {r['measure_s']:7.3f} {r['warmup_s']:7.3f} "
              f"{r['overhead_s']:7.3f} {r['overhead_excl_warmup_s']:8.4f}")
    summary = {"rc": rc, "items": len(rows), "ok": len(ok), "total_s": total, "startup_to_fingerprint_s": startup,
               "converged_share": sum(r["converged"] for r in ok) / max(1, len(ok)),
               "runs_median": statistics.median(r["runs"] for r in ok) if ok else None,
               "runs_min": min((r["runs"] for r in ok), default=None),
               "runs_max": max((r["runs"] for r in ok), default=None),
               "overhead_excl_warmup_s_median": statistics.median(r["overhead_excl_warmup_s"] for r in ok) if ok else None,
               "overhead_s_median": statistics.median(r["overhead_s"] for r in ok) if ok else None,
               "max_time_s": args.max_time, "warmup_max_s": args.warmup_max_s, "threads": args.threads}
    print(json.dumps(summary, indent=1))
    Path(args.out).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
