"""DyNAS-T (Intel): a runner with ``estimate_latency`` / ``measure_latency`` and an evaluation
interface for DyNAS-T's pymoo problems (``EvolutionaryMultiObjective`` & co.).

DyNAS-T calls its runner in two ways (``dynast/supernetwork/image_classification/ofa/ofa_interface.py``):
predictor mode ``estimate_latency(manager.onehot_generic(x).reshape(1, -1))[0]`` and validation mode
``measure_latency(subnet_sample) -> (mean, std)`` with ``subnet_sample = {"wid": None, "ks", "e", "d",
"r": [224]}``. Both are served here from the oracle in ms; ``measure_latency`` returns the *predicted*
mean and the predictor's std (batch 1 — hwlat's kernels are batch 1; DyNAS-T measures batch 128).
This module does not import DyNAS-T (its package import needs torchvision); it follows its
documented parameter tables (``dynast/supernetwork/supernetwork_registry.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hwlat.errors import ConfigError, EncodingError

#: DyNAS-T supernet name -> (hwlat space, parameter table in DyNAS-T's order, fixed extras)
SUPERNETS: dict[str, tuple[str, dict[str, dict[str, Any]], dict[str, Any]]] = {
    "ofa_mbv3_d234_e346_k357_w1.0": ("ofa_mbv3", {"ks": {"count": 20, "vars": [3, 5, 7]},
                                                  "e": {"count": 20, "vars": [3, 4, 6]},
                                                  "d": {"count": 5, "vars": [2, 3, 4]}}, {"wid": 1.0}),
    "ofa_mbv3_d234_e346_k357_w1.2": ("ofa_mbv3", {"ks": {"count": 20, "vars": [3, 5, 7]},
                                                  "e": {"count": 20, "vars": [3, 4, 6]},
                                                  "d": {"count": 5, "vars": [2, 3, 4]}}, {"wid": 1.2}),
    "ofa_resnet50": ("ofa_resnet50", {"d": {"count": 5, "vars": [0, 1, 2]},
                                      "e": {"count": 18, "vars": [0.2, 0.25, 0.35]},
                                      "w": {"count": 6, "vars": [0, 1, 2]}}, {}),
    "vit_base_imagenet": ("vit", {"num_layers": {"count": 1, "vars": [10, 11, 12]},
                                  "num_attention_heads": {"count": 12, "vars": [6, 8, 10, 12]},
                                  "vit_intermediate_sizes": {"count": 12, "vars": [1024, 2048, 3072]}}, {}),
}


class DynastLatencyRunner:
    """Runner for DyNAS-T over an hwlat oracle (``supernet``: a key of :data:`SUPERNETS`)."""

    def __init__(self, oracle: Any, supernet: str = "ofa_mbv3_d234_e346_k357_w1.0", resolution: int = 224) -> None:
        if supernet not in SUPERNETS:
            raise ConfigError(f"unknown DyNAS-T supernet {supernet!r}; known: {', '.join(SUPERNETS)}")
        space, params, extra = SUPERNETS[supernet]
        if oracle.space_name != space:
            raise ConfigError(f"DyNAS-T supernet {supernet!r} is hwlat space {space!r}, but the oracle is for "
                              f"{oracle.space_name!r}")
        self.oracle = oracle
        self.supernet = supernet
        self.param_dict = params
        self.extra = dict(extra)
        self.resolution = resolution
        self.mapper = [v["vars"] for v in params.values() for _ in range(v["count"])]
        self.param_count = len(self.mapper)
        self.param_upperbound = [len(v) - 1 for v in self.mapper]

    # -- DyNAS-T encodings -------------------------------------------------------------------------
    def translate2param(self, x: Any) -> dict[str, list[Any]]:
        """A pymoo index vector -> DyNAS-T parameter dict (as ``EncodingBase.translate2param``)."""
        x = [int(round(float(v))) for v in np.asarray(x).ravel()]
        if len(x) != self.param_count:
            raise EncodingError(f"{self.supernet}: a pymoo vector needs {self.param_count} entries, got {len(x)}")
        out: dict[str, list[Any]] = {}
        i = 0
        for key, v in self.param_dict.items():
            out[key] = [self.mapper[i + j][x[i + j]] for j in range(v["count"])]
            i += v["count"]
        return out

    def from_onehot(self, row: np.ndarray) -> dict[str, list[Any]]:
        """Decode one ``onehot_generic`` row (concatenated one-hot segments per parameter)."""
        row = np.asarray(row).ravel()
        widths = [len(m) for m in self.mapper]
        if len(row) != sum(widths):
            raise EncodingError(f"{self.supernet}: a one-hot row needs {sum(widths)} entries, got {len(row)}")
        idx, pos = [], 0
        for w in widths:
            idx.append(int(np.argmax(row[pos:pos + w])))
            pos += w
        return self.translate2param(idx)

    def subnet_sample(self, subnet_cfg: Any) -> dict[str, Any]:
        """The arch the oracle reads for a DyNAS-T config dict / pymoo vector / one-hot row."""
        if isinstance(subnet_cfg, dict):
            cfg = dict(subnet_cfg)
        else:
            v = np.asarray(subnet_cfg).ravel()
            cfg = self.from_onehot(v) if len(v) != self.param_count else self.translate2param(v)
        if self.oracle.space_name == "ofa_mbv3":
            cfg.setdefault("r", [self.resolution])
            cfg["wid"] = self.extra.get("wid") if cfg.get("wid") is None else cfg["wid"]
        elif self.oracle.space_name == "ofa_resnet50":
            cfg.setdefault("r", [self.resolution])
        elif self.oracle.space_name == "vit":
            nl = cfg.get("num_layers")
            if isinstance(nl, list):
                cfg["num_layers"] = nl[0]
            cfg.setdefault("r", self.resolution)
        return cfg

    # -- the runner interface DyNAS-T calls --------------------------------------------------------
    def estimate_latency(self, subnet_cfg: Any) -> Any:
        """Predicted latency (ms): a float for a config dict, an array per row for a 2-D one-hot batch."""
        arr = None if isinstance(subnet_cfg, dict) else np.asarray(subnet_cfg)
        if arr is not None and arr.ndim == 2:
            return self.oracle.batch([self.subnet_sample(r) for r in arr])
        return float(self.oracle(self.subnet_sample(subnet_cfg)))

    def measure_latency(self, subnet_cfg: Any, warmup_steps: int | None = None, measure_steps: int | None = None,
                        device: str | None = None) -> tuple[float, float]:
        """(mean, std) in ms — predicted by the oracle, not measured (see module docstring)."""
        arch = self.subnet_sample(subnet_cfg)
        return float(self.oracle(arch)), float(self.oracle.std(arch))

    def get_subnet(self, subnet_cfg: Any) -> Any:
        """A torch module of the subnet (random weights)."""
        sp = self.oracle.space
        return sp.build(sp.canonical(self.subnet_sample(subnet_cfg)))


class DynastLatencyInterface:
    """DyNAS-T evaluation interface (``eval_subnet(x) -> (sample, obj…)``) for its pymoo problems:
    objectives in ``optimization_metrics`` order among ``latency`` (ms) and ``accuracy_top1`` (from
    ``accuracy(sample)``, negated as DyNAS-T does since pymoo minimises). With ``budget_ms`` set, an
    over-budget subnet's accuracy objective is penalised by the violation (feasible subnets win)."""

    def __init__(self, runner: DynastLatencyRunner, accuracy: Callable[[dict[str, Any]], float],
                 optimization_metrics: tuple[str, ...] = ("latency", "accuracy_top1"),
                 budget_ms: float | None = None) -> None:
        self.evaluator = runner
        self.accuracy = accuracy
        self.optimization_metrics = list(optimization_metrics)
        self.budget_ms = budget_ms
        if budget_ms is not None:
            runner.oracle.check_budget(budget_ms)

    def eval_subnet(self, x: Any) -> tuple[Any, ...]:
        sample = self.evaluator.subnet_sample(self.evaluator.translate2param(x))
        lat = float(self.evaluator.estimate_latency(sample))
        acc = float(self.accuracy(sample))
        if self.budget_ms is not None:
            viol = self.evaluator.oracle.constraint_value(sample) - self.budget_ms
            if viol > 0:
                acc -= 1e3 * (1.0 + viol)
        res = {"latency": lat, "accuracy_top1": -acc}
        return (sample, *[res[m] for m in self.optimization_metrics])
