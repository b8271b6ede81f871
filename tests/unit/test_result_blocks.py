"""settlement.domain.results: a run's case results as compressed blocks, value for value."""
from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from settlement.domain import results as blocks


def _frame(n: int, *, institutions=(7, 3), seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    groups = np.array([f"G{i:03d}" for i in range(40)])
    base = rng.integers(1_000_000, 5_000_000, 40)
    pick = rng.integers(0, 40, n)
    halved = rng.random(n) < 0.05
    before = base[pick]
    ratio = pd.array(rng.integers(1_000, 40_000, n), dtype="Int64")
    ratio[rng.random(n) < 0.1] = pd.NA
    base_points = pd.array(before, dtype="Int64")
    base_points[rng.random(n) < 0.05] = pd.NA
    return pd.DataFrame({
        "institution_id": rng.choice(institutions, n),
        "case_id": rng.permutation(np.arange(10_000, 10_000 + n)).astype("int64"),
        "valuation_group": groups[pick],
        "coefficient": rng.choice([10_000, 11_000, 9_500], n),
        "ratio": ratio,
        "category": rng.choice(["normal", "high", "low"], n),
        "base_points": base_points,
        "readmission_halved": halved,
        "points_before_readmission": before,
        "points": np.where(halved, before // 2, before),
    })


def test_blocks_hold_every_value_per_institution_in_case_order():
    frame = _frame(5_000)
    encoded = blocks.encode_blocks(frame)

    assert [i for i, _, _ in encoded] == [3, 7]
    assert sum(n for _, n, _ in encoded) == 5_000
    for institution, n, data in encoded:
        back = blocks.decode_block(data)
        expected = frame[frame["institution_id"] == institution].sort_values("case_id")[list(blocks.BLOCK_COLUMNS)]
        assert len(back) == n and back["case_id"].is_monotonic_increasing
        pd.testing.assert_frame_equal(back.reset_index(drop=True), blocks._typed(expected).reset_index(drop=True))
        assert back["ratio"].isna().sum() == expected["ratio"].isna().sum() > 0


def test_a_block_costs_far_less_than_a_row_per_case():
    frame = _frame(20_000, institutions=(1,))
    (_, _, data), = blocks.encode_blocks(frame)
    assert len(data) / 20_000 < 16  # bytes per case result; a row with its indexes costs ≈ 150


def test_decimals_are_exact_and_nulls_stay_null():
    frame = pd.DataFrame({"points": [0, 5, -5, 123456, 10_000], "ratio": pd.array([None, 1, 2, 3, 4], dtype="Int64")})
    out = blocks.as_decimals(frame)
    assert [str(v) for v in out["points"]] == ["0.0000", "0.0005", "-0.0005", "12.3456", "1.0000"]
    assert out["ratio"].tolist() == [None, Decimal("0.0001"), Decimal("0.0002"), Decimal("0.0003"), Decimal("0.0004")]


def test_a_case_twice_in_one_block_is_refused():
    frame = _frame(10, institutions=(1,))
    frame.loc[3, "case_id"] = frame.loc[4, "case_id"]
    with pytest.raises(blocks.BlockError, match="twice"):
        blocks.encode_blocks(frame)
    with pytest.raises(blocks.BlockError, match="twice"):
        blocks.encode_block(frame)


def test_missing_columns_and_unreadable_bytes_are_block_errors():
    with pytest.raises(blocks.BlockError, match="lack the columns"):
        blocks.encode_blocks(_frame(10).drop(columns=["points"]))
    for junk in (b"", b"\x00" * 64, b"PAR1garbagePAR1", b"not parquet at all"):
        with pytest.raises(blocks.BlockError):
            blocks.decode_block(junk)


def test_no_results_no_blocks():
    assert blocks.encode_blocks(_frame(0)) == []
    assert blocks.empty_frame().columns.tolist() == list(blocks.BLOCK_COLUMNS)
