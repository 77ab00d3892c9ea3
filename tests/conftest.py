"""Shared fixtures: isolated profiles root and devices file, real sshd on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import tomli_w
from onnx import TensorProto, helper, numpy_helper
from sshd_server import SSHD, require_sshd


@pytest.fixture()
def hwlat_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Profiles root, devices file and known_hosts isolated in a temp dir."""
    root = tmp_path / "profiles"
    root.mkdir()
    monkeypatch.setenv("HWLAT_PROFILES", str(root))
    monkeypatch.setenv("HWLAT_DEVICES", str(root / "devices.toml"))
    monkeypatch.setenv("HWLAT_KNOWN_HOSTS", str(tmp_path / "known_hosts"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # keep ~/.ssh/known_hosts out of it
    (tmp_path / "home").mkdir()
    return root


def write_devices(path: Path, devices: dict[str, dict]) -> None:
    path.write_text(tomli_w.dumps({"devices": devices}))


def conv_model(path: Path, c: int = 16, hw: int = 32, k: int = 3) -> Path:
    """A one-Conv ONNX model; bigger c/hw → slower."""
    rng = np.random.default_rng(c * 1000 + hw)
    w = numpy_helper.from_array(rng.standard_normal((c, c, k, k)).astype(np.float32), "W")
    node = helper.make_node("Conv", ["x", "W"], ["y"], pads=[k // 2] * 4)
    g = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, hw, hw])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, path)
    return path


def model_folder(folder: Path, n: int, heavy: bool = False) -> list[Path]:
    """``n`` distinct conv models: small (≈0.02–0.3 ms each) or heavy (≈1–3 ms each)."""
    if heavy:
        sizes = [(c, hw) for hw in (40, 44, 48, 52, 56, 60) for c in (48, 56, 64)]
    else:
        sizes = [(c, hw) for hw in (8, 12, 16, 20, 24, 28, 32) for c in (4, 8, 12, 16, 24, 32)]
    return [conv_model(folder / f"conv_c{c}_hw{hw}.onnx", c, hw) for c, hw in sizes[:n]]


# Fixtures that start an sshd; a test that uses one is an ``ssh`` test even if nobody marked it.
SSHD_FIXTURES = frozenset({"sshd", "fleet", "netns_sshd"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SSHD_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.ssh)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Every ``ssh`` test skips (or, under HWLAT_REQUIRE_SSHD=1, fails) here, before any of its
    fixtures runs, so a missing sshd reads the same for all of them and never as an error."""
    if item.get_closest_marker("ssh"):
        require_sshd()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHD]:
    require_sshd()  # also here, for a test that reaches this fixture some other way
    server = SSHD(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()
