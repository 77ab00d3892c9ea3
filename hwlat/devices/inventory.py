"""Device inventory: devices described in a TOML file, plus built-in local devices."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from hwlat.errors import ConfigError
from hwlat.paths import devices_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TRANSPORTS = ("local", "ssh")
RUNTIMES = ("onnxruntime", "tflite", "torch", "tflm", "tensorrt", "benchmark_model")
# Names become directory names in the profile store; everything else (spaces, quotes, `;`,
# `$()`) is allowed because every remote command is quoted.
_BAD_NAME = re.compile(r"[/\\\x00-\x1f]|^\.|^$")


@dataclass
class Device:
    """One device: how to reach it and what to measure with."""

    name: str
    transport: str = "local"
    runtime: str = "onnxruntime"
    host: str | None = None
    port: int = 22
    user: str | None = None
    key: str | None = None
    python: str | None = None
    threads: int = 1
    provider: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    known_hosts: str | None = None
    workdir: str | None = None
    connect_timeout: float = 10.0
    idle_timeout: float = 300.0
    description: str = ""
    builtin: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        validate_name(self.name)
        if self.transport not in TRANSPORTS:
            raise ConfigError(f"device {self.name!r}: transport {self.transport!r} is not one of {', '.join(TRANSPORTS)}")
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"device {self.name!r}: runtime {self.runtime!r} is not one of {', '.join(RUNTIMES)}")
        if self.transport == "ssh" and not self.host:
            raise ConfigError(f"device {self.name!r}: transport 'ssh' needs 'host'")
        if self.threads < 1:
            raise ConfigError(f"device {self.name!r}: threads must be >= 1, got {self.threads}")

    def runtime_options(self) -> dict[str, Any]:
        """Options handed to the agent's runtime plug-in."""
        opts: dict[str, Any] = {"threads": self.threads}
        if self.provider:
            opts["provider"] = self.provider
        opts.update(self.options)
        return opts

    def python_exe(self) -> str:
        if self.python:
            return self.python
        return sys.executable if self.transport == "local" else "python3"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("builtin")
        return d

    def to_toml_table(self) -> dict[str, Any]:
        """Fields that differ from their defaults, for writing devices.toml."""
        out: dict[str, Any] = {"transport": self.transport}
        for f in fields(self):
            if f.name in ("name", "builtin", "transport"):
                continue
            v = getattr(self, f.name)
            default = f.default_factory() if f.default_factory is not MISSING else f.default  # type: ignore[misc]
            if v is not None and v != default:
                out[f.name] = v
        return out


def validate_name(name: str) -> str:
    if not isinstance(name, str) or _BAD_NAME.search(name) or ".." in name or len(name) > 128:
        raise ConfigError(f"device name {name!r} is not usable: no '/', '\\', control characters, leading '.' or '..'")
    return name


def builtin_devices() -> dict[str, Device]:
    """Devices that exist with no configuration: this machine with each local runtime."""
    mk = lambda **kw: Device(builtin=True, **kw)  # noqa: E731
    devs = [
        mk(name="local", runtime="onnxruntime", threads=1, provider="CPUExecutionProvider",
           description="this machine, onnxruntime CPU, 1 thread"),
        mk(name="local-2t", runtime="onnxruntime", threads=2, provider="CPUExecutionProvider",
           description="this machine, onnxruntime CPU, 2 threads"),
        mk(name="local-tflite", runtime="tflite", threads=1, options={"xnnpack": True},
           description="this machine, TFLite/LiteRT with XNNPACK, 1 thread"),
        mk(name="local-tflite-noxnn", runtime="tflite", threads=1, options={"xnnpack": False},
           description="this machine, TFLite/LiteRT built-in kernels (no XNNPACK), 1 thread"),
        mk(name="local-torch", runtime="torch", threads=1, description="this machine, torch eager CPU, 1 thread"),
    ]
    return {d.name: d for d in devs}


_TYPES: dict[str, tuple[type, ...]] = {
    "transport": (str,), "runtime": (str,), "host": (str,), "port": (int,), "user": (str,), "key": (str,),
    "python": (str,), "threads": (int,), "provider": (str,), "options": (dict,), "tags": (list,),
    "known_hosts": (str,), "workdir": (str,), "connect_timeout": (int, float), "idle_timeout": (int, float),
    "description": (str,),
}


def _device_from_table(name: str, table: Any, path: Path) -> Device:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [devices.{name}] must be a table")
    kw: dict[str, Any] = {}
    for k, v in table.items():
        if k not in _TYPES:
            raise ConfigError(f"{path}: device {name!r} has unknown field {k!r}; known: {', '.join(_TYPES)}")
        ok = _TYPES[k]
        if isinstance(v, bool) and bool not in ok or not isinstance(v, ok):
            want = " or ".join(t.__name__ for t in ok)
            raise ConfigError(f"{path}: device {name!r} field {k!r} must be {want}, got {type(v).__name__} {v!r}")
        kw[k] = v
    if "tags" in kw and not all(isinstance(t, str) for t in kw["tags"]):
        raise ConfigError(f"{path}: device {name!r} field 'tags' must be a list of strings")
    try:
        return Device(name=name, **kw)
    except ConfigError as e:  # name the file, as the type errors above do
        raise ConfigError(f"{path}: {e}") from None


def load_devices(path: Path | str | None = None) -> dict[str, Device]:
    """Built-in devices overlaid with the ones in ``path`` (default :func:`hwlat.paths.devices_file`)."""
    p = Path(path) if path else devices_file()
    devs = builtin_devices()
    if not p.exists():
        return devs
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid TOML ({e}); fix the file or move it aside") from None
    tables = data.get("devices", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{p}: 'devices' must be a table of [devices.NAME] tables")
    for name, table in tables.items():
        devs[name] = _device_from_table(name, table, p)
    return devs


def get_device(name: str, path: Path | str | None = None) -> Device:
    """Look up one device by name; unknown names give a one-line reason."""
    devs = load_devices(path)
    if name not in devs:
        raise ConfigError(f"unknown device {name!r}; known: {', '.join(sorted(devs))} (add one with `hwlat devices add`)")
    return devs[name]


def save_device(dev: Device, path: Path | str | None = None) -> Path:
    """Add or replace ``dev`` in the devices file (atomic rewrite)."""
    p = Path(path) if path else devices_file()
    data: dict[str, Any] = {}
    if p.exists():
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    data.setdefault("devices", {})[dev.name] = dev.to_toml_table()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(tomli_w.dumps(data), encoding="utf-8")
    os.replace(tmp, p)
    return p
