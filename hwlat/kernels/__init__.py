"""Kernel types (one module per family) and kernel benchmark suites.

Importing this package registers every kernel type of docs/kernels.md.
"""

from hwlat.kernels import (  # noqa: F401  (imported to register their kernel types)
    attention,
    batchnorm,
    concat,
    conv,
    elementwise,
    linear,
    mbconv,
    norm,
    patch,
    pool,
    se,
    shuffle,
)
from hwlat.kernels.base import ACTIVATIONS, Kernel, KernelType, get, names, register
from hwlat.kernels.derived import describe

__all__ = ["ACTIVATIONS", "Kernel", "KernelType", "describe", "get", "names", "register"]
