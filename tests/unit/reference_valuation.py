"""A straightforward, row-by-row implementation of SETTLEMENT.md §2 in exact rational arithmetic
(`fractions.Fraction`), written from the text and independent of drg.domain.valuation, for the
property tests to compare against: every formula is evaluated as written (r = total / avg first)
and rounded once, ROUND_HALF_UP to 0.0001, where the spec says r4."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

UNIT = 10_000


def F(value) -> Fraction:
    """A Decimal, int or Fraction as an exact Fraction (never through a float)."""
    return value if isinstance(value, Fraction) else Fraction(value)


def r4(x: Fraction) -> Decimal:
    """ROUND_HALF_UP to 0.0001 of an exact value ≥ 0 (points are never negative)."""
    scaled = F(x) * UNIT
    units = (scaled + Fraction(1, 2)).__floor__()
    return Decimal(units).scaleb(-4)


def is_half_tie(x: Fraction) -> bool:
    """True when x lies exactly half-way between two ten-thousandths."""
    return (F(x) * UNIT - Fraction(1, 2)).denominator == 1


def value_case_reference(case: dict, groups: dict, coefficients: dict, defaults: dict, tcm: dict, scheme: dict) -> dict:
    """One case: {group, category, exact, points} with `exact` the value before rounding."""
    group_code = case["drg_code"]
    if case["tcm_treatment"] and group_code in tcm:
        group_code = tcm[group_code]
    g = groups[group_code]
    c = F(coefficients.get((case["institution"], group_code), defaults.get(case["institution"]) or 1))
    if g["same_price"]:
        c = Fraction(1)
    bed_days = max(1, (case["discharge_date"] - case["admission_date"]).days)
    A = F(scheme["A"])
    total = F(case["total"])

    def result(category: str, exact: Fraction) -> dict:
        return {"group": group_code, "category": category, "exact": exact, "points": r4(exact)}

    if case.get("review") is not None:
        return result("special_review", F(case["review"]) / A * 100)
    if g["kind"] == "per_diem":
        return result("per_diem", F(g["daily"]) * bed_days)
    if g["kind"] == "unstable":
        return result("unstable", total / A * 100)
    base = F(g["base"])
    r = total / F(g["avg"])
    m = None
    for upto, multiple in scheme["tiers"]:
        if upto is None or F(upto) >= base:
            m = F(multiple)
            break
    if m is not None and r >= m:
        return result("high", base * c + base * (r - m))
    if case["status"] in ("transfer", "against_advice", "death") or r <= F(scheme["low"]):
        return result("low", min(base * c * r, base))
    return result("normal", base * c)


def value_cases_reference(cases: list[dict], groups, coefficients, defaults, tcm, scheme) -> list[dict]:
    results = [value_case_reference(c, groups, coefficients, defaults, tcm, scheme) for c in cases]
    for result, case in zip(results, cases):
        result["halved"] = False
        result["exempt"] = groups[result["group"]]["exempt"]
    eligible = [
        i for i, res in enumerate(results)
        if res["category"] in ("normal", "high", "low", "unstable") and not res["exempt"]
    ]
    by_key: dict = {}
    for i in eligible:
        case = cases[i]
        by_key.setdefault((case["institution"], case["patient_id"], results[i]["group"]), []).append(i)
    for stays in by_key.values():
        stays.sort(key=lambda i: (cases[i]["admission_date"], cases[i]["discharge_date"], cases[i]["case_no"]))
        for earlier, later in zip(stays, stays[1:]):
            gap = (cases[later]["admission_date"] - cases[earlier]["discharge_date"]).days
            if 0 <= gap <= scheme["days"]:
                results[earlier]["halved"] = True
    for result in results:
        if result["halved"]:
            result["points"] = r4(F(result["points"]) * F(scheme["factor"]))
    return results


def days(n: int) -> dt.date:
    return dt.date(2025, 1, 1) + dt.timedelta(days=n)
