"""Does this host switch between speed states? Time a tiny kernel in short windows on each core.

A 1-thread onnxruntime Add (32 x 784 floats) runs ``--runs`` times per window, ``--windows`` windows
per core with ``--gap`` seconds between them, pinned with ``sched_setaffinity``. Per window it
prints the median (and min) in µs. On a quiet machine all windows agree within a few per cent; on a
shared VM they fall into two or more levels (here: ~9.7 µs and 15–19 µs), and single measurements
of a kernel are only as repeatable as that. Then profile with ``--passes 2`` or more and train
with ``--target floor_ms``. Writes bench_results/bench_host_states.json.

    python scripts/bench_host_states.py [--windows 10] [--runs 300] [--gap 0.3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _session(tmp: Path):  # noqa: ANN202
    import onnxruntime as ort

    from hwlat.kernels import get
    from hwlat.kernels.export import export_kernel

    path = export_kernel(get("add").make(c=32, hw=784, broadcast=0), "onnx", tmp)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.random([d if isinstance(d, int) else 1 for d in i.shape], dtype=np.float32)
             for i in s.get_inputs()}
    return s, feeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=10)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--gap", type=float, default=0.3)
    ap.add_argument("--out", type=Path, default=Path("bench_results/bench_host_states.json"))
    args = ap.parse_args()

    cpus = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        sess, feeds = _session(Path(tmp))
        for _ in range(200):
            sess.run(None, feeds)
        result: dict[str, list[dict[str, float]]] = {}
        for cpu in cpus:
            os.sched_setaffinity(0, {cpu})
            rows = []
            for _ in range(args.windows):
                ts = np.empty(args.runs)
                for i in range(args.runs):
                    t = time.perf_counter_ns()
                    sess.run(None, feeds)
                    ts[i] = time.perf_counter_ns() - t
                rows.append({"median_us": float(np.median(ts)) / 1e3, "min_us": float(ts.min()) / 1e3})
                time.sleep(args.gap)
            result[str(cpu)] = rows
            med = np.array([r["median_us"] for r in rows])
            print(f"cpu {cpu}: " + " ".join(f"{r['median_us']:.1f}/{r['min_us']:.1f}" for r in rows)
                  + f"   max/min window median {med.max() / med.min():.2f}")
        os.sched_setaffinity(0, set(cpus))
    all_med = np.array([r["median_us"] for rows in result.values() for r in rows])
    spread = float(all_med.max() / all_med.min())
    print(f"window medians span x{spread:.2f}: " + ("steady" if spread < 1.1 else
                                                   "speed states: use --passes >= 2 and --target floor_ms"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"windows": result, "spread": spread, "runs": args.runs, "gap_s": args.gap},
                                   indent=1))


if __name__ == "__main__":
    main()
