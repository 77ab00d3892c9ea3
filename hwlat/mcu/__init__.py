"""Host side of the hwlat MCU serial protocol (docs/mcu.md): talk to a TFLM board directly."""

from __future__ import annotations

from hwlat.mcu.serial_host import McuHost, proto

__all__ = ["McuHost", "proto"]
