"""Per-device profile store (pandas + Parquet)."""

from hwlat.store.drift import HostDrift
from hwlat.store.profile_store import ProfileStore, with_floor
from hwlat.store.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "HostDrift", "ProfileStore", "with_floor"]
