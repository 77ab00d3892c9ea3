"""Kernel configuration sampling: realistic random configs, common-config grids, and
nn-Meter-style adaptive sampling around configs a predictor gets wrong.

Distributions follow what real CNNs / ViTs use: square resolutions 7–224 (mostly
7/14/28/56/112/224, sometimes odd), channels 8–1024 that grow as resolution shrinks
(mostly multiples of 8), kernels 1/3/5/7, strides 1/2, expand ratios 3/4/6, SE reductions
4/16/24, and token counts / widths of ViT-like models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hwlat.kernels.base import Kernel, KernelType, get
from hwlat.kernels.common import conv_out, make_divisible
from hwlat.kernels.derived import describe

Cfg = dict[str, Any]
Rng = np.random.Generator

COMMON_RES = (7, 14, 28, 56, 112, 224)
TOKENS = (16, 49, 50, 64, 65, 196, 197, 256, 257)
DIMS = (64, 96, 128, 192, 256, 320, 384, 448, 512, 640, 768, 1024)
#: Activations the samplers (and adaptive perturbation) draw from: the list before tanh / leaky_relu
#: joined ACTIVATIONS, so suites and their stored profiles stay as they were.
SAMPLED_ACTIVATIONS: tuple[str, ...] = ("none", "relu", "relu6", "hswish", "hsigmoid", "sigmoid", "swish",
                                        "gelu")
CONV_ACTS = {"relu": 0.4, "relu6": 0.15, "hswish": 0.15, "swish": 0.15, "gelu": 0.05, "sigmoid": 0.05,
             "hsigmoid": 0.05}


# --- primitive draws -------------------------------------------------------------------
def pick(rng: Rng, weighted: Mapping[Any, float] | Sequence[Any]) -> Any:
    """A value from a sequence (uniform) or a {value: weight} mapping."""
    if isinstance(weighted, Mapping):
        keys = list(weighted)
        p = np.array([weighted[k] for k in keys], dtype=float)
        return keys[int(rng.choice(len(keys), p=p / p.sum()))]
    return weighted[int(rng.integers(len(weighted)))]


def log_int(rng: Rng, lo: int, hi: int) -> int:
    """Log-uniform integer in [lo, hi]."""
    return int(min(hi, max(lo, round(math.exp(rng.uniform(math.log(lo), math.log(hi + 0.5)))))))


def resolution(rng: Rng, lo: int = 7, hi: int = 224) -> int:
    """Mostly the common resolutions, sometimes an odd one (OFA-style 128–224 inputs give 8, 15, 60 …)."""
    common = [r for r in COMMON_RES if lo <= r <= hi]
    if common and rng.random() < 0.65:
        return int(pick(rng, common))
    return log_int(rng, lo, hi)


def channels(rng: Rng, res: int | None = None, lo: int = 8, hi: int = 1024) -> int:
    """Channel count, wider at low resolution; 80 % multiples of 8."""
    if res is None or rng.random() < 0.1:
        a, b = lo, hi
    else:  # typical width per stage resolution in CNNs
        a, b = next(r for t, r in ((150, (8, 64)), (80, (16, 128)), (40, (16, 256)), (20, (32, 512)),
                                   (10, (64, 1024)), (0, (96, 1024))) if res >= t)
        a, b = max(a, lo), min(b, hi)
    c = log_int(rng, a, b)
    if rng.random() < 0.8:
        c = max(8, int(round(c / 8)) * 8)
    return int(min(max(c, lo), hi))


def _hw(rng: Rng) -> tuple[int, int]:
    """(h, w): square 90 % of the time."""
    h = resolution(rng)
    return h, (h if rng.random() < 0.9 else resolution(rng, max(7, h // 2), min(224, 2 * h)))


def _tokens(rng: Rng) -> int:
    return int(pick(rng, TOKENS)) if rng.random() < 0.7 else log_int(rng, 4, 1024)


def _dim(rng: Rng) -> int:
    return int(pick(rng, DIMS)) if rng.random() < 0.8 else channels(rng, None, 32, 1024)


# --- per-type samplers ------------------------------------------------------------------
SAMPLERS: dict[str, Callable[[Rng], Cfg]] = {}


def sampler(name: str) -> Callable[[Callable[[Rng], Cfg]], Callable[[Rng], Cfg]]:
    def deco(fn: Callable[[Rng], Cfg]) -> Callable[[Rng], Cfg]:
        SAMPLERS[name] = fn
        return fn
    return deco


def _conv(rng: Rng, with_act: bool) -> Cfg:
    if rng.random() < 0.08:  # network stem: RGB input
        h = pick(rng, (224, 224, 192, 160, 128, 112, 96)) if rng.random() < 0.8 else log_int(rng, 64, 224)
        cin, cout, k, s = 3, channels(rng, None, 8, 64), pick(rng, {3: 0.8, 7: 0.2}), 2
        w, groups = h, 1
    else:
        h, w = _hw(rng)
        cin = channels(rng, h)
        r = rng.random()
        cout = cin if r < 0.35 else (min(1024, cin * int(pick(rng, (2, 4, 6)))) if r < 0.6
                                     else channels(rng, h))
        k = int(pick(rng, {1: 0.45, 3: 0.4, 5: 0.08, 7: 0.07}))
        s = int(pick(rng, {1: 0.8, 2: 0.2}))
        groups = 1
        if rng.random() < 0.15:
            ok = [g for g in (2, 4, 8, 16, 32) if cin % g == 0 and cout % g == 0 and not g == cin == cout]
            groups = int(pick(rng, ok)) if ok else 1
    cfg: Cfg = {"h": h, "w": w, "cin": cin, "cout": cout, "k": k, "s": s, "groups": groups}
    if with_act:
        cfg["act"] = pick(rng, CONV_ACTS)
    cfg["residual"] = int(rng.random() < (0.2 if with_act else 0.3))
    return cfg


sampler("conv2d")(lambda rng: _conv(rng, False))
sampler("conv_bn_act")(lambda rng: _conv(rng, True))


@sampler("dwconv")
def _dwconv(rng: Rng) -> Cfg:
    h, w = _hw(rng)
    c = channels(rng, h, 8, 1024) * int(pick(rng, {1: 0.5, 3: 0.15, 4: 0.1, 6: 0.25}))
    return {"h": h, "w": w, "c": min(c, 1152), "k": pick(rng, {3: 0.5, 5: 0.3, 7: 0.2}),
            "s": pick(rng, {1: 0.75, 2: 0.25}),
            "act": pick(rng, {"none": 0.2, "relu": 0.2, "relu6": 0.25, "hswish": 0.2, "swish": 0.15})}


@sampler("linear")
def _linear(rng: Rng) -> Cfg:
    if rng.random() < 0.35:  # classifier head / SE-less MLP on pooled features
        cin = int(pick(rng, (512, 576, 768, 960, 1024, 1280, 2048))) if rng.random() < 0.7 else channels(rng)
        cout = int(pick(rng, (1000, 1000, 10, 100, 1280, 1024))) if rng.random() < 0.7 else channels(rng)
        return {"m": 1, "cin": cin, "cout": cout, "act": pick(rng, {"none": 0.7, "hswish": 0.15, "relu": 0.15})}
    d, m = _dim(rng), _tokens(rng)
    role = pick(rng, {"qkv": 0.25, "proj": 0.25, "fc1": 0.25, "fc2": 0.25})
    r = int(pick(rng, {4: 0.7, 2: 0.15, 3: 0.15}))
    cin, cout = {"qkv": (d, 3 * d), "proj": (d, d), "fc1": (d, r * d), "fc2": (r * d, d)}[role]
    act = pick(rng, {"gelu": 0.7, "relu": 0.1, "swish": 0.1, "hswish": 0.1}) if role == "fc1" else "none"
    return {"m": m, "cin": cin, "cout": cout, "act": act}


@sampler("matmul")
def _matmul(rng: Rng) -> Cfg:
    if rng.random() < 0.7:  # attention-like products outside the fused pattern
        t, dh, heads = _tokens(rng), int(pick(rng, (32, 48, 64, 64, 96))), int(pick(rng, (1, 3, 4, 6, 8, 12)))
        if rng.random() < 0.5:
            return {"b": heads, "m": t, "k": dh, "n": t}
        return {"b": heads, "m": t, "k": t, "n": dh}
    return {"b": 1, "m": log_int(rng, 8, 1024), "k": log_int(rng, 8, 1024), "n": log_int(rng, 8, 1024)}


@sampler("pool")
def _pool(rng: Rng) -> Cfg:
    h, w = _hw(rng)
    k, s = pick(rng, {(3, 2): 0.4, (2, 2): 0.3, (3, 1): 0.15, (5, 1): 0.07, (9, 1): 0.04, (13, 1): 0.04})
    return {"h": h, "w": w, "c": channels(rng, h), "k": k, "s": s, "mode": pick(rng, {"max": 0.65, "avg": 0.35})}


@sampler("global_pool")
def _global_pool(rng: Rng) -> Cfg:
    h = 7 if rng.random() < 0.5 else resolution(rng, 4, 56)
    c = channels(rng, h, 16, 1280) if rng.random() < 0.7 else int(pick(rng, (960, 1024, 1280, 576, 2048)))
    return {"h": h, "w": h, "c": c, "mode": pick(rng, {"avg": 0.85, "max": 0.15})}


@sampler("batchnorm")
def _batchnorm(rng: Rng) -> Cfg:
    h, w = _hw(rng)
    return {"h": h, "w": w, "c": channels(rng, h)}


def _act_map(rng: Rng) -> tuple[int, int, bool]:
    """(c, hw, is_tokens) of an activation tensor."""
    if rng.random() < 0.7:
        h, w = _hw(rng)
        return channels(rng, h), h * w, False
    return _dim(rng), _tokens(rng), True


@sampler("add")
def _add(rng: Rng) -> Cfg:
    c, hw, tok = _act_map(rng)
    return {"c": c, "hw": hw, "broadcast": int(not tok and rng.random() < 0.1)}


@sampler("mul")
def _mul(rng: Rng) -> Cfg:
    c, hw, tok = _act_map(rng)
    return {"c": c, "hw": hw, "broadcast": int(not tok and rng.random() < 0.5)}


@sampler("activation")
def _activation(rng: Rng) -> Cfg:
    c, hw, tok = _act_map(rng)
    acts = ({"gelu": 0.7, "relu": 0.1, "swish": 0.1, "sigmoid": 0.1} if tok else
            {"relu": 0.2, "relu6": 0.1, "hswish": 0.2, "hsigmoid": 0.1, "sigmoid": 0.1, "swish": 0.2,
             "gelu": 0.1})
    return {"c": c, "hw": hw, "act": pick(rng, acts)}


@sampler("concat")
def _concat(rng: Rng) -> Cfg:
    if rng.random() < 0.8:
        h, w = _hw(rng)
        n = int(pick(rng, {2: 0.6, 3: 0.15, 4: 0.2, 6: 0.05}))
        return {"outer": 1, "cout": max(n, channels(rng, h)), "inner": h * w, "n_inputs": n}
    return {"outer": 1, "cout": _tokens(rng) + 1, "inner": _dim(rng), "n_inputs": 2}  # class token


@sampler("se")
def _se(rng: Rng) -> Cfg:
    h = resolution(rng, 7, 112)
    c = min(1152, channels(rng, h) * int(pick(rng, {1: 0.4, 4: 0.2, 6: 0.4})))
    red = pick(rng, {"mbv3": 0.5, "senet": 0.3, "effnet": 0.2})
    cmid = {"mbv3": make_divisible(c / 4, 8), "senet": max(1, c // 16), "effnet": max(1, c // 24)}[red]
    act = pick(rng, {"relu": 0.6, "swish": 0.4})
    gate = "sigmoid" if act == "swish" else pick(rng, {"hsigmoid": 0.7, "sigmoid": 0.3})
    return {"h": h, "w": h, "c": c, "cmid": cmid, "act": act, "gate": gate}


@sampler("channel_shuffle")
def _channel_shuffle(rng: Rng) -> Cfg:
    h = resolution(rng, 7, 112)
    g = int(pick(rng, {2: 0.7, 3: 0.1, 4: 0.1, 8: 0.1}))
    if g == 2 and rng.random() < 0.6:  # ShuffleNetV2 widths
        c = int(pick(rng, (48, 96, 192, 116, 232, 464, 176, 352, 704, 244, 488, 976)))
    else:
        c = max(g, channels(rng, h) // g * g)
    return {"h": h, "w": h, "c": c, "groups": g}


@sampler("transpose")
def _transpose(rng: Rng) -> Cfg:
    if rng.random() < 0.6:
        return {"a": _dim(rng), "b": _tokens(rng)}
    h = resolution(rng, 7, 56)
    return {"a": channels(rng, h), "b": h * h}  # conv map -> tokens


@sampler("patch_embed")
def _patch_embed(rng: Rng) -> Cfg:
    p = int(pick(rng, {16: 0.5, 8: 0.15, 14: 0.1, 4: 0.15, 32: 0.1}))
    r = int(pick(rng, (64, 96, 112, 128, 160, 192, 224)))
    return {"h": r, "w": r, "cin": 3, "cout": _dim(rng), "p": p}


@sampler("layernorm")
def _layernorm(rng: Rng) -> Cfg:
    return {"t": _tokens(rng) if rng.random() < 0.9 else 1, "d": _dim(rng)}


@sampler("softmax")
def _softmax(rng: Rng) -> Cfg:
    if rng.random() < 0.8:
        t = _tokens(rng)
        return {"rows": int(pick(rng, (1, 3, 4, 6, 8, 12, 16))) * t, "cols": t}
    return {"rows": 1, "cols": int(pick(rng, (1000, 10, 100))) if rng.random() < 0.7 else log_int(rng, 2, 4096)}


@sampler("mha")
def _mha(rng: Rng) -> Cfg:
    d = _dim(rng)
    if rng.random() < 0.7:
        dh = int(pick(rng, [x for x in (32, 64) if d % x == 0] or [d]))
        heads = d // dh
    else:
        heads = int(pick(rng, [x for x in (1, 2, 3, 4, 6, 8, 12, 16) if d % x == 0]))
    return {"t": _tokens(rng), "d": d, "heads": heads}


# OFA MobileNetV3 stages after the e=1 first block: (width, stride, act, se)
_MBV3_STAGES = ((24, 2, "relu", 0), (40, 2, "relu", 1), (80, 2, "hswish", 0), (112, 1, "hswish", 1),
                (160, 2, "hswish", 1))


@sampler("mbconv")
def _mbconv(rng: Rng) -> Cfg:
    k, e = int(pick(rng, (3, 5, 7))), int(pick(rng, (3, 4, 6)))
    if rng.random() < 0.8:  # OFA-MobileNetV3 block at a 128-224 input, width x1.0 / x1.2
        r, mult = int(4 * rng.integers(32, 57)), float(pick(rng, {1.0: 0.7, 1.2: 0.3}))
        h, cin = conv_out(r, 3, 2), 16
        stage = int(rng.integers(len(_MBV3_STAGES)))
        for width, s, _act, _se in _MBV3_STAGES[:stage]:
            h, cin = conv_out(h, 3, s), make_divisible(width * mult, 8)
        width, s, act, se = _MBV3_STAGES[stage]
        cout = make_divisible(width * mult, 8)
        if rng.random() < 0.7:  # a later block of the stage
            h, cin, s = conv_out(h, 3, s), cout, 1
        return {"h": h, "w": h, "cin": cin, "cout": cout, "k": k, "s": s, "e": e, "se": se, "act": act}
    h = resolution(rng, 7, 112)
    cin = channels(rng, h, 8, 320)
    cout = cin if rng.random() < 0.5 else channels(rng, h, 8, 320)
    return {"h": h, "w": h, "cin": cin, "cout": cout, "k": k, "s": int(pick(rng, {1: 0.7, 2: 0.3})),
            "e": int(pick(rng, {1: 0.1, 3: 0.3, 4: 0.2, 6: 0.4})), "se": int(rng.random() < 0.5),
            "act": pick(rng, {"relu6": 0.3, "hswish": 0.3, "swish": 0.3, "relu": 0.1})}


def sample_config(type_name: str, rng: Rng) -> Cfg:
    """One random config of ``type_name`` (not validated: callers validate)."""
    return SAMPLERS[type_name](rng)


# --- common-config grids ----------------------------------------------------------------
def _stages(widths: Sequence[int] = (64, 128, 256, 512)) -> list[tuple[int, int]]:
    return list(zip((56, 28, 14, 7), widths, strict=True))


def _grid_conv(with_act: bool) -> list[Cfg]:
    out: list[Cfg] = []
    extra = {"act": "relu"} if with_act else {}
    for h, c in _stages():  # ResNet basic 3x3, bottleneck 1x1 reduce/expand, downsampling
        out.append({"h": h, "w": h, "cin": c, "cout": c, "k": 3, "s": 1, "groups": 1, **extra, "residual": 0})
        out.append({"h": h, "w": h, "cin": 4 * c, "cout": c, "k": 1, "s": 1, "groups": 1, **extra, "residual": 0})
        out.append({"h": h, "w": h, "cin": c, "cout": 4 * c, "k": 1, "s": 1, "groups": 1, **extra,
                    "residual": int(not with_act)})
        out.append({"h": 2 * h, "w": 2 * h, "cin": c // 2, "cout": c, "k": 3, "s": 2, "groups": 1, **extra,
                    "residual": 0})
    for h, c in _stages((24, 40, 80, 160)):  # MobileNet 1x1 expand / project
        out.append({"h": h, "w": h, "cin": c, "cout": 6 * c, "k": 1, "s": 1, "groups": 1,
                    **({"act": "hswish"} if with_act else {}), "residual": 0})
    out.append({"h": 224, "w": 224, "cin": 3, "cout": 32 if with_act else 64, "k": 3 if with_act else 7,
                "s": 2, "groups": 1, **extra, "residual": 0})
    return out


def _grid_dwconv() -> list[Cfg]:
    return [{"h": h, "w": h, "c": c, "k": k, "s": s, "act": "relu6"}
            for h, c in ((112, 96), (56, 144), (28, 240), (14, 480), (7, 960)) for k in (3, 5, 7) for s in (1, 2)]


GRIDS: dict[str, Callable[[], list[Cfg]]] = {
    "conv2d": lambda: _grid_conv(False),
    "conv_bn_act": lambda: _grid_conv(True),
    "dwconv": _grid_dwconv,
    "linear": lambda: [{"m": 1, "cin": 1280, "cout": 1000, "act": "none"},
                       {"m": 1, "cin": 512, "cout": 1000, "act": "none"}]
    + [{"m": t, "cin": a * d, "cout": b * d, "act": "gelu" if b == 4 else "none"}
       for t in (197, 50) for d in (192, 384, 768) for a, b in ((1, 3), (1, 1), (1, 4), (4, 1))],
    "matmul": lambda: [{"b": hd, "m": 197, "k": 64, "n": 197} for hd in (3, 6, 12)]
    + [{"b": hd, "m": 197, "k": 197, "n": 64} for hd in (3, 6, 12)],
    "pool": lambda: [{"h": 112, "w": 112, "c": 64, "k": 3, "s": 2, "mode": "max"},
                     {"h": 56, "w": 56, "c": 256, "k": 2, "s": 2, "mode": "avg"},
                     {"h": 28, "w": 28, "c": 192, "k": 3, "s": 1, "mode": "avg"},
                     {"h": 20, "w": 20, "c": 256, "k": 5, "s": 1, "mode": "max"}],
    "global_pool": lambda: [{"h": 7, "w": 7, "c": c, "mode": "avg"} for c in (512, 960, 1280, 2048)],
    # pre-activation ResNet stages (BN -> ReLU -> conv) and their 4x-wide bottleneck inputs
    "batchnorm": lambda: [{"h": h, "w": h, "c": m * c} for h, c in _stages() for m in (1, 4)],
    "add": lambda: [{"c": c, "hw": h * h, "broadcast": 0} for h, c in _stages((24, 40, 80, 160))]
    + [{"c": c, "hw": h * h, "broadcast": 0} for h, c in _stages()]
    + [{"c": d, "hw": 197, "broadcast": 0} for d in (192, 384, 768)],
    "mul": lambda: [{"c": c, "hw": h * h, "broadcast": 1} for h, c in _stages((144, 240, 480, 960))],
    "concat": lambda: [{"outer": 1, "cout": c, "inner": h * h, "n_inputs": 2} for h, c in _stages((116, 232, 464, 928))]
    + [{"outer": 1, "cout": 197, "inner": d, "n_inputs": 2} for d in (192, 384, 768)],
    "activation": lambda: [{"c": c, "hw": h * h, "act": a} for h, c in _stages((96, 144, 240, 480))
                           for a in ("hswish", "swish")] + [{"c": 3072, "hw": 197, "act": "gelu"}],
    "se": lambda: [{"h": h, "w": h, "c": c, "cmid": make_divisible(c / 4, 8), "act": "relu", "gate": "hsigmoid"}
                   for h, c in ((28, 72), (28, 120), (14, 480), (14, 672), (7, 672), (7, 960))],
    "channel_shuffle": lambda: [{"h": h, "w": h, "c": c, "groups": 2}
                                for h, c in ((28, 116), (14, 232), (7, 464), (28, 48), (14, 96), (7, 192))],
    "transpose": lambda: [{"a": d, "b": 196} for d in (192, 384, 768)],
    "patch_embed": lambda: [{"h": 224, "w": 224, "cin": 3, "cout": d, "p": 16} for d in (192, 384, 768)],
    "layernorm": lambda: [{"t": 197, "d": d} for d in (192, 384, 768)],
    "softmax": lambda: [{"rows": hd * 197, "cols": 197} for hd in (3, 6, 12)] + [{"rows": 1, "cols": 1000}],
    "mha": lambda: [{"t": 197, "d": d, "heads": d // 64} for d in (192, 384, 768)],
    "mbconv": lambda: [{"h": h, "w": h, "cin": c, "cout": c, "k": k, "s": 1, "e": e, "se": se, "act": a}
                       for h, c, se, a in ((56, 24, 0, "relu"), (28, 40, 1, "relu"), (14, 80, 0, "hswish"),
                                           (14, 112, 1, "hswish"), (7, 160, 1, "hswish"))
                       for k in (3, 5, 7) for e in (3, 6)],
}


def grid(type_name: str) -> list[Cfg]:
    """Common configs of ``type_name`` (empty when it has no grid)."""
    fn = GRIDS.get(type_name)
    return fn() if fn else []


# --- cost estimate ----------------------------------------------------------------------
# Depthwise convs run far below peak (odd channel counts miss the vectorised paths).
_GFLOPS = {"dwconv": 10.0, "mbconv": 20.0}


def estimate_ms(kernel: Kernel) -> float:
    """Conservative latency guess on one desktop CPU core (50 GFLOP/s, 10 for depthwise; 5 GB/s).

    Only used to keep suites inside their time budget; most kernels measure 2-5x faster.
    """
    d = describe(kernel)
    gflops = _GFLOPS.get(kernel.type, 50.0)
    return 1e3 * (d["flops"] / (gflops * 1e9) + (d["bytes_read"] + d["bytes_written"]) / 5e9)


def try_make(kt: KernelType, cfg: Mapping[str, Any]) -> Kernel | None:
    """The kernel of ``cfg``, or None when ``cfg`` is invalid."""
    try:
        return kt.make(**cfg)
    except ValueError:
        return None


# --- adaptive sampling ------------------------------------------------------------------
_SETS: dict[str, tuple[Any, ...]] = {
    "s": (1, 2), "e": (1, 3, 4, 6), "se": (0, 1), "residual": (0, 1), "broadcast": (0, 1), "ceil": (0, 1),
    "mode": ("max", "avg"), "gate": ("hsigmoid", "sigmoid"), "act": SAMPLED_ACTIVATIONS,
    "n_inputs": (2, 3, 4, 5, 6, 8), "heads": (1, 2, 3, 4, 6, 8, 12, 16),
}
_TYPE_SETS: dict[tuple[str, str], tuple[int, ...]] = {
    ("conv2d", "k"): (1, 3, 5, 7), ("conv_bn_act", "k"): (1, 3, 5, 7), ("dwconv", "k"): (3, 5, 7),
    ("mbconv", "k"): (3, 5, 7), ("pool", "k"): (2, 3, 5, 7, 9, 13),
    ("conv2d", "groups"): (1, 2, 4, 8, 16, 32), ("conv_bn_act", "groups"): (1, 2, 4, 8, 16, 32),
    ("channel_shuffle", "groups"): (2, 3, 4, 8), ("patch_embed", "p"): (4, 8, 14, 16, 32),
}
_SPATIAL = {"h", "w"}
_SIZE_HI = 8192


def _perturb_value(type_name: str, field: str, v: Any, rng: Rng) -> Any:
    choices = _TYPE_SETS.get((type_name, field), _SETS.get(field))
    if choices is not None:
        others = [c for c in choices if c != v]
        return pick(rng, others) if others else v
    # a size: scale by 2^U(-1, 1) (half to double), keep multiples of 8 when it was one
    hi = 448 if field in _SPATIAL else _SIZE_HI
    nv = int(round(int(v) * 2.0 ** rng.uniform(-1.0, 1.0)))
    if int(v) % 8 == 0 and rng.random() < 0.7:
        nv = int(round(nv / 8)) * 8
    nv = min(max(nv, 1), hi)
    return nv if nv != v else min(hi, int(v) + 1)


def perturb(type_name: str, cfg: Mapping[str, Any], rng: Rng) -> Cfg:
    """A neighbour of ``cfg``: 1-3 fields changed (square maps stay square); may be invalid."""
    out = dict(cfg)
    fields = list(cfg)
    n = min(len(fields), int(pick(rng, {1: 0.6, 2: 0.3, 3: 0.1})))
    for f in rng.choice(fields, size=n, replace=False):
        f = str(f)
        out[f] = _perturb_value(type_name, f, cfg[f], rng)
        if f in _SPATIAL and cfg.get("h") == cfg.get("w"):
            out["w" if f == "h" else "h"] = out[f]
    return out


def adaptive_sample(kernel_type: str | KernelType, configs: Sequence[Mapping[str, Any] | Kernel],
                    rel_errors: Sequence[float], n: int, rng: Rng, max_ms: float = 60.0) -> list[Kernel]:
    """Up to ``n`` new kernels near the configs with the largest prediction errors (nn-Meter style).

    Seeds are the top quarter of ``configs`` by ``|rel_error|`` (at least one), drawn with
    probability proportional to their error; each new config perturbs 1-3 fields within valid
    ranges. Configs already in ``configs``, invalid ones and ones over ``max_ms``
    (:func:`estimate_ms`) are skipped; fewer than ``n`` come back if the neighbourhood runs out.
    """
    kt = get(kernel_type) if isinstance(kernel_type, str) else kernel_type
    cfgs = [dict(c.config) if isinstance(c, Kernel) else dict(c) for c in configs]
    if len(cfgs) != len(rel_errors):
        raise ValueError(f"adaptive_sample: {len(cfgs)} configs but {len(rel_errors)} rel_errors")
    if not cfgs or n <= 0:
        return []
    err = np.abs(np.asarray(rel_errors, dtype=float))
    err = np.nan_to_num(err, nan=0.0, posinf=0.0)
    top = np.argsort(-err, kind="stable")[: max(1, math.ceil(len(cfgs) / 4))]
    w = err[top] + 1e-12
    p = w / w.sum()
    seen = {kt.make(**c).key() for c in cfgs if try_make(kt, c) is not None}
    out: list[Kernel] = []
    for _ in range(60 * n):
        if len(out) >= n:
            break
        base = cfgs[int(top[int(rng.choice(len(top), p=p))])]
        k = try_make(kt, perturb(kt.name, base, rng))
        if k is None or k.key() in seen or estimate_ms(k) > max_ms:
            continue
        seen.add(k.key())
        out.append(k)
    return out
