"""A tiny op graph that mirrors an ONNX export and applies the onnxruntime fusion rules of
docs/kernels.md, so spaces with branching cells (NAS-Bench-201) can list kernels without torch/ONNX.

It reproduces what the legacy TorchScript exporter does to such graphs (BatchNorm folded into the
preceding Conv, common-subexpression elimination of weight-free ops) and the decomposition's
choices: a residual ``Add`` fuses into the conv that runs later, an activation fuses into a conv
whose output it is the only reader of, and kernels come in topological order with ties broken by
the position of each kernel's first op.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from hwlat.kernels.base import Kernel
from hwlat.spaces._common import conv_out, kernel

Shape = tuple[int, int, int]  # (c, h, w)


@dataclass
class Op:
    op: str  # Conv Relu Add Mul AvgPool MaxPool GlobalAveragePool Gemm
    ins: tuple[int, ...]  # tensor ids; -1 marks a constant operand
    out: int
    attrs: dict[str, Any] = field(default_factory=dict)


class MiniGraph:
    """Build in trace order with :meth:`conv`, :meth:`relu`, ...; then :meth:`kernels`."""

    def __init__(self, input_shape: Shape) -> None:
        self.ops: list[Op] = []
        self.shapes: dict[int, Shape] = {0: input_shape}
        self._cse: dict[tuple[Any, ...], int] = {}
        self.output: int | None = None

    def _add(self, op: str, ins: tuple[int, ...], shape: Shape, cse: bool, **attrs: Any) -> int:
        key = (op, ins, tuple(sorted(attrs.items())))
        if cse and key in self._cse:
            return self._cse[key]
        t = len(self.shapes)
        self.shapes[t] = shape
        self.ops.append(Op(op, ins, t, attrs))
        if cse:
            self._cse[key] = t
        return t

    def conv(self, x: int, cout: int, k: int, s: int = 1, groups: int = 1, pad: int | None = None) -> int:
        c, h, w = self.shapes[x]
        return self._add("Conv", (x,), (cout, conv_out(h, k, s, pad), conv_out(w, k, s, pad)), False,
                         k=k, s=s, groups=groups, id=len(self.ops))

    def relu(self, x: int) -> int:
        return self._add("Relu", (x,), self.shapes[x], True)

    def add(self, a: int, b: int) -> int:
        return self._add("Add", (a, b), self.shapes[a], True)

    def mul_const(self, x: int, per_channel: bool = False) -> int:
        # a weight (per-channel) operand is not shared between two Muls; a scalar constant is
        return self._add("Mul", (x, -1), self.shapes[x], not per_channel, bcast=1, id=len(self.ops))

    def add_const(self, x: int) -> int:
        return self._add("Add", (x, -1), self.shapes[x], False, bcast=1, id=len(self.ops))

    def pool(self, x: int, k: int, s: int, mode: str) -> int:
        c, h, w = self.shapes[x]
        p = (k - 1) // 2
        return self._add("Pool", (x,), (c, conv_out(h, k, s, p), conv_out(w, k, s, p)), True, k=k, s=s, mode=mode)

    def gap(self, x: int) -> int:
        return self._add("GlobalAveragePool", (x,), (self.shapes[x][0], 1, 1), True)

    def gemm(self, x: int, cout: int) -> int:
        t = self._add("Gemm", (x,), (cout, 1, 1), False, id=len(self.ops))
        self.output = t
        return t

    # ---- fusion ---------------------------------------------------------------------------------

    def kernels(self) -> list[Kernel]:
        ops = self.ops
        producer = {o.out: i for i, o in enumerate(ops)}
        consumers: dict[int, list[int]] = {}
        for i, o in enumerate(ops):
            for t in dict.fromkeys(o.ins):
                consumers.setdefault(t, []).append(i)
        owner: dict[int, int] = {}
        groups: list[tuple[list[int], Kernel]] = []

        def only_consumer(t: int) -> int | None:
            cs = consumers.get(t, [])
            return cs[0] if len(cs) == 1 and t != self.output else None

        def claim(nodes: list[int], k: Kernel) -> None:
            for n in nodes:
                owner[n] = len(groups)
            groups.append((nodes, k))

        for i, o in enumerate(ops):  # Conv [+ residual Add] [+ Relu]
            if o.op != "Conv":
                continue
            cin, h, w = self.shapes[o.ins[0]]
            cout = self.shapes[o.out][0]
            nodes, t, residual = [i], o.out, 0
            a = only_consumer(t)
            if a is not None and ops[a].op == "Add" and a not in owner and -1 not in ops[a].ins:
                other = ops[a].ins[1] if ops[a].ins[0] == t else ops[a].ins[0]
                p = producer.get(other)
                later_conv = p is not None and ops[p].op == "Conv" and p not in owner and p > i
                if other != t and not later_conv:
                    nodes.append(a)
                    t = ops[a].out
                    residual = 1
            r = only_consumer(t)
            act = "none"
            if r is not None and ops[r].op == "Relu" and r not in owner:
                nodes.append(r)
                act = "relu"
            cfg = dict(h=h, w=w, cin=cin, cout=cout, k=o.attrs["k"], s=o.attrs["s"], groups=o.attrs["groups"])
            if act == "none":
                k = kernel("conv2d", **cfg, residual=residual)
            else:
                k = kernel("conv_bn_act", **cfg, act=act, residual=residual)
            claim(nodes, k)
        for i, o in enumerate(ops):
            if i in owner:
                continue
            c, h, w = self.shapes[o.ins[0]]
            if o.op == "Gemm":
                k = kernel("linear", m=1, cin=c, cout=self.shapes[o.out][0], act="none")
            elif o.op == "Relu":
                k = kernel("activation", c=c, hw=h * w, act="relu")
            else:
                continue
            claim([i], k)
        for i, o in enumerate(ops):
            if i in owner:
                continue
            c, h, w = self.shapes[o.ins[0]]
            if o.op == "Pool":
                k = kernel("pool", h=h, w=w, c=c, k=o.attrs["k"], s=o.attrs["s"], mode=o.attrs["mode"])
            elif o.op == "GlobalAveragePool":
                k = kernel("global_pool", h=h, w=w, c=c, mode="avg")
            elif o.op in ("Add", "Mul"):
                k = kernel(o.op.lower(), c=c, hw=h * w, broadcast=int(-1 in o.ins))
            else:
                raise AssertionError(o.op)
            claim([i], k)
        return [groups[g][1] for g in self._order(groups, owner, producer)]

    def _order(self, groups: list[tuple[list[int], Kernel]], owner: dict[int, int],
               producer: dict[int, int]) -> list[int]:
        first = [min(nodes) for nodes, _ in groups]
        deps: list[set[int]] = [set() for _ in groups]
        for g, (nodes, _) in enumerate(groups):
            for n in nodes:
                for t in self.ops[n].ins:
                    p = producer.get(t)
                    if p is not None and owner[p] != g:
                        deps[g].add(owner[p])
        users: list[list[int]] = [[] for _ in groups]
        indeg = [len(d) for d in deps]
        for g, d in enumerate(deps):
            for s in d:
                users[s].append(g)
        heap = [(first[g], g) for g in range(len(groups)) if indeg[g] == 0]
        heapq.heapify(heap)
        out: list[int] = []
        while heap:
            _, g = heapq.heappop(heap)
            out.append(g)
            for u in users[g]:
                indeg[u] -= 1
                if indeg[u] == 0:
                    heapq.heappush(heap, (first[u], u))
        return out
