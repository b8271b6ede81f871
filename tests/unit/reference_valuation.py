"""A straightforward, row-by-row Decimal implementation of SETTLEMENT.md §2, written from the text
and independent of drg.domain.valuation, for the property tests to compare against."""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, localcontext

P4 = Decimal("0.0001")


def r4(x: Decimal) -> Decimal:
    return x.quantize(P4, rounding=ROUND_HALF_UP)


def value_case_reference(case: dict, groups: dict, coefficients: dict, defaults: dict, tcm: dict, scheme: dict) -> dict:
    with localcontext() as ctx:
        ctx.prec = 28  # the default context: what a straightforward Decimal implementation uses
        group_code = case["drg_code"]
        if case["tcm_treatment"] and group_code in tcm:
            group_code = tcm[group_code]
        g = groups[group_code]
        c = coefficients.get((case["institution"], group_code), defaults.get(case["institution"]) or Decimal(1))
        if g["same_price"]:
            c = Decimal(1)
        bed_days = max(1, (case["discharge_date"] - case["admission_date"]).days)
        A = scheme["A"]
        if case.get("review") is not None:
            return {"group": group_code, "category": "special_review", "points": r4(case["review"] / A * 100)}
        if g["kind"] == "per_diem":
            return {"group": group_code, "category": "per_diem", "points": r4(g["daily"] * bed_days)}
        if g["kind"] == "unstable":
            return {"group": group_code, "category": "unstable", "points": r4(case["total"] / A * 100)}
        base = g["base"]
        r = case["total"] / g["avg"]
        m = None
        for upto, multiple in scheme["tiers"]:
            if upto is None or upto >= base:
                m = multiple
                break
        if m is not None and r >= m:
            return {"group": group_code, "category": "high", "points": r4(base * c + base * (r - m))}
        if case["status"] in ("transfer", "against_advice", "death") or r <= scheme["low"]:
            return {"group": group_code, "category": "low", "points": r4(min(base * c * r, base))}
        return {"group": group_code, "category": "normal", "points": r4(base * c)}


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
            result["points"] = r4(result["points"] * scheme["factor"])
    return results


def days(n: int) -> dt.date:
    return dt.date(2025, 1, 1) + dt.timedelta(days=n)
