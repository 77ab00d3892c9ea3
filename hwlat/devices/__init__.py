"""Device inventory."""

from hwlat.devices.inventory import (
    RUNTIMES,
    TRANSPORTS,
    Device,
    builtin_devices,
    get_device,
    load_devices,
    save_device,
)

__all__ = ["RUNTIMES", "TRANSPORTS", "Device", "builtin_devices", "get_device", "load_devices", "save_device"]
