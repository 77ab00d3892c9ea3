"""Vision-transformer space (``vit``), AutoFormer / DyNAS-T ViT style: elastic embedding dim, depth,
per-layer heads and MLP width.

Canonical arch: ``{"embed_dim": D, "depth": L, "num_heads": [L ints], "mlp_dim": [L ints], "r": int}``
(lists truncated to ``depth``: layers past the depth are inactive and dropped). Accepted inputs:

* AutoFormer style ``{"embed_dim", "depth" (or "layer_num"), "num_heads", "mlp_ratio" (per layer or
  one value), "r"}``; hidden width = int(D · ratio);
* DyNAS-T ``vit_base_imagenet`` style ``{"num_layers", "num_attention_heads", "vit_intermediate_sizes"}``
  (embed dim 768 unless given); lists longer than the depth are cut, a scalar applies to all layers.

Model: patch embedding conv 16x16 s16 → flatten/transpose → prepend cls token → + position
embedding → L pre-norm blocks (LN → qkv linear (3·heads·64, head dim 64 as in AutoFormer) →
attention → proj linear → + residual; LN → fc1 + GELU → fc2 → + residual) → LN → cls token →
linear 1000. ``r`` ∈ 32..384, a multiple of 16.

The patch-embedding conv (kernel = stride = 16, no padding) is the ``patch_embed`` kernel.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from hwlat.errors import EncodingError
from hwlat.kernels.base import Kernel
from hwlat.spaces._common import as_float, as_int, cost_totals, kernel
from hwlat.spaces.base import Arch, SearchSpace, register

if TYPE_CHECKING:
    import torch.nn as nn

PATCH = 16
HEAD_DIM = 64
MAX_DEPTH = 16
N_CLASSES = 1000
# sampler grid: AutoFormer-Tiny
SAMPLE_EMBED = (192, 216, 240)
SAMPLE_DEPTH = (12, 13, 14)
SAMPLE_HEADS = (3, 4)
SAMPLE_MLP_RATIO = (3.5, 4.0)


class ViTSpace(SearchSpace):
    """AutoFormer-like ViT space."""

    name = "vit"
    is_cnn = False

    def sample(self, rng: np.random.Generator) -> Arch:
        d = int(rng.choice(SAMPLE_EMBED))
        L = int(rng.choice(SAMPLE_DEPTH))
        return self.canonical({
            "embed_dim": d, "depth": L,
            "num_heads": [int(x) for x in rng.choice(SAMPLE_HEADS, L)],
            "mlp_ratio": [float(x) for x in rng.choice(SAMPLE_MLP_RATIO, L)], "r": 224,
        })

    def canonical(self, arch: Arch) -> dict[str, Any]:
        n = self.name
        if not isinstance(arch, Mapping):
            raise EncodingError(f"{n}: expected a dict (embed_dim, depth, num_heads, mlp_ratio|mlp_dim, r)")
        a = dict(arch)
        alias = {"layer_num": "depth", "num_layers": "depth", "num_attention_heads": "num_heads",
                 "vit_intermediate_sizes": "mlp_dim", "intermediate_size": "mlp_dim", "image_size": "r",
                 "resolution": "r", "hidden_size": "embed_dim"}
        for old, new in alias.items():
            if old in a:
                if new in a:
                    raise EncodingError(f"{n}: both {old!r} and {new!r} given; use {new!r}")
                a[new] = a.pop(old)
        known = {"embed_dim", "depth", "num_heads", "mlp_ratio", "mlp_dim", "r"}
        extra = sorted(set(a) - known)
        if extra:
            raise EncodingError(f"{n}: unknown field(s) {extra}; expected {sorted(known)}")
        D = as_int(n, '"embed_dim"', _scalar(a.get("embed_dim", 768)))
        if not 8 <= D <= 4096:
            raise EncodingError(f'{n}: "embed_dim"={D} not in 8..4096')
        if "depth" not in a:
            raise EncodingError(f"{n}: missing field 'depth'")
        L = as_int(n, '"depth"', _scalar(a["depth"]))
        if not 1 <= L <= MAX_DEPTH:
            raise EncodingError(f'{n}: "depth"={L} not in 1..{MAX_DEPTH}')
        if "num_heads" not in a:
            raise EncodingError(f"{n}: missing field 'num_heads'")
        heads = [as_int(n, f'"num_heads"[{i}]', v) for i, v in enumerate(_per_layer(n, "num_heads", a["num_heads"], L))]
        for i, h in enumerate(heads):
            if not 1 <= h <= 64:
                raise EncodingError(f'{n}: "num_heads"[{i}]={h} not in 1..64')
        if ("mlp_ratio" in a) == ("mlp_dim" in a):
            raise EncodingError(f"{n}: give exactly one of 'mlp_ratio' and 'mlp_dim'")
        if "mlp_dim" in a:
            mlp = [as_int(n, f'"mlp_dim"[{i}]', v) for i, v in enumerate(_per_layer(n, "mlp_dim", a["mlp_dim"], L))]
        else:
            ratios = [as_float(n, f'"mlp_ratio"[{i}]', v)
                      for i, v in enumerate(_per_layer(n, "mlp_ratio", a["mlp_ratio"], L))]
            mlp = [int(D * x) for x in ratios]
        for i, m in enumerate(mlp):
            if not 1 <= m <= 16 * D:
                raise EncodingError(f'{n}: "mlp_dim"[{i}]={m} not in 1..{16 * D}')
        r = as_int(n, '"r"', _scalar(a.get("r", 224)))
        if r % PATCH or not 32 <= r <= 384:
            raise EncodingError(f'{n}: "r"={r} must be a multiple of {PATCH} in 32..384')
        return {"embed_dim": D, "depth": L, "num_heads": heads, "mlp_dim": mlp, "r": r}

    def input_shape(self, arch: Arch) -> tuple[int, ...]:
        r = self.canonical(arch)["r"]
        return (1, 3, r, r)

    def encode(self, arch: Arch) -> list[Kernel]:
        a = self.canonical(arch)
        D, r = a["embed_dim"], a["r"]
        n = (r // PATCH) ** 2
        T = n + 1
        out = [kernel("patch_embed", h=r, w=r, cin=3, cout=D, p=PATCH),
               kernel("transpose", a=D, b=n),
               kernel("concat", outer=1, cout=T, inner=D, n_inputs=2),
               kernel("add", c=D, hw=T, broadcast=0)]
        for h, m in zip(a["num_heads"], a["mlp_dim"]):
            out += list(_block(T, D, h, m))
        out.append(kernel("layernorm", t=T, d=D))
        out.append(kernel("linear", m=1, cin=D, cout=N_CLASSES, act="none"))
        return out

    def build(self, arch: Arch) -> nn.Module:
        from hwlat.spaces._torch_vit import ViT

        a = self.canonical(arch)
        return ViT(a["embed_dim"], a["num_heads"], a["mlp_dim"], a["r"], PATCH, HEAD_DIM, N_CLASSES).eval()

    def feature_names(self) -> list[str]:
        names = ["embed_dim", "depth", "r"]
        names += [f"heads{i}" for i in range(MAX_DEPTH)] + [f"mlp{i}" for i in range(MAX_DEPTH)]
        return names + ["total_flops", "total_params", "total_bytes_read", "total_bytes_written"]

    def features(self, arch: Arch) -> np.ndarray:
        a = self.canonical(arch)
        L = a["depth"]
        heads = np.zeros(MAX_DEPTH)
        mlp = np.zeros(MAX_DEPTH)
        heads[:L] = a["num_heads"]
        mlp[:L] = a["mlp_dim"]
        D, r = a["embed_dim"], a["r"]
        T = (r // PATCH) ** 2 + 1
        tot = np.asarray(_fixed_cost(D, r))
        for h, m in zip(a["num_heads"], a["mlp_dim"]):
            tot = tot + np.asarray(_block_cost(T, D, h, m))
        return np.concatenate([[D, L, r], heads, mlp, tot]).astype(np.float64)


def _scalar(v: Any) -> Any:
    if isinstance(v, (list, tuple, np.ndarray)) and len(v) == 1:
        return v[0]
    return v


def _per_layer(space: str, field: str, v: Any, L: int) -> list[Any]:
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if not isinstance(v, (list, tuple)):
        return [v] * L
    if len(v) < L:
        raise EncodingError(f"{space}: {field!r} has {len(v)} entries for depth {L}")
    return list(v[:L])  # entries past the depth are inactive


@functools.lru_cache(maxsize=4096)
def _block(T: int, D: int, heads: int, mlp: int) -> tuple[Kernel, ...]:
    q = heads * HEAD_DIM
    return (
        kernel("layernorm", t=T, d=D),
        kernel("linear", m=T, cin=D, cout=3 * q, act="none"),
        kernel("mha", t=T, d=q, heads=heads),
        kernel("linear", m=T, cin=q, cout=D, act="none"),
        kernel("add", c=D, hw=T, broadcast=0),
        kernel("layernorm", t=T, d=D),
        kernel("linear", m=T, cin=D, cout=mlp, act="gelu"),
        kernel("linear", m=T, cin=mlp, cout=D, act="none"),
        kernel("add", c=D, hw=T, broadcast=0),
    )


@functools.lru_cache(maxsize=4096)
def _block_cost(T: int, D: int, heads: int, mlp: int) -> tuple[float, float, float, float]:
    return cost_totals(_block(T, D, heads, mlp))


@functools.lru_cache(maxsize=256)
def _fixed_cost(D: int, r: int) -> tuple[float, float, float, float]:
    space = ViTSpace()
    ks = space.encode({"embed_dim": D, "depth": 1, "num_heads": [1], "mlp_dim": [1], "r": r})
    T = (r // PATCH) ** 2 + 1
    f = np.asarray(cost_totals(ks)) - np.asarray(_block_cost(T, D, 1, 1))
    return tuple(float(x) for x in f)  # type: ignore[return-value]


register(ViTSpace())
