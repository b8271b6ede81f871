"""The valued-case frame every monitoring calculation reads, and exact helpers.

One row per valued case of a clearing run (its case result joined to its Case and to the valuation
group of the run's catalog). Columns:

| column | dtype | meaning |
|---|---|---|
| institution | str | institution code |
| case_no | str | the case's number at its institution |
| patient_id | str | |
| admission_date, discharge_date | datetime64 | |
| total_fen, self_fen | int64 | total_cost and self_pay in fen |
| discharge_status | str | normal / transfer / against_advice / death |
| group | str | valuation group code |
| stable | bool | the valuation group's kind is stable |
| base_u | int64 | base points of the valuation group in ten-thousandths (0 where none) |
| avg_fen | int64 | avg_cost of the valuation group in fen (0 where none) |
| exempt | bool | the valuation group is readmission_exempt |
| category | str | the case's category in the run |
| points_u | int64 | the case's points after readmission halving, ten-thousandths |
| halved | bool | halved by the readmission rule |
"""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd

from common.precision import r4

CASE_COLUMNS = (
    "institution", "case_no", "patient_id", "admission_date", "discharge_date", "total_fen", "self_fen",
    "discharge_status", "group", "stable", "base_u", "avg_fen", "exempt", "category", "points_u", "halved",
)
POOL = "*"


def empty_cases() -> pd.DataFrame:
    dtypes = {
        "institution": object, "case_no": object, "patient_id": object, "admission_date": "datetime64[ns]",
        "discharge_date": "datetime64[ns]", "total_fen": np.int64, "self_fen": np.int64, "discharge_status": object,
        "group": object, "stable": bool, "base_u": np.int64, "avg_fen": np.int64, "exempt": bool, "category": object,
        "points_u": np.int64, "halved": bool,
    }
    return pd.DataFrame({c: pd.Series(dtype=dtypes[c]) for c in CASE_COLUMNS})


def bed_days(cases: pd.DataFrame) -> np.ndarray:
    """max(1, discharge − admission in days), SETTLEMENT.md §2."""
    days = (cases["discharge_date"].to_numpy("datetime64[D]") - cases["admission_date"].to_numpy("datetime64[D]")).astype(np.int64)
    return np.maximum(1, days)


def months(cases: pd.DataFrame) -> np.ndarray:
    return cases["discharge_date"].dt.month.to_numpy(dtype=np.int64)


def ratio(num: int, den: int) -> Fraction | None:
    """num ÷ den exactly, None where den = 0 (undefined)."""
    return None if den == 0 else Fraction(int(num), int(den))


def r4_or_none(value: Fraction | None) -> Decimal | None:
    return None if value is None else r4(value)


def ge(a_num: int, a_den: int, factor: Fraction, b_num: int, b_den: int) -> bool:
    """a_num/a_den ≥ factor × b_num/b_den, by integer cross-multiplication (dens > 0)."""
    factor = Fraction(factor)
    return a_num * b_den * factor.denominator >= factor.numerator * b_num * a_den


def ge_array(num: np.ndarray, den: np.ndarray, threshold: Fraction) -> np.ndarray:
    """num/den ≥ threshold per row, exact (den > 0): a float fast path, every row near the threshold
    settled by integer cross-multiplication."""
    num = np.asarray(num, dtype=np.int64)
    den = np.asarray(den, dtype=np.int64)
    threshold = Fraction(threshold)
    with np.errstate(divide="ignore", invalid="ignore"):
        approx = num / den
    t = float(threshold)
    result = approx >= t
    near = np.abs(approx - t) <= 1e-9 * max(1.0, abs(t))
    if near.any():
        p, q = threshold.numerator, threshold.denominator
        idx = np.flatnonzero(near)
        result[idx] = [int(n) * q >= p * int(d) for n, d in zip(num[idx], den[idx])]
    return result


def round4_array(values: np.ndarray, exact) -> list[Decimal | None]:
    """r4 of float approximations, every value within reach of a half-way point recomputed exactly
    by ``exact(i) -> Fraction``; NaN gives None."""
    out: list[Decimal | None] = []
    for i, value in enumerate(values):
        if not np.isfinite(value):
            out.append(None)
            continue
        scaled = value * 10_000
        if abs(scaled - np.floor(scaled) - 0.5) < 1e-6:
            out.append(r4(exact(i)))
        else:
            out.append(Decimal(int(np.floor(scaled + 0.5))).scaleb(-4))
    return out


def sorted_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of `values` in the order of their sorted distinct values (like a sorted
    factorize), hashing the values once and sorting only the distinct ones."""
    codes, uniques = pd.factorize(values)
    order = np.argsort(np.asarray(uniques, dtype=object), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], np.asarray(uniques, dtype=object)[order]


def int_sums(key: np.ndarray, size: int, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Exact int64 sums of each value column per key in 0..size-1 (sort once, reduce per run)."""
    order = np.argsort(key, kind="stable")
    k = key[order]
    out = {name: np.zeros(size, dtype=np.int64) for name in values}
    if len(k) == 0:
        return out
    starts = np.flatnonzero(np.concatenate([[True], k[1:] != k[:-1]]))
    present = k[starts]
    for name, v in values.items():
        out[name][present] = np.add.reduceat(np.asarray(v, dtype=np.int64)[order], starts)
    return out
