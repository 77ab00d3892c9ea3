"""Activation units: one op (Relu, Clip(0,6), HardSwish, Tanh, LeakyRelu, …) or a small pattern
(swish = Sigmoid+Mul, gelu = the Erf pattern, decomposed hswish / hsigmoid) that maps onto one ``act`` name."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwlat.decompose.context import Ctx
from hwlat.decompose.graph import Graph

_DEFAULT = ("", "ai.onnx")


@dataclass
class Act:
    name: str
    nodes: list[int]
    x: str
    out: str


def _is(g: Graph, i: int | None, *ops: str) -> bool:
    return i is not None and g.nodes[i].op_type in ops and g.nodes[i].domain in _DEFAULT


def _near(v: float | None, target: float, tol: float = 1e-3) -> bool:
    return v is not None and abs(v - target) <= tol * max(1.0, abs(target))


def _other(g: Graph, i: int, t: str) -> str | None:
    """The other input of a binary node ``i`` one of whose inputs is ``t``."""
    ins = list(g.nodes[i].input)
    if len(ins) != 2 or t not in ins:
        return None
    return ins[1] if ins[0] == t else ins[0]


def _scalar_op(g: Graph, i: int | None, t: str, op: str, value: float) -> bool:
    """Node ``i`` is ``op(t, value)`` (Mul/Add commute; Div only as t / value)."""
    if not _is(g, i, op):
        return False
    assert i is not None
    o = _other(g, i, t)
    if o is None:
        return False
    if op == "Div" and g.nodes[i].input[0] != t:
        return False
    return _near(g.scalar(o), value)


def _div_by(g: Graph, i: int | None, t: str, value: float) -> bool:
    """``t / value`` or ``t * (1/value)``."""
    return _scalar_op(g, i, t, "Div", value) or _scalar_op(g, i, t, "Mul", 1.0 / value)


def clip_bounds(g: Graph, i: int) -> tuple[float, float]:
    n = g.nodes[i]
    lo, hi = -math.inf, math.inf
    if len(n.input) > 1 and n.input[1]:
        v = g.scalar(n.input[1])
        lo = v if v is not None else math.nan
    if len(n.input) > 2 and n.input[2]:
        v = g.scalar(n.input[2])
        hi = v if v is not None else math.nan
    lo = float(g.attr(i, "min", lo))
    hi = float(g.attr(i, "max", hi))
    return lo, hi


def act_from(ctx: Ctx, i: int, x: str) -> Act | None:
    """The activation unit that starts at node ``i`` reading ``x``, or None."""
    g = ctx.g
    if not ctx.free(i) or not _is(g, i, *_STARTS) or x not in g.nodes[i].input:
        return None
    a = _match(g, i, x)
    if a is None or not ctx.free(*a.nodes):
        return None
    return a


_STARTS = ("Relu", "Clip", "HardSwish", "HardSigmoid", "Gelu", "Sigmoid", "Tanh", "LeakyRelu", "Add", "Div",
           "Mul")


def _match(g: Graph, i: int, x: str) -> Act | None:
    n = g.nodes[i]
    out = n.output[0]
    op = n.op_type
    if n.input[0] != x and op not in ("Add", "Mul"):
        return None
    if op == "Relu":
        return Act("relu", [i], x, out)
    if op == "Clip":
        lo, hi = clip_bounds(g, i)
        if lo == 0 and hi == 6:
            return Act("relu6", [i], x, out)
        if lo == 0 and hi == math.inf:
            return Act("relu", [i], x, out)
        return None
    if op == "HardSwish":
        return Act("hswish", [i], x, out)
    if op == "HardSigmoid":
        return Act("hsigmoid", [i], x, out)
    if op == "Gelu":
        return Act("gelu", [i], x, out)
    if op == "Tanh":
        return Act("tanh", [i], x, out)
    if op == "LeakyRelu":  # any alpha: the slope does not change the cost
        return Act("leaky_relu", [i], x, out)
    if op == "Sigmoid":
        m = g.only_consumer(out)
        if _is(g, m, "Mul") and m is not None and _other(g, m, out) == x:
            return Act("swish", [i, m], x, g.nodes[m].output[0])
        return Act("sigmoid", [i], x, out)
    if op == "Add" and _scalar_op(g, i, x, "Add", 3.0):
        return _hard(g, i, x)
    if op in ("Div", "Mul") and _div_by(g, i, x, math.sqrt(2.0)):
        return _gelu_erf(g, i, x)
    return None


def _hard(g: Graph, add: int, x: str) -> Act | None:
    """x+3 → Clip(0,6) → /6 [→ ·x] (hsigmoid / hswish) or x+3 → Clip → ·x → /6 (hswish)."""
    c = g.only_consumer(g.nodes[add].output[0])
    if not _is(g, c, "Clip") or c is None or clip_bounds(g, c) != (0.0, 6.0):
        return None
    ct = g.nodes[c].output[0]
    d = g.only_consumer(ct)
    if d is None:
        return None
    if _div_by(g, d, ct, 6.0):
        h = g.nodes[d].output[0]
        m = g.only_consumer(h)
        if _is(g, m, "Mul") and m is not None and _other(g, m, h) == x:
            return Act("hswish", [add, c, d, m], x, g.nodes[m].output[0])
        return Act("hsigmoid", [add, c, d], x, h)
    if _is(g, d, "Mul") and _other(g, d, ct) == x:
        mt = g.nodes[d].output[0]
        e = g.only_consumer(mt)
        if e is not None and _div_by(g, e, mt, 6.0):
            return Act("hswish", [add, c, d, e], x, g.nodes[e].output[0])
    return None


def _gelu_erf(g: Graph, div: int, x: str) -> Act | None:
    """0.5·x·(1 + erf(x/√2)) in the orders torch and hand-written code produce."""
    e = g.only_consumer(g.nodes[div].output[0])
    if not _is(g, e, "Erf") or e is None:
        return None
    et = g.nodes[e].output[0]
    a = g.only_consumer(et)
    if a is None or not _scalar_op(g, a, et, "Add", 1.0):
        return None
    at = g.nodes[a].output[0]
    m = g.only_consumer(at)
    if not _is(g, m, "Mul") or m is None:
        return None
    other = _other(g, m, at)
    mt = g.nodes[m].output[0]
    if _near(g.scalar(other or ""), 0.5):  # 0.5·(1+erf) → ·x (dynamo export)
        h = g.only_consumer(mt)
        if _is(g, h, "Mul") and h is not None and _other(g, h, mt) == x:
            return Act("gelu", [div, e, a, m, h], x, g.nodes[h].output[0])
        return None
    if other == x:  # x·(1+erf) → ·0.5
        h = g.only_consumer(mt)
        if h is not None and (_scalar_op(g, h, mt, "Mul", 0.5) or _scalar_op(g, h, mt, "Div", 2.0)):
            return Act("gelu", [div, e, a, m, h], x, g.nodes[h].output[0])
        return None
    if other is not None:  # (0.5·x)·(1+erf)
        p = g.producer.get(other)
        if p is not None and g.only_consumer(other) == m and _scalar_op(g, p, x, "Mul", 0.5):
            return Act("gelu", sorted([p, div, e, a, m]), x, mt)
    return None


def fused_act(ctx: Ctx, t: str) -> Act | None:
    """An activation unit reading ``t`` that is the *only* reader of ``t`` (so it can fuse into ``t``'s
    producer)."""
    g = ctx.g
    if t in g.graph_outputs:
        return None
    cons = g.consumer_set(t)
    for c in sorted(cons):
        a = act_from(ctx, c, t)
        if a is not None and cons <= set(a.nodes):
            return a
    return None
