#!/usr/bin/env python3
"""Which share of timm's catalogue decomposes into kernels with no unsupported operator?

Every timm model (``timm.list_models()``, or the ``--filter`` / ``--every`` / ``--limit`` sample of
it) is built with random weights, exported to ONNX (opset 17, batch 1, the default resolution of its
pretrained config) and decomposed with ``hwlat.decompose.kernels_of`` (onnxruntime rules). Export
and decomposition run in a subprocess with a per-model ``--timeout``, so a hanging export is recorded
and skipped. The share counts models that exported; models that fail to export are listed apart.
Target: >= 98 %.

Resumable: results go to ``--out`` (JSON) after every model and a re-run skips the models it holds
(``--redo`` re-runs them; ``--redecompose`` re-decomposes from the kept exports only, for checking a
decomposition fix). Exports are kept weightless (float tensors' data dropped: decomposition reads
only their shapes) under ``--cache``.

    python scripts/bench_decompose_coverage.py --every 12 --time-budget 1200 --out bench_results/decompose_coverage.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

TARGET = 0.98
STRIP_MIN_ELEMENTS = 4096  # float tensors this big are weights, never shape arithmetic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench_results/decompose_coverage.json"))
    ap.add_argument("--cache", type=Path, default=Path("bench_results/timm_onnx"),
                    help="folder for the weightless ONNX exports")
    ap.add_argument("--filter", default="*", help="fnmatch pattern over timm model names")
    ap.add_argument("--every", type=int, default=1, help="take every k-th name (deterministic sample)")
    ap.add_argument("--offset", type=int, default=0, help="start the every-k-th sample at this index")
    ap.add_argument("--limit", type=int, default=0, help="at most this many models (0: all)")
    ap.add_argument("--time-budget", type=float, default=0.0, help="stop starting models after this many s")
    ap.add_argument("--timeout", type=float, default=300.0, help="per model (export + decomposition), s")
    ap.add_argument("--max-params", type=float, default=150e6,
                    help="skip models with more parameters (their export alone takes minutes and GBs)")
    ap.add_argument("--redo", action="store_true", help="re-run models already in --out")
    ap.add_argument("--redecompose", action="store_true",
                    help="only re-decompose models whose export is kept (checks a decomposition fix)")
    ap.add_argument("--worker", nargs=3, metavar=("NAME", "ONNX", "MAX_PARAMS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(_work(args.worker[0], Path(args.worker[1]), float(args.worker[2]))))
        return

    from hwlat.zoo.timm_models import model_names

    names = model_names(args.filter)[args.offset::max(args.every, 1)]
    if args.limit:
        names = names[:args.limit]
    done: dict[str, Any] = _load(args.out)
    args.cache.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    for i, name in enumerate(names):
        if args.time_budget and time.monotonic() - t0 > args.time_budget:
            print(f"time budget of {args.time_budget:.0f} s spent after {i} of {len(names)} models; "
                  "run again to go on", file=sys.stderr)
            break
        onnx_path = args.cache / f"{name}.onnx"
        if args.redecompose:
            if not onnx_path.is_file():
                continue
        elif name in done and not args.redo:
            continue
        r = _run_worker(name, onnx_path, args.timeout, args.max_params)
        done[name] = r
        _save(args.out, done, names)
        extra = ", ".join(f"{u['op_type']} x{u['count']}" for u in r.get("unsupported", []))
        print(f"[{i + 1}/{len(names)}] {name}: {r['status']}" + (f" ({extra})" if extra else "")
              + (f" ({r['error'][:120]})" if r.get("error") else ""), flush=True)
    _report(done, names)
    _save(args.out, done, names)


def _run_worker(name: str, onnx_path: Path, timeout: float, max_params: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", name, str(onnx_path), str(max_params)]
    # one thread: a shared 2-core host, and export time hardly depends on it
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "error": f"export + decomposition over {timeout:.0f} s", "seconds": timeout}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        err = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "crashed", "error": err[:300], "seconds": round(time.monotonic() - t, 1)}
    r = json.loads(lines[-1])
    r["seconds"] = round(time.monotonic() - t, 1)
    return r


def _work(name: str, onnx_path: Path, max_params: float) -> dict[str, Any]:
    """In the subprocess: export (unless kept), decompose, describe."""
    import warnings

    import onnx

    warnings.simplefilter("ignore")
    r: dict[str, Any] = {"status": "ok"}
    if not onnx_path.is_file():
        import torch

        from hwlat.export.onnx_export import torch_to_onnx
        from hwlat.zoo.timm_models import build, default_input_shape

        torch.set_num_threads(1)
        shape = default_input_shape(name)
        r["input_shape"] = list(shape)
        try:
            n_params = _meta_params(name)
            r["params"] = n_params
            if n_params is not None and n_params > max_params:
                return {**r, "status": "skipped", "error": f"{n_params / 1e6:.0f} M parameters > --max-params"}
            m = build(name)
            t = time.monotonic()
            proto = torch_to_onnx(m, shape)
            r["export_s"] = round(time.monotonic() - t, 1)
        except Exception as e:  # any export failure is a finding, not a stop
            return {**r, "status": "export_failed", "error": f"{type(e).__name__}: {str(e).splitlines()[0][:240]}"
                    if str(e) else type(e).__name__}
        _strip_weights(proto)
        tmp = onnx_path.with_suffix(".tmp")
        onnx.save(proto, str(tmp))
        tmp.replace(onnx_path)
    from hwlat.decompose import kernels_of

    t = time.monotonic()
    try:
        d = kernels_of(str(onnx_path))
    except Exception as e:
        return {**r, "status": "decompose_failed", "error": f"{type(e).__name__}: {str(e)[:240]}"}
    r["decompose_s"] = round(time.monotonic() - t, 1)
    r["input_shape"] = d.input_shapes[0] if d.input_shapes else r.get("input_shape")
    r["kernels"] = len(d.kernels)
    r["kernel_types"] = dict(Counter(k.type for k in d.kernels))
    r["unsupported"] = [{"op_type": u["op_type"], "domain": u["domain"], "count": u["count"],
                         "reason": u["reason"], "node": u["node"]} for u in d.unsupported]
    if d.unsupported:
        r["status"] = "unsupported"
    return r


def _meta_params(name: str) -> int | None:
    """Parameter count from a build on torch's meta device (no memory, no init: a 1 B-parameter model
    in a second instead of minutes); None when the model cannot be built there."""
    import torch

    from hwlat.zoo.timm_models import import_timm

    try:
        with torch.device("meta"):
            m = import_timm().create_model(name, pretrained=False)
        return int(sum(p.numel() for p in m.parameters()))
    except Exception:
        return None


def _strip_weights(proto: Any) -> None:
    """Drop the data of large float initializers (weights) that only activations' operators read: the
    decomposition reads their shapes only, and a kept export then costs kilobytes instead of up to
    gigabytes. Weights that feed computations on constants (weight standardisation) keep their data:
    the decomposition may evaluate those."""
    import onnx

    g = proto.graph
    static = {t.name for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant" or (n.input and all(t == "" or t in static for t in n.input)):
            static.update(n.output)
    computed_from = {t for n in g.node if n.input and all(t == "" or t in static for t in n.input)
                     for t in n.input}
    for t in g.initializer:
        n = 1
        for d in t.dims:
            n *= d
        if (t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16) and n >= STRIP_MIN_ELEMENTS
                and t.name not in computed_from):
            t.ClearField("raw_data")
            t.ClearField("float_data")
            t.ClearField("int32_data")


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()).get("models", {}))
    except (OSError, ValueError, AttributeError) as e:
        raise SystemExit(f"{path} is unreadable ({e}); move it away to start afresh") from None


def summarize(done: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Share of exported models (of ``names``) with no unsupported operator, and failures by operator."""
    rs = {n: done[n] for n in names if n in done}
    decomposed = {n: r for n, r in rs.items() if r["status"] in ("ok", "unsupported", "decompose_failed")}
    ok = [n for n, r in decomposed.items() if r["status"] == "ok"]
    by_op: dict[str, list[str]] = {}
    for n, r in decomposed.items():
        for u in r.get("unsupported", []):
            key = f"{u['domain'] + '::' if u.get('domain') else ''}{u['op_type']} ({u['reason']})"
            by_op.setdefault(key, []).append(n)
        if r["status"] == "decompose_failed":
            by_op.setdefault(f"decomposition error: {r['error'][:80]}", []).append(n)
    return {"models_in_sample": len(names), "models_run": len(rs), "exported": len(decomposed),
            "no_unsupported": len(ok), "share": len(ok) / len(decomposed) if decomposed else None,
            "target": TARGET,
            "failing_operators": {k: sorted(v) for k, v in sorted(by_op.items(), key=lambda kv: -len(kv[1]))},
            "not_exported": {n: f"{r['status']}: {r.get('error', '')}" for n, r in sorted(rs.items())
                             if n not in decomposed}}


def _report(done: dict[str, Any], names: list[str]) -> None:
    s = summarize(done, names)
    share = s["share"]
    print(f"\ntimm models in sample: {s['models_in_sample']}, run: {s['models_run']}, exported and decomposed: "
          f"{s['exported']}")
    if share is not None:
        verdict = "meets" if share >= TARGET else "below"
        print(f"no unsupported operator: {s['no_unsupported']} of {s['exported']} = {100 * share:.1f} % "
              f"({verdict} the {100 * TARGET:.0f} % target)")
    if s["failing_operators"]:
        print(f"\n{'models':>6}  unsupported operator (reason): examples")
        for op, ms in s["failing_operators"].items():
            print(f"{len(ms):>6}  {op}: {', '.join(ms[:4])}{' …' if len(ms) > 4 else ''}")
    if s["not_exported"]:
        print(f"\nnot exported ({len(s['not_exported'])}):")
        for n, why in s["not_exported"].items():
            print(f"  {n}: {why[:140]}")


def _save(path: Path, done: dict[str, Any], names: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"summary": summarize(done, names), "models": done}, indent=1))
    tmp.replace(path)


if __name__ == "__main__":
    main()
