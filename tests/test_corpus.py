"""The model corpus: variants are deterministic per seed, and every family builds, exports to ONNX,
runs in onnxruntime like in torch, and decomposes with no unsupported operator (at 64x64: the
structure is what is checked, and small inputs keep the whole file near a minute)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from hwlat import corpus
from hwlat.decompose import kernels_of
from hwlat.errors import ConfigError
from hwlat.export import graph_hash
from hwlat.kernels import get

TEST_RES = 64
FAMILIES = corpus.families()
# what the issue asks the corpus to span (a family removed or renamed should fail here)
REQUIRED = {"resnet", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3", "efficientnet", "mnasnet",
            "shufflenet_v2", "ghostnet", "regnet", "densenet", "squeezenet", "convnext", "vit", "swin",
            "mixer", "mobilevit", "levit"}
# a kernel type each family cannot be without: its defining operator really is in the exported graph
SIGNATURE = {"resnet": "conv_bn_act", "mobilenet_v1": "dwconv", "mobilenet_v2": "dwconv",
             "mobilenet_v3": "se", "efficientnet": "se", "mnasnet": "dwconv",
             "shufflenet_v2": "channel_shuffle", "ghostnet": "concat", "regnet": "conv_bn_act",
             "densenet": "batchnorm", "squeezenet": "concat",
             "convnext": "layernorm", "vit": "mha", "swin": "mha", "mixer": "transpose", "mobilevit": "mha",
             "levit": "mha"}


@pytest.fixture(scope="module")
def exported() -> dict[str, tuple[corpus.ModelSpec, onnx.ModelProto]]:
    """Seed 0 of every family at the test resolution, exported once for this module."""
    out = {}
    for fam in FAMILIES:
        spec = corpus.sample(fam, 0, resolution=TEST_RES)
        out[fam] = (spec, corpus.export(spec))
    return out


def test_registry_spans_the_families() -> None:
    corpus.sample("vit", 0)
    assert corpus.families() == FAMILIES  # still the function once the family modules are imported
    assert len(FAMILIES) >= 15
    assert set(FAMILIES) >= REQUIRED
    assert set(SIGNATURE) == REQUIRED
    with pytest.raises(ConfigError, match="resnet"):
        corpus.sample("resnot", 0)


@pytest.mark.parametrize("family", FAMILIES)
def test_sample_is_deterministic_and_json_plain(family: str) -> None:
    specs = [corpus.sample(family, s) for s in range(6)]
    assert specs == [corpus.sample(family, s) for s in range(6)]
    for spec in specs:
        assert spec.family == family and spec.name.startswith(f"{family}-")
        assert spec.input_shape == (1, 3, spec.resolution, spec.resolution)
        assert spec.resolution in corpus.get_family(family).resolutions
        # JSON, not repr: a stored spec must come back equal (no tuples, numpy scalars)
        assert corpus.ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    # the sampler draws: six seeds give at least four different networks
    assert len({s.name for s in specs}) >= 4


def test_resolution_override_is_checked() -> None:
    assert corpus.sample("vit", 3, resolution=96).input_shape == (1, 3, 96, 96)
    for bad in (48, 100):
        with pytest.raises(ConfigError, match="multiple of 32"):
            corpus.sample("vit", 3, resolution=bad)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_decomposes_with_every_operator_mapped(family: str, exported) -> None:
    spec, proto = exported[family]
    # strict: an operator with no kernel raises UnsupportedOperatorError naming it
    dec = kernels_of(proto, strict=True)
    assert dec.unsupported == []
    types = {k.type for k in dec.kernels}
    assert SIGNATURE[family] in types, sorted(types)
    for k in dec.kernels:
        assert get(k.type).validate(k.config) == dict(k.config)


@pytest.mark.parametrize("family", FAMILIES)
def test_export_runs_in_onnxruntime_like_torch(family: str, exported) -> None:
    spec, proto = exported[family]
    x = np.random.default_rng(0).standard_normal(spec.input_shape).astype(np.float32)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    model = corpus.build(spec)
    assert not model.training
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape == (1, 1000)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("family", ["resnet", "mobilenet_v3", "swin", "mobilevit"])
def test_same_seed_exports_the_same_file(family: str, exported) -> None:
    spec, proto = exported[family]
    again = corpus.export(corpus.sample(family, 0, resolution=TEST_RES))
    assert graph_hash(again) == graph_hash(proto)
    # weights are seeded by the spec too, so the file (a store item's identity) is byte-identical
    assert again.SerializeToString() == proto.SerializeToString()


def test_balanced_round_robin_and_extendable() -> None:
    fams = ["resnet", "vit", "mixer"]
    specs = corpus.balanced(fams, 7, seed=5)
    assert [s.family for s in specs] == fams * 2 + ["resnet"]
    assert len({s.name for s in specs}) == 7
    assert corpus.balanced(fams, 4, seed=5) == specs[:4]  # more samples keep the ones already drawn
    assert specs[0] == corpus.sample("resnet", 5) and specs[3] == corpus.sample("resnet", 6)


def test_profiling_source_exports_once_and_records_kernel_lists(hwlat_home) -> None:
    from hwlat.profiling.sources import corpus_items, file_kernels_path, record_model_kernels

    fams = ["mobilenet_v1", "squeezenet"]  # the cheapest exports: this test is about the plumbing
    items = corpus_items(fams, 3, "onnxruntime", seed=2)
    assert [it.arch["family"] for it in items] == ["mobilenet_v1", "squeezenet", "mobilenet_v1"]
    specs = corpus.balanced(fams, 3, seed=2)
    for it, spec in zip(items, specs, strict=True):
        assert it.table == "models" and it.space is None and it.arch == spec.to_dict()
        assert it.file.is_file() and it.file.name == f"{spec.name}.onnx"
    stamps = [it.file.stat().st_mtime_ns for it in items]
    again = corpus_items(fams, 3, "onnxruntime", seed=2)  # a resumed run: same items, nothing exported
    assert [(it.name, it.sha256) for it in again] == [(it.name, it.sha256) for it in items]
    assert [it.file.stat().st_mtime_ns for it in again] == stamps
    # recorded by file content, where training looks up a model file's kernels
    assert record_model_kernels(items, "onnxruntime") == []
    for it in items:
        assert file_kernels_path(it.sha256, "onnxruntime").is_file()


def test_profile_cli_names_unknown_families(hwlat_home) -> None:
    from typer.testing import CliRunner

    from hwlat.cli import app

    r = CliRunner().invoke(app, ["profile", "local", "--corpus", "resnot,vit", "--passes", "1"])
    assert r.exit_code != 0 and isinstance(r.exception, ConfigError)
    assert "unknown family resnot" in str(r.exception) and "known: all, convnext" in str(r.exception)
