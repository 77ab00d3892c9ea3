"""Kernel types (one module per family) and kernel benchmark suites."""

from hwlat.kernels.base import ACTIVATIONS, Kernel, KernelType, get, names, register

__all__ = ["ACTIVATIONS", "Kernel", "KernelType", "get", "names", "register"]
