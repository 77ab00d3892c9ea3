"""Pattern passes: each scans the graph in order and claims the nodes of the kernels it recognises.

A rule set (``rules_<runtime>.py``) lists the passes in priority order; docs/kernels.md is the spec.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from hwlat.decompose.acts import _is, _other, act_from, fused_act
from hwlat.decompose.context import Ctx, Match
from hwlat.decompose.graph import Graph, Shape

GLUE_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Constant", "Shape", "Dropout",
                      "Cast", "Size",
                      # data movement on activations that runtimes do as views / tiny copies (ViT cls-token
                      # select, unbind of a fused QKV outside an attention pattern); see docs/kernels.md
                      "Gather", "Slice", "Split"})
# Ops the attention pattern absorbs between the QKV projection and Q, K, V (and after ·V).
_MOVE_OPS = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Split", "Gather", "Slice", "Flatten", "Identity",
             "Mul", "Div")


def _prod(xs: Sequence[int]) -> int:
    return int(math.prod(int(v) for v in xs))


def _axes(g: Graph, i: int) -> list[int] | None:
    """Reduce axes from the attribute (opset < 18) or the second input (opset ≥ 18)."""
    ax = g.attr(i, "axes")
    if ax is None and len(g.nodes[i].input) > 1 and g.nodes[i].input[1]:
        v = g.const(g.nodes[i].input[1])
        ax = None if v is None else [int(a) for a in v.reshape(-1)]
    return None if ax is None else list(ax)


def _norm_axes(axes: Sequence[int], rank: int) -> list[int]:
    return sorted(a % rank for a in axes)


# ---- convolutions --------------------------------------------------------------------------------
def conv_params(g: Graph, i: int) -> dict[str, int] | None:
    """(h, w, cin, cout, k, s, groups) of a 2-D ``Conv`` with a constant weight and known shapes."""
    n = g.nodes[i]
    if not _is(g, i, "Conv") or len(n.input) < 2 or not g.is_static(n.input[1]):
        return None
    xs, ws, ys = g.shape(n.input[0]), g.shape(n.input[1]), g.shape(n.output[0])
    if xs is None or ws is None or ys is None or len(xs) not in (3, 4) or len(ws) != len(xs):
        return None
    ks = g.attr(i, "kernel_shape", list(ws[2:]))
    st = g.attr(i, "strides", [1, 1])
    # a 1-D conv ([1, C, L], ECA's channel attention) runs as a 2-D conv over an L x 1 map
    h, w = (xs[2], xs[3]) if len(xs) == 4 else (xs[2], 1)
    return {"h": h, "w": w, "cin": xs[1], "cout": ws[0], "k": int(max(ks)), "s": int(max(st)),
            "groups": int(g.attr(i, "group", 1))}


def _is_dw(p: dict[str, int]) -> bool:
    return p["groups"] > 1 and p["groups"] == p["cin"] == p["cout"]


def _is_patchify(g: Graph, i: int, p: dict[str, int]) -> bool:
    """ViT patch embedding: kernel == stride > 1, no padding, one group (docs/kernels.md ``patch_embed``)."""
    pads = g.attr(i, "pads", [0, 0, 0, 0])
    return p["k"] == p["s"] > 1 and p["groups"] == 1 and not any(pads) and \
        g.attr(i, "auto_pad", "NOTSET") in ("NOTSET", b"NOTSET", "VALID", b"VALID")


def _conv_bn(ctx: Ctx, i: int) -> tuple[list[int], str]:
    """Conv node ``i`` plus a following single-reader BatchNormalization: (nodes, output tensor)."""
    g = ctx.g
    out = g.nodes[i].output[0]
    b = g.only_consumer(out)
    if _is(g, b, "BatchNormalization") and ctx.free(b) and b is not None and g.nodes[b].input[0] == out:
        return [i, b], g.nodes[b].output[0]
    return [i], out


def _residual_add(ctx: Ctx, conv: int, t: str) -> tuple[int, str] | None:
    """The ``Add`` fusing into conv ``conv`` whose (Conv[+BN]) output is ``t``, and its other operand.

    Same-shape activation operand only. When both operands are Conv[+BN] chains, the Add goes to the
    conv that runs *later* (the other operand is then ready) — docs/kernels.md.
    """
    g = ctx.g
    a = g.only_consumer(t)
    if not _is(g, a, "Add") or not ctx.free(a) or a is None:
        return None
    o = _other(g, a, t)
    if o is None or o == t or g.is_static(o) or g.shape(o) != g.shape(t) or g.shape(t) is None:
        return None
    oc = _chain_conv(ctx, o)
    if oc is not None and oc > conv:
        return None
    return a, o


def _chain_conv(ctx: Ctx, t: str) -> int | None:
    """The free, non-depthwise Conv whose Conv[+BN] chain ends in ``t`` with single readers, else None."""
    g = ctx.g
    p = g.producer.get(t)
    if _is(g, p, "BatchNormalization") and p is not None:
        bt = g.nodes[p].input[0]
        if g.only_consumer(bt) != p:
            return None
        p = g.producer.get(bt)
    if not _is(g, p, "Conv") or p is None or not ctx.free(p):
        return None
    prm = conv_params(g, p)
    if prm is None or _is_dw(prm):
        return None
    return p


def _pads(g: Graph, i: int) -> list[int] | None:
    """A ``Pad`` node's pads (attribute before opset 11, constant input after), None if not constant."""
    n = g.nodes[i]
    if len(n.input) > 1 and n.input[1]:
        v = g.const(n.input[1])
        return None if v is None else [int(x) for x in v.reshape(-1)]
    pads = g.attr(i, "pads")
    return None if pads is None else [int(x) for x in pads]


def zero_pad_into(ctx: Ctx, t: str) -> int | None:
    """The free ``Pad`` producing ``t`` that onnxruntime's PadFusion folds into its one reader (a Conv or
    pool): constant mode, value 0, non-negative pads on the two spatial dims only (TF-'same' padding)."""
    g = ctx.g
    i = g.producer.get(t)
    if not _is(g, i, "Pad") or i is None or not ctx.free(i) or g.only_consumer(t) is None:
        return None
    mode = g.attr(i, "mode", b"constant")
    if (mode.decode() if isinstance(mode, bytes) else mode) != "constant":
        return None
    n = g.nodes[i]
    value = g.scalar(n.input[2]) if len(n.input) > 2 and n.input[2] else float(g.attr(i, "value", 0.0))
    pads = _pads(g, i)
    if value != 0.0 or pads is None or len(pads) != 8 or any(v < 0 for v in pads):
        return None
    if pads[0] or pads[1] or pads[4] or pads[5] or (len(n.input) > 3 and n.input[3]):
        return None
    return i


def match_conv(ctx: Ctx) -> None:
    """[zero Pad →] Conv [+BN] [+residual Add] [+activation] → conv2d / conv_bn_act; depthwise → dwconv.

    A fused Pad's input gives the kernel's h, w: the kernel's own 'same' padding then yields the same
    output size (docs/kernels.md)."""
    g = ctx.g
    for i in range(len(g.nodes)):
        if not ctx.free(i) or not _is(g, i, "Conv"):
            continue
        p = conv_params(g, i)
        if p is None:
            ctx.reasons.setdefault(i, "not a 2-D conv with constant weights and known shapes")
            continue
        pad = zero_pad_into(ctx, g.nodes[i].input[0])
        ps = g.shape(g.nodes[pad].input[0]) if pad is not None else None
        if pad is not None and ps is not None and len(ps) == 4:
            p = {**p, "h": ps[2], "w": ps[3]}
        else:
            pad = None
        if _is_patchify(g, i, p) and pad is None:
            ctx.claim(Match("patch_embed", {"h": p["h"], "w": p["w"], "cin": p["cin"], "cout": p["cout"],
                                            "p": p["k"]}, [i], [g.nodes[i].input[0]], [g.nodes[i].output[0]]))
            continue
        nodes, t = _conv_bn(ctx, i)
        ins = [g.nodes[i].input[0]]
        if pad is not None:
            nodes.insert(0, pad)
            ins = [g.nodes[pad].input[0]]
        dw = _is_dw(p)
        residual = 0
        if not dw and ctx.rules.fuse_residual:
            ra = _residual_add(ctx, i, t)
            if ra is not None:
                nodes.append(ra[0])
                ins.append(ra[1])
                t = g.nodes[ra[0]].output[0]
                residual = 1
        act = fused_act(ctx, t)
        if act is not None:
            nodes += act.nodes
            t = act.out
        a = act.name if act else "none"
        if dw:
            m = Match("dwconv", {"h": p["h"], "w": p["w"], "c": p["cin"], "k": p["k"], "s": p["s"], "act": a},
                      nodes, ins, [t])
        elif act is None:
            m = Match("conv2d", {**p, "residual": residual}, nodes, ins, [t])
        else:
            cfg = {k: p[k] for k in ("h", "w", "cin", "cout", "k", "s", "groups")}
            m = Match("conv_bn_act", {**cfg, "act": a, "residual": residual}, nodes, ins, [t])
        ctx.claim(m)


# ---- linear / matmul -----------------------------------------------------------------------------
def match_linear(ctx: Ctx) -> None:
    """Gemm, or MatMul with a constant weight [+ Add bias], [+ activation] → linear."""
    g = ctx.g
    for i in range(len(g.nodes)):
        if not ctx.free(i) or not _is(g, i, "Gemm", "MatMul"):
            continue
        n = g.nodes[i]
        a, b = n.input[0], n.input[1]
        if g.is_static(a) or not g.is_static(b):
            continue
        xs, bs, ys = g.shape(a), g.shape(b), g.shape(n.output[0])
        if xs is None or bs is None or ys is None or len(bs) != 2:
            ctx.reasons.setdefault(i, "weight or shapes unknown")
            continue
        nodes, t = [i], n.output[0]
        if n.op_type == "Gemm":
            if g.attr(i, "transA", 0):
                continue
            m, cin = xs[0], xs[1]
        else:
            m, cin = _prod(xs[:-1]), xs[-1]
            add = g.only_consumer(t)
            if _is(g, add, "Add") and ctx.free(add) and add is not None:
                o = _other(g, add, t)
                if o is not None and g.is_static(o) and _prod(g.shape(o) or (ys[-1] + 1,)) == ys[-1]:
                    nodes.append(add)
                    t = g.nodes[add].output[0]
        act = fused_act(ctx, t)
        if act is not None:
            nodes += act.nodes
            t = act.out
        ctx.claim(Match("linear", {"m": m, "cin": cin, "cout": ys[-1], "act": act.name if act else "none"},
                        nodes, [a], [t]))


def _matmul(ctx: Ctx, i: int) -> Match | None:
    g = ctx.g
    n = g.nodes[i]
    xa, xb, ys = g.shape(n.input[0]), g.shape(n.input[1]), g.shape(n.output[0])
    if xa is None or xb is None or ys is None or len(xa) < 2 or len(xb) < 2:
        return None
    return Match("matmul", {"b": _prod(ys[:-2]), "m": xa[-2], "k": xa[-1], "n": ys[-1]}, [i],
                 [n.input[0], n.input[1]], [n.output[0]])


# ---- attention -----------------------------------------------------------------------------------
def match_mha(ctx: Ctx) -> None:
    """MatMul(Q, Kᵀ) → [scale / mask] → Softmax → MatMul(·, V), with the reshapes/transposes/splits
    between the projections and Q/K/V and after ·V → mha. SDPA exports scale Q and Kᵀ each by √scale."""
    g = ctx.g
    for i in range(len(g.nodes)):
        if not ctx.free(i) or not _is(g, i, "Softmax"):
            continue
        core = [i]
        cur = g.nodes[i].input[0]
        while True:  # scale / additive mask between QKᵀ and Softmax
            p = g.producer.get(cur)
            if (_is(g, p, "Mul", "Div", "Add", "Where") and p is not None and ctx.free(p)
                    and len(g.dyn_inputs(p)) == 1 and g.only_consumer(cur) == (core[-1])):
                core.append(p)
                cur = g.dyn_inputs(p)[0]
                continue
            break
        mm1 = g.producer.get(cur)
        if (not _is(g, mm1, "MatMul") or mm1 is None or not ctx.free(mm1) or len(g.dyn_inputs(mm1)) != 2
                or g.only_consumer(cur) != core[-1]):
            continue
        cur = g.nodes[i].output[0]
        c = g.only_consumer(cur)
        while _is(g, c, "Dropout", "Cast", "Identity") and c is not None and ctx.free(c):
            core.append(c)
            cur = g.nodes[c].output[0]
            c = g.only_consumer(cur)
        if (not _is(g, c, "MatMul") or c is None or not ctx.free(c) or g.nodes[c].input[0] != cur
                or g.is_static(g.nodes[c].input[1])):
            continue
        mm2 = c
        qs = g.shape(g.nodes[mm1].input[0])
        if qs is None or len(qs) < 2:
            continue
        group = set(core) | {mm1, mm2}
        _absorb_upstream(ctx, group)
        cur = g.nodes[mm2].output[0]
        c = g.only_consumer(cur)
        outs = [cur]
        while _is(g, c, "Transpose", "Reshape") and c is not None and ctx.free(c):
            group.add(c)
            cur = g.nodes[c].output[0]
            outs = [cur]
            c = g.only_consumer(cur)
        heads = _prod(qs[:-2])
        ins = sorted({t for n in group for t in g.dyn_inputs(n) if g.producer.get(t) not in group})
        ctx.claim(Match("mha", {"t": qs[-2], "d": heads * qs[-1], "heads": heads}, sorted(group), ins, outs))


def _absorb_upstream(ctx: Ctx, group: set[int]) -> None:
    """Add movement nodes feeding ``group`` whose every output is read only inside ``group``."""
    g = ctx.g
    changed = True
    while changed:
        changed = False
        for n in sorted(group):
            for t in g.dyn_inputs(n):
                p = g.producer.get(t)
                if p is None or p in group or not ctx.free(p) or not _is(g, p, *_MOVE_OPS):
                    continue
                if g.op(p) in ("Mul", "Div") and len(g.dyn_inputs(p)) != 1:
                    continue
                outs = [o for o in g.nodes[p].output if o]
                if any(o in g.graph_outputs or not _data_readers(g, o) <= group for o in outs):
                    continue
                group.add(p)
                changed = True


def _data_readers(g: Graph, t: str) -> set[int]:
    """Readers of ``t`` except ``Shape``-like ones whose outputs are static (they read no data)."""
    return {c for c in g.consumer_set(t) if not all(g.is_static(o) for o in g.nodes[c].output if o)}


# ---- layer norm ----------------------------------------------------------------------------------
def match_layernorm(ctx: Ctx) -> None:
    """LayerNormalization, or ReduceMean→Sub→Pow→ReduceMean→Add→Sqrt→Div[→Mul γ][→Add β] → layernorm."""
    g = ctx.g
    for i in range(len(g.nodes)):
        if not ctx.free(i):
            continue
        x = g.nodes[i].input[0] if g.nodes[i].input else ""
        xs = g.shape(x)
        if xs is None or not xs:
            continue
        if _is(g, i, "LayerNormalization"):
            axis = int(g.attr(i, "axis", -1)) % len(xs)
            ctx.claim(Match("layernorm", {"t": _prod(xs[:axis]), "d": _prod(xs[axis:])}, [i], [x],
                            [g.nodes[i].output[0]]))
            continue
        if _is(g, i, "ReduceMean"):
            nodes = _decomposed_ln(ctx, i, x, len(xs))
            if nodes is not None:
                ctx.claim(Match("layernorm", {"t": _prod(xs[:-1]), "d": xs[-1]}, nodes, [x],
                                [g.nodes[nodes[-1]].output[0]]))


def _decomposed_ln(ctx: Ctx, r1: int, x: str, rank: int) -> list[int] | None:
    g = ctx.g
    ax = _axes(g, r1)
    if ax is None or _norm_axes(ax, rank) != [rank - 1]:
        return None
    mean = g.nodes[r1].output[0]
    sub = g.only_consumer(mean)
    if not _is(g, sub, "Sub") or sub is None or list(g.nodes[sub].input) != [x, mean]:
        return None
    d = g.nodes[sub].output[0]
    cons = g.consumer_set(d)
    sq = next((c for c in cons if _is(g, c, "Pow", "Mul") and c is not None and
               (g.op(c) == "Mul" and list(g.nodes[c].input) == [d, d]
                or g.op(c) == "Pow" and abs((g.scalar(g.nodes[c].input[1]) or 0) - 2) < 1e-6)), None)
    div = next((c for c in cons if _is(g, c, "Div") and g.nodes[c].input[0] == d), None)
    if sq is None or div is None or cons != {sq, div}:
        return None
    r2 = g.only_consumer(g.nodes[sq].output[0])
    if not _is(g, r2, "ReduceMean") or r2 is None:
        return None
    eps = g.only_consumer(g.nodes[r2].output[0])
    if not _is(g, eps, "Add") or eps is None:
        return None
    sqrt = g.only_consumer(g.nodes[eps].output[0])
    if not _is(g, sqrt, "Sqrt") or sqrt is None or g.only_consumer(g.nodes[sqrt].output[0]) != div:
        return None
    nodes = [r1, sub, sq, r2, eps, sqrt, div]
    t = g.nodes[div].output[0]
    for op in ("Mul", "Add"):  # affine γ, β
        c = g.only_consumer(t)
        if _is(g, c, op) and c is not None and g.is_static(_other(g, c, t) or ""):
            nodes.append(c)
            t = g.nodes[c].output[0]
    return nodes if ctx.free(*nodes) else None


# ---- channel shuffle -----------------------------------------------------------------------------
def match_channel_shuffle(ctx: Ctx) -> None:
    """Reshape [1,C,H,W]→[1,g,C/g,H,W] → Transpose(0,2,1,3,4) → Reshape back → channel_shuffle."""
    g = ctx.g
    for i in range(len(g.nodes)):
        if not ctx.free(i) or not _is(g, i, "Reshape"):
            continue
        xs, rs = g.shape(g.nodes[i].input[0]), g.shape(g.nodes[i].output[0])
        if xs is None or rs is None or len(xs) != 4 or len(rs) != 5:
            continue
        tr = g.only_consumer(g.nodes[i].output[0])
        if not _is(g, tr, "Transpose") or tr is None or list(g.attr(tr, "perm", [])) != [0, 2, 1, 3, 4]:
            continue
        r2 = g.only_consumer(g.nodes[tr].output[0])
        if not _is(g, r2, "Reshape") or r2 is None or g.shape(g.nodes[r2].output[0]) != xs:
            continue
        if not ctx.free(tr, r2):
            continue
        ctx.claim(Match("channel_shuffle", {"h": xs[2], "w": xs[3], "c": xs[1], "groups": rs[1]}, [i, tr, r2],
                        [g.nodes[i].input[0]], [g.nodes[r2].output[0]]))


# ---- squeeze-excitation --------------------------------------------------------------------------
def _is_global_pool(g: Graph, i: int, x: str) -> bool:
    xs = g.shape(x)
    if xs is None or len(xs) != 4:
        return False
    if _is(g, i, "GlobalAveragePool"):
        return True
    if _is(g, i, "ReduceMean"):
        ax = _axes(g, i)
        return ax is not None and _norm_axes(ax, 4) == [2, 3] and int(g.attr(i, "keepdims", 1)) == 1
    return False


def _conv1x1(ctx: Ctx, i: int | None, cin: int) -> dict[str, int] | None:
    if i is None or not ctx.free(i):
        return None
    p = conv_params(ctx.g, i)
    if p is None or p["k"] != 1 or p["groups"] != 1 or p["cin"] != cin:
        return None
    return p


def match_se(ctx: Ctx) -> None:
    """GlobalAveragePool → Conv1x1 [+act] → Conv1x1 → HardSigmoid/Sigmoid → Mul(x) → se."""
    g = ctx.g
    for i in range(len(g.nodes)):
        if not ctx.free(i) or not g.nodes[i].input:
            continue
        x = g.nodes[i].input[0]
        if not _is_global_pool(g, i, x):
            continue
        xs = g.shape(x)
        assert xs is not None
        c1 = g.only_consumer(g.nodes[i].output[0])
        p1 = _conv1x1(ctx, c1, xs[1])
        if p1 is None or c1 is None:
            continue
        t = g.nodes[c1].output[0]
        nodes = [i, c1]
        act = fused_act(ctx, t)
        if act is not None:
            nodes += act.nodes
            t = act.out
        c2 = g.only_consumer(t)
        p2 = _conv1x1(ctx, c2, p1["cout"])
        if p2 is None or c2 is None or p2["cout"] != xs[1]:
            continue
        nodes.append(c2)
        gate = fused_act(ctx, g.nodes[c2].output[0])
        if gate is None or gate.name not in ("hsigmoid", "sigmoid"):
            continue
        nodes += gate.nodes
        m = g.only_consumer(gate.out)
        if not _is(g, m, "Mul") or m is None or not ctx.free(m) or _other(g, m, gate.out) != x:
            continue
        nodes.append(m)
        if not ctx.free(*nodes):
            continue
        ctx.claim(Match("se", {"h": xs[2], "w": xs[3], "c": xs[1], "cmid": p1["cout"],
                               "act": act.name if act else "none", "gate": gate.name},
                        sorted(nodes), [x], [g.nodes[m].output[0]]))


# ---- standalone activations ----------------------------------------------------------------------
def match_activation(ctx: Ctx) -> None:
    """Activation units not fused into a conv / linear → activation(c, hw, act)."""
    g = ctx.g
    for i in range(len(g.nodes)):
        if not ctx.free(i):
            continue
        for x in dict.fromkeys(g.dyn_inputs(i)):
            a = act_from(ctx, i, x)
            if a is None:
                continue
            s = g.shape(x)
            if s is None:
                ctx.reasons.setdefault(i, "input shape unknown")
                break
            c, hw = _c_hw(s)
            ctx.claim(Match("activation", {"c": c, "hw": hw, "act": a.name}, a.nodes, [x], [a.out]))
            break


def _c_hw(s: Shape) -> tuple[int, int]:
    """(c, hw) view of an activation: NCHW → (C, H·W); tokens [1,T,D] → (D, T); else (last, rest)."""
    if len(s) == 4:
        return s[1], s[2] * s[3]
    if not s:
        return 1, 1
    return s[-1], _prod(s[:-1])


# ---- everything else -----------------------------------------------------------------------------
def _transpose_view(s: Shape, perm: Sequence[int]) -> tuple[int, int, int, int] | None:
    """View a transpose as ``[n, a, b, inner] -> [n, b, a, inner]`` (size-1 dims ignored): leading dims
    that stay put form a batch ``n``, trailing ones a contiguous block ``inner``, and the dims between
    must swap as two groups. None when they do not."""
    kept = [p for p in perm if s[p] != 1]
    order = sorted(kept)
    lead = 0
    while lead < len(kept) and kept[lead] == order[lead]:
        lead += 1
    trail = 0
    while trail < len(kept) - lead and kept[-1 - trail] == order[-1 - trail]:
        trail += 1
    mid_k, mid_o = kept[lead:len(kept) - trail], order[lead:len(order) - trail]
    for cut in range(1, len(mid_o)):
        if mid_k == mid_o[cut:] + mid_o[:cut]:
            return (_prod([s[p] for p in order[:lead]]), _prod([s[p] for p in mid_o[:cut]]),
                    _prod([s[p] for p in mid_o[cut:]]), _prod([s[p] for p in order[len(order) - trail:]]))
    return None


def _transpose_match(v: tuple[int, int, int, int]) -> Match:
    """A transpose ``[n, a, b, inner] -> [n, b, a, inner]`` as a kernel: element-wise (inner 1) as the
    ``transpose`` kernel over ``[n·a, b]`` (same traffic and access pattern); moving contiguous blocks
    (inner > 1) as the block copy of a two-input concat (docs/kernels.md)."""
    n, a, b, inner = v
    if inner == 1:
        return Match("transpose", {"a": n * a, "b": b}, [])
    return Match("concat", {"outer": n * a * b, "cout": inner, "inner": 1, "n_inputs": 2}, [])


# Elementwise operators with no kernel type of their own, measured as the kernel with the same
# memory traffic and a similar per-element cost (docs/kernels.md): two-operand ops as add / mul,
# one-operand math as a standalone activation (cheap ops as relu, transcendental ones as sigmoid).
_BINARY_AS = {"Add": "add", "Mul": "mul", "Sub": "add", "Div": "mul", "Pow": "mul", "Max": "add", "Min": "add",
              "Mod": "mul", "PRelu": "mul", "Where": "add", "Equal": "add", "Less": "add", "Greater": "add",
              "LessOrEqual": "add", "GreaterOrEqual": "add", "And": "add", "Or": "add", "Xor": "add",
              "BitShift": "add", "Sum": "add", "Mean": "add"}
_UNARY_AS = {"Neg": "relu", "Abs": "relu", "Sqrt": "relu", "Reciprocal": "relu", "Floor": "relu", "Ceil": "relu",
             "Round": "relu", "Sign": "relu", "Not": "relu", "IsNaN": "relu", "IsInf": "relu", "Relu": "relu",
             "Clip": "relu6", "Exp": "sigmoid", "Log": "sigmoid", "Erf": "sigmoid", "Softplus": "sigmoid",
             "Softsign": "sigmoid", "Sin": "sigmoid", "Cos": "sigmoid", "Tan": "sigmoid", "Elu": "sigmoid",
             "Selu": "sigmoid", "Celu": "sigmoid", "Mish": "swish", "ThresholdedRelu": "relu",
             "HardSigmoid": "hsigmoid", "HardSwish": "hswish", "Sigmoid": "sigmoid", "Tanh": "tanh"}

_COPY_OPS = frozenset({"Pad", "Resize", "Upsample", "ScatterND", "ScatterElements", "GatherElements", "GatherND"})

# Reductions measured as a global pool: the mode only picks max vs. add (same traffic).
_REDUCE_MODES = {"ReduceMean": "avg", "ReduceSum": "avg", "ReduceL1": "avg", "ReduceL2": "avg",
                 "ReduceSumSquare": "avg", "ReduceLogSum": "avg", "ReduceLogSumExp": "avg", "ReduceProd": "avg",
                 "ReduceMax": "max", "ReduceMin": "max"}


def match_rest(ctx: Ctx) -> None:
    """Pools, global pools, standalone BN, add/mul, concat, transpose, softmax, activation×activation
    matmul, glue."""
    g = ctx.g
    for i in range(len(g.nodes)):
        if not ctx.free(i):
            continue
        n = g.nodes[i]
        op = n.op_type
        outs = [o for o in n.output if o]
        if n.domain not in ("", "ai.onnx"):
            continue
        if all(g.is_static(t) for t in n.input) or op in GLUE_OPS:
            ctx.glue.add(i)
            continue
        if op == "Pad" and _pad_left_for_pool(ctx, i):
            continue
        x = g.dyn_inputs(i)[0]
        pad = zero_pad_into(ctx, x) if op in ("MaxPool", "AveragePool") else None
        if pad is not None:  # onnxruntime's PadFusion: the pool pads itself
            x = g.nodes[pad].input[0]
        xs, ys = g.shape(x), g.shape(outs[0]) if outs else None
        if xs is None or ys is None:
            ctx.reasons.setdefault(i, "shape unknown")
            continue
        m = _rest_one(ctx, i, op, x, xs, ys)
        if m is not None:
            m.nodes, m.inputs, m.outputs = [i], g.dyn_inputs(i), outs
            if pad is not None:
                m.nodes, m.inputs = [pad, i], [x]
            ctx.claim(m)


def _pad_left_for_pool(ctx: Ctx, i: int) -> bool:
    """Pad ``i`` will be fused into the pool reading it (claimed with the pool, later in node order)."""
    g = ctx.g
    out = g.nodes[i].output[0]
    c = g.only_consumer(out)
    return zero_pad_into(ctx, out) == i and _is(g, c, "MaxPool", "AveragePool") and ctx.free(c)


def _einsum(g: Graph, i: int, ys: Shape) -> Match | None:
    """A two-operand ``Einsum`` as the batched matmul doing the same multiply-adds: letters in both
    operands and the output are the batch, in both operands only the contraction, in one operand and
    the output its rows / columns (relative position terms of MViT, HaloNet)."""
    eq = g.attr(i, "equation", b"")
    eq = (eq.decode() if isinstance(eq, bytes) else str(eq)).replace(" ", "")
    ins = [g.shape(t) for t in g.nodes[i].input]
    if "->" not in eq or "." in eq or len(ins) != 2 or any(s is None for s in ins):
        return None
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    if len(terms) != 2 or any(len(t) != len(s or ()) for t, s in zip(terms, ins, strict=True)):
        return None
    size = {c: int(d) for t, s in zip(terms, ins, strict=True) for c, d in zip(t, s or (), strict=True)}
    a, b = set(terms[0]), set(terms[1])
    dims = {"b": (a & b) & set(out), "k": (a & b) - set(out), "m": (a - b) & set(out), "n": (b - a) & set(out)}
    cfg = {key: _prod([size[c] for c in cs]) for key, cs in dims.items()}
    return Match("matmul", {"b": cfg["b"], "m": cfg["m"], "k": cfg["k"], "n": cfg["n"]}, [])


def _rest_one(ctx: Ctx, i: int, op: str, x: str, xs: Shape, ys: Shape) -> Match | None:
    g = ctx.g
    if op in ("MaxPool", "AveragePool") and len(xs) == 4:
        ks = list(g.attr(i, "kernel_shape", [1, 1]))
        k = int(max(ks))
        s = int(max(g.attr(i, "strides", [1])))
        if ks == list(xs[2:]) and ys[2:] == (1, 1) and not any(g.attr(i, "pads", [0])):
            # a window over the whole map (torch's adaptive pool to 1x1 exports like this)
            return Match("global_pool", {"h": xs[2], "w": xs[3], "c": xs[1],
                                         "mode": "max" if op == "MaxPool" else "avg"}, [])
        # pads are taken as the kernel's (k-1)//2 (docs/kernels.md); ceil_mode selects the rounding
        return Match("pool", {"h": xs[2], "w": xs[3], "c": xs[1], "k": k, "s": s,
                              "mode": "max" if op == "MaxPool" else "avg",
                              "ceil": int(bool(g.attr(i, "ceil_mode", 0)))}, [])
    if op == "BatchNormalization" and 2 <= len(xs) <= 4:
        # a BN no conv absorbed (match_conv fuses Conv→BN first): its own op in onnxruntime,
        # MUL+ADD in TFLite
        if int(g.attr(i, "training_mode", 0)):
            ctx.reasons.setdefault(i, "training-mode BatchNormalization")
            return None
        h = xs[2] if len(xs) > 2 else 1
        w = xs[3] if len(xs) > 3 else 1
        return Match("batchnorm", {"h": h, "w": w, "c": xs[1]}, [])
    if op in ("GlobalAveragePool", "GlobalMaxPool") and len(xs) == 4:
        return Match("global_pool", {"h": xs[2], "w": xs[3], "c": xs[1],
                                     "mode": "avg" if op == "GlobalAveragePool" else "max"}, [])
    if op in _REDUCE_MODES:
        ax = _axes(g, i)
        mode = _REDUCE_MODES[op]
        if ax is None and len(g.nodes[i].input) > 1 and g.nodes[i].input[1]:
            ctx.reasons.setdefault(i, "reduce axes computed at run time")
            return None
        if ax is None and int(g.attr(i, "noop_with_empty_axes", 0)):
            ctx.glue.add(i)  # reduces nothing: a copy at most
            return None
        axes = _norm_axes(ax if ax is not None else range(len(xs)), max(len(xs), 1))
        if len(xs) == 4 and axes == [2, 3]:
            return Match("global_pool", {"h": xs[2], "w": xs[3], "c": xs[1], "mode": mode}, [])
        # Any other reduction (a token mean over axis 1, a mean over channels or the last axis):
        # one output per kept element, each reducing prod(reduced dims) inputs: a global pool of
        # that many positions per channel (docs/kernels.md).
        red = _prod([xs[a] for a in axes])
        return Match("global_pool", {"h": max(red, 1), "w": 1, "c": max(_prod(xs) // max(red, 1), 1),
                                     "mode": mode}, [])
    if op in _BINARY_AS:
        c, hw = _c_hw(ys)
        ins = [g.shape(t) for t in g.nodes[i].input if t]
        bc = int(any(s != ys for s in ins))
        return Match(_BINARY_AS[op], {"c": c, "hw": hw, "broadcast": bc}, [])
    if op in _UNARY_AS and len(g.dyn_inputs(i)) == 1:
        c, hw = _c_hw(ys)
        return Match("activation", {"c": c, "hw": hw, "act": _UNARY_AS[op]}, [])
    if op in ("Expand", "Tile"):
        # a broadcast copy: reads the small operand, writes the full output, as a broadcast add does
        c, hw = _c_hw(ys)
        return Match("add", {"c": c, "hw": hw, "broadcast": 1}, [])
    if op == "Concat" and len([t for t in g.nodes[i].input if t]) == 1:
        ctx.glue.add(i)  # torch.cat of one tensor (DenseNet's first layer): nothing to join
        return None
    if op == "Concat":
        axis = int(g.attr(i, "axis", 0)) % len(ys)
        return Match("concat", {"outer": _prod(ys[:axis]), "cout": ys[axis], "inner": _prod(ys[axis + 1:]),
                                "n_inputs": len([t for t in g.nodes[i].input if t])}, [])
    if op == "Transpose":
        perm = g.attr(i, "perm", list(reversed(range(len(xs)))))
        kept = [p for p in perm if xs[p] != 1]
        if kept == sorted(kept):
            # only size-1 dims move (sequence-first [T, 1, D] <-> [1, T, D]): onnxruntime runs it
            # as a Reshape, no data moves
            ctx.glue.add(i)
            return None
        v = _transpose_view(xs, perm)
        if v is None:
            # a permutation of three or more groups (relative position embeddings): measured as the
            # two-group transpose that brings its innermost output dim in, the strided read that
            # dominates its cost (docs/kernels.md)
            last = xs[perm[-1]]
            v = (1, _prod(xs) // max(last, 1), last, 1)
        return _transpose_match(v)
    if op in ("Softmax", "LogSoftmax"):
        # over another axis than the last (channel softmax of an attention pool): the same rows of
        # `cols` elements, read with a stride
        axis = int(g.attr(i, "axis", -1)) % len(xs)
        return Match("softmax", {"rows": _prod(xs) // max(xs[axis], 1), "cols": xs[axis]}, [])
    if op in ("MatMul", "Gemm"):
        # two activations, or a constant left operand (a learned mixing matrix times the tokens)
        return _matmul(ctx, i)
    if op in _COPY_OPS and ys and ys[-1] >= 2:
        # A Pad no conv / pool absorbs (non-zero value such as TF-'same' max pooling's -inf, reflect
        # mode), a resize, a scatter / gather of elements: copies of the output's size into a new
        # buffer, measured as a two-input concat along the last axis, the copy kernel with the same
        # traffic (docs/kernels.md).
        return Match("concat", {"outer": _prod(ys[:-1]), "cout": ys[-1], "inner": 1, "n_inputs": 2}, [])
    if op == "Einsum":
        return _einsum(g, i, ys)
    if op == "ConvTranspose" and len(xs) == 4 and len(ys) == 4:
        # an upsampling conv: the strided conv from its output back to its input does the same
        # multiply-adds over the same two maps (weight [cin, cout/groups, k, k])
        ws = g.shape(g.nodes[i].input[1])
        if ws is None or len(ws) != 4:
            return None
        groups = int(g.attr(i, "group", 1))
        return Match("conv2d", {"h": ys[2], "w": ys[3], "cin": ys[1], "cout": xs[1], "k": int(max(ws[2:])),
                                "s": int(max(g.attr(i, "strides", [1, 1]))), "groups": groups, "residual": 0}, [])
    if op == "InstanceNormalization" and len(xs) >= 3:
        # torch's GroupNorm export: statistics over each (group) row, as a layer norm of that row
        return Match("layernorm", {"t": _prod(xs[:2]), "d": _prod(xs[2:])}, [])
    return None
