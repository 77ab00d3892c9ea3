"""Talk to a board running the hwlat TFLM firmware (or the pty emulator) from the host.

The wire codec lives in ``device_agents/hwlat_serial_proto.py`` (one copy, shipped to devices
with the agent); this module loads it by path and turns its errors into
:class:`hwlat.errors.DeviceError` with one-line reasons.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from hwlat.errors import ConfigError, DeviceError
from hwlat.paths import agent_dir

_MODNAME = "hwlat_serial_proto"


def proto() -> ModuleType:
    """The shared protocol module (``hwlat_serial_proto``), imported once by file path."""
    mod = sys.modules.get(_MODNAME)
    if mod is not None:
        return mod
    path = agent_dir() / f"{_MODNAME}.py"
    spec = importlib.util.spec_from_file_location(_MODNAME, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load the serial protocol module {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[_MODNAME] = mod  # the agent plug-in imports it under the same name: one module
    spec.loader.exec_module(mod)
    return mod


class McuHost:
    """One open serial link to a TFLM board: ``hello``, ``upload``, ``run``, ``stats``, ``reset``.

    Use as a context manager. Errors are DeviceError with a one-line reason (port busy, no
    response, model too large for the arena, ...).
    """

    def __init__(self, port: str, baud: int = 115200, timeout: float = 2.0, retries: int = 3) -> None:
        if importlib.util.find_spec("serial") is None:
            raise ConfigError("MCU profiling needs pyserial: pip install pyserial")
        self.P = proto()
        self.port = port
        try:
            ser = self.P.open_port(port, baud, timeout)
        except self.P.LinkError as e:
            raise DeviceError(str(e)) from None
        self.link = self.P.Link(ser, name=port, baud=baud, retries=retries, timeout=timeout)
        self.info: dict[str, Any] = {}
        try:
            self.info = self._call(self.link.hello)
        except DeviceError:
            self.close()
            raise

    def _call(self, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except self.P.LinkError as e:
            raise DeviceError(str(e)) from None
        except self.P.DeviceError as e:
            if e.code == self.P.E_ARENA_TOO_SMALL:
                raise DeviceError(f"model too large for the tensor arena of {self.info.get('board', self.port)} "
                                  f"({self.info.get('arena_size')} bytes): {e.text}") from None
            raise DeviceError(f"{self.info.get('board', self.port)} on {self.port}: {e}") from None

    def hello(self) -> dict[str, Any]:
        """Board, TFLM version, clock, arena size, RAM/flash totals, frame limit."""
        self.info = self._call(self.link.hello)
        return self.info

    def upload(self, model: bytes | str | Path) -> dict[str, int]:
        """Upload a .tflite (bytes or path); returns model_bytes, arena_used, n_inputs, n_outputs."""
        data = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
        return self._call(self.link.upload, bytes(data))

    def run(self, n: int, warmup: int = 0, seed: int = 0) -> list[tuple[int, int]]:
        """``warmup`` untimed then ``n`` timed invokes: [(cycles, microseconds), ...]."""
        batch = self.P.max_run_batch(self.info["max_payload"])
        out: list[tuple[int, int]] = []
        first = True
        while len(out) < n or first:
            k = min(batch, n - len(out))
            out += self._call(self.link.run, k, warmup if first else 0, seed, timeout=60.0)
            first = False
        return out

    def stats(self) -> dict[str, int]:
        """Arena size and peak use, RAM and flash use/totals, model bytes."""
        return self._call(self.link.stats)

    def reset(self) -> None:
        """Drop the loaded model on the board."""
        self._call(self.link.reset)

    def close(self) -> None:
        # closing a vanished USB port may raise; nothing is left to do then
        with contextlib.suppress(Exception):
            self.link.ser.close()

    def __enter__(self) -> McuHost:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
