"""onnxruntime (CPU EP, all graph optimisations): Conv+BN+Add+act fuse; see docs/kernels.md."""

from __future__ import annotations

from hwlat.decompose import patterns as p
from hwlat.decompose.rules import RuleSet, register

# Larger patterns first: attention and SE contain ops that smaller rules would otherwise claim.
PASSES = (p.match_mha, p.match_layernorm, p.match_channel_shuffle, p.match_se, p.match_conv, p.match_linear,
          p.match_activation, p.match_rest)

ONNXRUNTIME = register(RuleSet("onnxruntime", PASSES, fuse_residual=True,
                               doc="Conv[+BN][+residual Add][+act] as one kernel"))
