"""Predictor features: per-kernel vectors (config + cost model), whole-model aggregates, subnet features.

Kernel features have **fixed names per kernel type** (derived from the type's config fields, so a
new kernel type needs no change here): every int field as ``log1p(value)`` (``log_<field>``), every
string field one-hot over its known categories (``act=relu``), then the cost-model quantities of
:func:`hwlat.kernels.describe` as ``log1p`` (``log_flops`` …). Latency spans five orders of
magnitude and scales roughly multiplicatively with sizes, so logs help the MLP (trees don't care).

The *pooled* feature set (one model for all types, used for types with too few samples) is a
type one-hot plus the union of every type's features, 0 where a type has no such field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from hwlat.kernels.base import ACTIVATIONS, Kernel, get, names
from hwlat.kernels.common import pool_out
from hwlat.kernels.derived import DERIVED_FIELDS, describe

#: Known values of string config fields; a value outside its list only sets no one-hot bit.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "act": ACTIVATIONS,
    "gate": ACTIVATIONS,
    "mode": ("max", "avg"),
}

#: Bumped when the meaning of a feature changes (stored in predictor metadata; a predictor with
#: another version is refused at load).
FEATURE_VERSION = 6  # 6: transpose and attention-head alignment; 5: channel-block alignment; 4: pool output/padding/partial window; 3: pool "ceil", …


def _channel_names(prefix: str) -> tuple[str, ...]:
    """Names of :func:`_channels` for ``prefix``, in its order."""
    return tuple(f"{prefix}_{n}" for n in ("mod4", "mod8", "mod16", "fill16"))


_ALIGN = _channel_names("cin") + _channel_names("cout")
_BLOCKED = ("blocked8", "blocked16")
_GEMM = ("log_gemm_m", "log_gemm_n", "log_gemm_k", "log_out_hw")


def _fill(c: int, block: int) -> float:
    """Share of the padded channel blocks that holds real channels (1.0 when aligned)."""
    return c / (-(-c // block) * block) if c > 0 else 1.0


def _channels(c: int, prefix: str = "c") -> dict[str, float]:
    # CPU kernels vectorise over channel blocks: unaligned channel counts cost extra (local: aligned
    # pools cost 0.04 vs 0.075 ns/byte; conv and depthwise in _blocked).
    return {f"{prefix}_mod4": float(c % 4 == 0), f"{prefix}_mod8": float(c % 8 == 0),
            f"{prefix}_mod16": float(c % 16 == 0), f"{prefix}_fill16": _fill(c, 16)}


def _align(cin: int, cout: int) -> dict[str, float]:
    return {**_channels(cin, "cin"), **_channels(cout, "cout")}


def _blocked(cin: int, cout: int, groups: int) -> dict[str, float]:
    """Whether a channel-blocked (NCHWc-style) conv path applies, for blocks of 8 and 16 lanes.

    onnxruntime's NCHWc layout on x86 runs a conv blocked only when the channel counts fit the
    vector width; otherwise it falls back to im2col + GEMM, 1.25-4x slower per FLOP on the local
    store (depthwise: 97 vs 25 ps/FLOP). Which width applies is the device's business (8 lanes
    with AVX2, 16 with AVX-512), so both flags are features and the trees pick the one that
    matters.
    """
    out = {}
    for b in (8, 16):
        if groups == 1:
            ok = cout % b == 0 and (cin % b == 0 or cin < b)
        elif groups == cin == cout:
            ok = cin % b == 0
        else:
            ok = (cin // groups) % b == 0 and (cout // groups) % b == 0
        out[f"blocked{b}"] = float(ok)
    return out


def _conv_view(cfg: Mapping[str, Any]) -> dict[str, float]:
    """The GEMM a conv lowers to (M = cout/groups, N = output pixels, K = cin/groups·k²) + alignment."""
    dw = "c" in cfg
    cin = int(cfg["c"] if dw else cfg["cin"])
    cout = int(cfg["c"] if dw else cfg["cout"])
    g = cin if dw else int(cfg.get("groups", 1))
    k, s = int(cfg["k"]), int(cfg["s"])
    ho = (int(cfg["h"]) + 2 * (k // 2) - k) // s + 1
    wo = (int(cfg["w"]) + 2 * (k // 2) - k) // s + 1
    m, n, kk = max(cout // g, 1), max(ho * wo, 1), max(cin // g * k * k, 1)
    return {"log_gemm_m": float(np.log(m)), "log_gemm_n": float(np.log(n)), "log_gemm_k": float(np.log(kk)),
            "log_out_hw": float(np.log(n)), **_align(cin, cout), **_blocked(cin, cout, g)}


def _linear_view(cfg: Mapping[str, Any]) -> dict[str, float]:
    return _align(int(cfg["cin"]), int(cfg["cout"]))


_POOL = ("log_out_hw", "log_out_h", "log_plane", "log_window", "pad", "pad_avg", "overlap", "partial")
_CHANNELS = _channel_names("c")


def _pool_view(cfg: Mapping[str, Any]) -> dict[str, float]:
    """Output grid, padding and window shape of a pool.

    onnxruntime runs padded average pools (padding excluded from the count) and ceil-mode
    windows that hang past the input on slower paths than the plain strided case; with only the
    config fields the trees split these apart late. Held-out ±10 % on the standard suite plus
    space kernels (local): 49 → 63 %.
    """
    h, w, k, s, ceil = (int(cfg[f]) for f in ("h", "w", "k", "s", "ceil"))
    p = (k - 1) // 2
    oh, ow = pool_out(h, k, s, ceil), pool_out(w, k, s, ceil)
    partial = bool(ceil) and ((oh - 1) * s + k > h + 2 * p or (ow - 1) * s + k > w + 2 * p)
    return {"log_out_hw": float(np.log(oh * ow)), "log_out_h": float(np.log(oh)), "log_plane": float(np.log(h * w)),
            "log_window": float(np.log(k * k)), "pad": float(p > 0), "pad_avg": float(p > 0 and cfg["mode"] == "avg"),
            "overlap": float(k > s), "partial": float(partial), **_channels(int(cfg["c"]))}


def _channel_view(cfg: Mapping[str, Any]) -> dict[str, float]:
    return _channels(int(cfg["c"]))


def _mbconv_view(cfg: Mapping[str, Any]) -> dict[str, float]:
    """Alignment of the block's three widths (input, expanded, output)."""
    cin, cout, e = int(cfg["cin"]), int(cfg["cout"]), int(cfg["e"])
    return {**_align(cin, cout), **_channels(cin * e, "mid_c")}


_MBCONV = _ALIGN + _channel_names("mid_c")


def _transpose_view(cfg: Mapping[str, Any]) -> dict[str, float]:
    """Alignment of both sides: the copy runs in vector-width tiles (local: held-out ±10 % 83 → 88 %)."""
    return {**_channels(int(cfg["a"]), "a"), **_channels(int(cfg["b"]), "b")}


def _mha_view(cfg: Mapping[str, Any]) -> dict[str, float]:
    """Head width and its alignment: the per-head GEMMs run on ``d / heads`` columns."""
    hd = max(int(cfg["d"]) // max(int(cfg["heads"]), 1), 1)
    return {"log_head_dim": float(np.log(hd)), **_channels(hd, "hd"), **_channels(int(cfg["d"]), "d")}


_TRANSPOSE = _channel_names("a") + _channel_names("b")
_MHA = ("log_head_dim",) + _channel_names("hd") + _channel_names("d")


#: Type-specific extra features: (names, function of the validated config). Measured on the
#: standard suite (local, onnxruntime): held-out ±10 % accuracy conv2d 41→54 %, dwconv 38→50 %.
EXTRA: dict[str, tuple[tuple[str, ...], Any]] = {
    "conv2d": (_GEMM + _ALIGN + _BLOCKED, _conv_view),
    "conv_bn_act": (_GEMM + _ALIGN + _BLOCKED, _conv_view),
    "dwconv": (_GEMM + _ALIGN + _BLOCKED, _conv_view),
    "linear": (_ALIGN, _linear_view),
    "pool": (_POOL + _CHANNELS, _pool_view),
    "global_pool": (_CHANNELS, _channel_view),
    "se": (_CHANNELS, _channel_view),
    "mbconv": (_MBCONV, _mbconv_view),
    "transpose": (_TRANSPOSE, _transpose_view),
    "mha": (_MHA, _mha_view),
}


def _categories(field: str) -> tuple[str, ...]:
    return CATEGORIES.get(field, ())


def kernel_feature_names(kernel_type: str) -> list[str]:
    """Fixed feature names of one kernel type."""
    kt = get(kernel_type)
    out: list[str] = []
    for f, typ in kt.fields.items():
        if typ is str:
            out += [f"{f}={v}" for v in _categories(f)]
        else:
            out.append(f"log_{f}")
    extra = list(EXTRA[kernel_type][0]) if kernel_type in EXTRA else []
    return out + [f"log_{d}" for d in DERIVED_FIELDS] + extra


def pooled_feature_names(types: Sequence[str] | None = None) -> list[str]:
    """Feature names of the pooled all-types model: type one-hot, then the union of type features."""
    types = list(types) if types is not None else names()
    seen: dict[str, None] = {}
    for t in types:
        for n in kernel_feature_names(t):
            seen.setdefault(n, None)
    return [f"type={t}" for t in types] + list(seen)


def kernel_feature_dict(kernel: Kernel) -> dict[str, float]:
    """Every feature of ``kernel`` by name (type features plus its ``type=`` bit)."""
    kt = get(kernel.type)
    cfg = kt.validate(kernel.config)
    out: dict[str, float] = {f"type={kernel.type}": 1.0}
    for f, typ in kt.fields.items():
        v = cfg[f]
        if typ is str:
            out[f"{f}={v}"] = 1.0
        else:
            out[f"log_{f}"] = float(np.log1p(max(float(v), 0.0)))
    for d, v in describe(Kernel(kernel.type, cfg)).items():
        out[f"log_{d}"] = float(np.log1p(max(float(v), 0.0)))
    if kernel.type in EXTRA:
        out.update(EXTRA[kernel.type][1](cfg))
    return out


def feature_matrix(dicts: Sequence[Mapping[str, float]], feature_names: Sequence[str]) -> np.ndarray:
    """Rows of ``dicts`` laid out in ``feature_names`` order (0 for absent features)."""
    X = np.zeros((len(dicts), len(feature_names)), dtype=np.float64)
    col = {n: j for j, n in enumerate(feature_names)}
    for i, d in enumerate(dicts):
        for n, v in d.items():
            j = col.get(n)
            if j is not None:
                X[i, j] = v
    return X


def kernel_features(kernels: Sequence[Kernel], feature_names: Sequence[str]) -> np.ndarray:
    """Feature matrix (n, d) of ``kernels`` in ``feature_names`` order."""
    return feature_matrix([kernel_feature_dict(k) for k in kernels], feature_names)


def kernels_from_rows(kernel_types: Iterable[str], configs: Iterable[str | Mapping[str, Any]]) -> list[Kernel]:
    """Kernels from profile-store rows (``kernel_type`` and JSON ``config`` columns)."""
    out = []
    for t, c in zip(kernel_types, configs, strict=True):
        cfg = json.loads(c) if isinstance(c, str) else dict(c)
        out.append(get(t).make(**cfg))
    return out


def as_kernel(k: Kernel | Mapping[str, Any]) -> Kernel:
    """A Kernel from a Kernel or a ``{"type", "config"}`` dict (as in ``Kernel.to_dict``)."""
    if isinstance(k, Kernel):
        return k
    return get(str(k["type"])).make(**dict(k["config"]))


# ---- whole-model aggregates ------------------------------------------------------------------

def model_feature_names(types: Sequence[str] | None = None) -> list[str]:
    """Names of :func:`model_features`: totals, then per-type kernel counts and time shares."""
    types = list(types) if types is not None else names()
    return (["log_sum_pred_ms", "log_n_kernels", "log_flops", "log_params", "log_bytes", "log_max_kernel_ms"]
            + [f"n_{t}" for t in types] + [f"share_{t}" for t in types])


def model_features(kernels: Sequence[Kernel], kernel_ms: np.ndarray, types: Sequence[str] | None = None
                   ) -> np.ndarray:
    """Aggregate features of one model from its kernels and their predicted latencies (ms)."""
    types = list(types) if types is not None else names()
    ms = np.asarray(kernel_ms, dtype=np.float64)
    total = float(ms.sum())
    flops = params = nbytes = 0.0
    n_t = dict.fromkeys(types, 0.0)
    s_t = dict.fromkeys(types, 0.0)
    for k, m in zip(kernels, ms, strict=True):
        d = describe(k)
        flops += d["flops"]
        params += d["params"]
        nbytes += d["bytes_read"] + d["bytes_written"]
        if k.type in n_t:
            n_t[k.type] += 1.0
            s_t[k.type] += float(m)
    head = [np.log(max(total, 1e-9)), np.log1p(len(kernels)), np.log1p(flops), np.log1p(params),
            np.log1p(nbytes), np.log(max(float(ms.max()) if len(ms) else 0.0, 1e-9))]
    return np.asarray(head + [n_t[t] for t in types] + [s_t[t] / max(total, 1e-12) for t in types])


#: kernel types a runtime typically runs in a blocked spatial layout (ONNX Runtime's NCHWc convs and
#: pools): measured alone, each converts its input and output; inside a network the layout carries over
SPATIAL_TYPES = frozenset({"conv2d", "conv_bn_act", "dwconv", "mbconv", "pool", "global_pool", "se", "patch_embed"})


def context_features(kernels: Sequence[Kernel]) -> np.ndarray:
    """What a network's kernels cost together but not alone: ``[weight MB, spatial activation MB]``.

    Weights (float32 bytes of all parameters): a kernel timed alone reads its weights from cache on
    every run after the first; in a network whose weights exceed the cache they come from memory.
    Spatial activations (bytes read and written by :data:`SPATIAL_TYPES` kernels, weights excluded):
    a kernel timed alone pays layout conversions and an output copy on them that a network does not.
    Measured on the 51-network corpus on ``local``: Σ kernels alone / whole network ranged 0.72
    (LeViT: weight-bound linears) to 1.47 (MobileNetV2: activation-bound convs); docs/generalization.md.
    """
    w = a = 0.0
    for k in kernels:
        d = describe(k)
        wb = 4.0 * float(d["params"])
        w += wb
        if k.type in SPATIAL_TYPES:
            a += max(float(d["bytes_read"]) + float(d["bytes_written"]) - wb, 0.0)
    return np.array([w / 1e6, a / 1e6])


# ---- subnets ------------------------------------------------------------------------------------

def subnet_features(space: Any, archs: Sequence[Any]) -> np.ndarray:
    """Arch features of a search space (encoding + aggregates), ``space.features_batch``."""
    return np.asarray(space.features_batch(list(archs)), dtype=np.float64)
