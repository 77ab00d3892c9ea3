"""Faults on a local device with real processes: the agent or the whole host process SIGKILLed at
random points, the store's disk filling up. After each, re-running completes the campaign with
every model stored exactly once, no corrupt or half-written file. Logic: scripts/faultlib.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import faultlib as fl  # noqa: E402


def _check(t: fl.Trial) -> None:
    assert t.audit is not None
    a = t.audit
    assert a.corrupt_files == [] and a.tmp_files == [], t.to_dict()
    assert a.duplicates == 0 and a.unexpected == 0, t.to_dict()
    assert a.present == a.expected and a.missing == 0, t.to_dict()
    assert t.ok


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_agent_at_random_points(tmp_path: Path, seed: int) -> None:
    t = fl.trial_sigkill_agent(tmp_path, seed, n_items=12, max_kills=2)
    if t.injected == 0:  # the whole run beat the randomly timed kill: try again with more items
        t = fl.trial_sigkill_agent(tmp_path / "again", seed + 100, n_items=30, max_kills=2)
    assert t.injected >= 1, "the agent was never running when the kill came"
    for line in t.errors:  # each killed run says why, on one line
        assert line.startswith("hwlat: error:") and "agent" in line and "killed" in line, line
    assert len(t.errors) + t.recovered_in_run == t.runs - 1
    _check(t)


def test_sigkill_host_process_mid_write(tmp_path: Path) -> None:
    t = fl.trial_sigkill_host(tmp_path, seed=3, n_items=12, max_kills=2)
    assert t.injected >= 1
    assert not [n for n in t.notes if "corrupt" in n], t.notes  # readers never saw a torn file
    _check(t)


def test_leftover_temp_files_are_invisible_and_cleaned(tmp_path: Path) -> None:
    """A writer killed between creating its temp file and renaming it leaves `.tmp-*` behind:
    readers must not see it, and the next run removes it."""
    home = fl.Home(tmp_path)
    fl.local_device(home)
    fl.make_models(tmp_path / "models", 4)
    fl.hwlat(home, "profile", "loc", "--models", str(tmp_path / "models"), *fl.FAST, check=True)
    d = home.profiles / "loc" / "models"
    part = next(d.glob("part-*.parquet"))
    (d / f".tmp-{part.name}-deadbeef").write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    (home.profiles / "loc" / ".tmp-device.json-deadbeef").write_text("{")
    from hwlat.store import ProfileStore

    assert len(ProfileStore("loc", home.profiles).models()) == 4  # the torn temp file is not read
    models = fl.make_models(tmp_path / "models", 6)
    fl.hwlat(home, "profile", "loc", "--models", str(tmp_path / "models"), *fl.FAST, check=True)
    a = fl.audit_store(home.profiles, "loc", models)
    assert a.ok, a


def test_disk_full_then_resume(tmp_path: Path) -> None:
    why = fl.mount_unavailable()
    if why:
        pytest.skip(f"disk-full fault needs a tmpfs mount: {why}")
    try:
        t = fl.trial_disk_full(tmp_path, seed=4, n_items=12)
    except fl.FaultUnavailable as e:
        pytest.skip(f"disk-full fault needs a tmpfs mount: {e}")
    assert t.injected == 1, t.to_dict()  # the disk really filled up mid-campaign
    assert len(t.errors) == 1 and "disk full while writing" in t.errors[0] and "re-run" in t.errors[0]
    _check(t)
