"""Find and kill real agent processes in tests (no mocks: the agent really dies)."""

from __future__ import annotations

import os
import signal
from pathlib import Path


def agent_pids(workdir: Path) -> list[int]:
    """PIDs of running agents whose working directory lies under ``workdir``."""
    out = []
    base = str(workdir.resolve())
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(d / "cwd")
        except OSError:
            continue
        if any(c.endswith(b"hwlat_agent.py") for c in cmd) and b"run" in cmd and cwd.startswith(base):
            out.append(int(d.name))
    return out


def kill_agents(workdir: Path) -> int:
    n = 0
    for pid in agent_pids(workdir):
        try:
            os.kill(pid, signal.SIGKILL)
            n += 1
        except ProcessLookupError:
            pass
    return n
