"""SSH host-key pinning: verify against known_hosts, never accept an unknown key silently."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from pathlib import Path

import paramiko

from hwlat.devices import Device
from hwlat.errors import DeviceError, HostKeyError
from hwlat.paths import known_hosts_file


def host_id(host: str, port: int) -> str:
    """known_hosts spelling of a host: ``host`` on port 22, ``[host]:port`` otherwise."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_files(device: Device) -> list[Path]:
    """Files consulted, in order: the device's own, hwlat's, then ``~/.ssh/known_hosts``."""
    files = []
    if device.known_hosts:
        files.append(Path(device.known_hosts).expanduser())
    files += [known_hosts_file(), Path("~/.ssh/known_hosts").expanduser()]
    return files


def load_host_keys(client: paramiko.SSHClient, device: Device) -> None:
    for f in known_hosts_files(device):
        if f.is_file():
            try:
                client.get_host_keys().load(str(f))
            except (OSError, paramiko.SSHException) as e:
                raise HostKeyError(f"cannot read known_hosts file {f}: {e}") from None


class RefuseUnknown(paramiko.MissingHostKeyPolicy):
    """Refuse unknown keys with a message that says how to trust the host explicitly."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        name = getattr(client, "_hwlat_device_name", hostname)
        raise HostKeyError(
            f"device {name!r}: unknown SSH host key for {hostname} ({key.get_name()} {fingerprint(key)}); "
            f"nothing was sent. If this fingerprint is right, trust it with `hwlat devices trust {name}`")


def changed_key_message(device: Device, got: paramiko.PKey, expected: paramiko.PKey) -> str:
    return (f"WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED for device {device.name!r} "
            f"({host_id(device.host or '', device.port)}): it offered {got.get_name()} {fingerprint(got)}, "
            f"known_hosts has {fingerprint(expected)}. Someone could be eavesdropping (man-in-the-middle) "
            f"or the host key was just changed; refusing to connect. If the change is expected, run "
            f"`hwlat devices trust {device.name} --replace`")


def fetch_host_key(device: Device, timeout: float | None = None) -> paramiko.PKey:
    """Connect just far enough to read the server's host key (no authentication)."""
    assert device.host
    try:
        sock = socket.create_connection((device.host, device.port), timeout=timeout or device.connect_timeout)
    except OSError as e:
        raise DeviceError(f"device {device.name!r}: cannot reach {device.host}:{device.port} ({e.strerror or e}); "
                          "check that it is on and that sshd runs") from None
    t = paramiko.Transport(sock)
    try:
        t.start_client(timeout=timeout or device.connect_timeout)
        return t.get_remote_server_key()
    except paramiko.SSHException as e:
        raise DeviceError(f"device {device.name!r}: SSH handshake with {device.host}:{device.port} failed ({e})") from None
    finally:
        t.close()


def trust(device: Device, key: paramiko.PKey, replace: bool = False) -> Path:
    """Record ``key`` for the device's host in hwlat's known_hosts file (atomic rewrite)."""
    path = Path(device.known_hosts).expanduser() if device.known_hosts else known_hosts_file()
    hk = paramiko.HostKeys()
    if path.is_file():
        hk.load(str(path))
    hid = host_id(device.host or "", device.port)
    old = hk.lookup(hid)
    if old and not replace and any(k.asbytes() != key.asbytes() for k in old.values()):
        raise HostKeyError(f"{path} already holds a different key for device {device.name!r} ({hid}); "
                           f"if the change is expected, run `hwlat devices trust {device.name} --replace`")
    if replace and hid in hk:
        del hk[hid]
    hk.add(hid, key.get_name(), key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    hk.save(str(tmp))
    os.replace(tmp, path)
    return path
