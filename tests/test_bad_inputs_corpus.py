"""Bad-input corpus (tests/bad_inputs/): every entry, fed to the real CLI, gives exactly one
specific `hwlat: error: ...` line, a non-zero exit, no traceback, and leaves the store as it was.

Binary entries are generated at test time by tests/bad_inputs/make_corpus.py; text entries are
committed. NaN / zero timings come from a real agent run whose ONNX Runtime plug-in has a broken
clock (tests/bad_inputs/faulty_runtime/, a fault injector swapped in by the device's `python`).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_devices

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "bad_inputs"
sys.path.insert(0, str(CORPUS))
import make_corpus  # noqa: E402

from hwlat.cli import main  # noqa: E402

HWLAT = [sys.executable, "-m", "hwlat"]


def _one_line(returncode: int, stderr: str, *needles: str) -> str:
    assert returncode != 0
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("hwlat: error:")]
    assert len(lines) == 1, stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def hwlat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*HWLAT, *args], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("corpus")
    files = make_corpus.build(out)
    files["not_a_model.onnx"] = CORPUS / "not_a_model.onnx"
    (out / "empty.onnx").write_bytes(b"")
    files["empty.onnx"] = out / "empty.onnx"
    files["good.onnx"] = make_corpus.good_onnx(out / "good" / "good.onnx")  # a folder of its own
    return files


# ---------------------------------------------------------------- model files

MODEL_CASES = {
    "truncated.onnx": ["truncated.onnx", "not a valid ONNX model", "truncated"],
    "not_a_model.onnx": ["not_a_model.onnx", "not a valid ONNX model"],
    "empty.onnx": ["empty.onnx", "not a valid ONNX model"],
    "custom_op.onnx": ["custom_op.onnx on 'local'", "cannot load", "com.example.evil:FrobnicateV9"],
    "huge_shape.onnx": ["huge_shape.onnx on 'local'", "cannot load", "array is too big"],
}


@pytest.mark.parametrize("name", list(MODEL_CASES))
def test_bad_model_file(name: str, corpus: dict[str, Path], hwlat_home: Path) -> None:
    r = hwlat("measure", str(corpus[name]), "--device", "local")
    _one_line(r.returncode, r.stderr, *MODEL_CASES[name])
    assert not list(hwlat_home.rglob("*.parquet"))  # nothing was stored for it


def test_bad_model_in_folder_does_not_stop_the_others(corpus: dict[str, Path], hwlat_home: Path, tmp_path: Path) -> None:
    """`hwlat profile` over a folder: the runtime-side failures are reported per item, the good
    model is still measured, and the exit code says something failed."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for n in ("custom_op.onnx", "huge_shape.onnx", "good.onnx"):
        (folder / n).write_bytes(corpus[n].read_bytes())
    r = hwlat("profile", "local", "--models", str(folder), "--max-time", "0.2", "--passes", "1")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "failed custom_op.onnx" in r.stderr and "failed huge_shape.onnx" in r.stderr
    from hwlat import ProfileStore

    assert list(ProfileStore("local").models()["name"]) == ["good.onnx"]


# ---------------------------------------------------------------- a device with a broken clock


@pytest.mark.parametrize("mode,needles", [
    ("nan", ["good.onnx on 'broken'", "non-finite or negative time (nan ms)"]),
    ("zero", ["good.onnx on 'broken'", "faulty measurement from agent", "median_ms=0.0"]),
])
def test_faulty_timings_never_stored(mode: str, needles: list[str], corpus: dict[str, Path], hwlat_home: Path,
                                     tmp_path: Path) -> None:
    py = make_corpus.faulty_python(tmp_path / f"python-{mode}", mode)
    work = tmp_path / "work"
    write_devices(hwlat_home / "devices.toml", {"broken": {"transport": "local", "python": str(py),
                                                           "workdir": str(work)}})
    r = hwlat("measure", str(corpus["good.onnx"]), "--device", "broken", "--max-time", "0.2")
    _one_line(r.returncode, r.stderr, *needles)
    assert not list(hwlat_home.rglob("*.parquet"))
    assert list(work.iterdir()) == []  # the run dir is removed after a failed item too


# ---------------------------------------------------------------- store files


@pytest.mark.parametrize("name,needles", [
    ("future_schema.parquet", ["part-0-bad.parquet", "newer hwlat", "schema 99 > 1", "upgrade hwlat"]),
    ("garbage.parquet", ["corrupt profile file", "part-0-bad.parquet", "move it aside or delete it"]),
])
def test_bad_store_file(name: str, needles: list[str], corpus: dict[str, Path], hwlat_home: Path) -> None:
    d = hwlat_home / "local" / "models"
    d.mkdir(parents=True)
    (d / "part-0-bad.parquet").write_bytes(corpus[name].read_bytes())
    before = _snapshot(hwlat_home)
    folder = corpus["good.onnx"].parent
    for args in (("measure", str(corpus["good.onnx"])), ("profile", "local", "--models", str(folder))):
        r = hwlat(*args)
        _one_line(r.returncode, r.stderr, *needles)
    assert _snapshot(hwlat_home) == before  # refused before anything was written


# ---------------------------------------------------------------- devices.toml

TOML_CASES = {
    "devices_port_string.toml": ["device 'pi' field 'port' must be int", "'twenty-two'"],
    "devices_threads_float.toml": ["device 'jetson' field 'threads' must be int, got float 2.5"],
    "devices_timeout_bool.toml": ["device 'board' field 'connect_timeout' must be int or float, got bool"],
    "devices_tags_ints.toml": ["device 'phone' field 'tags' must be a list of strings"],
    "devices_options_string.toml": ["device 'nuc' field 'options' must be dict, got str"],
    "devices_unknown_field.toml": ["device 'pi' has unknown field 'hostname'", "known: transport"],
    "devices_not_a_table.toml": ["[devices.pi] must be a table"],
    "devices_devices_not_table.toml": ["'devices' must be a table of [devices.NAME] tables"],
    "devices_ssh_no_host.toml": ["device 'pi': transport 'ssh' needs 'host'"],
    "devices_threads_zero.toml": ["device 'pi': threads must be >= 1, got 0"],
    "devices_bad_runtime.toml": ["device 'pi': runtime 'magic' is not one of onnxruntime"],
    "devices_bad_name.toml": ["device name '..evil' is not usable"],
    "devices_syntax.toml": ["not valid TOML", "line 2", "fix the file or move it aside"],
    "devices_not_utf8.toml": ["not valid TOML", "utf-8", "fix the file or move it aside"],
}


def test_corpus_has_every_toml_case() -> None:
    assert sorted(p.name for p in CORPUS.glob("devices_*.toml")) == sorted(TOML_CASES)


@pytest.mark.parametrize("name", list(TOML_CASES))
def test_bad_devices_toml(name: str, hwlat_home: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    """Through the real entry point (in-process: fourteen interpreter start-ups are not worth it)."""
    monkeypatch.setenv("HWLAT_DEVICES", str(CORPUS / name))
    for argv in (["devices", "list"], ["profile", "--all", "--models", str(hwlat_home)]):
        monkeypatch.setattr(sys, "argv", ["hwlat", *argv])
        with pytest.raises(SystemExit) as ex:
            main()
        err = capsys.readouterr().err
        line = _one_line(int(ex.value.code or 0), err, *TOML_CASES[name])
        assert name in line  # the file is named, so the user knows what to fix
