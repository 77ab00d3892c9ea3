"""Piecewise-linear feature encoding of the MLP: bins, pass-through, extrapolation, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwlat.predictors.encoding import PiecewiseLinear


def _table() -> np.ndarray:
    rng = np.random.default_rng(0)
    c = rng.integers(1, 1025, 400)  # channel-like counts, log1p-featured as the kernel features are
    return np.stack([np.log1p(c), (c % 16 == 0).astype(float), np.full(400, 3.0)], axis=1)


def test_bins_flags_and_constants() -> None:
    X = _table()
    enc = PiecewiseLinear(8).fit(X)
    E = enc.transform(X)
    # continuous: raw value + 8 bins; flag and constant pass through as one column each
    assert enc.n_out == E.shape[1] == 1 + 8 + 1 + 1
    np.testing.assert_array_equal(E[:, 0], X[:, 0])
    np.testing.assert_array_equal(E[:, 9], X[:, 1])
    np.testing.assert_array_equal(E[:, 10], X[:, 2])
    bins = E[:, 1:9]
    assert bins.min() == 0.0 and bins.max() == 1.0
    # the bins fill in order: the summed position is increasing in the value, 0 at min, 8 at max
    pos = bins.sum(axis=1)
    order = np.argsort(X[:, 0], kind="stable")
    assert np.all(np.diff(pos[order]) >= -1e-12)
    assert pos[order[0]] == 0.0 and pos[order[-1]] == pytest.approx(8.0)
    # a bin is partly filled only where all earlier ones are full and all later ones empty
    for row in bins:
        part = np.flatnonzero((row > 0) & (row < 1))
        assert len(part) <= 1
        if len(part):
            assert np.all(row[:part[0]] == 1.0) and np.all(row[part[0] + 1:] == 0.0)


def test_outside_the_training_range_extrapolates() -> None:
    X = _table()
    enc = PiecewiseLinear(8).fit(X)
    lo, hi = X[:, 0].min(), X[:, 0].max()
    E = enc.transform(np.array([[lo - 1.0, 0.0, 3.0], [hi + 1.0, 1.0, 3.0], [hi + 2.0, 1.0, 3.0]]))
    assert E[0, 1] < 0.0  # below: the first bin goes negative instead of sticking at 0
    assert 1.0 < E[1, 8] < E[2, 8]  # above: the last bin keeps growing


def test_json_round_trip_and_refusals() -> None:
    X = _table()
    enc = PiecewiseLinear(16).fit(X)
    again = PiecewiseLinear.from_json(json.loads(json.dumps(enc.to_json())))
    np.testing.assert_array_equal(again.transform(X), enc.transform(X))
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        enc.transform(X[:, :2])
    with pytest.raises(ValueError, match="not fitted"):
        PiecewiseLinear(4).transform(X)
    with pytest.raises(ValueError, match="n_bins"):
        PiecewiseLinear(1)
