"""Where hwlat keeps things: the profiles root, the devices file, trusted host keys."""

from __future__ import annotations

import os
from pathlib import Path


def profiles_root() -> Path:
    """Profiles root: ``$HWLAT_PROFILES`` or ``./profiles``."""
    return Path(os.environ.get("HWLAT_PROFILES", "profiles")).expanduser()


def devices_file() -> Path:
    """Device inventory: ``$HWLAT_DEVICES`` or ``<profiles root>/devices.toml``."""
    env = os.environ.get("HWLAT_DEVICES")
    return Path(env).expanduser() if env else profiles_root() / "devices.toml"


def known_hosts_file() -> Path:
    """hwlat's own trusted host keys: ``$HWLAT_KNOWN_HOSTS`` or ``~/.config/hwlat/known_hosts``."""
    env = os.environ.get("HWLAT_KNOWN_HOSTS")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME", "~/.config")).expanduser()
    return base / "hwlat" / "known_hosts"


def agent_dir() -> Path:
    """The device agent sources shipped to devices (``device_agents/`` beside the package,
    or the copy bundled inside the installed package)."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "device_agents", here / "_device_agents"):
        if (cand / "hwlat_agent.py").is_file():
            return cand
    raise FileNotFoundError("device agent sources not found (expected device_agents/hwlat_agent.py)")
