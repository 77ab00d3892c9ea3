"""Concurrency with real processes: two `hwlat profile` runs into one store at once, and a fleet
run (`hwlat profile --all`) over several devices on separate sshd instances, one of them down."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd_server import SSHD, require_sshd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import faultlib as fl  # noqa: E402


@pytest.mark.parametrize("same_device", [True, False], ids=["same-device", "two-devices"])
def test_two_profile_processes_one_store(tmp_path: Path, same_device: bool) -> None:
    t = fl.trial_concurrent(tmp_path, seed=9, n_items=12, same_device=same_device)
    assert t.errors == [], t.errors  # neither process may trip over the other
    a = t.audit
    assert a is not None and a.expected == (18 if same_device else 24)
    assert a.present == a.expected and a.missing == 0, a
    assert a.duplicates == 0 and a.unexpected == 0, a  # the overlap was measured twice, stored once
    assert a.corrupt_files == [] and a.tmp_files == [], a


@pytest.fixture()
def fleet(tmp_path: Path) -> Iterator[list[SSHD]]:
    require_sshd()
    servers = [SSHD(tmp_path / f"sshd{i}").start() for i in range(4)]
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()


@pytest.mark.ssh
def test_fleet_all_devices_in_parallel_one_broken(tmp_path: Path, fleet: list[SSHD]) -> None:
    """`hwlat profile --all` over 4 devices on 4 sshd instances, one of them down: the 3 others
    finish with every row, the broken one is reported, the exit code is 1."""
    t, res = fl.trial_fleet(tmp_path, fleet, seed=10, n_items=5)
    assert t.notes == [], t.notes
    assert len(res) == 4 and len(t.errors) == 1 and t.errors[0].startswith("dead board: ")
    assert "cannot connect" in t.errors[0] and res["dead board"]["measured"] == 0
    for name, r in res.items():
        if name != "dead board":
            assert r["error"] is None and r["measured"] == 5 and r["failed"] == [], r
    assert t.audit is not None and t.audit.ok and t.audit.expected == 15, t.audit
    table = fl.hwlat(fl.Home(tmp_path), "profile", "--all", "--models", str(tmp_path / "models"), *fl.FAST)
    assert table.returncode == 1 and "dead board" in table.stdout and "cannot connect" in table.stdout
