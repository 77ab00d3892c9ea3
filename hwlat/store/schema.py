"""Profile store schema (version 1).

Both tables share the measurement columns; ``kernels`` adds the kernel type and config,
``models`` adds the model file identity and, for search-space subnets, the arch.
Config / arch / options / extras are canonical JSON strings so tables of different
kernel types share one Parquet schema; :meth:`ProfileStore.kernels` expands configs into
``cfg_<field>`` columns.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1
META_KEY = b"hwlat.schema_version"
TABLES = ("kernels", "models")

COMMON: list[tuple[str, pa.DataType]] = [
    ("schema_version", pa.int32()),
    ("row_id", pa.string()),          # unique per measured row: the dedup key on read
    ("item_key", pa.string()),        # what was measured (config + runtime): the skip key
    ("run_id", pa.string()),
    ("device", pa.string()),
    ("name", pa.string()),
    ("median_ms", pa.float64()),
    ("mean_ms", pa.float64()),
    ("std_ms", pa.float64()),
    ("min_ms", pa.float64()),
    ("max_ms", pa.float64()),
    ("p10_ms", pa.float64()),
    ("p90_ms", pa.float64()),
    ("ci_low_ms", pa.float64()),
    ("ci_high_ms", pa.float64()),
    ("runs", pa.int64()),
    ("warmup_runs", pa.int64()),
    ("converged", pa.bool_()),
    ("measure_s", pa.float64()),
    ("warmup_s", pa.float64()),
    ("started_at", pa.string()),
    ("finished_at", pa.string()),
    ("runtime", pa.string()),
    ("runtime_version", pa.string()),
    ("runtime_options", pa.string()),
    ("agent_version", pa.string()),
    ("fingerprint_id", pa.string()),
    ("load_avg_1m", pa.float64()),
    ("temp_c", pa.float64()),
    ("suspect", pa.bool_()),
    ("notes", pa.string()),
    ("extra", pa.string()),
]

KERNEL_COLS: list[tuple[str, pa.DataType]] = [
    ("kernel_type", pa.string()),
    ("config", pa.string()),
]

MODEL_COLS: list[tuple[str, pa.DataType]] = [
    ("file_sha256", pa.string()),
    ("space", pa.string()),
    ("arch", pa.string()),
    ("format", pa.string()),
]


def arrow_schema(table: str) -> pa.Schema:
    cols = COMMON + (KERNEL_COLS if table == "kernels" else MODEL_COLS)
    return pa.schema(cols, metadata={META_KEY: str(SCHEMA_VERSION).encode()})


def columns(table: str) -> list[str]:
    return [n for n, _ in (COMMON + (KERNEL_COLS if table == "kernels" else MODEL_COLS))]
