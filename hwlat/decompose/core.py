"""``kernels_of``: an ONNX / torch model → the kernels a runtime executes, in execution order."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hwlat.decompose.context import Ctx, Match
from hwlat.decompose.graph import Graph, load_model
from hwlat.decompose.rules import get_rules
from hwlat.errors import UnsupportedOperatorError
from hwlat.kernels.base import Kernel


@dataclass
class Decomposition:
    """Kernels in execution order plus every operator that mapped to no kernel (never dropped)."""

    kernels: list[Kernel]
    #: one entry per unsupported operator type: op_type, domain, node (first node name), nodes, count, reason
    unsupported: list[dict[str, Any]] = field(default_factory=list)
    runtime: str = "onnxruntime"
    input_shapes: list[list[int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "input_shapes": self.input_shapes,
                "kernels": [k.to_dict() for k in self.kernels], "unsupported": list(self.unsupported)}


def kernels_of(model: Any, input_shape: Sequence[int] | None = None, runtime: str = "onnxruntime",
               strict: bool = False) -> Decomposition:
    """Decompose ``model`` (ONNX path / bytes / ModelProto, or torch module with ``input_shape``) into
    kernels under ``runtime``'s fusion rules (docs/kernels.md).

    Operators no rule maps are listed in ``.unsupported``; with ``strict=True`` they raise
    :class:`hwlat.errors.UnsupportedOperatorError` naming them instead.
    """
    rules = get_rules(runtime)
    proto, name = load_model(model, input_shape)
    g = Graph(proto, name)
    ctx = Ctx(g, rules)
    for p in rules.passes:
        p(ctx)
    kernels = []
    for mi in _execution_order(ctx):
        m = ctx.matches[mi]
        try:
            kernels.append(_make_kernel(g, m))
        except ValueError as e:  # the kernel type cannot represent this instance: report its nodes
            for i in m.nodes:
                del ctx.owner[i]
                ctx.reasons[i] = f"as {m.type}: {e}"
    unsupported = _unsupported(ctx)
    if strict and unsupported:
        ops = [u["op_type"] if not u["domain"] else f"{u['domain']}::{u['op_type']}" for u in unsupported]
        desc = ", ".join(f"{o} ({u['count']}x, e.g. node {u['node']!r})" for o, u in zip(ops, unsupported, strict=True))
        raise UnsupportedOperatorError(f"{name}: operator(s) with no kernel mapping for runtime {runtime!r}: "
                                       f"{desc}; run `hwlat kernels` on the model to see them", operators=ops)
    shapes = [list(g.shape(t) or ()) for t in g.graph_inputs]
    return Decomposition(kernels, unsupported, runtime, shapes)


def _unsupported(ctx: Ctx) -> list[dict[str, Any]]:
    g = ctx.g
    by_op: dict[tuple[str, str], dict[str, Any]] = {}
    for i, n in enumerate(g.nodes):
        if i in ctx.owner or i in ctx.glue:
            continue
        key = (n.domain if n.domain != "ai.onnx" else "", n.op_type)
        e = by_op.setdefault(key, {"op_type": n.op_type, "domain": key[0], "node": g.node_name(i),
                                   "nodes": [], "count": 0, "reason": ctx.reasons.get(i, "no fusion rule")})
        e["nodes"].append(g.node_name(i))
        e["count"] += 1
    return list(by_op.values())


def _execution_order(ctx: Ctx) -> list[int]:
    """Topological order of the matches (glue is transparent), ties broken by first node position."""
    g = ctx.g
    n_match = len(ctx.matches)
    # group of each node: a match index, or a private group for unmapped nodes (keeps order), glue: None
    group: dict[int, int] = dict(ctx.owner)
    extra = n_match
    for i in range(len(g.nodes)):
        if i not in group and i not in ctx.glue:
            group[i] = extra
            extra += 1
    first: dict[int, int] = {}
    for i, gr in group.items():
        first[gr] = min(first.get(gr, i), i)
    memo: dict[str, frozenset[int]] = {}

    def sources(t: str) -> frozenset[int]:
        """Groups whose outputs ``t`` depends on, looking through glue nodes."""
        if t in memo:
            return memo[t]
        memo[t] = frozenset()  # cycle guard (ONNX graphs are acyclic; be safe anyway)
        p = g.producer.get(t)
        if p is None:
            res: frozenset[int] = frozenset()
        elif p in group:
            res = frozenset({group[p]})
        else:
            res = frozenset().union(*[sources(x) for x in g.nodes[p].input if x]) if g.nodes[p].input else frozenset()
        memo[t] = res
        return res

    deps: dict[int, set[int]] = {gr: set() for gr in first}
    for i, gr in group.items():
        for t in g.nodes[i].input:
            if t:
                deps[gr].update(s for s in sources(t) if s != gr)
    users: dict[int, list[int]] = {gr: [] for gr in first}
    indeg = {gr: len(d) for gr, d in deps.items()}
    for gr, d in deps.items():
        for s in d:
            users[s].append(gr)
    heap = [(first[gr], gr) for gr, k in indeg.items() if k == 0]
    heapq.heapify(heap)
    out: list[int] = []
    while heap:
        _, gr = heapq.heappop(heap)
        out.append(gr)
        for u in users[gr]:
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(heap, (first[u], u))
    if len(out) != len(first):  # fused groups formed a cycle (should not happen): fall back to position
        out = sorted(first, key=first.__getitem__)
    return [gr for gr in out if gr < n_match]


def _make_kernel(g: Graph, m: Match) -> Kernel:
    """Kernel with the registered type's canonical shapes (so it equals a space encoder's kernel);
    the shapes seen in the graph when the type is not registered."""
    import hwlat.kernels  # noqa: F401  (registers every kernel type)
    from hwlat.kernels import base

    nodes = tuple(g.node_name(i) for i in sorted(m.nodes))
    if m.type in base.names():
        kt = base.get(m.type)
        cfg = kt.validate(m.config)
        return Kernel(m.type, cfg, kt.input_shapes(cfg), kt.output_shapes(cfg), nodes)
    ins = tuple(g.shape(t) or () for t in m.inputs)
    outs = tuple(g.shape(t) or () for t in m.outputs)
    return Kernel(m.type, dict(m.config), ins, outs, nodes)
