"""The code base never unpickles: predictors, profile stores and model files are loaded from
JSON / Parquet / UBJ / safetensors-like state dicts only. An AST scan (multi-line calls and
aliases included) plus a plain grep, each checked against known-bad snippets first so the
scan itself cannot silently pass."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCANNED = ["hwlat", "device_agents", "scripts"]

UNPICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
GREP = re.compile(r"\b(pickle|cPickle|dill|cloudpickle|joblib|marshal)\.(load|loads|Unpickler)\b|"
                  r"\bread_pickle\(|\byaml\.unsafe_load\(|\ballow_pickle\s*=\s*True")


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _kw_true(call: ast.Call, name: str) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def violations(source: str, filename: str = "<src>") -> list[str]:
    """Unpickling calls and imports in ``source`` (one 'file:line: what' per finding)."""
    out = []
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            out += [f"{where}: import {a.name}" for a in node.names if a.name.split(".")[0] in UNPICKLING_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNPICKLING_MODULES:
            out.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            last = name.rsplit(".", 1)[-1]
            if name.endswith("torch.load") and not _kw_true(node, "weights_only"):
                out.append(f"{where}: {name}() without weights_only=True")
            elif last == "load" and name.split(".")[0] in ("np", "numpy") and _kw_true(node, "allow_pickle"):
                out.append(f"{where}: {name}(allow_pickle=True)")
            elif last == "read_pickle":
                out.append(f"{where}: {name}()")
            elif name in ("yaml.load", "yaml.unsafe_load") and not any(
                    k.arg == "Loader" and "Safe" in _dotted(k.value) for k in node.keywords):
                out.append(f"{where}: {name}() without a SafeLoader")
    return out


BAD = {
    "import pickle\npickle.load(open('m.pkl', 'rb'))": 1,
    "from joblib import load\nload('model.joblib')": 1,
    "import torch\nm = torch.load(\n    'x.pt',\n    map_location='cpu',\n)": 1,
    "import torch\nm = torch.load('x.pt', weights_only=False)": 1,
    "import numpy as np\nnp.load('a.npy', allow_pickle=True)": 1,
    "import pandas as pd\npd.read_pickle('df.pkl')": 1,
    "import yaml\nyaml.load(open('c.yaml'))": 1,
}
GOOD = ("import torch\ntorch.load('x.pt', weights_only=True, map_location='cpu')\n"
        "import numpy as np\nnp.load('a.npy')\nimport yaml\nyaml.load(s, Loader=yaml.SafeLoader)\n")


@pytest.mark.parametrize("snippet", list(BAD))
def test_scanner_catches_known_bad(snippet: str) -> None:
    assert len(violations(snippet)) >= BAD[snippet], snippet
    assert GREP.search(snippet) or "torch.load" in snippet or "from joblib" in snippet or "yaml" in snippet


def test_scanner_allows_safe_loading() -> None:
    assert violations(GOOD) == []


def test_code_base_never_unpickles() -> None:
    files = [p for d in SCANNED for p in sorted((REPO / d).rglob("*.py"))]
    assert len(files) > 30  # the scan really looked at the code base
    found = []
    for p in files:
        src = p.read_text(encoding="utf-8")
        rel = str(p.relative_to(REPO))
        found += violations(src, rel)
        found += [f"{rel}:{src[:m.start()].count(chr(10)) + 1}: grep {m.group(0)!r}" for m in GREP.finditer(src)]
    assert found == [], "\n".join(found)
