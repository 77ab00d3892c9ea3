"""Flat, named choice parameters per search space — the common currency of the adapters.

``choices(space)`` lists ``(name, values)``; a dict ``{name: value}`` is an arch the oracle reads
directly (flat-sample encoding, :mod:`hwlat.oracle.encodings`). ``values_array`` turns index
matrices into value rows, which for ofa_mbv3 is the oracle's fast int-array batch layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hwlat.errors import ConfigError


def choices(space: str, r: int | None = None) -> list[tuple[str, tuple[Any, ...]]]:
    """(name, allowed values) of every searchable parameter of ``space`` (``r`` fixes the resolution)."""
    if space == "ofa_mbv3":
        from hwlat.spaces import ofa_mbv3 as m

        return ([(f"ks_{i}", m.KS) for i in range(20)] + [(f"e_{i}", m.ES) for i in range(20)]
                + [(f"d_{i}", m.DS) for i in range(5)] + [("r", (r,) if r else m.RS)])
    if space == "ofa_resnet50":
        from hwlat.spaces import ofa_resnet50 as m

        return ([(f"d_{i}", m.DS) for i in range(5)] + [(f"e_{i}", m.ES) for i in range(18)]
                + [(f"w_{i}", m.WS) for i in range(6)] + [("r", (r,) if r else m.RS)])
    if space == "nb201":
        from hwlat.spaces.nb201 import EDGES, OPS

        return [(f"{a}_{b}", OPS) for a, b in EDGES]
    if space == "fbnet":
        from hwlat.spaces.fbnet import N_LAYERS, OPS

        return [(f"layer_{i}", OPS) for i in range(N_LAYERS)]
    if space == "vit":
        from hwlat.spaces import vit as m

        L = max(m.SAMPLE_DEPTH)
        return ([("embed_dim", m.SAMPLE_EMBED), ("depth", m.SAMPLE_DEPTH)]
                + [(f"num_heads_{i}", m.SAMPLE_HEADS) for i in range(L)]
                + [(f"mlp_ratio_{i}", m.SAMPLE_MLP_RATIO) for i in range(L)] + [("r", (r or 224,))])
    raise ConfigError(f"no adapter parameters for space {space!r}; known: ofa_mbv3, ofa_resnet50, nb201, fbnet, vit")


def sizes(space: str, r: int | None = None) -> list[int]:
    return [len(v) for _, v in choices(space, r)]


def arch_of(space: str, idx: Sequence[int], r: int | None = None) -> dict[str, Any]:
    """The flat arch of one index vector (index i picks ``choices[i][1][idx[i]]``)."""
    return {name: vals[int(i)] for (name, vals), i in zip(choices(space, r), idx, strict=True)}


def archs_of(space: str, X: np.ndarray, r: int | None = None) -> Any:
    """Archs of an index matrix (n, n_params): an int value array for ofa_mbv3 (the oracle's fast path),
    else a list of flat dicts."""
    X = np.asarray(np.rint(X), dtype=np.int64)
    ch = choices(space, r)
    if space == "ofa_mbv3":
        cols = [np.asarray(vals)[X[:, j]] for j, (_, vals) in enumerate(ch)]
        return np.stack(cols, axis=1).astype(np.int64)
    return [arch_of(space, row, r) for row in X]
