"""Loader for the public HELP latency tables (NB201, FBNet, OFA; see the README next to them).

The CSVs are read from a data directory (default ``../shared/data/help`` beside the repo root);
nothing is copied into the repo. Architectures come back in the encodings of ``hwlat.spaces``:
NB201 arch strings, FBNet lists of 22 op indices, OFA dicts ``{"ks", "e", "d", "r"}``; arch
features come from the spaces' ``features_batch``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwlat.errors import ConfigError

#: our name -> (csv file, hwlat.spaces name)
SPACES: dict[str, tuple[str, str]] = {
    "nb201": ("nb201_latency_ms.csv", "nb201"),
    "fbnet": ("fbnet_latency_ms.csv", "fbnet"),
    "ofa": ("ofa_latency_ms.csv", "ofa_mbv3"),
}
_NON_DEVICE = {"arch_idx", "arch_str", "op_idx_list", "ks", "e", "d", "r"}


def default_data_dir() -> Path:
    """``<repo root>/../shared/data/help`` (where CI and the dev machines keep the HELP data)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "help"


@dataclass
class HelpData:
    """One space's table: ``archs[i]`` has latency ``latency[device][i]`` in ms."""

    space: str
    archs: list[Any]
    latency: pd.DataFrame

    @property
    def devices(self) -> list[str]:
        return list(self.latency.columns)


def _ints(s: str) -> list[int]:
    return [int(t) for t in str(s).split("-")]


def load_help(space: str, data_dir: str | Path | None = None, nrows: int | None = None) -> HelpData:
    """Read one space's CSV. Raises ``ConfigError`` naming the missing file."""
    if space not in SPACES:
        raise ConfigError(f"unknown HELP space {space!r}; known: {', '.join(SPACES)}")
    d = Path(data_dir) if data_dir is not None else default_data_dir()
    path = d / SPACES[space][0]
    if not path.is_file():
        raise ConfigError(f"HELP data file {path} not found; pass the directory holding "
                          f"{SPACES[space][0]} (see shared/data/help/README.md)")
    df = pd.read_csv(path, nrows=nrows)
    if space == "nb201":
        archs: list[Any] = df["arch_str"].tolist()
    elif space == "fbnet":
        archs = [_ints(s) for s in df["op_idx_list"]]
    else:
        archs = [{"ks": _ints(k), "e": _ints(e), "d": _ints(dd), "r": int(r)}
                 for k, e, dd, r in zip(df["ks"], df["e"], df["d"], df["r"], strict=True)]
    lat = df[[c for c in df.columns if c not in _NON_DEVICE]].astype(np.float64).reset_index(drop=True)
    return HelpData(space=space, archs=archs, latency=lat)


# ---- arch features --------------------------------------------------------------------------
_NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def _nb201_raw_edges(archs: list[str]) -> tuple[np.ndarray, list[str]]:
    """One-hot of the 6 edges *as written* (not canonicalised).

    HELP's NB201 latencies were measured on the full network: ops on edges that the canonical
    form masks as dead (their output is discarded, or they read an all-zero node) still ran and
    still cost time. The space's canonical features map 15,625 strings to 9,445 distinct rows, and
    a GBDT on them alone reaches Spearman 0.88 on titan_rtx_256 vs 0.995 with these columns added.
    """
    X = np.zeros((len(archs), 6, len(_NB201_OPS)))
    for i, s in enumerate(archs):
        ops = [t.split("~")[0] for node in str(s).strip("|").split("|+|") for t in node.split("|")]
        if len(ops) != 6 or any(o not in _NB201_OPS for o in ops):
            raise ConfigError(f"HELP nb201 arch {i} {s!r} is not a 6-edge NB201 string")
        X[i, np.arange(6), [_NB201_OPS.index(o) for o in ops]] = 1.0
    return X.reshape(len(archs), -1), [f"raw_edge{e}_{o}" for e in range(6) for o in _NB201_OPS]


def arch_features(space: str, archs: list[Any]) -> tuple[np.ndarray, list[str]]:
    """Feature matrix (n, d) and names for ``archs`` of one HELP space: ``hwlat.spaces`` features
    (plus, for NB201, the raw edge one-hot; see :func:`_nb201_raw_edges`)."""
    if space not in SPACES:
        raise ConfigError(f"unknown HELP space {space!r}; known: {', '.join(SPACES)}")
    import importlib

    from hwlat.spaces import get_space

    name = SPACES[space][1]
    importlib.import_module(f"hwlat.spaces.{name}")  # registers the space even if the package does not
    sp = get_space(name)
    X = np.asarray(sp.features_batch(archs), dtype=np.float64)
    names = list(sp.feature_names())
    if space == "nb201":
        R, rnames = _nb201_raw_edges(archs)
        X, names = np.hstack([X, R]), names + rnames
    return X, names
