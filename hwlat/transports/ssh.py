"""``ssh`` transport (paramiko): SFTP upload into a per-run directory, streamed agent output.

Every remote command is built from fixed words and ``shlex.quote``-d values.
"""

from __future__ import annotations

import posixpath
import shlex
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko

from hwlat.devices import Device
from hwlat.errors import AgentError, DeviceError, HostKeyError
from hwlat.transports.base import Session, register
from hwlat.transports.hostkeys import RefuseUnknown, changed_key_message, load_host_keys

TRANSIENT = (socket.timeout, ConnectionError, EOFError, paramiko.ssh_exception.NoValidConnectionsError)


def _check_key(device: Device) -> None:
    """A configured key must be a readable private key: say so now instead of retrying a
    connection that cannot authenticate (an encrypted key is reported by connect())."""
    if not device.key:
        return
    path = Path(device.key).expanduser()
    if not path.is_file():
        raise DeviceError(f"device {device.name!r}: SSH key file {path} does not exist; hwlat uses keys only: "
                          "set 'key' in devices.toml to a private key authorised on the device")
    try:
        paramiko.PKey.from_path(path)
    except (paramiko.PasswordRequiredException, TypeError):  # TypeError: cryptography's "password-protected"
        raise DeviceError(f"device {device.name!r}: SSH key file {path} is protected by a passphrase and hwlat "
                          "never prompts for one: give this device a key without a passphrase") from None
    except (OSError, ValueError, paramiko.SSHException) as e:
        raise DeviceError(f"device {device.name!r}: SSH key file {path} is not a usable private key ({e}); "
                          "set 'key' in devices.toml to a private key authorised on the device") from None


def _connect(device: Device, attempts: int = 3, backoff: float = 1.0) -> paramiko.SSHClient:
    """Connect with retries on transient network errors; never on auth or host-key errors."""
    _check_key(device)
    last: Exception | None = None
    for i in range(attempts):
        client = paramiko.SSHClient()
        client._hwlat_device_name = device.name  # type: ignore[attr-defined]
        load_host_keys(client, device)
        client.set_missing_host_key_policy(RefuseUnknown())
        try:
            client.connect(
                device.host or "", port=device.port, username=device.user,
                key_filename=str(Path(device.key).expanduser()) if device.key else None,
                timeout=device.connect_timeout, banner_timeout=device.connect_timeout,
                auth_timeout=device.connect_timeout, allow_agent=not device.key, look_for_keys=not device.key,
                password=None)  # key-based auth only: no password is ever sent or prompted for
            return client
        except paramiko.BadHostKeyException as e:
            client.close()
            raise HostKeyError(changed_key_message(device, e.key, e.expected_key)) from None
        except paramiko.AuthenticationException as e:
            client.close()
            raise DeviceError(f"device {device.name!r}: SSH authentication failed for user {device.user!r} "
                              f"({e}); hwlat uses keys only: set 'key' in devices.toml or load it in ssh-agent") from None
        except HostKeyError:
            client.close()
            raise
        except (OSError, paramiko.SSHException, *TRANSIENT) as e:
            client.close()
            if isinstance(e, paramiko.SSHException) and "No authentication methods available" in str(e):
                raise DeviceError(f"device {device.name!r}: SSH authentication impossible for user {device.user!r}: "
                                  "no key (none in devices.toml, ssh-agent or ~/.ssh); hwlat uses keys only and "
                                  "never prompts for a password: set 'key' in devices.toml") from None
            last = e
            if i + 1 < attempts:
                time.sleep(backoff * 2**i)
    reason = getattr(last, "strerror", None) or str(last) or type(last).__name__
    raise DeviceError(f"device {device.name!r}: cannot connect to {device.host}:{device.port} after {attempts} "
                      f"attempts ({reason}); check the host is up and reachable")


@register("ssh")
class SSHSession(Session):
    def __init__(self, device: Device) -> None:
        super().__init__(device)
        self.client = _connect(device)
        self._sftp: paramiko.SFTPClient | None = None

    def _exec(self, cmd: str, timeout: float = 60.0) -> tuple[int, str, str]:
        try:
            _, out, err = self.client.exec_command(cmd, timeout=timeout)
            o, e = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
            return out.channel.recv_exit_status(), o, e
        except (OSError, paramiko.SSHException, *TRANSIENT) as ex:
            raise DeviceError(f"device {self.device.name!r}: connection lost ({ex or type(ex).__name__})") from None

    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self.client.open_sftp()
        return self._sftp

    def make_run_dir(self) -> str:
        base = self.device.workdir or "${TMPDIR:-/tmp}"
        # The base is either the fixed default (expanded by the remote shell) or a quoted user path.
        base_sh = base if base == "${TMPDIR:-/tmp}" else shlex.quote(base)
        rc, out, err = self._exec(f"umask 077 && mkdir -p {base_sh} && mktemp -d {base_sh}/hwlat-run-XXXXXXXX")
        if rc != 0 or not out.strip():
            raise DeviceError(f"device {self.device.name!r}: cannot create a run directory under {base} "
                              f"({err.strip() or 'mktemp failed'})")
        self.run_dir = out.strip().splitlines()[-1]
        return self.run_dir

    def _mkdirs(self, rel_dir: str) -> None:
        assert self.run_dir
        cur = self.run_dir
        for part in [p for p in rel_dir.split("/") if p]:
            cur = posixpath.join(cur, part)
            try:
                self.sftp().stat(cur)
            except OSError:
                self.sftp().mkdir(cur)

    def put_file(self, local: Path, rel: str) -> None:
        assert self.run_dir
        self._mkdirs(posixpath.dirname(rel))
        try:
            self.sftp().put(str(local), posixpath.join(self.run_dir, rel))
        except (OSError, paramiko.SSHException) as e:
            raise DeviceError(f"device {self.device.name!r}: upload of {local.name} failed ({e})") from None

    def put_text(self, text: str, rel: str) -> None:
        assert self.run_dir
        self._mkdirs(posixpath.dirname(rel))
        with self.sftp().open(posixpath.join(self.run_dir, rel), "w") as f:
            f.write(text.encode("utf-8"))

    def run_agent(self, args: list[str], idle_timeout: float) -> Iterator[str]:
        assert self.run_dir
        words = [self.device.python_exe(), "hwlat_agent.py", *args]
        cmd = f"cd {shlex.quote(self.run_dir)} && exec " + " ".join(shlex.quote(w) for w in words)
        try:
            chan = self.client.get_transport().open_session()  # type: ignore[union-attr]
            chan.settimeout(1.0)
            chan.exec_command(cmd)
        except (OSError, paramiko.SSHException, AttributeError) as e:
            raise DeviceError(f"device {self.device.name!r}: connection lost before the agent started ({e})") from None
        buf, err = b"", b""
        last = time.monotonic()
        try:
            while True:
                try:
                    chunk = chan.recv(65536)
                except TimeoutError:
                    chunk = None
                if chan.recv_stderr_ready():
                    err = (err + chan.recv_stderr(65536))[-8192:]
                if chunk is None:
                    if time.monotonic() - last > idle_timeout:
                        raise AgentError(f"device {self.device.name!r}: agent silent for {idle_timeout:.0f} s (hung, or the "
                                         "network link to the device is down); gave up on it (raise idle_timeout "
                                         "in devices.toml for very slow models)")
                    if not self.client.get_transport() or not self.client.get_transport().is_active():  # type: ignore[union-attr]
                        raise DeviceError(f"device {self.device.name!r}: SSH connection dropped mid-run")
                    continue
                if not chunk:
                    break
                last = time.monotonic()
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", "replace")
            if buf.strip():
                yield buf.decode("utf-8", "replace")
            while chan.recv_stderr_ready():
                err = (err + chan.recv_stderr(65536))[-8192:]
            deadline = time.monotonic() + 10
            while not chan.exit_status_ready() and time.monotonic() < deadline and self._alive():
                time.sleep(0.05)
            rc = chan.recv_exit_status() if chan.exit_status_ready() else -1
            if rc == -1 and not self._alive():
                # the connection died, not (as far as we know) the agent: a transient failure
                # that the runner retries with the items still unmeasured
                raise DeviceError(f"device {self.device.name!r}: SSH connection dropped mid-run")
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise DeviceError(f"device {self.device.name!r}: SSH connection dropped mid-run ({e or type(e).__name__})") from None
        finally:
            chan.close()
        if rc != 0:
            tail = err.decode("utf-8", "replace").strip().splitlines()
            why = tail[-1] if tail else ""
            how = "was killed or lost its connection" if rc == -1 else f"exited with code {rc}"
            raise AgentError(f"device {self.device.name!r}: agent {how}" + (f": {why}" if why else ""))

    def _alive(self) -> bool:
        t = self.client.get_transport()
        return bool(t and t.is_active())

    def remove_run_dir(self) -> None:
        if not self.run_dir:
            return
        try:
            if self.client.get_transport() and self.client.get_transport().is_active():  # type: ignore[union-attr]
                self._exec(f"rm -rf -- {shlex.quote(self.run_dir)}", timeout=30)
        except Exception:  # noqa: BLE001  (cleanup must never mask the real error)
            pass
        self.run_dir = None

    def close(self) -> None:
        try:
            if self._sftp:
                self._sftp.close()
        finally:
            self.client.close()
