"""Per-runtime fusion rule sets and their registry. Adding a runtime is one ``rules_<name>.py``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hwlat.decompose.context import Ctx
from hwlat.errors import ConfigError

Pass = Callable[[Ctx], None]


@dataclass(frozen=True)
class RuleSet:
    """Ordered pattern passes (earlier passes claim nodes first) and runtime switches."""

    name: str
    passes: tuple[Pass, ...]
    #: fuse a same-shape residual ``Add`` into the preceding Conv[+BN] (conv2d/conv_bn_act residual=1)
    fuse_residual: bool = True
    doc: str = ""


_RULES: dict[str, RuleSet] = {}


def register(rules: RuleSet) -> RuleSet:
    _RULES[rules.name] = rules
    return rules


def get_rules(runtime: str) -> RuleSet:
    """The rule set for ``runtime``; ConfigError naming the known runtimes otherwise."""
    _load()
    try:
        return _RULES[runtime]
    except KeyError:
        raise ConfigError(f"no fusion rules for runtime {runtime!r}; known: {', '.join(sorted(_RULES))}") from None


def runtimes() -> list[str]:
    _load()
    return sorted(_RULES)


def _load() -> None:
    # rules_<runtime> modules register themselves on import.
    import importlib
    import pkgutil

    import hwlat.decompose as pkg

    for m in pkgutil.iter_modules(pkg.__path__):
        if m.name.startswith("rules_"):
            importlib.import_module(f"hwlat.decompose.{m.name}")
