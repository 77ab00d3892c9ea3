"""Encodings the oracle accepts on top of what each space's ``canonical`` reads.

* flat samples (NNI ``{"ks_0": 3, "ks_1": 5, ..., "r": 224}``, also ``ks/0``, ``ks.0``, ``ks[0]``,
  with any ``prefix/`` path): indexed keys are gathered into the space's list fields;
* DyNAS-T ``ofa_resnet50`` index vectors: 29 ints = 5 ``d`` values (0..2), 18 ``e`` indices into
  [0.2, 0.25, 0.35], 6 ``w`` values (0..2) — DyNAS-T's parameter order d, e, w — and an optional
  30th int, the resolution.

Everything else goes to the space unchanged, so its error messages (naming the field) still apply.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from hwlat.errors import EncodingError

#: list-valued fields per space that flat samples may spread over indexed keys
LIST_FIELDS: dict[str, tuple[str, ...]] = {
    "ofa_mbv3": ("ks", "e", "d"),
    "ofa_resnet50": ("d", "e", "w"),
    "vit": ("num_heads", "mlp_ratio", "mlp_dim", "num_attention_heads", "vit_intermediate_sizes"),
}
_INDEXED = re.compile(r"([A-Za-z][A-Za-z_]*?)[_./\[](\d+)\]?$")


def normalize(space_name: str, arch: Any) -> Any:
    """``arch`` rewritten into a form ``get_space(space_name).canonical`` reads (or unchanged)."""
    if isinstance(arch, Mapping) and space_name != "nb201":
        flat = _unflatten(space_name, arch)
        if flat is not None:
            return flat
    if space_name == "ofa_resnet50" and _is_int_vector(arch):
        return _resnet_index_vector(arch)
    return arch


def _is_int_vector(arch: Any) -> bool:
    if isinstance(arch, np.ndarray):
        return arch.ndim == 1 and np.issubdtype(arch.dtype, np.integer)
    return isinstance(arch, (list, tuple)) and bool(arch) and all(
        isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in arch)


def _resnet_index_vector(v: Any) -> dict[str, Any]:
    from hwlat.spaces import ofa_resnet50 as m

    vals = [int(x) for x in v]
    if len(vals) not in (29, 30):
        raise EncodingError(f"ofa_resnet50: an index vector must have 29 ints (5 d, 18 e, 6 w indices) or 30 "
                            f"(+ resolution), got {len(vals)}")
    for i, x in enumerate(vals[:29]):
        if not 0 <= x <= 2:
            name, j = ("d", i) if i < 5 else ("e", i - 5) if i < 23 else ("w", i - 23)
            raise EncodingError(f"ofa_resnet50: index vector[{i}] ({name!r}[{j}]) = {x} not in {{0,1,2}}")
    return {"d": vals[:5], "e": [m.ES[i] for i in vals[5:23]], "w": vals[23:29],
            "r": vals[29] if len(vals) == 30 else 224}


def _unflatten(space_name: str, arch: Mapping[str, Any]) -> dict[str, Any] | None:
    fields = LIST_FIELDS.get(space_name)
    grouped: dict[str, dict[int, Any]] = {}
    rest: dict[str, Any] = {}
    for key, v in arch.items():
        m = _INDEXED.search(str(key))
        name = m.group(1) if m else None
        if m and (fields is None or name in fields) and name not in ("op_idx_list", "arch_str"):
            grouped.setdefault(str(name), {})
            idx = int(m.group(2))
            if idx in grouped[str(name)]:
                raise EncodingError(f"{space_name}: {name}[{idx}] given twice (key {key!r})")
            grouped[str(name)][idx] = v
        else:
            rest[str(key).rsplit("/", 1)[-1]] = v
    if not grouped:
        return None
    if space_name == "fbnet":
        if len(grouped) != 1 or rest:
            raise EncodingError(f"fbnet: a flat sample needs one indexed key per layer (e.g. 'layer_0'..'layer_21'), "
                                f"got fields {sorted(grouped)} and {sorted(rest)}")
        return {"ops": _ordered(space_name, next(iter(grouped)), next(iter(grouped.values())))}
    out = dict(rest)
    for name, items in grouped.items():
        if name in out:
            raise EncodingError(f"{space_name}: {name!r} given both as a list and as indexed keys")
        out[name] = _ordered(space_name, name, items)
    return out


def _ordered(space_name: str, name: str, items: dict[int, Any]) -> list[Any]:
    missing = sorted(set(range(max(items) + 1)) - set(items))
    if missing:
        raise EncodingError(f"{space_name}: flat sample lacks {name}[{missing[0]}] (indices must run 0..{max(items)})")
    return [items[i] for i in range(len(items))]
