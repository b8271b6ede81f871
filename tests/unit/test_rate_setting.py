"""PLANNING.md §1: rate-setting, against a region computed by hand and by properties."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planning.domain.rate_setting import (
    NO_CASES, SET, TOO_FEW_CASES, RateSettingError, catalog_rows, parse_weights, parse_years, quartiles_x4,
    rate_setting, report_rows, trim_mask,
)


def _round(value: Fraction, places: int) -> Decimal:
    """Half-up rounding of an exact value, written out here independently of common.precision."""
    scaled = value * 10**places
    whole = int((abs(scaled) + Fraction(1, 2)) // 1) * (1 if scaled >= 0 else -1)
    return Decimal(whole).scaleb(-places)


def _catalog(rows):
    return pd.DataFrame(
        {
            "code": [r[0] for r in rows], "name": [r[0] + "组" for r in rows], "kind": [r[1] for r in rows],
            "base_u": pd.array([r[2] for r in rows], dtype="Int64"), "avg_fen": pd.array([r[3] for r in rows], dtype="Int64"),
            "daily_u": pd.array([r[4] for r in rows], dtype="Int64"),
            "same_price": [False] * len(rows), "readmission_exempt": [False] * len(rows),
        }
    )


def _cases(rows):
    """rows: (year, code, cost in yuan as text, bed_days, special_review)."""
    return pd.DataFrame(
        {
            "year": [r[0] for r in rows], "drg_code": [r[1] for r in rows],
            "total_fen": [int(Decimal(r[2]) * 100) for r in rows], "bed_days": [r[3] for r in rows],
            "special_review": [r[4] for r in rows],
        }
    )


HAND_CATALOG = _catalog([
    ("G1", "stable", 1_000_000, 100_000, None),   # base 100, avg 1000.00
    ("G2", "stable", 2_000_000, 200_000, None),
    ("G3", "stable", 300_000, 30_000, None),      # no reference case
    ("G4", "stable", 500_000, 50_000, None),      # one case only
    ("P1", "per_diem", None, None, 40_000),       # 4 points a day
    ("U1", "unstable", None, None, None),
])


def _hand_cases():
    rows = []
    rows += [(2022, "G1", c, 3, False) for c in ("1000", "1100", "1200", "1300", "10000")]  # 10000 trimmed
    rows += [(2023, "G1", c, 3, False) for c in ("900", "1000", "1100")]  # n < 4: all kept
    rows += [(2024, "G1", "99999", 3, True)]  # special review: left out
    rows += [(2022, "G2", c, 3, False) for c in ("2000.01", "2000.02")]
    rows += [(2024, "G2", c, 3, False) for c in ("2000", "2000", "2100", "2300", "100")]  # 100 and 2300 trimmed
    rows += [(2023, "G4", "500", 2, False)]
    rows += [(2023, "P1", "1000", 10, False), (2023, "P1", "600", 5, False), (2024, "P1", "2000", 10, False)]
    rows += [(2024, "U1", "50000", 3, False), (2024, "XX", "7000", 3, False)]  # unstable; not in the catalog
    rows += [(2021, "G1", "1", 1, False), (2025, "G3", "5000", 1, False)]  # outside the reference years
    return _cases(rows)


def test_a_small_region_gives_the_values_computed_by_hand():
    result = rate_setting(_hand_cases(), HAND_CATALOG, reference_years=[2022, 2023, 2024], weights=[2, 3, 5], min_cases=3)

    # kept cases chosen by hand from the quartiles: G1 2022 Q1 = 1100, Q3 = 1300 -> [800, 1600];
    # G2 2024 sorted 100, 2000, 2000, 2100, 2300: Q1 = 2000, Q3 = 2100 -> [1850, 2250]
    g1 = {2022: Fraction(4600, 4), 2023: Fraction(3000, 3)}
    g2 = {2022: Fraction(400003, 200), 2024: Fraction(6100, 3)}
    year_mean = {2022: (Fraction(4600) + Fraction(400003, 100)) / 6, 2023: Fraction(3000 + 500, 4), 2024: Fraction(6100, 3)}
    w = {2022: 2, 2023: 3, 2024: 5}

    def weighted(values):
        return sum(w[y] * v for y, v in values.items()) / sum(w[y] for y in values)

    a = _round(weighted(year_mean), 2)
    g1_cost, g2_cost = _round(weighted(g1), 2), _round(weighted(g2), 2)
    assert g1_cost == Decimal("1060.00")
    assert result.all_case_avg_cost == a
    p1_daily = weighted({2023: Fraction(1600, 15), 2024: Fraction(200)})
    assert p1_daily == 165

    report = result.report.set_index("code")
    assert list(result.report["code"]) == ["G1", "G2", "G3", "G4", "P1"]  # unstable not listed
    g1_points = _round(Fraction(g1_cost) / Fraction(a) * 100, 4)
    g2_points = _round(Fraction(g2_cost) / Fraction(a) * 100, 4)
    p1_points = _round(p1_daily / Fraction(a) * 100, 4)
    assert report.loc["G1"].to_dict() == {
        "kind": "stable", "cases": 7, "trimmed": 1, "avg_cost": g1_cost, "points": g1_points,
        "previous_points": Decimal("100.0000"), "change": _round(Fraction(g1_points) / 100 - 1, 4), "status": SET,
    }
    assert report.loc["G2", "avg_cost"] == g2_cost and report.loc["G2", "points"] == g2_points
    assert (report.loc["G2", "cases"], report.loc["G2", "trimmed"]) == (5, 2)
    assert report.loc["G3", "status"] == NO_CASES and report.loc["G3", "points"] == Decimal("30.0000")
    assert report.loc["G3", "change"] is None
    assert report.loc["G4", "status"] == TOO_FEW_CASES and report.loc["G4", "points"] == Decimal("50.0000")
    assert report.loc["P1", "status"] == SET and report.loc["P1", "points"] == p1_points
    assert report.loc["P1", "avg_cost"] == Decimal("165.00") and report.loc["P1", "trimmed"] == 0

    rows = {r[0]: r for r in catalog_rows(result.catalog)}
    assert rows["G1"][3:5] == [f"{g1_points:.4f}", f"{g1_cost:.2f}"]
    assert rows["G4"][3:5] == ["50.0000", "500.00"]  # too few cases: current values kept
    assert rows["P1"][5] == f"{p1_points:.4f}"
    assert rows["U1"][3:6] == ["", "", ""]
    assert [r[0] for r in catalog_rows(result.catalog)[1:]] == ["G1", "G2", "G3", "G4", "P1", "U1"]
    text = {r[0]: r for r in report_rows(result.report)}
    assert text["G3"] == ["G3", "stable", "0", "0", "300.00", "30.0000", "30.0000", "", "no_cases"]


def test_default_threshold_of_thirty_kept_cases_marks_small_groups():
    result = rate_setting(_hand_cases(), HAND_CATALOG, reference_years=[2022, 2023, 2024])
    assert set(result.report["status"]) == {TOO_FEW_CASES, NO_CASES}
    assert result.report["change"].isna().all()


def test_numpy_linear_quartiles_are_matched_exactly():
    values = sorted([3, 17, 17, 40, 41, 99, 1000])
    q1, q3 = quartiles_x4(values)
    assert Fraction(q1, 4) == Fraction(17) and Fraction(q3, 4) == Fraction(140, 2)
    assert float(Fraction(q1, 4)) == np.percentile(values, 25) and float(Fraction(q3, 4)) == np.percentile(values, 75)


def _reference_kept(costs: list[int]) -> list[bool]:
    n = len(costs)
    if n < 4:
        return [True] * n
    ordered = sorted(costs)

    def q(p):
        h = (n - 1) * p
        i = int(h)
        return ordered[i] + (h - i) * (ordered[min(i + 1, n - 1)] - ordered[i])

    q1, q3 = q(Fraction(1, 4)), q(Fraction(3, 4))
    iqr = q3 - q1
    return [q1 - Fraction(3, 2) * iqr <= c <= q3 + Fraction(3, 2) * iqr for c in costs]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 10**9)), min_size=1, max_size=60))
def test_trimming_keeps_every_case_inside_the_quartiles_and_matches_the_definition(rows):
    keys = np.array([r[0] for r in rows], dtype=np.int64)
    costs = np.array([r[1] for r in rows], dtype=np.int64)
    kept = trim_mask(keys, costs)
    for key in set(keys.tolist()):
        idx = np.flatnonzero(keys == key)
        group = costs[idx].tolist()
        assert kept[idx].tolist() == _reference_kept(group)
        if len(group) >= 4:
            q1, q3 = quartiles_x4(sorted(group))
            assert all(kept[i] for i in idx if q1 <= 4 * costs[i] <= q3)
            assert q1 / 4 == pytest.approx(np.percentile(group, 25)) and q3 / 4 == pytest.approx(np.percentile(group, 75))


group_costs = st.lists(st.integers(100, 10**7), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(group_costs, group_costs, st.integers(1, 9), st.integers(1, 9), st.integers(1, 9))
def test_weights_of_missing_years_drop_out(first, last, w1, w2, w3):
    rows = [(2022, "G1", str(Decimal(c) / 100), 2, False) for c in first]
    rows += [(2024, "G1", str(Decimal(c) / 100), 2, False) for c in last]
    cases = _cases(rows)
    catalog = _catalog([("G1", "stable", 1_000_000, 100_000, None)])
    three = rate_setting(cases, catalog, reference_years=[2022, 2023, 2024], weights=[w1, w2, w3], min_cases=1)
    two = rate_setting(cases, catalog, reference_years=[2022, 2024], weights=[w1, w3], min_cases=1)
    assert three.all_case_avg_cost == two.all_case_avg_cost
    assert three.report.to_dict("records") == two.report.to_dict("records")


@settings(max_examples=60, deadline=None)
@given(group_costs, group_costs, st.lists(st.integers(1, 9), min_size=3, max_size=3))
def test_identical_years_give_the_averages_of_one_year(g1, g2, weights):
    one_year = [("G1", c) for c in g1] + [("G2", c) for c in g2]
    catalog = _catalog([("G1", "stable", 1_000_000, 100_000, None), ("G2", "stable", 2_000_000, 200_000, None)])
    single = rate_setting(_cases([(2024, g, str(Decimal(c) / 100), 1, False) for g, c in one_year]), catalog,
                          reference_years=[2024], weights=[1], min_cases=1)
    repeated = _cases([(y, g, str(Decimal(c) / 100), 1, False) for y in (2022, 2023, 2024) for g, c in one_year])
    triple = rate_setting(repeated, catalog, reference_years=[2022, 2023, 2024], weights=weights, min_cases=1)
    assert triple.all_case_avg_cost == single.all_case_avg_cost
    assert list(triple.report["avg_cost"]) == list(single.report["avg_cost"])
    assert list(triple.report["points"]) == list(single.report["points"])


def test_bad_arguments_are_refused_with_a_reason():
    with pytest.raises(RateSettingError, match="weights"):
        rate_setting(_hand_cases(), HAND_CATALOG, reference_years=[2022, 2023], weights=[2, 3, 5])
    with pytest.raises(RateSettingError, match="ascending"):
        rate_setting(_hand_cases(), HAND_CATALOG, reference_years=[2024, 2023])
    with pytest.raises(RateSettingError, match="no case"):
        rate_setting(_hand_cases(), HAND_CATALOG, reference_years=[2019])
    for text in ("2022,,2023", "2022;2023", "二〇二二", "2022\x00", "=1+1"):
        with pytest.raises(RateSettingError):
            parse_years(text)
    for text in ("2,-3", "0,1", "a", "1.5", ""):
        with pytest.raises(RateSettingError):
            parse_weights(text)
