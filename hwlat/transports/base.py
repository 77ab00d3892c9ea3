"""Transport protocol: how hwlat reaches a device, and the transport registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path

from hwlat.devices import Device


class Session(ABC):
    """An open connection to one device with a per-run temporary directory on it."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.run_dir: str | None = None

    @abstractmethod
    def make_run_dir(self) -> str:
        """Create a fresh private directory on the device; returns its path."""

    @abstractmethod
    def put_file(self, local: Path, rel: str) -> None:
        """Copy ``local`` to ``<run_dir>/<rel>`` (parent folders created)."""

    @abstractmethod
    def put_text(self, text: str, rel: str) -> None:
        """Write ``text`` to ``<run_dir>/<rel>``."""

    @abstractmethod
    def run_agent(self, args: list[str], idle_timeout: float) -> Iterator[str]:
        """Run ``python hwlat_agent.py *args`` in the run directory and yield its stdout lines
        as they arrive. Raises AgentError when the agent exits non-zero, dies, or is silent
        for ``idle_timeout`` seconds."""

    @abstractmethod
    def remove_run_dir(self) -> None:
        """Delete the run directory (best effort; never raises)."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.remove_run_dir()
        finally:
            self.close()


_REGISTRY: dict[str, Callable[[Device], Session]] = {}


def register(name: str) -> Callable[[Callable[[Device], Session]], Callable[[Device], Session]]:
    def deco(factory: Callable[[Device], Session]) -> Callable[[Device], Session]:
        _REGISTRY[name] = factory
        return factory

    return deco


def connect(device: Device) -> Session:
    """Open a session to ``device`` with its transport."""
    import hwlat.transports  # noqa: F401  (registers built-ins)

    try:
        factory = _REGISTRY[device.transport]
    except KeyError:
        from hwlat.errors import ConfigError

        raise ConfigError(f"device {device.name!r}: no transport {device.transport!r}") from None
    return factory(device)
