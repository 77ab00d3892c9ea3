"""Bad input: a one-line reason, non-zero exit, and the store unchanged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import conv_model, write_devices
from test_foundation_profile import hwlat

from hwlat import ProfileStore
from hwlat.errors import ConfigError, StoreError
from hwlat.store.schema import META_KEY


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def _one_line_error(r, *needles: str) -> str:
    assert r.returncode != 0, r.stdout
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("hwlat: error:")]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture()
def seeded_store(hwlat_home: Path, tmp_path: Path) -> Path:
    m = conv_model(tmp_path / "ok.onnx", 8, 8)
    hwlat("measure", str(m), "--device", "local", check=True)
    return hwlat_home


def test_bad_inputs_leave_store_unchanged(seeded_store: Path, tmp_path: Path) -> None:
    before = _snapshot(seeded_store)
    _one_line_error(hwlat("measure", str(tmp_path / "missing.onnx")), "missing.onnx", "does not exist")
    (tmp_path / "notonnx.onnx").write_text("this is not a model")
    _one_line_error(hwlat("measure", str(tmp_path / "notonnx.onnx")), "not a valid ONNX model")
    full = conv_model(tmp_path / "full.onnx", 16, 16).read_bytes()
    (tmp_path / "trunc.onnx").write_bytes(full[: len(full) // 2])
    _one_line_error(hwlat("measure", str(tmp_path / "trunc.onnx")), "trunc.onnx")
    _one_line_error(hwlat("measure", str(tmp_path / "full.onnx"), "--device", "nosuch"), "unknown device 'nosuch'")
    (tmp_path / "m.tflite").write_bytes(b"x")
    _one_line_error(hwlat("measure", str(tmp_path / "m.tflite"), "--device", "local"), "needs a .onnx file")
    write_devices(seeded_store / "devices.toml", {
        "ghost": {"transport": "ssh", "host": "127.0.0.1", "port": 1, "connect_timeout": 2.0}})
    _one_line_error(hwlat("measure", str(tmp_path / "full.onnx"), "--device", "ghost"), "ghost", "cannot connect")
    (seeded_store / "devices.toml").unlink()
    assert _snapshot(seeded_store) == before


def test_corrupt_parquet_named(seeded_store: Path, tmp_path: Path) -> None:
    part = next((seeded_store / "local" / "models").glob("part-*.parquet"))
    bad = part.with_name("part-0-corrupt.parquet")
    bad.write_bytes(b"PAR1 garbage garbage")
    before = _snapshot(seeded_store)
    line = _one_line_error(hwlat("measure", str(conv_model(tmp_path / "x.onnx", 4, 8)), "--device", "local"),
                           "corrupt profile file", "part-0-corrupt.parquet")
    assert "delete it" in line
    assert _snapshot(seeded_store) == before
    with pytest.raises(StoreError, match="corrupt"):
        ProfileStore("local").models()


def test_future_schema_refused(seeded_store: Path) -> None:
    part = next((seeded_store / "local" / "models").glob("part-*.parquet"))
    t = pq.read_table(part)
    t = t.replace_schema_metadata({META_KEY: b"99"})
    pq.write_table(t, part.with_name("part-9-future.parquet"))
    with pytest.raises(StoreError, match="newer hwlat"):
        ProfileStore("local").models()


def test_devices_toml_wrong_types(hwlat_home: Path) -> None:
    (hwlat_home / "devices.toml").write_text('[devices.pi]\ntransport = "ssh"\nhost = "h"\nport = "twenty-two"\n')
    line = _one_line_error(hwlat("devices", "list"), "'pi'", "'port'", "int")
    assert "devices.toml" in line
    (hwlat_home / "devices.toml").write_text('[devices.pi]\ntransport = "carrier-pigeon"\n')
    _one_line_error(hwlat("devices", "list"), "carrier-pigeon")
    (hwlat_home / "devices.toml").write_text('[devices.pi\n')
    _one_line_error(hwlat("devices", "list"), "not valid TOML")
    from hwlat.devices import load_devices

    with pytest.raises(ConfigError):
        load_devices(hwlat_home / "devices.toml")


def test_nan_rows_refused(hwlat_home: Path) -> None:
    st = ProfileStore("local")
    with pytest.raises(StoreError, match="not a positive finite"):
        st.append("models", [{"item_key": "k", "name": "m", "median_ms": float("nan")}])
    assert st.models().empty


def test_store_append_dedup_and_compact(hwlat_home: Path) -> None:
    st = ProfileStore("local")
    rows = [{"item_key": f"k{i}", "name": f"m{i}", "median_ms": 1.0 + i, "finished_at": f"2026-01-01T00:00:0{i}"}
            for i in range(5)]
    for r in rows:
        assert st.append("models", [r]) == 1
    assert st.append("models", rows) == 0  # already stored
    assert len(ProfileStore("local").read("models")) == 5
    st.compact()
    assert len(list((hwlat_home / "local" / "models").glob("part-*.parquet"))) == 1
    df = ProfileStore("local").models()
    assert sorted(df["item_key"]) == [f"k{i}" for i in range(5)]
    # a crash between writing the compacted file and deleting the parts leaves duplicate rows on disk
    compacted = next((hwlat_home / "local" / "models").glob("part-*.parquet"))
    pq.write_table(pq.read_table(compacted), compacted.with_name("part-1-leftover.parquet"))
    assert len(ProfileStore("local").read("models")) == 5


def test_devices_cli(hwlat_home: Path) -> None:
    out = json.loads(hwlat("devices", "list", "--json", check=True).stdout)
    local = next(d for d in out if d["name"] == "local")
    assert local["runtime"] == "onnxruntime" and local["transport"] == "local" and local["threads"] == 1
    hwlat("devices", "add", "pi 4", "--host", "10.1.2.3", "--user", "pi", "--threads", "4", "--tag", "arm",
          "--option", "xnnpack=false", check=True)
    out = {d["name"]: d for d in json.loads(hwlat("devices", "list", "--json", check=True).stdout)}
    assert out["pi 4"]["transport"] == "ssh" and out["pi 4"]["threads"] == 4 and out["pi 4"]["options"] == {"xnnpack": False}
    shown = json.loads(hwlat("devices", "show", "pi 4", "--json", check=True).stdout)
    assert shown["host"] == "10.1.2.3" and shown["tags"] == ["arm"]
    chk = json.loads(hwlat("devices", "check", "local", "--json", check=True).stdout)
    assert chk["ok"] and chk["fingerprint"]["runtime_version"]


def test_schema_roundtrip_types(hwlat_home: Path) -> None:
    st = ProfileStore("local")
    st.append("kernels", [{"item_key": "a", "name": "conv", "median_ms": 0.5, "kernel_type": "conv2d",
                           "config": json.dumps({"h": 8, "cin": 4}), "finished_at": "x"}])
    df = st.kernels()
    assert df.loc[0, "cfg_h"] == 8 and df.loc[0, "kernel_type"] == "conv2d"
    assert pa.types.is_floating(pq.read_schema(next((hwlat_home / "local" / "kernels").glob("*.parquet")))
                                .field("median_ms").type)


def test_missing_predictor_tells_a_typo_from_an_untrained_device(seeded_store: Path) -> None:
    """No predictor: for a device with a profile the fix is `hwlat train`; for a name no inventory
    and no profile knows (a typo), the fix is the right name, so the known devices are listed."""
    from hwlat.errors import PredictorError
    from hwlat.predictors.predictor import Predictor

    _one_line_error(hwlat("predict", "resnet18", "--device", "local"), "no trained predictor", "hwlat train local")
    line = _one_line_error(hwlat("eval", "locl"), "'locl'", "no device of that name", "local-2t")
    assert "hwlat train" not in line
    _one_line_error(hwlat("predict", "resnet18", "--device", "locl", "--kind", "mlp"), "no device of that name")
    with pytest.raises(PredictorError, match="no device of that name"):
        Predictor.load("locl")
    with pytest.raises(PredictorError, match="hwlat train local"):
        Predictor.load("local")
