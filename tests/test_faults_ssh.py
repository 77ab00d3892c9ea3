"""Faults between host and device over a real OpenSSH sshd: connection cut mid-stream (sshd
session killed; traffic dropped inside a network namespace), device reboot (sshd restarted, its
workdir wiped or changed). Re-running — or the runner's own retry — completes the campaign with
every model stored exactly once. Logic: scripts/faultlib.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import faultlib as fl  # noqa: E402
from sshd_server import require_sshd  # noqa: E402

pytestmark = pytest.mark.ssh


def _check(t: fl.Trial) -> None:
    a = t.audit
    assert a is not None and a.corrupt_files == [] and a.tmp_files == [], t.to_dict()
    assert a.duplicates == 0 and a.unexpected == 0 and a.present == a.expected, t.to_dict()
    assert t.injected == 1, t.to_dict()
    for line in t.errors:
        assert line.startswith("hwlat: error:") and "Traceback" not in line, line


def test_ssh_session_killed_mid_stream(tmp_path: Path, sshd) -> None:
    """The device side of the connection dies mid-run: the runner reconnects by itself and
    measures the rest; the orphaned run dir is removed on reconnect."""
    t = fl.trial_ssh_session_kill(tmp_path, sshd, seed=5, n_items=12)
    _check(t)
    assert t.recovered_in_run == 1, t.to_dict()
    assert not list((tmp_path / "remote work").iterdir())


def test_device_reboot_with_new_workdir(tmp_path: Path, sshd) -> None:
    t = fl.trial_reboot(tmp_path, sshd, seed=6, n_items=12, new_workdir=True)
    _check(t)


@pytest.fixture()
def netns_sshd(tmp_path: Path) -> Iterator[fl.NetnsSSHD]:
    require_sshd()  # first: without sshd, the namespace would be built for nothing
    why = fl.netns_unavailable()
    if why:  # root-only facility: the session-kill test still covers cut connections
        pytest.skip(f"link faults need a network namespace: {why}")
    ns = fl.NetNS()
    server = fl.NetnsSSHD(tmp_path / "sshd-ns", ns)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        ns.destroy()


def test_link_blip_loses_nothing(tmp_path: Path, netns_sshd: fl.NetnsSSHD) -> None:
    """Traffic dropped for 1.5 s (shorter than idle_timeout): TCP recovers, the run finishes."""
    t = fl.trial_link_cut(tmp_path, netns_sshd, seed=7, n_items=10, hold_s=1.5, idle_timeout=8.0)
    _check(t)
    assert t.errors == [] and t.recovered_in_run == 1


def test_link_cut_then_rerun(tmp_path: Path, netns_sshd: fl.NetnsSSHD) -> None:
    """Traffic dropped longer than idle_timeout: one-line error naming the link, re-run completes."""
    t = fl.trial_link_cut(tmp_path, netns_sshd, seed=8, n_items=10, hold_s=6.0, idle_timeout=3.0)
    _check(t)
    assert len(t.errors) == 1 and "network link" in t.errors[0], t.errors
