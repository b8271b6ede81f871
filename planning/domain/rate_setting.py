"""PLANNING.md §1: rate-setting (基准点数测算) from the cases of past reference years.

Vectorised and exact. Costs are integer fen; the quartiles of numpy's `linear` method sit on
quarter positions ((n − 1) × p with p = 1/4, 3/4), so 4 × Q is an integer number of fen and the
trimming bounds Q1 − 1.5 × IQR, Q3 + 1.5 × IQR are compared as integers scaled by 8. The averages
are taken per (group, year) from integer sums as Fractions (a few thousand, never per case) and
rounded once where the spec rounds (r2 / r4 of common.precision).

Pure: numpy, pandas and the stdlib only (no Django).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from common.precision import r2, r4

STABLE = "stable"
UNSTABLE = "unstable"
PER_DIEM = "per_diem"

SET = "set"
TOO_FEW_CASES = "too_few_cases"
NO_CASES = "no_cases"

DEFAULT_WEIGHTS = (2, 3, 5)
DEFAULT_MIN_CASES = 30

#: columns of the cases frame the domain reads
CASE_COLUMNS = ("year", "drg_code", "total_fen", "bed_days", "special_review")
#: columns of the catalog frame (the newest reference catalog), integer units, <NA> where empty
CATALOG_COLUMNS = ("code", "name", "kind", "base_u", "avg_fen", "daily_u", "same_price", "readmission_exempt")
REPORT_COLUMNS = ("code", "kind", "cases", "trimmed", "avg_cost", "points", "previous_points", "change", "status")


class RateSettingError(ValueError):
    """The reference years, weights or catalog cannot produce a rate-setting."""


@dataclass(frozen=True)
class RateSettingResult:
    """The outcome: A, the report rows (REPORT_COLUMNS; Decimal values, None where empty) and the
    new catalog (CATALOG_COLUMNS, the newest reference catalog with the new values)."""

    reference_years: tuple[int, ...]
    weights: tuple[int, ...]
    all_case_avg_cost: Decimal
    report: pd.DataFrame
    catalog: pd.DataFrame
    year_means: dict  # year -> exact mean_y (Fraction, yuan) of the years that count

    def summary(self) -> dict:
        counts = self.report["status"].value_counts().to_dict()
        return {
            "reference_years": list(self.reference_years), "weights": list(self.weights),
            "all_case_avg_cost": str(self.all_case_avg_cost),
            "groups": {status: int(counts.get(status, 0)) for status in (SET, TOO_FEW_CASES, NO_CASES)},
            "cases": int(self.report["cases"].sum()), "trimmed": int(self.report["trimmed"].sum()),
        }


# --- quartiles and trimming --------------------------------------------------------------------

def quartiles_x4(sorted_costs: Sequence[int]) -> tuple[int, int]:
    """4 × Q1 and 4 × Q3 (numpy `linear`, exact) of one ascending list of integer costs."""
    n = len(sorted_costs)
    if n == 0:
        raise ValueError("no values")
    out = []
    for quarter in (1, 3):
        i, f = divmod(quarter * (n - 1), 4)
        lower = sorted_costs[i]
        upper = sorted_costs[min(i + 1, n - 1)]
        out.append(4 * lower + f * (upper - lower))
    return out[0], out[1]


def trim_mask(keys: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """True for each case kept by the IQR rule of its key (a group × year code): with n ≥ 4 cases,
    Q1 − 1.5 IQR ≤ cost ≤ Q3 + 1.5 IQR, quartiles by numpy's `linear` method, exactly; n < 4: all."""
    keys = np.asarray(keys, dtype=np.int64)
    costs = np.asarray(costs, dtype=np.int64)
    n_all = len(costs)
    kept = np.ones(n_all, dtype=bool)
    if n_all == 0:
        return kept
    if len(keys) and keys.min() >= 0 and costs.min() >= 0 and int(keys.max()) < 2**22 and int(costs.max()) < 2**40:
        order = np.argsort((keys << 40) | costs)  # one int64 sort key instead of two (ties are equal values)
    else:
        order = np.lexsort((costs, keys))
    k, c = keys[order], costs[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    n = np.diff(np.r_[starts, n_all])

    def quartile_x4(quarter: int) -> np.ndarray:  # per segment (group × year), not per case
        i, f = np.divmod(quarter * (n - 1), 4)
        lower = c[starts + i]
        upper = c[starts + np.minimum(i + 1, n - 1)]
        return 4 * lower + f * (upper - lower)

    q1, q3 = quartile_x4(1), quartile_x4(3)
    iqr = q3 - q1
    low8 = np.where(n < 4, np.iinfo(np.int64).min, 2 * q1 - 3 * iqr)
    high8 = np.where(n < 4, np.iinfo(np.int64).max, 2 * q3 + 3 * iqr)
    scaled = 8 * c
    kept[order] = (scaled >= np.repeat(low8, n)) & (scaled <= np.repeat(high8, n))
    return kept


# --- the rate-setting ----------------------------------------------------------------------------

def _weighted(values: Mapping[int, Fraction], weights: Mapping[int, int]) -> Fraction:
    """Σ w_y × v_y / Σ w_y over the years present in `values` (missing years drop out)."""
    total_w = sum(Fraction(weights[y]) for y in values)
    return sum((Fraction(weights[y]) * v for y, v in values.items()), Fraction(0)) / total_w


def _units_to_decimal(value, places: int) -> Decimal | None:
    return None if value is None or pd.isna(value) else Decimal(int(value)).scaleb(-places)


def rate_setting(
    cases: pd.DataFrame,
    catalog: pd.DataFrame,
    *,
    reference_years: Sequence[int],
    weights: Sequence[int] | None = None,
    min_cases: int = DEFAULT_MIN_CASES,
) -> RateSettingResult:
    """§1 over `cases` (CASE_COLUMNS; the region's cases of all funds, any years) against the newest
    reference catalog `catalog` (CATALOG_COLUMNS)."""
    years = tuple(int(y) for y in reference_years)
    if not years:
        raise RateSettingError("at least one reference year is needed")
    if list(years) != sorted(set(years)):
        raise RateSettingError("reference years must be distinct and ascending (oldest first)")
    if weights is None:
        weights = DEFAULT_WEIGHTS if len(years) == len(DEFAULT_WEIGHTS) else (1,) * len(years)
    weights = tuple(weights)
    if len(weights) != len(years):
        raise RateSettingError(f"{len(years)} reference years need {len(years)} weights, got {len(weights)}")
    if any(Fraction(w) <= 0 for w in weights):
        raise RateSettingError("weights must be positive")
    w_by_year = dict(zip(years, weights))

    groups = catalog.drop_duplicates("code").set_index("code", drop=False)
    kinds = groups["kind"]
    counted = kinds[kinds.isin([STABLE, PER_DIEM])]
    codes = groups.index
    n_years = max(years) - min(years) + 1

    # which cases count: reference years, own group in the catalog and not unstable, no special review
    # (integer codes from here on: one hash lookup per case, no string columns carried along)
    position = codes.get_indexer(cases["drg_code"].to_numpy())
    kind_code = np.select([kinds.to_numpy() == STABLE, kinds.to_numpy() == PER_DIEM], [1, 2], 0)
    case_kind = np.where(position >= 0, kind_code[np.maximum(position, 0)], 0)
    year = cases["year"].to_numpy(dtype=np.int64)
    use = np.isin(year, years) & ~cases["special_review"].to_numpy(dtype=bool) & (case_kind > 0)
    position, case_kind, year = position[use], case_kind[use], year[use]
    cost = cases["total_fen"].to_numpy(dtype=np.int64)[use]

    # stable groups: trim per group and year, then sums of the kept cases
    is_stable = case_kind == 1
    s_pos, s_year, s_cost = position[is_stable], year[is_stable], cost[is_stable]
    key = s_pos.astype(np.int64) * n_years + (s_year - min(years))
    kept = trim_mask(key, s_cost)
    frame = pd.DataFrame({"key": key[kept], "cost": s_cost[kept]})
    sums = frame.groupby("key", sort=True)["cost"].agg(["sum", "count"])
    trimmed_by_pos = np.bincount(s_pos[~kept], minlength=len(codes))
    year_sums = pd.DataFrame({"year": s_year[kept], "cost": s_cost[kept]}).groupby("year")["cost"].agg(["sum", "count"])

    year_means = {int(y): Fraction(int(row["sum"]), int(row["count"]) * 100) for y, row in year_sums.iterrows() if row["count"] > 0}
    if not year_means:
        raise RateSettingError(f"no case of a stable group in the reference years {', '.join(map(str, years))}")
    all_case_avg = r2(_weighted(year_means, w_by_year))
    if all_case_avg <= 0:
        raise RateSettingError("the all-case average cost A is not positive")
    a = Fraction(all_case_avg)

    is_per_diem = case_kind == 2
    bed_days = cases["bed_days"].to_numpy(dtype=np.int64)[use][is_per_diem]
    p_key = position[is_per_diem].astype(np.int64) * n_years + (year[is_per_diem] - min(years))
    daily = pd.DataFrame({"key": p_key, "cost": cost[is_per_diem], "days": bed_days}).groupby("key", sort=True)[["cost", "days"]].sum()
    per_diem_counts = np.bincount(position[is_per_diem], minlength=len(codes))
    trimmed = {codes[i]: int(n) for i, n in enumerate(trimmed_by_pos) if n}

    group_means: dict[str, dict[int, Fraction]] = {}
    group_counts: dict[str, int] = {}
    for k, total, count in zip(sums.index.tolist(), sums["sum"].tolist(), sums["count"].tolist()):
        code, ref_year = codes[k // n_years], min(years) + k % n_years
        group_means.setdefault(code, {})[ref_year] = Fraction(int(total), int(count) * 100)
        group_counts[code] = group_counts.get(code, 0) + int(count)
    daily_costs: dict[str, dict[int, Fraction]] = {}
    for k, total, days in zip(daily.index.tolist(), daily["cost"].tolist(), daily["days"].tolist()):
        if int(days) > 0:
            daily_costs.setdefault(codes[k // n_years], {})[min(years) + k % n_years] = Fraction(int(total), int(days) * 100)

    rows = []
    new_catalog = groups.reset_index(drop=True).copy()
    new_catalog["base_u"] = new_catalog["base_u"].astype("Int64")
    new_catalog["avg_fen"] = new_catalog["avg_fen"].astype("Int64")
    new_catalog["daily_u"] = new_catalog["daily_u"].astype("Int64")
    position = {code: i for i, code in enumerate(new_catalog["code"])}
    for code in sorted(counted.index):
        group = groups.loc[code]
        kind = group["kind"]
        if kind == STABLE:
            previous = _units_to_decimal(group["base_u"], 4)
            current_cost = _units_to_decimal(group["avg_fen"], 2)
            n_kept = group_counts.get(code, 0)
            n_trimmed = int(trimmed.get(code, 0))
        else:
            previous = _units_to_decimal(group["daily_u"], 4)
            current_cost = _units_to_decimal(group["avg_fen"], 2)
            n_kept = int(per_diem_counts[codes.get_loc(code)])
            n_trimmed = 0
        row = {"code": code, "kind": kind, "cases": n_kept, "trimmed": n_trimmed, "avg_cost": current_cost,
               "points": previous, "previous_points": previous, "change": None}
        if n_kept + n_trimmed == 0:
            row["status"] = NO_CASES
        elif n_kept < min_cases:
            row["status"] = TOO_FEW_CASES
        else:
            row["status"] = SET
            i = position[code]
            if kind == STABLE:
                avg_cost = r2(_weighted(group_means[code], w_by_year))
                points = r4(Fraction(avg_cost) / a * 100)
                new_catalog.at[i, "avg_fen"] = int(avg_cost * 100)
                new_catalog.at[i, "base_u"] = int(points * 10_000)
            else:
                weighted_daily = _weighted(daily_costs[code], w_by_year)
                avg_cost = r2(weighted_daily)
                points = r4(weighted_daily / a * 100)
                new_catalog.at[i, "daily_u"] = int(points * 10_000)
            row["avg_cost"], row["points"] = avg_cost, points
            if previous is not None and previous != 0:
                row["change"] = r4(Fraction(points) / Fraction(previous) - 1)
        rows.append(row)
    report = pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
    new_catalog = new_catalog.sort_values("code", kind="stable").reset_index(drop=True)
    return RateSettingResult(
        reference_years=years, weights=weights, all_case_avg_cost=all_case_avg, report=report,
        catalog=new_catalog[list(CATALOG_COLUMNS)], year_means=year_means,
    )


# --- output texts (the bundle's formats) -----------------------------------------------------------

def _text(value, places: int) -> str:
    if value is None or (not isinstance(value, Decimal) and pd.isna(value)):
        return ""
    return f"{Decimal(value):.{places}f}"


def catalog_rows(catalog: pd.DataFrame) -> list[list[str]]:
    """drg_groups.csv rows (header first): points with 4 decimals, costs with 2, booleans 1/0."""
    out = [["code", "name", "kind", "base_points", "avg_cost", "daily_points", "same_price", "readmission_exempt"]]
    for row in catalog.itertuples(index=False):
        out.append([
            row.code, row.name, row.kind, _text(_units_to_decimal(row.base_u, 4), 4),
            _text(_units_to_decimal(row.avg_fen, 2), 2), _text(_units_to_decimal(row.daily_u, 4), 4),
            "1" if bool(row.same_price) else "0", "1" if bool(row.readmission_exempt) else "0",
        ])
    return out


def report_rows(report: pd.DataFrame) -> list[list[str]]:
    """rate_setting.csv rows (header first)."""
    out = [list(REPORT_COLUMNS)]
    for row in report.itertuples(index=False):
        out.append([row.code, row.kind, str(int(row.cases)), str(int(row.trimmed)), _text(row.avg_cost, 2),
                    _text(row.points, 4), _text(row.previous_points, 4), _text(row.change, 4), row.status])
    return out


def parse_years(text: str) -> tuple[int, ...]:
    """'2022,2023,2024' -> (2022, 2023, 2024); a clear ValueError otherwise."""
    parts = [p.strip() for p in str(text).split(",")]
    if not parts or any(not p.isdigit() or len(p) != 4 for p in parts):
        raise RateSettingError(f"reference years must be four-digit years separated by commas, got {text!r}")
    return tuple(int(p) for p in parts)


def parse_weights(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in str(text).split(",")]
    if not parts or any(not p.isdigit() or len(p) > 6 for p in parts):
        raise RateSettingError(f"weights must be positive whole numbers separated by commas, got {text!r}")
    values = tuple(int(p) for p in parts)
    if any(v <= 0 for v in values):
        raise RateSettingError("weights must be positive")
    return values
