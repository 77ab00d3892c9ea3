"""Matching state shared by the pattern passes: which node belongs to which match."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hwlat.decompose.graph import Graph

if TYPE_CHECKING:
    from hwlat.decompose.rules import RuleSet


@dataclass
class Match:
    """A group of ONNX nodes that one kernel covers."""

    type: str
    config: dict[str, int | str]
    nodes: list[int]
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


@dataclass
class Ctx:
    g: Graph
    rules: RuleSet
    matches: list[Match] = field(default_factory=list)
    owner: dict[int, int] = field(default_factory=dict)  # node index -> match index
    glue: set[int] = field(default_factory=set)
    #: node index -> why it could not be mapped (besides "no rule"), e.g. unknown shape
    reasons: dict[int, str] = field(default_factory=dict)

    def free(self, *nodes: int | None) -> bool:
        """True when every node exists and is not yet claimed."""
        return all(n is not None and n not in self.owner and n not in self.glue for n in nodes)

    def claim(self, m: Match) -> Match:
        assert self.free(*m.nodes), m
        idx = len(self.matches)
        self.matches.append(m)
        for n in m.nodes:
            self.owner[n] = idx
        return m
