"""PNG plots for predictions and evaluations (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_breakdown(prediction: Any, path: str | Path, top: int = 40) -> Path:
    """Per-kernel latency bar chart (execution order, 90 % interval whiskers) of a ``Prediction``.

    Models with more than ``top`` kernels show the ``top`` slowest, in execution order.
    """
    plt = _plt()
    ks = list(prediction.kernels)
    idx = list(range(len(ks)))
    if len(ks) > top:
        idx = sorted(np.argsort([-k["ms"] for k in ks])[:top].tolist())
    ms = np.array([ks[i]["ms"] for i in idx])
    lo = np.array([ks[i]["low"] for i in idx])
    hi = np.array([ks[i]["high"] for i in idx])
    labels = [f"{i}:{ks[i]['type']}" for i in idx]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(idx) + 2), 4.5))
    colors = ["tab:orange" if ks[i].get("model") == "_pooled" else "tab:blue" for i in idx]
    ax.bar(range(len(idx)), ms, color=colors, yerr=[np.maximum(ms - lo, 0), np.maximum(hi - ms, 0)],
           capsize=2, error_kw={"elinewidth": 0.8})
    ax.set_xticks(range(len(idx)))
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    ax.set_ylabel("predicted ms (kernel alone)")
    shown = "" if len(idx) == len(ks) else f", {len(idx)} slowest of {len(ks)} kernels"
    ax.set_title(f"{prediction.device}: {prediction.latency_ms:.3f} ms "
                 f"[{prediction.low_ms:.3f}, {prediction.high_ms:.3f}] ({prediction.method}{shown})", fontsize=9)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_scatter(evaluation: dict[str, Any], path: str | Path) -> Path:
    """Predicted-vs-measured scatter (log-log, ±10 % band) of held-out kernels and models."""
    plt = _plt()
    pts = evaluation.get("points", {})
    panels = [(k, pts[k]) for k in ("kernel", "model") if k in pts and pts[k]["measured"]]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.2 * max(1, len(panels)), 4.8), squeeze=False)
    if not panels:
        axes[0, 0].text(0.5, 0.5, "no held-out data", ha="center", va="center")
    for ax, (name, p) in zip(axes[0], panels, strict=False):
        y = np.asarray(p["measured"], dtype=float)
        q = np.asarray(p["predicted"], dtype=float)
        groups = p.get("type") if name == "kernel" else p.get("space")
        groups = groups or ["all"] * len(y)
        for g in sorted(set(groups)):
            sel = np.array([x == g for x in groups])
            ax.scatter(y[sel], q[sel], s=10, alpha=0.7, label=g)
        lo, hi = float(min(y.min(), q.min())) * 0.8, float(max(y.max(), q.max())) * 1.25
        line = np.array([lo, hi])
        ax.plot(line, line, "k-", lw=0.8)
        ax.fill_between(line, line * 0.9, line * 1.1, color="gray", alpha=0.2, label="±10 %")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("measured ms")
        ax.set_ylabel("predicted ms")
        acc = float(np.mean(np.abs(q - y) / y <= 0.10 + 1e-12))
        ax.set_title(f"{evaluation.get('device', '')} {evaluation.get('kind', '')}: held-out {name}s "
                     f"(n={len(y)}, ±10 %: {acc:.0%})", fontsize=9)
        ax.legend(fontsize=6, ncol=2, loc="upper left")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
