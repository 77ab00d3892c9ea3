"""``local`` transport: the agent runs as a subprocess in a private temporary directory."""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from hwlat.devices import Device
from hwlat.errors import AgentError
from hwlat.transports.base import Session, register


@register("local")
class LocalSession(Session):
    def __init__(self, device: Device) -> None:
        super().__init__(device)
        self._proc: subprocess.Popen[bytes] | None = None

    def make_run_dir(self) -> str:
        base = self.device.workdir or None
        if base:
            os.makedirs(base, exist_ok=True)
        self.run_dir = tempfile.mkdtemp(prefix="hwlat-run-", dir=base)
        return self.run_dir

    def _dest(self, rel: str) -> Path:
        assert self.run_dir, "make_run_dir() first"
        dest = Path(self.run_dir, rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        return dest

    def put_file(self, local: Path, rel: str) -> None:
        shutil.copyfile(local, self._dest(rel))

    def put_text(self, text: str, rel: str) -> None:
        self._dest(rel).write_text(text, encoding="utf-8")

    def run_agent(self, args: list[str], idle_timeout: float) -> Iterator[str]:
        assert self.run_dir
        argv = [self.device.python_exe(), "hwlat_agent.py", *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONUNBUFFERED"] = "1"
        proc = subprocess.Popen(argv, cwd=self.run_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=env)
        self._proc = proc
        assert proc.stdout is not None and proc.stderr is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ, "out")
        sel.register(proc.stderr, selectors.EVENT_READ, "err")
        buf, err = b"", b""
        last = time.monotonic()
        open_streams = 2
        try:
            while open_streams:
                events = sel.select(timeout=1.0)
                if not events and time.monotonic() - last > idle_timeout:
                    proc.kill()
                    raise AgentError(f"device {self.device.name!r}: agent silent for {idle_timeout:.0f} s; "
                                     "killed it (raise idle_timeout in devices.toml for very slow models)")
                for key, _ in events:
                    chunk = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
                    if not chunk:
                        sel.unregister(key.fileobj)
                        open_streams -= 1
                        continue
                    last = time.monotonic()
                    if key.data == "err":
                        err = (err + chunk)[-8192:]
                        continue
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        yield line.decode("utf-8", "replace")
            if buf.strip():
                yield buf.decode("utf-8", "replace")
            rc = proc.wait()
        finally:
            sel.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            self._proc = None
        if rc != 0:
            tail = err.decode("utf-8", "replace").strip().splitlines()
            why = tail[-1] if tail else ""
            how = f"killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"
            raise AgentError(f"device {self.device.name!r}: agent {how}" + (f": {why}" if why else ""),)

    def remove_run_dir(self) -> None:
        if self.run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None

    def close(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
