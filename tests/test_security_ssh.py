"""Security over a real sshd: host-key pinning (unknown, changed, other port, hashed entries),
key-only authentication that never prompts, hostile names and paths quoted, the agent confined
to its run directory. Complements test_foundation_profile.py (unknown key on first contact,
changed key after a re-key via `devices check`)."""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sshd_server import SSHD, keygen
from test_agent_helpers import make_conv_onnx, make_rundir, run_agent, write_manifest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import faultlib as fl  # noqa: E402

from hwlat.store import ProfileStore  # noqa: E402


def _one_line(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode != 0, r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("hwlat: error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _pin_line(sshd: SSHD, key_pub: Path, port: int | None = None) -> str:
    kind, b64 = key_pub.read_text().split()[:2]
    return f"[127.0.0.1]:{port or sshd.port} {kind} {b64}\n"


@pytest.mark.ssh
def test_host_key_pinning_rules(tmp_path: Path, sshd: SSHD) -> None:
    home = fl.Home(tmp_path / "h")
    work = tmp_path / "work"
    home.write_devices({"box": sshd.device_table(workdir=str(work))})
    fl.make_models(tmp_path / "models", 2)
    kh = home.root / "known_hosts"
    # the right key, but pinned for another port: still unknown
    kh.write_text(_pin_line(sshd, sshd.host_key.with_suffix(".pub"), port=sshd.port + 1))
    _one_line(fl.hwlat(home, "profile", "box", "--models", str(tmp_path / "models")),
              "unknown SSH host key", "nothing was sent", "hwlat devices trust box")
    # a different key pinned for this host:port: refused during `profile` with the standard warning
    other = keygen(tmp_path / "impostor")
    kh.write_text(_pin_line(sshd, other.with_suffix(".pub")))
    line = _one_line(fl.hwlat(home, "profile", "box", "--models", str(tmp_path / "models")),
                     "REMOTE HOST IDENTIFICATION HAS CHANGED", "man-in-the-middle", "--replace")
    assert line.count("SHA256:") == 2  # offered and expected fingerprints, to compare by hand
    assert not work.exists()  # refused before any command ran on the device
    assert [p.name for p in home.profiles.rglob("*") if p.is_file()] in ([], [".lock"])  # nothing stored
    # OpenSSH's hashed known_hosts entries (ssh-keygen -H) are honoured
    kh.write_text(_pin_line(sshd, sshd.host_key.with_suffix(".pub")))
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(kh)], check=True, capture_output=True)
    assert "127.0.0.1" not in kh.read_text()
    fl.hwlat(home, "profile", "box", "--models", str(tmp_path / "models"), *fl.FAST, check=True)
    assert len(ProfileStore("box", home.profiles).models()) == 2


@pytest.mark.ssh
def test_key_only_auth_never_prompts(tmp_path: Path, sshd: SSHD) -> None:
    """Each way of lacking a usable key fails fast with its own one-line reason; stdin is closed
    and no password is ever tried (sshd would refuse one anyway: PasswordAuthentication no)."""
    enc = tmp_path / "encrypted_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret", "-f", str(enc)], check=True)
    (tmp_path / "garbage_key").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n")
    cases = {
        "no key anywhere": ({}, ["authentication impossible", "no key", "never prompts"]),
        "missing key file": ({"key": str(tmp_path / "nope")}, ["nope does not exist", "keys only"]),
        "unauthorised key": ({"key": str(keygen(tmp_path / "stranger"))}, ["authentication failed", "keys only"]),
        "passphrase key": ({"key": str(enc)}, ["passphrase", "never prompts"]),
        "garbage key": ({"key": str(tmp_path / "garbage_key")}, ["not a usable private key"]),
    }
    home = fl.Home(tmp_path / "h")
    devices = {}
    for name, (over, _) in cases.items():
        table = sshd.device_table(**over)
        if "key" not in over:
            table.pop("key")
        devices[name] = table
    home.write_devices(devices)
    for name in cases:
        fl.trust(home, name, sshd)
    for name, (_, needles) in cases.items():
        t0 = time.monotonic()
        r = fl.hwlat(home, "devices", "check", name, timeout=60)
        _one_line(r, repr(name), *needles)
        assert time.monotonic() - t0 < 15, f"{name}: auth failures must not be retried like network errors"


@pytest.mark.ssh
def test_hostile_names_are_quoted(tmp_path: Path, sshd: SSHD) -> None:
    """Device name, workdir and model file names full of shell syntax profile correctly, and
    none of the embedded commands runs (canary files must not appear)."""
    tok = secrets.token_hex(4)
    canaries = tmp_path / "canaries"
    canaries.mkdir()
    payload = f"$(touch {canaries}/a{tok}) `touch {canaries}/b{tok}`; touch {canaries}/c{tok}"
    work = tmp_path / f"w o'r\"k {payload} &&"
    name = f"box 'q\" ;$(touch n{tok}) `touch m{tok}` | x"
    home = fl.Home(tmp_path / "h")
    home.write_devices({name: sshd.device_table(workdir=str(work))})
    fl.trust(home, name, sshd)
    folder = tmp_path / "models"
    hostile = [f"m1 ;$(touch d{tok}).onnx", f"m2 `touch e{tok}` 'x\".onnx", f"m3 && touch f{tok} ;.onnx"]
    for i, fname in enumerate(hostile):
        fl.conv_onnx(folder / fname, 8, 8 + 4 * i, 3, seed=i)
    r = fl.hwlat(home, "profile", name, "--models", str(folder), *fl.FAST, "--json")
    assert r.returncode == 0, r.stderr
    df = ProfileStore(name, home.profiles).models()
    assert sorted(df["name"]) == sorted(hostile) and (df["median_ms"] > 0).all()
    assert list(canaries.iterdir()) == []
    remote_home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    for where in (home.root, tmp_path, remote_home, Path.cwd(), work, Path("/tmp")):
        leaked = [p.name for p in where.glob(f"*{tok}*")] if where.is_dir() else []
        assert leaked == [] or leaked == [work.name], (where, leaked)
    assert work.is_dir() and list(work.iterdir()) == []  # the run dir was made inside it, then removed


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root``: files with size and mtime, folders by name only (a folder's
    mtime changes when the run directory inside it comes and goes)."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames:
            out[str(Path(dirpath, n).relative_to(root))] = (-1, -1)
        for n in filenames:
            try:
                st = Path(dirpath, n).lstat()
            except FileNotFoundError:  # removed between the listing and the stat (the run cleaning up)
                continue
            out[str(Path(dirpath, n).relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def test_agent_writes_only_in_its_run_dir(tmp_path: Path) -> None:
    """A real profiling run with HOME, TMPDIR and the XDG cache pointed into a scratch tree:
    watched while it runs, nothing appears outside the run directory, and afterwards the
    scratch tree is exactly as before (the run directory was removed)."""
    scratch = tmp_path / "scratch"
    for d in ("home", "tmp", "cache", "work"):
        (scratch / d).mkdir(parents=True)
    home = fl.Home(tmp_path / "h")
    home.write_devices({"loc": {"transport": "local", "workdir": str(scratch / "work")}})
    fl.make_models(tmp_path / "models", 6)
    env = dict(home.env(), HOME=str(scratch / "home"), TMPDIR=str(scratch / "tmp"),
               XDG_CACHE_HOME=str(scratch / "cache"))
    before = _tree(scratch)
    proc = subprocess.Popen([*fl.HWLAT, "profile", "loc", "--models", str(tmp_path / "models"), *fl.FAST],
                            env=env, cwd=home.root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen_run_dir, outside = False, set()
    while proc.poll() is None:
        for rel in set(_tree(scratch)) - set(before):
            if rel.startswith("work/hwlat-run-"):
                seen_run_dir = True
            else:
                outside.add(rel)
        time.sleep(0.02)
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert seen_run_dir and outside == set(), outside
    assert _tree(scratch) == before


def test_agent_refuses_symlinked_dirs_and_chains(tmp_path: Path) -> None:
    """Beyond file symlinks (test_agent_onnx): a symlinked folder and a chain of links that ends
    outside the run directory are refused; a chain that stays inside is fine."""
    run = make_rundir(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    make_conv_onnx(outside / "secret.onnx", 3, 8)
    make_conv_onnx(run / "models" / "ok.onnx", 3, 8)
    os.symlink(outside, run / "linked_dir")
    os.symlink(run / "models" / "hop2", run / "models" / "hop1")
    os.symlink(outside / "secret.onnx", run / "models" / "hop2")
    os.symlink("ok.onnx", run / "models" / "in1")
    os.symlink("in1", run / "models" / "in2")
    items = [("dir", "linked_dir/secret.onnx"), ("chain", "models/hop1"), ("inside", "models/in2"),
             ("dotdot", "models/../../outside/secret.onnx")]
    write_manifest(run, "onnxruntime", items)
    rc, events, err = run_agent(run, "run", "manifest.json")
    assert rc == 0, err
    by_id = {e["id"]: e for e in events if e["event"] in ("result", "error")}
    for key in ("dir", "chain", "dotdot"):
        assert by_id[key]["event"] == "error" and by_id[key]["reason"].startswith("refused"), by_id[key]
    assert by_id["inside"]["event"] == "result"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.onnx"]
