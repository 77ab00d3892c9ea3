"""Metrics on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwlat.predictors.metrics import accuracy_within, kendall, mape, report, rmse, spearman

TRUE = np.array([10.0, 20.0, 40.0, 80.0])
PRED = np.array([11.0, 18.0, 44.0, 60.0])  # rel. errors 0.10, 0.10, 0.10, 0.25


def test_accuracy_within_counts_boundary_inside() -> None:
    assert accuracy_within(TRUE, PRED, 0.10) == 0.75
    assert accuracy_within(TRUE, PRED, 0.05) == 0.0
    assert accuracy_within(TRUE, PRED, 0.25) == 1.0


def test_rmse_and_mape() -> None:
    assert rmse(TRUE, PRED) == pytest.approx(math.sqrt((1 + 4 + 16 + 400) / 4))
    assert mape(TRUE, PRED) == pytest.approx((0.1 + 0.1 + 0.1 + 0.25) / 4)


def test_rank_correlations() -> None:
    t, p = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0])  # one adjacent swap
    assert spearman(t, p) == pytest.approx(0.8)  # 1 - 6 * (1 + 1) / (4 * (16 - 1))
    assert kendall(t, p) == pytest.approx(4 / 6)  # 5 concordant, 1 discordant of 6 pairs
    assert spearman(TRUE, PRED) == pytest.approx(1.0)
    assert spearman(TRUE, TRUE[::-1]) == pytest.approx(-1.0)
    assert math.isnan(spearman(TRUE, np.ones(4)))


def test_report_keys_and_length_mismatch() -> None:
    r = report(TRUE, PRED)
    assert set(r) == {"acc5", "acc10", "rmse", "mape", "spearman", "kendall", "n"}
    assert r["n"] == 4 and r["acc10"] == 0.75
    with pytest.raises(ValueError, match="y_pred has 3"):
        report(TRUE, PRED[:3])
