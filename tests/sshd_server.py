"""A real OpenSSH sshd on 127.0.0.1 with throw-away host and user keys, for tests and scripts."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD_BIN = shutil.which("sshd") or "/usr/sbin/sshd"


def sshd_available() -> str | None:
    """None when a test sshd can run here, else the reason it cannot."""
    if not os.access(SSHD_BIN, os.X_OK):
        return "OpenSSH sshd not installed (apt-get install openssh-server)"
    if not shutil.which("ssh-keygen"):
        return "ssh-keygen not installed (apt-get install openssh-client)"
    return None


def sshd_required() -> bool:
    """True under ``HWLAT_REQUIRE_SSHD=1`` (as .ci/run sets), where a missing sshd is a failure."""
    return os.environ.get("HWLAT_REQUIRE_SSHD", "") not in ("", "0")


def require_sshd() -> None:
    """Skip the running test, with one reason shared by every SSH test, when no sshd can run here;
    under ``HWLAT_REQUIRE_SSHD=1`` fail it instead, so CI cannot pass by skipping them all."""
    import pytest  # here, not at the top: scripts import this module without pytest

    why = sshd_available()
    if why is None:
        return
    if sshd_required():
        pytest.fail(f"HWLAT_REQUIRE_SSHD=1 but {why}", pytrace=False)
    pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
    return path


@dataclass
class SSHD:
    """One sshd process; ``restart(new_host_key=True)`` simulates a re-imaged device."""

    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.host_key = keygen(self.root / "host_ed25519")
        self.user_key = keygen(self.root / "user_ed25519")
        shutil.copy(self.root / "user_ed25519.pub", self.root / "authorized_keys")
        os.chmod(self.root / "authorized_keys", 0o600)
        self.config = self.root / "sshd_config"

    def write_config(self) -> None:
        self.config.write_text(f"""
Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile {self.root}/sshd.pid
AuthorizedKeysFile {self.root}/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
LogLevel ERROR
MaxStartups 100
MaxSessions 50
""")

    def start(self) -> SSHD:
        os.makedirs("/run/sshd", exist_ok=True) if os.geteuid() == 0 else None
        self.write_config()
        self.proc = subprocess.Popen([SSHD_BIN, "-D", "-e", "-f", str(self.config)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(self.root / "sshd.log", "ab"))  # noqa: SIM115 (lives as long as sshd)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, new_host_key: bool = False) -> None:
        self.stop()
        if new_host_key:
            for p in (self.host_key, self.host_key.with_suffix(".pub")):
                p.unlink(missing_ok=True)
            keygen(self.host_key)
        self.start()

    def device_table(self, **over: object) -> dict:
        """A devices.toml table that reaches this sshd as the current user."""
        d = {"transport": "ssh", "host": "127.0.0.1", "port": self.port, "user": getpass.getuser(),
             "key": str(self.user_key), "python": sys.executable, "connect_timeout": 5.0}
        d.update(over)
        return d
