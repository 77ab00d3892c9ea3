"""Profiling: measurement items, and runs that ship the agent and stream results into the store."""

from hwlat.profiling.items import Item, check_format, model_item
from hwlat.profiling.runner import DEFAULT_MEASURE, RunSummary, check, profile

__all__ = ["DEFAULT_MEASURE", "Item", "RunSummary", "check", "check_format", "model_item", "profile"]
