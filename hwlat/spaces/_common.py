"""Helpers shared by the built-in search spaces: kernel construction, channel rounding, validation."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from hwlat.errors import EncodingError
from hwlat.kernels.base import ConfigValue, Kernel


def make_divisible(v: float, divisor: int = 8, min_val: int | None = None) -> int:
    """Channel rounding of the TF MobileNet / OFA code (round to nearest, never drop > 10%)."""
    if min_val is None:
        min_val = divisor
    new_v = max(min_val, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def conv_out(size: int, k: int, s: int, pad: int | None = None) -> int:
    """Output size of a conv/pool; padding defaults to the "same-style" ``k // 2`` of docs/kernels.md."""
    p = k // 2 if pad is None else pad
    return (size + 2 * p - k) // s + 1


def kernel(type_: str, **config: ConfigValue) -> Kernel:
    """A :class:`Kernel` built by its registered type (shapes from the type), so space encoders and
    the ONNX decomposition describe kernels the same way. The registry is imported lazily."""
    from hwlat import kernels as _k

    _ensure_kernel_types()
    return _k.get(type_).make(**config)


_LOADED = False


def _ensure_kernel_types() -> None:
    # Kernel type modules register themselves on import; import the package's modules once.
    global _LOADED
    if _LOADED:
        return
    import importlib
    import pkgutil

    import hwlat.kernels as pkg

    for m in pkgutil.iter_modules(pkg.__path__):
        if not m.name.startswith("_"):
            importlib.import_module(f"hwlat.kernels.{m.name}")
    _LOADED = True


def cost_totals(kernels: Iterable[Kernel]) -> tuple[float, float, float, float]:
    """(flops, params, bytes_read, bytes_written) summed over ``kernels`` with the registry's cost models."""
    from hwlat import kernels as _k

    _ensure_kernel_types()
    f = p = br = bw = 0.0
    for kn in kernels:
        kt = _k.get(kn.type)
        f += float(kt.flops(kn.config))
        p += float(kt.params(kn.config))
        br += float(kt.bytes_read(kn.config))
        bw += float(kt.bytes_written(kn.config))
    return f, p, br, bw


# ---- validation -------------------------------------------------------------------------------


def as_int(space: str, field: str, v: Any) -> int:
    """``v`` as an int (accepts ints, integral floats, numpy ints, numeric strings)."""
    if isinstance(v, bool):
        raise EncodingError(f"{space}: {field}={v!r} is not an integer")
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return int(v)
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            pass
    raise EncodingError(f"{space}: {field}={v!r} is not an integer")


def as_float(space: str, field: str, v: Any) -> float:
    if isinstance(v, bool):
        raise EncodingError(f"{space}: {field}={v!r} is not a number")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise EncodingError(f"{space}: {field}={v!r} is not a number") from None
    if not math.isfinite(f):
        raise EncodingError(f"{space}: {field}={v!r} is not a finite number")
    return f


def int_list(space: str, field: str, v: Any, n: int | None) -> list[int]:
    """A list of ints of length ``n`` (None: any length) from a list/tuple/ndarray or '3-5-7' string."""
    if isinstance(v, str):
        v = [p for p in v.replace(",", "-").replace(" ", "-").split("-") if p]
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if not isinstance(v, (list, tuple)):
        raise EncodingError(f"{space}: {field!r} must be a list of integers, got {type(v).__name__}")
    if n is not None and len(v) != n:
        raise EncodingError(f"{space}: {field!r} has {len(v)} entries; expected {n}")
    return [as_int(space, f'"{field}"[{i}]', x) for i, x in enumerate(v)]


def check_in(space: str, field: str, v: Any, allowed: Sequence[Any]) -> None:
    if v not in allowed:
        shown = "{" + ",".join(str(a) for a in allowed) + "}"
        raise EncodingError(f"{space}: {field}={v!r} not in {shown}")


def require_mapping_keys(space: str, arch: Mapping[str, Any], required: Sequence[str],
                         optional: Sequence[str] = ()) -> None:
    missing = [k for k in required if k not in arch]
    if missing:
        raise EncodingError(f"{space}: missing field(s) {missing}; expected keys {list(required)}")
    extra = sorted(set(arch) - set(required) - set(optional))
    if extra:
        raise EncodingError(f"{space}: unknown field(s) {extra}; expected keys {list(required) + list(optional)}")


def resolution_of(space: str, arch: Mapping[str, Any], allowed: Sequence[int], default: int = 224) -> int:
    """Input resolution from ``r`` / ``image_size`` / ``resolution`` (int or ``[int]``), validated."""
    rkeys = [k for k in ("r", "image_size", "resolution") if k in arch]
    if len(rkeys) > 1:
        raise EncodingError(f"{space}: resolution given twice ({', '.join(rkeys)}); give only 'r'")
    r_raw = arch[rkeys[0]] if rkeys else default
    if isinstance(r_raw, (list, tuple, np.ndarray)):
        if len(r_raw) != 1:
            raise EncodingError(f"{space}: 'r' as a list must hold one value, got {list(r_raw)}")
        r_raw = r_raw[0]
    r = as_int(space, '"r"', r_raw)
    check_in(space, '"r"', r, allowed)
    return r


def width_of(space: str, arch: Mapping[str, Any], allowed: Sequence[float], default: float) -> float:
    """Width multiplier from ``wid`` / ``width_mult`` (None or absent: ``default``), validated."""
    wkeys = [k for k in ("wid", "width_mult") if k in arch]
    if len(wkeys) > 1:
        raise EncodingError(f"{space}: width given twice ({', '.join(wkeys)}); give only 'wid'")
    wv = arch[wkeys[0]] if wkeys else None
    wid = default if wv is None else round(as_float(space, '"wid"', wv), 6)
    check_in(space, '"wid"', wid, allowed)
    return wid
