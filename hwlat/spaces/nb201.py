"""NAS-Bench-201 space (``nb201``): the standard CIFAR network around one searched 4-node cell.

Canonical arch: the NB201 string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` with every edge that does not
lie on a path from the cell input (node 0) to the cell output (node 3) through non-``none`` edges
replaced by ``none``. Such an edge either feeds a node that never reaches the output (its result is
discarded) or reads a node that is always zero (NB201's ``to_unique_str(consider_zero=True)`` treats
it as zero as well). A cell with no input→output path computes zeros (NB201's ``Zero`` op, ``x*0``).

Accepted encodings:

* the NB201 string (ops ``none skip_connect nor_conv_1x1 nor_conv_3x3 avg_pool_3x3``);
* 6 op indices in NB201's op order (0 none, 1 skip_connect, 2 nor_conv_1x1, 3 nor_conv_3x3,
  4 avg_pool_3x3) for the edges 0→1, 0→2, 1→2, 0→3, 1→3, 2→3 (string order);
* NNI-style dicts: ``{"0_1": op, ...}`` (from_to) or ``{"cell/1_0": op, ...}`` (to_from) with op names
  such as ``conv_3x3``, ``conv_1x1``, ``skip_connect``, ``avg_pool_3x3``, ``none``;
* the NAS-Bench-201 arch *index* (0..15624) only after :meth:`NB201Space.load_index_table` with a
  file mapping index → string (a CSV with ``arch_idx`` / ``arch_str`` columns such as HELP's
  ``nb201_latency_ms.csv``, or a text file of one string per line in index order): NB201's index
  order comes from its shuffled benchmark file and is not reproduced here.

Network (NB201 ``TinyNetwork``, CIFAR, input 32x32, 10 classes): stem conv3x3 16 + BN; 3 stages of 5
cells (C = 16, 32, 64) with a ResNet basic block (relu-conv3x3 s2-bn, relu-conv3x3-bn, shortcut
avgpool2x2 s2 → conv1x1) between stages; final BN-ReLU, global average pool, linear. Cell ops:
``nor_conv_kxk`` = ReLU → conv → BN, ``avg_pool_3x3`` = AvgPool 3x3 s1 (count_include_pad=False).
The final BN (not after a conv, so nothing folds it) is written as its eval-mode affine form
``x * scale + shift`` so it decomposes into ``mul`` + ``add`` kernels (docs/kernels.md has no
standalone BatchNormalization kernel).
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwlat.errors import EncodingError
from hwlat.kernels.base import Kernel
from hwlat.spaces._common import as_int, cost_totals
from hwlat.spaces._minigraph import MiniGraph
from hwlat.spaces.base import Arch, SearchSpace, register

if TYPE_CHECKING:
    import torch.nn as nn

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # (from, to) in string order
ALIASES = {
    "none": "none", "zero": "none", "zeroize": "none",
    "skip_connect": "skip_connect", "skip": "skip_connect", "identity": "skip_connect",
    "nor_conv_1x1": "nor_conv_1x1", "conv_1x1": "nor_conv_1x1", "conv1x1": "nor_conv_1x1",
    "nor_conv_3x3": "nor_conv_3x3", "conv_3x3": "nor_conv_3x3", "conv3x3": "nor_conv_3x3",
    "avg_pool_3x3": "avg_pool_3x3", "avgpool_3x3": "avg_pool_3x3", "avg_pool": "avg_pool_3x3",
}
N_CELLS = 5
CHANNELS = (16, 32, 64)
R = 32
N_CLASSES = 10
_STR_RE = re.compile(r"^\|([^|~]+)~0\|\+\|([^|~]+)~0\|([^|~]+)~1\|\+\|([^|~]+)~0\|([^|~]+)~1\|([^|~]+)~2\|$")


class NB201Space(SearchSpace):
    """NAS-Bench-201 cells in the CIFAR TinyNetwork (15,625 encodings)."""

    name = "nb201"
    is_cnn = True

    def __init__(self) -> None:
        self._index: list[str] | None = None

    # ---- encodings ---------------------------------------------------------------------------

    def load_index_table(self, path: str | Path) -> int:
        """Enable integer arch indices: read index → string from a CSV (arch_idx, arch_str) or a text
        file with one arch string per line in index order. Returns the number of archs loaded."""
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise EncodingError(f"nb201: cannot read index table {p}: {e.strerror}; give a CSV with arch_idx,"
                                " arch_str columns or one arch string per line") from None
        lines = text.splitlines()
        table: dict[int, str] = {}
        if lines and "arch_str" in lines[0]:
            for row in csv.DictReader(lines):
                table[int(row.get("arch_idx") or row.get("index") or len(table))] = row["arch_str"]
        else:
            table = {i: ln.strip() for i, ln in enumerate(x for x in lines if x.strip())}
        if sorted(table) != list(range(len(table))) or not table:
            raise EncodingError(f"nb201: index table {p} does not list indices 0..N-1")
        self._index = [self._parse_string(table[i]) and table[i] for i in range(len(table))]
        return len(table)

    def _parse_string(self, s: str) -> list[str]:
        m = _STR_RE.match(s.strip().replace(" ", ""))
        if not m:
            raise EncodingError(f"nb201: arch string {s!r} is not of the form "
                                "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|")
        return [self._op(f"edge {EDGES[i][0]}->{EDGES[i][1]}", o) for i, o in enumerate(m.groups())]

    def _op(self, field: str, v: Any) -> str:
        if isinstance(v, str):
            o = ALIASES.get(v.strip().lower())
            if o is None:
                raise EncodingError(f"nb201: {field}={v!r} not in {{{','.join(OPS)}}}")
            return o
        i = as_int("nb201", field, v)
        if not 0 <= i < len(OPS):
            raise EncodingError(f"nb201: {field}={i} not in 0..4 (none, skip_connect, nor_conv_1x1, nor_conv_3x3,"
                                " avg_pool_3x3)")
        return OPS[i]

    def ops_of(self, arch: Arch) -> list[str]:
        """The 6 edge ops (string order) of ``arch`` before canonicalisation."""
        if isinstance(arch, str):
            return self._parse_string(arch)
        if isinstance(arch, (int, np.integer)) and not isinstance(arch, bool):
            if self._index is None:
                raise EncodingError("nb201: integer arch index given but no index table is loaded; call "
                                    "load_index_table(<csv with arch_idx, arch_str>) or pass the arch string")
            if not 0 <= int(arch) < len(self._index):
                raise EncodingError(f"nb201: arch index {int(arch)} not in 0..{len(self._index) - 1}")
            return self._parse_string(self._index[int(arch)])
        if isinstance(arch, Mapping):
            if "arch_str" in arch and len(arch) == 1:
                return self._parse_string(str(arch["arch_str"]))
            ops: dict[tuple[int, int], str] = {}
            for key, v in arch.items():
                k = str(key).split("/")[-1]
                m = re.fullmatch(r"(\d)_(\d)", k)
                if not m:
                    raise EncodingError(f"nb201: dict key {key!r} is not an edge 'a_b' (or 'cell/to_from')")
                a, b = int(m.group(1)), int(m.group(2))
                frm, to = (b, a) if "/" in str(key) else (a, b)
                if frm > to:  # tolerate either order: edges always go from lower to higher node
                    frm, to = to, frm
                if (frm, to) not in EDGES:
                    raise EncodingError(f"nb201: dict key {key!r} names edge {frm}->{to}, not one of the 6 edges")
                if (frm, to) in ops:
                    raise EncodingError(f"nb201: edge {frm}->{to} given twice")
                ops[(frm, to)] = self._op(f"{key!r}", v)
            missing = [f"{a}_{b}" for a, b in EDGES if (a, b) not in ops]
            if missing:
                raise EncodingError(f"nb201: dict is missing edge(s) {missing}")
            return [ops[e] for e in EDGES]
        if isinstance(arch, (list, tuple, np.ndarray)):
            v = list(arch)
            if len(v) != 6:
                raise EncodingError(f"nb201: an op vector needs 6 entries (edges 0-1,0-2,1-2,0-3,1-3,2-3), got {len(v)}")
            return [self._op(f"ops[{i}]", x) for i, x in enumerate(v)]
        raise EncodingError(f"nb201: cannot read an arch from {type(arch).__name__}; give an NB201 string")

    def canonical(self, arch: Arch) -> str:
        return _canonical_string(tuple(self.ops_of(arch)))

    def key(self, arch: Arch) -> str:
        return self.canonical(arch)

    def sample(self, rng: np.random.Generator) -> Arch:
        return self.canonical([int(i) for i in rng.integers(0, len(OPS), 6)])

    def input_shape(self, arch: Arch) -> tuple[int, ...]:
        self.canonical(arch)
        return (1, 3, R, R)

    # ---- kernels & model ---------------------------------------------------------------------

    def encode(self, arch: Arch) -> list[Kernel]:
        return list(_encode(self.canonical(arch)))

    def build(self, arch: Arch) -> nn.Module:
        from hwlat.spaces import _torch_blocks as tb
        from hwlat.spaces._torch_nb201 import TinyNetwork

        return tb.finish(TinyNetwork(_ops(self.canonical(arch)), CHANNELS, N_CELLS, N_CLASSES))

    # ---- features ----------------------------------------------------------------------------

    def feature_names(self) -> list[str]:
        names = [f"e{a}{b}_{o}" for a, b in EDGES for o in OPS]
        names += ["n_conv3", "n_conv1", "n_pool", "n_skip", "cell_live"]
        return names + ["total_flops", "total_params", "total_bytes_read", "total_bytes_written"]

    def features(self, arch: Arch) -> np.ndarray:
        return _features(self.canonical(arch)).copy()

    def features_batch(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.stack([_features(self.canonical(a)) for a in archs])


def _ops(s: str) -> list[str]:
    m = _STR_RE.match(s)
    assert m is not None
    return list(m.groups())


@functools.cache
def _canonical_string(ops: tuple[str, ...]) -> str:
    live = [o != "none" for o in ops]
    fwd = {0}  # nodes reachable from node 0
    for (a, b), ok in zip(EDGES, live):
        if ok and a in fwd:
            fwd.add(b)
    bwd = {3}  # nodes that reach node 3 (edges sorted by target; walk backwards)
    for (a, b), ok in sorted(zip(EDGES, live), key=lambda e: -e[0][1]):
        if ok and b in bwd:
            bwd.add(a)
    out = [o if ok and a in fwd and b in bwd else "none" for (a, b), o, ok in zip(EDGES, ops, live)]
    return f"|{out[0]}~0|+|{out[1]}~0|{out[2]}~1|+|{out[3]}~0|{out[4]}~1|{out[5]}~2|"


def cell_graph(g: MiniGraph, x: int, ops: Sequence[str]) -> int:
    """Add one (canonical) cell to ``g`` in the torch builder's trace order; return the output tensor."""
    c = g.shapes[x][0]
    nodes: list[int | None] = [x, None, None, None]
    for i in (1, 2, 3):
        acc: int | None = None
        for e, (a, b) in enumerate(EDGES):
            if b != i or ops[e] == "none":
                continue
            src = nodes[a]
            assert src is not None
            if ops[e] == "skip_connect":
                y = src
            elif ops[e] == "avg_pool_3x3":
                y = g.pool(src, 3, 1, "avg")
            else:
                y = g.conv(g.relu(src), c, 3 if ops[e] == "nor_conv_3x3" else 1)
            acc = y if acc is None else g.add(acc, y)
        nodes[i] = acc
    out = nodes[3]
    return g.mul_const(x) if out is None else out


@functools.cache
def _encode(s: str) -> tuple[Kernel, ...]:
    ops = _ops(s)
    g = MiniGraph((3, R, R))
    x = g.conv(0, CHANNELS[0], 3)
    for st, c in enumerate(CHANNELS):
        if st > 0:  # ResNet basic block, trace order: conv_a, conv_b, shortcut, add
            a = g.conv(g.relu(x), c, 3, 2)
            b = g.conv(g.relu(a), c, 3)
            sc = g.conv(g.pool(x, 2, 2, "avg"), c, 1)
            x = g.add(b, sc)
        for _ in range(N_CELLS):
            x = cell_graph(g, x, ops)
    x = g.relu(g.add_const(g.mul_const(x, per_channel=True)))
    g.gemm(g.gap(x), N_CLASSES)
    return tuple(g.kernels())


@functools.cache
def _features(s: str) -> np.ndarray:
    ops = _ops(s)
    onehot = np.zeros((6, len(OPS)))
    onehot[np.arange(6), [OPS.index(o) for o in ops]] = 1
    counts = [ops.count("nor_conv_3x3"), ops.count("nor_conv_1x1"), ops.count("avg_pool_3x3"),
              ops.count("skip_connect"), int(any(o != "none" for o in ops))]
    totals = cost_totals(_encode(s))
    return np.concatenate([onehot.ravel(), counts, totals]).astype(np.float64)


register(NB201Space())
