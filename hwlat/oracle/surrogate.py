"""Differentiable expected latency (FBNet / ProxylessNAS style) from the per-slot tables.

Each slot's choice is drawn independently from its probability row, so the expected latency of the
affine model ``w·agg + c`` is exact: Σ over slots of P(slot active) · Σ_choices p(choice) · latency.
Rows should sum to 1 (softmax or Gumbel-softmax outputs); they are not renormalised.

``arch_probs`` layout:

* ``ofa_mbv3``: a dict of tensors ``"ks"`` (20, 3) over kernel sizes (3, 5, 7), ``"e"`` (20, 3) over
  expand ratios (3, 4, 6), ``"d"`` (5, 3) over stage depths (2, 3, 4); ``"r"``: an int resolution
  (default 224) or a (25,) tensor over 128, 132, …, 224; ``"wid"``: 1.0 (default) or 1.2.
  Block ``i`` = stage ``i // 4``, position ``i % 4``; positions 0–1 always run, position 2 runs with
  probability p(d ≥ 3), position 3 with p(d = 4). A block's kernel size and expand ratio are drawn
  independently of each other.
* ``fbnet``: a (22, 9) tensor over the ops of ``hwlat.spaces.fbnet.OPS`` per layer (or ``{"ops": …}``).

Returns a 0-d tensor in ms, in the dtype/device of the given probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from hwlat.errors import ConfigError, EncodingError
from hwlat.oracle.tables import FBNetTable, MBv3Table

if TYPE_CHECKING:
    from hwlat.oracle.oracle import Oracle


def _tensor(torch: Any, name: str, v: Any, shape: tuple[int, ...], like: Any = None) -> Any:
    t = v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v, dtype=np.float64))
    if like is not None and not isinstance(v, torch.Tensor):
        t = t.to(dtype=like.dtype, device=like.device)
    if tuple(t.shape) != shape:
        raise EncodingError(f"arch_probs[{name!r}] has shape {tuple(t.shape)}; expected {shape}")
    return t


def expected_latency(oracle: Oracle, arch_probs: Any) -> Any:
    import torch

    t, model = oracle.table, oracle.model
    if t is None or not hasattr(model, "affine"):
        raise ConfigError(f"torch_expected_latency needs the lookup-table path (spaces ofa_mbv3, fbnet with an "
                          f"additive kernel-sum predictor); this oracle is space {oracle.space_name!r}, mode "
                          f"{oracle.mode!r}")
    w, c = model.affine()
    w = np.asarray(w, dtype=np.float64)
    if isinstance(t, MBv3Table):
        m = t.m
        if not isinstance(arch_probs, Mapping):
            raise EncodingError("ofa_mbv3 arch_probs must be a dict with 'ks' (20,3), 'e' (20,3), 'd' (5,3) "
                                "[, 'r', 'wid']")
        missing = [k for k in ("ks", "e", "d") if k not in arch_probs]
        if missing:
            raise EncodingError(f"ofa_mbv3 arch_probs lacks {missing}; expected 'ks' (20,3), 'e' (20,3), 'd' (5,3)")
        pk = _tensor(torch, "ks", arch_probs["ks"], (20, 3))
        pe = _tensor(torch, "e", arch_probs["e"], (20, 3), like=pk)
        pd = _tensor(torch, "d", arch_probs["d"], (5, 3), like=pk)
        wid = arch_probs.get("wid", 1.0) or 1.0
        if round(float(wid), 6) not in m.WIDS:
            raise EncodingError(f"ofa_mbv3 arch_probs['wid']={wid!r} not in {{1.0,1.2}}")
        wi = 1 if round(float(wid), 6) == 1.2 else 0
        t.build(wi)
        lin = torch.as_tensor((t.block[wi] @ w)[:, :, :9].reshape(len(m.RS), 20, 3, 3), dtype=pk.dtype,
                              device=pk.device)
        flin = torch.as_tensor(t.fixed[wi] @ w + c, dtype=pk.dtype, device=pk.device)
        one = torch.ones(m.N_STAGES, dtype=pk.dtype, device=pk.device)
        act = torch.stack([one, one, pd[:, 1] + pd[:, 2], pd[:, 2]], dim=1).reshape(20)
        per_block = torch.einsum("sk,se,rske->rs", pk, pe, lin)
        per_r = flin + (per_block * act[None, :]).sum(dim=1)
        r = arch_probs.get("r", 224)
        if isinstance(r, (int, np.integer)) and not isinstance(r, bool):
            if int(r) not in t.r_index:
                raise EncodingError(f"ofa_mbv3 arch_probs['r']={r} not in 128..224 step 4")
            return per_r[t.r_index[int(r)]]
        pr = _tensor(torch, "r", r, (len(m.RS),), like=pk)
        return (pr * per_r).sum()
    if isinstance(t, FBNetTable):
        f = t.f
        p = arch_probs["ops"] if isinstance(arch_probs, Mapping) and "ops" in arch_probs else arch_probs
        p = _tensor(torch, "ops", p, (f.N_LAYERS, len(f.OPS)))
        t.build()
        assert t.layer is not None and t.fixed is not None
        lin = torch.as_tensor(t.layer @ w, dtype=p.dtype, device=p.device)
        return (p * lin).sum() + float(t.fixed @ w + c)
    raise ConfigError(f"no differentiable surrogate for space {oracle.space_name!r}")
