"""Transports (one module each): how hwlat reaches a device."""

from hwlat.transports import local, ssh  # noqa: F401  (register)
from hwlat.transports.base import Session, connect

__all__ = ["Session", "connect"]
