"""Reads for planning: reference cases, binding runs, scenario comparisons, forecasts."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd

from common.bulk import is_postgres, read_frame
from common.models import ReviewStatus
from drg.models import DrgGroup, Institution, Region, SpecialReview
from planning.choices import ScenarioStatus
from planning.models import Forecast, ForecastLine, Scenario
from settlement.choices import RunKind, RunStatus
from settlement.models import ClearingRun, InstitutionLine
from settlement.selectors import run_month_sums


def reference_cases_frame(*, region_id: int, years: tuple[int, ...]) -> pd.DataFrame:
    """The region's cases (all funds) discharged in the reference years, for rate-setting: year,
    drg_code, total_fen, bed_days (SETTLEMENT.md §2: max(1, days)), special_review (approved)."""
    start, end = dt.date(min(years), 1, 1), dt.date(max(years), 12, 31)
    if is_postgres():  # year and bed days computed by the database: no date parsing in Python
        year_sql, days_sql = "CAST(EXTRACT(YEAR FROM c.discharge_date) AS INTEGER)", "(c.discharge_date - c.admission_date)"
    else:
        year_sql = "CAST(strftime('%%Y', c.discharge_date) AS INTEGER)"
        days_sql = "CAST(julianday(c.discharge_date) - julianday(c.admission_date) AS INTEGER)"
    sql = f"""
        SELECT c.id, {year_sql}, {days_sql}, c.drg_code, CAST(ROUND(c.total_cost * 100) AS BIGINT)
        FROM drg_case c WHERE c.region_id = %s AND c.discharge_date >= %s AND c.discharge_date <= %s
    """
    columns = ["case_id", "year", "days", "drg_code", "total_fen"]
    frame = read_frame(sql, [region_id, start, end], columns,
                       {"case_id": "int64", "year": "int64", "days": "int64", "drg_code": str, "total_fen": "int64"})
    reviewed = np.fromiter(SpecialReview.objects.filter(
        status=ReviewStatus.APPROVED, case__region_id=region_id, case__discharge_date__gte=start, case__discharge_date__lte=end,
    ).values_list("case_id", flat=True), dtype=np.int64)
    return pd.DataFrame({
        "year": frame["year"].to_numpy(dtype=np.int64), "drg_code": frame["drg_code"].to_numpy(),
        "total_fen": frame["total_fen"].to_numpy(dtype=np.int64),
        "bed_days": np.maximum(frame["days"].to_numpy(dtype=np.int64), 1),
        "special_review": np.isin(frame["case_id"].to_numpy(dtype=np.int64), reviewed),
    })


def catalog_frame(*, region_id: int, year: int) -> pd.DataFrame:
    """A region-year catalog in integer units (rate_setting.CATALOG_COLUMNS)."""
    rows = list(DrgGroup.objects.filter(region_id=region_id, year=year).order_by("code").values_list(
        "code", "name", "kind", "base_points", "avg_cost", "daily_points", "same_price", "readmission_exempt"))

    def units(value, scale):
        return pd.NA if value is None else int(Decimal(value) * scale)

    return pd.DataFrame({
        "code": [r[0] for r in rows], "name": [r[1] for r in rows], "kind": [r[2] for r in rows],
        "base_u": pd.array([units(r[3], 10_000) for r in rows], dtype="Int64"),
        "avg_fen": pd.array([units(r[4], 100) for r in rows], dtype="Int64"),
        "daily_u": pd.array([units(r[5], 10_000) for r in rows], dtype="Int64"),
        "same_price": [bool(r[6]) for r in rows], "readmission_exempt": [bool(r[7]) for r in rows],
    })


def binding_run(*, region: Region, fund: str, year: int, month: int | None = None) -> ClearingRun | None:
    """The binding run of a pool and period: its latest finalized run."""
    kind = RunKind.MONTHLY if month else RunKind.ANNUAL
    return (ClearingRun.objects.filter(region=region, fund=fund, year=year, kind=kind, month=month, status=RunStatus.FINALIZED)
            .order_by("-finalized_at", "-id").first())


COMPARE_FIELDS = ("points", "point_value", "fund_payment", "surplus", "balance")


def run_lines_for_compare(*, run: ClearingRun) -> dict[str, dict]:
    """institution code -> the five compared figures of a clearing run (monthly: due, due −
    itemized claims, this month's prepayment, as a scenario line keeps them)."""
    out = {}
    for line in InstitutionLine.objects.filter(run=run).select_related("institution").order_by("institution__code"):
        if run.kind == RunKind.MONTHLY:
            payment, balance = line.due, line.prepay
            surplus = None if payment is None else payment - line.itemized_fund
        else:
            payment, surplus, balance = line.fund_payment, line.surplus, line.balance
        out[line.institution.code] = {"points": line.points, "point_value": line.point_value, "fund_payment": payment,
                                      "surplus": surplus, "balance": balance}
    return out


def scenario_lines_for_compare(*, scenario: Scenario) -> dict[str, dict]:
    return {
        line.institution.code: {f: getattr(line, f) for f in COMPARE_FIELDS}
        for line in scenario.lines.select_related("institution").order_by("institution__code")
    }


def scenario_comparison(*, scenarios: list[Scenario]) -> dict:
    """Side by side per institution: the binding run of the scenarios' pool and period, then each
    scenario (all of one pool and period)."""
    if not scenarios:
        return {"columns": [], "rows": []}
    first = scenarios[0]
    columns: list[dict] = []
    base = first.base_run or binding_run(region=first.region, fund=first.fund, year=first.year, month=first.month)
    data = []
    if base is not None:
        columns.append({"label": f"#{base.pk}", "kind": "run", "point_value": base.totals.get("point_value")})
        data.append(run_lines_for_compare(run=base))
    for scenario in scenarios:
        columns.append({"label": scenario.name, "kind": "scenario", "point_value": scenario.totals.get("point_value"), "id": scenario.pk})
        data.append(scenario_lines_for_compare(scenario=scenario))
    codes = sorted({code for block in data for code in block})
    rows = [{"institution": code, "values": [block.get(code) for block in data]} for code in codes]
    return {"columns": columns, "rows": rows}


def scenarios_of_pool(*, region: Region, fund: str, year: int, month: int | None) -> list[Scenario]:
    return list(Scenario.objects.filter(region=region, fund=fund, year=year, month=month, status=ScenarioStatus.DONE).order_by("created_at", "id"))


# --- forecast ----------------------------------------------------------------------------------------

def annual_points_and_claims_by_month(*, run: ClearingRun) -> tuple[dict[int, Fraction], dict[int, Fraction]]:
    """Σ case points and Σ fund claims (total − self pay) of an annual run's cases by discharge
    month (planning.services.season_record keeps the result)."""
    sums = run_month_sums(run=run)
    points = {int(m): Fraction(int(p), 10_000) for m, p in zip(sums["month"], sums["points_u"])}
    claims = {int(m): Fraction(int(t) - int(s), 100) for m, t, s in zip(sums["month"], sums["total_fen"], sums["self_fen"])}
    return points, claims


def forecasts_of_pool(*, region_id: int, fund: str, year: int) -> list[Forecast]:
    return list(Forecast.objects.filter(region_id=region_id, fund=fund, year=year).order_by("month", "created_at", "id"))  # the newest of a month last


def latest_forecast_lines(*, institution: Institution) -> list[ForecastLine]:
    """The institution's lines of the newest forecast of each of its pools (fund) and year."""
    latest: dict = {}
    for line in (ForecastLine.objects.filter(institution=institution).select_related("forecast")
                 .order_by("forecast__year", "forecast__fund", "forecast__month", "forecast__created_at")):
        latest[(line.forecast.fund, line.forecast.year)] = line
    return [latest[key] for key in sorted(latest)]


