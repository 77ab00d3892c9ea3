"""Builds the binary part of the bad-input corpus at test time (the text part is committed here).

    python tests/bad_inputs/make_corpus.py OUT_DIR     # writes the files, prints their names

Each entry is a real file of the kind a user could hand hwlat by mistake or a device could
leave behind; tests/test_bad_inputs_corpus.py feeds each to the real CLI and expects one
specific ``hwlat: error: ...`` line and a non-zero exit.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from pathlib import Path

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.parquet as pq
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent


def _save(model: onnx.ModelProto, path: Path) -> Path:
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def good_onnx(path: Path, c: int = 8, hw: int = 16) -> Path:
    w = numpy_helper.from_array(np.random.default_rng(c + hw).standard_normal((c, c, 3, 3)).astype(np.float32), "W")
    g = helper.make_graph([helper.make_node("Conv", ["x", "W"], ["y"], pads=[1] * 4)], "conv",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, hw, hw])], [w])
    return _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def truncated_onnx(path: Path) -> Path:
    full = good_onnx(path.with_name("_full.onnx"), 16, 16).read_bytes()
    path.with_name("_full.onnx").unlink()
    path.write_bytes(full[: len(full) * 2 // 3])
    return path


def custom_op_onnx(path: Path) -> Path:
    """A valid ONNX file whose op lives in a custom domain no runtime implements."""
    g = helper.make_graph([helper.make_node("FrobnicateV9", ["x"], ["y"], domain="com.example.evil")], "custom",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    return _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                                     helper.make_opsetid("com.example.evil", 1)]), path)


def huge_shape_onnx(path: Path) -> Path:
    """Declares a 2^40 x 2^40 x 2^40 float input: more bytes than a 64-bit size can hold, so
    any attempt to build the input fails at once (no allocation is ever tried)."""
    big = 2**40
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "huge",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [big, big, big])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [big, big, big])])
    return _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def future_schema_part(path: Path) -> Path:
    """A profile part file that a newer hwlat (schema 99) would write."""
    from hwlat.store.schema import META_KEY, arrow_schema, columns

    row = {c: None for c in columns("models")}
    row.update(schema_version=99, row_id="r" * 32, item_key="k" * 24, name="from-the-future.onnx", median_ms=1.0)
    schema = arrow_schema("models").with_metadata({META_KEY: b"99"})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([row], schema=schema), path)
    return path


def garbage_part(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PAR1" + os.urandom(64) + b"PAR1")
    return path


def faulty_python(dest: Path, mode: str, real_python: str = sys.executable) -> Path:
    """A device ``python`` that swaps the faulty plug-in (FAULT INJECTOR, see
    faulty_runtime/hwlat_rt_onnxruntime.py) into the run directory, then runs the real agent."""
    faulty = HERE / "faulty_runtime" / "hwlat_rt_onnxruntime.py"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("#!/bin/sh\nset -e\n"
                    "[ -f hwlat_rt_onnxruntime_real.py ] || mv hwlat_rt_onnxruntime.py hwlat_rt_onnxruntime_real.py\n"
                    f"cp {shlex.quote(str(faulty))} hwlat_rt_onnxruntime.py\n"
                    f"HWLAT_FAULT_MODE={shlex.quote(mode)} exec {shlex.quote(real_python)} \"$@\"\n")
    dest.chmod(dest.stat().st_mode | stat.S_IXUSR)
    return dest


BUILDERS = {
    "truncated.onnx": truncated_onnx,
    "custom_op.onnx": custom_op_onnx,
    "huge_shape.onnx": huge_shape_onnx,
    "future_schema.parquet": future_schema_part,
    "garbage.parquet": garbage_part,
}


def build(out: Path) -> dict[str, Path]:
    """Write every binary corpus file into ``out``; returns name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    return {name: fn(out / name) for name, fn in BUILDERS.items()}


if __name__ == "__main__":
    for name, p in build(Path(sys.argv[1])).items():
        print(name, p)
