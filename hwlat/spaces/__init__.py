"""Built-in search spaces (each module registers itself)."""

from hwlat.spaces.base import SearchSpace, get_space, register, space_names

__all__ = ["SearchSpace", "get_space", "register", "space_names"]
