"""FAULT INJECTOR, not a device: the real onnxruntime plug-in with a broken clock.

A test swaps this file in for ``hwlat_rt_onnxruntime.py`` inside a run directory (the real
plug-in is kept beside it as ``hwlat_rt_onnxruntime_real.py``). Everything is real — the agent,
ONNX Runtime loading and running the model, the SSH/local transport, the host's validation and
the store — except the time each run reports, which ``HWLAT_FAULT_MODE`` corrupts:

    nan   every run reports NaN ms        -> the agent must refuse the item
    zero  every run reports 0.0 ms        -> the agent's stats are 0, the host must refuse the row

See tests/test_bad_inputs_corpus.py.
"""

from __future__ import annotations

import os
from typing import Any

import hwlat_rt_onnxruntime_real as _real

NAME = _real.NAME
version = _real.version
missing = _real.missing
fingerprint_extra = _real.fingerprint_extra

_FAKE_MS = {"nan": float("nan"), "zero": 0.0}


class Runner:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fake = _FAKE_MS[os.environ.get("HWLAT_FAULT_MODE", "nan")]

    def run_once(self) -> float:
        self.inner.run_once()  # the model really runs; only the reported time is wrong
        return self.fake

    def extra(self) -> dict[str, Any]:
        return self.inner.extra()

    def close(self) -> None:
        self.inner.close()


def open(path: str, options: dict[str, Any], seed: int) -> Runner:  # noqa: A001 - plug-in interface name
    return Runner(_real.open(path, options, seed))
