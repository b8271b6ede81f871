"""Reads for monitoring: the pool's binding run, its valued cases as the domain frame, the
parameters in force, stored indicators and findings."""
from __future__ import annotations

import calendar
import datetime as dt

import numpy as np
import pandas as pd
from django.db.models import QuerySet

from common.bulk import read_frame
from drg.choices import GroupKind
from drg.models import DrgGroup, Institution, Region
from monitoring.choices import FindingStatus, ParameterStatus
from monitoring.domain.cases import empty_cases
from monitoring.domain.parameters import ScreeningParameters
from monitoring.models import Finding, IndicatorValue, ScreeningParameterSet
from settlement.choices import RunKind, RunStatus
from settlement.models import ClearingRun
from settlement.selectors import run_case_results_units


def binding_run(*, region_id: int, fund: str, year: int) -> ClearingRun | None:
    """The pool's binding annual run of the year, or before there is one its latest binding monthly
    run (the highest month; of a month's finalized runs the last finalized)."""
    finalized = ClearingRun.objects.filter(region_id=region_id, fund=fund, year=year, status=RunStatus.FINALIZED)
    annual = finalized.filter(kind=RunKind.ANNUAL).order_by("-finalized_at", "-id").first()
    if annual is not None:
        return annual
    return finalized.filter(kind=RunKind.MONTHLY).order_by("-month", "-finalized_at", "-id").first()


def run_through_month(run: ClearingRun) -> int:
    return run.month or 12


def _fen(column: str) -> str:
    return f"CAST(ROUND({column} * 100) AS BIGINT)"


CASE_COLUMNS = ["case_id", "case_no", "patient_id", "admission_date", "discharge_date", "total_fen", "self_fen", "discharge_status"]
CASE_DTYPES = {"case_id": "int64", "case_no": object, "patient_id": object, "admission_date": object, "discharge_date": object,
               "total_fen": "int64", "self_fen": "int64", "discharge_status": object}
CASE_SELECT = f"""
    SELECT c.id, c.case_no, c.patient_id, c.admission_date, c.discharge_date, {_fen('c.total_cost')}, {_fen('c.self_pay')},
           c.discharge_status
    FROM drg_case c
"""


def _run_period(run: ClearingRun) -> tuple[dt.date, dt.date]:
    last = run.month or 12
    return dt.date(run.year, 1, 1), dt.date(run.year, last, calendar.monthrange(run.year, last)[1])


def run_cases_frame(*, run: ClearingRun) -> pd.DataFrame:
    """The run's valued cases (its case results with their cases and valuation groups), as the frame
    monitoring.domain.cases describes.

    The run's result blocks (settlement.selectors) merged in pandas with one COPY read of the pool's
    cases of the run's period (by the pool/period index the clearing reads with); a valued case
    changed out of that period or pool since the run is read by id."""
    stored = run_case_results_units(run=run)
    results = pd.DataFrame({
        "case_id": stored["case_id"].to_numpy(np.int64), "institution_id": stored["institution_id"].to_numpy(np.int64),
        "group": stored["valuation_group"].to_numpy(object), "category": stored["category"].to_numpy(object),
        "points_u": stored["points"].to_numpy(np.int64), "halved": stored["readmission_halved"].to_numpy(bool).astype(np.int64),
    })
    if results.empty:
        return empty_cases()
    start, end = _run_period(run)
    cases = read_frame(
        CASE_SELECT + " WHERE c.region_id = %s AND c.fund = %s AND c.discharge_date >= %s AND c.discharge_date <= %s",
        [run.region_id, run.fund, start, end], CASE_COLUMNS, CASE_DTYPES,
    )
    missing = results["case_id"].to_numpy(np.int64)[~results["case_id"].isin(cases["case_id"]).to_numpy()]
    if len(missing):
        extra = [
            read_frame(CASE_SELECT + " WHERE c.id IN (" + ", ".join(["%s"] * len(chunk)) + ")", [int(x) for x in chunk], CASE_COLUMNS, CASE_DTYPES)
            for chunk in np.array_split(missing, max(1, len(missing) // 5000 + 1))
        ]
        cases = pd.concat([cases, *extra], ignore_index=True)
    raw = results.merge(cases, on="case_id", how="inner", sort=False)
    codes = dict(Institution.objects.filter(region_id=run.region_id).values_list("id", "code"))
    groups = pd.DataFrame.from_records(
        DrgGroup.objects.filter(region_id=run.region_id, year=run.year).values_list("code", "kind", "base_points", "avg_cost", "readmission_exempt"),
        columns=["code", "kind", "base_points", "avg_cost", "exempt"],
    ).drop_duplicates("code").set_index("code")
    group_codes, uniques = pd.factorize(raw["group"].to_numpy(object))
    found = groups.reindex(uniques)
    stable = (found["kind"] == GroupKind.STABLE).to_numpy(bool)
    base_u = np.array([int(v * 10_000) if v is not None and v == v else 0 for v in found["base_points"]], dtype=np.int64)
    avg_fen = np.array([int(v * 100) if v is not None and v == v else 0 for v in found["avg_cost"]], dtype=np.int64)
    exempt = np.array([v is not None and v == v and bool(v) for v in found["exempt"]], dtype=bool)  # NaN: not in the catalog
    institution_ids, institution_keys = pd.factorize(raw["institution_id"].to_numpy(np.int64))
    institution_codes = np.array([codes.get(int(k), str(k)) for k in institution_keys], dtype=object)
    return pd.DataFrame(
        {
            "institution": institution_codes[institution_ids],
            "case_no": raw["case_no"].to_numpy(object),
            "patient_id": raw["patient_id"].to_numpy(object),
            "admission_date": _dates(raw["admission_date"]),
            "discharge_date": _dates(raw["discharge_date"]),
            "total_fen": raw["total_fen"].to_numpy(np.int64),
            "self_fen": raw["self_fen"].to_numpy(np.int64),
            "discharge_status": raw["discharge_status"].to_numpy(object),
            "group": raw["group"].to_numpy(object),
            "stable": stable[group_codes],
            "base_u": base_u[group_codes],
            "avg_fen": avg_fen[group_codes],
            "exempt": exempt[group_codes],
            "category": raw["category"].to_numpy(object),
            "points_u": raw["points_u"].to_numpy(np.int64),
            "halved": raw["halved"].to_numpy(np.int64).astype(bool),
        }
    )


def _dates(values: pd.Series) -> pd.Series:
    """ISO dates (text from COPY, date objects from other databases) as datetime64."""
    first = values.iloc[0] if len(values) else None
    if isinstance(first, str):
        return pd.to_datetime(values, format="%Y-%m-%d")
    return pd.to_datetime(values)


def screening_parameters_in_force(*, region_id: int) -> tuple[ScreeningParameters, ScreeningParameterSet | None]:
    """The region's latest approved parameter set (the spec's defaults where none)."""
    record = (
        ScreeningParameterSet.objects.filter(region_id=region_id, status=ParameterStatus.APPROVED)
        .order_by("-decided_at", "-id").first()
    )
    return ScreeningParameters.from_mapping(record.values if record else None), record


def indicators_of_institution(*, institution: Institution) -> QuerySet[IndicatorValue]:
    return IndicatorValue.objects.filter(institution=institution).order_by("-year", "fund", "period")


def confirmed_findings_of_institution(*, institution: Institution) -> QuerySet[Finding]:
    return Finding.objects.filter(institution=institution, status=FindingStatus.CONFIRMED).order_by("-year", "fund", "rule")


def region_by_code(code: str) -> Region:
    return Region.objects.get(code=code)


# --- dashboard ---------------------------------------------------------------------------------------

def stored_indicators(*, region_id: int, fund: str, year: int) -> list[IndicatorValue]:
    return list(IndicatorValue.objects.filter(region_id=region_id, fund=fund, year=year).select_related("institution", "run"))


def previous_year_indicators(*, region_id: int, fund: str, year: int, through_month: int) -> dict[tuple[str, str], object]:
    """The previous year's indicators over the same months (1..through_month), keyed by
    (institution code, period of the current year), from the previous year's binding run."""
    from monitoring.domain.indicators import indicators_compute
    from monitoring.domain.cases import months

    run = binding_run(region_id=region_id, fund=fund, year=year - 1)
    if run is None:
        return {}
    cases = run_cases_frame(run=run)
    if cases.empty:
        return {}
    cases = cases[months(cases) <= through_month]
    out = {}
    for row in indicators_compute(cases, year=year - 1):
        period = str(year) + row.period[4:]
        out[(row.institution, period)] = row
    return out
