"""Device agent with real PyTorch on torch.export programs (.pt2); CUDA path when a GPU exists."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_agent_helpers import FAST_MEASURE, check_stats, make_rundir, run_agent, write_manifest  # noqa: E402

torch = pytest.importorskip("torch")


class ConvNet(torch.nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)) + ids.float().mean()


def export_convnet(path: Path, c: int, hw: int) -> Path:
    """A .pt2 with a dynamic batch dim (example batch 2) and an int64 second input."""
    x = torch.randn(2, c, hw, hw)
    ids = torch.ones(3, dtype=torch.int64)
    ep = torch.export.export(ConvNet(c).eval(), (x, ids),
                             dynamic_shapes={"x": {0: torch.export.Dim("batch")}, "ids": None})
    torch.export.save(ep, str(path))
    return path


@pytest.fixture(scope="module")
def pt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("agent_torch")
    run = make_rundir(tmp)
    export_convnet(run / "models" / "small.pt2", 4, 8)
    export_convnet(run / "models" / "big.pt2", 64, 56)
    (run / "models" / "corrupt.pt2").write_bytes(b"PK\x03\x04 not really a zip")
    return run


def test_torch_eager_run(pt2_dir: Path) -> None:
    items = [("small", "models/small.pt2"), ("corrupt", "models/corrupt.pt2"), ("big", "models/big.pt2")]
    write_manifest(pt2_dir, "torch", items, options={"threads": 1}, name="eager.json")
    rc, ev, err = run_agent(pt2_dir, "run", "eager.json")
    assert rc == 0, err
    assert [e["event"] for e in ev] == ["hello", "fingerprint", "result", "error", "result", "done"]
    fp = ev[1]["fingerprint"]
    assert fp["runtime"] == "torch" and fp["runtime_version"] == torch.__version__ and fp["provider"] == "cpu"
    assert "corrupt.pt2" in ev[3]["reason"]
    small, big = ev[2], ev[4]
    for r in (small, big):
        check_stats(r["stats"], FAST_MEASURE)
        assert r["extra"]["timer"] == "perf_counter"
    assert small["extra"]["inputs"] == [[1, 4, 8, 8], [3]]  # dynamic batch -> 1
    assert big["stats"]["median_ms"] > 3 * small["stats"]["median_ms"]


def test_torch_check_cuda_missing_or_ok(tmp_path: Path) -> None:
    run = make_rundir(tmp_path)
    rc, ev, err = run_agent(run, "check", "--runtime", "torch", "--options", '{"device": "cuda"}')
    if torch.cuda.is_available():
        assert rc == 0 and ev[-1]["ok"], err
    else:
        assert rc == 3 and "CUDA" in err and len(err.strip().splitlines()) == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_torch_cuda_events(pt2_dir: Path) -> None:
    write_manifest(pt2_dir, "torch", [("big", "models/big.pt2")], options={"device": "cuda"}, name="cuda.json")
    rc, ev, err = run_agent(pt2_dir, "run", "cuda.json")
    assert rc == 0, err
    assert ev[1]["fingerprint"]["gpu_name"]
    res = ev[2]
    assert res["event"] == "result" and res["extra"]["timer"] == "cuda_events"
    check_stats(res["stats"], FAST_MEASURE)


@pytest.mark.slow
def test_torch_compile_keeps_caches_in_run_dir(pt2_dir: Path) -> None:
    """torch.compile (inductor, ~15 s here) compiles during warm-up; its caches stay in the run dir."""
    write_manifest(pt2_dir, "torch", [("small", "models/small.pt2")], options={"threads": 1, "compile": True},
                   name="compile.json")
    rc, ev, err = run_agent(pt2_dir, "run", "compile.json", timeout=600)
    assert rc == 0, err
    res = ev[2]
    assert res["event"] == "result", res
    assert res["extra"]["compile"] is True and ev[1]["fingerprint"]["runtime_extra"]["compile"] is True
    check_stats(res["stats"], FAST_MEASURE)
    assert any((pt2_dir / ".cache" / "torchinductor").iterdir())
