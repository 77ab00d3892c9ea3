"""Built-in search spaces (each module registers itself)."""

from hwlat.spaces import fbnet, nb201, ofa_mbv3, ofa_proxyless, ofa_resnet50, vit  # noqa: F401  (register built-ins)
from hwlat.spaces.base import SearchSpace, get_space, register, space_names

__all__ = ["SearchSpace", "get_space", "register", "space_names"]
