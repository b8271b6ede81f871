"""Reads for clearing: finalized periods, latest runs, pool inputs as DataFrames."""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass as _dataclass
from decimal import Decimal
from typing import Sequence as _Sequence

import pandas as pd
from django.db.models import Count, Max, Sum

from common.bulk import read_frame
from common.models import ReviewStatus
from common.precision import r2
from drg.domain.valuation import Catalog, Tier, ValuationScheme
from drg.models import Case, Coefficient, DrgGroup, Institution, PaymentScheme, SpecialReview, TcmEquivalent
from settlement.choices import PAID_RUN_STATUSES, AdjustmentStatus, RunKind, RunStatus
from settlement.domain.clearing import Band, ClearingParameters, UpliftTier
from settlement.models import ClearingRun, Evaluation, InstitutionLine, ItemizedClaim, PointAdjustment


def finalized_through(*, region_id: int) -> dict[tuple[str, int], int]:
    """(fund, year) -> the last month whose cases are frozen by a finalized run.

    Monthly runs are cumulative (January to month m), so a finalized run for month m freezes every
    case discharged in months 1..m of that year; a finalized annual run freezes the whole year (12).
    A case in a frozen month may not be changed silently: it goes through a correction request.
    """
    frozen: dict[tuple[str, int], int] = {}
    rows = (
        ClearingRun.objects.filter(region_id=region_id, status=RunStatus.FINALIZED)
        .values("fund", "year", "kind")
        .annotate(last_month=Max("month"))
    )
    for row in rows:
        month = 12 if row["kind"] == RunKind.ANNUAL else row["last_month"]
        key = (row["fund"], row["year"])
        frozen[key] = max(frozen.get(key, 0), month)
    return frozen


def is_period_finalized(*, frozen: dict[tuple[str, int], int], fund: str, discharge_year: int, discharge_month: int) -> bool:
    return discharge_month <= frozen.get((fund, discharge_year), 0)


# every table holding per-case results of runs (the bench reports their bytes on disk)
CASE_RESULT_TABLES = ("settlement_caseresult",)


# --- pool inputs -----------------------------------------------------------------------------------



CASE_FRAME_COLUMNS = [
    "case_id", "case_no", "institution", "patient_id", "admission_date", "discharge_date", "drg_code",
    "total_fen", "self_fen", "tcm_fen", "discharge_status", "tcm_treatment", "review_fen",
]
CASE_FRAME_DTYPES = {
    "case_id": "int64", "case_no": str, "institution": "int64", "patient_id": str, "admission_date": str,
    "discharge_date": str, "drg_code": "category", "total_fen": "int64", "self_fen": "int64", "tcm_fen": "int64",
    "discharge_status": "category", "tcm_treatment": "int64", "review_fen": "int64",
}
# drg_code and discharge_status are read as categoricals: a few hundred distinct values that the
# valuation looks up once each instead of once per case (drg.domain.valuation._codes)


def _fen(column: str) -> str:
    return f"CAST(ROUND({column} * 100) AS BIGINT)"


def pool_cases_frame(
    *, region_id: int, fund: str, start: _dt.date, end: _dt.date, institution_ids: _Sequence[int] | None = None
) -> pd.DataFrame:
    """The pool's cases discharged in [start, end], with the approved special-review cost (fen, −1
    when none), as a DataFrame in integer units; only those of `institution_ids` when given (one
    chunk of a scaled-out run, settlement/scaleout.py).

    Two reads: the cases (COPY on PostgreSQL, by the pool/period index; a chunk's by the
    (institution, case_no) index, so it never scans the whole pool) and the pool's approved
    special reviews (a few per thousand cases), merged in pandas — no join for the planner to get
    wrong on freshly loaded, not yet analysed tables.
    """
    params: list = [region_id, fund, start, end]
    only = ""
    if institution_ids is not None:
        ids = sorted({int(pk) for pk in institution_ids})
        only = f" AND c.institution_id IN ({', '.join(['%s'] * len(ids))})" if ids else " AND 1 = 0"
        params += ids
    sql = f"""
        SELECT c.id, c.case_no, c.institution_id, c.patient_id, c.admission_date, c.discharge_date,
               c.drg_code, {_fen('c.total_cost')}, {_fen('c.self_pay')}, {_fen('c.tcm_cost')},
               c.discharge_status, CASE WHEN c.tcm_treatment THEN 1 ELSE 0 END
        FROM drg_case c
        WHERE c.region_id = %s AND c.fund = %s AND c.discharge_date >= %s AND c.discharge_date <= %s{only}
    """
    columns = CASE_FRAME_COLUMNS[:-1]
    frame = read_frame(sql, params, columns, {k: CASE_FRAME_DTYPES[k] for k in columns})
    reviews = SpecialReview.objects.filter(
        status=ReviewStatus.APPROVED, case__region_id=region_id, case__fund=fund,
        case__discharge_date__gte=start, case__discharge_date__lte=end,
    )
    if institution_ids is not None:
        reviews = reviews.filter(case__institution_id__in=list(institution_ids))
    reviews = reviews.values_list("case_id", "approved_cost")
    approved = {case_id: int(cost * 100) for case_id, cost in reviews}
    frame["review_fen"] = frame["case_id"].map(approved).fillna(-1).astype("int64") if approved else -1
    frame = frame.sort_values("case_id", kind="stable").reset_index(drop=True)
    # one integer per distinct patient id of this read: the readmission rule groups by it instead of
    # hashing the id strings inside the valuation (exact: equal ids, equal keys; nothing else)
    frame["patient_key"] = pd.factorize(frame["patient_id"].to_numpy())[0].astype("int64")
    frame["tcm_treatment"] = frame["tcm_treatment"].astype(bool)
    frame["admission_date"] = pd.to_datetime(frame["admission_date"])
    frame["discharge_date"] = pd.to_datetime(frame["discharge_date"])
    return frame


def pool_case_counts(*, region_id: int, fund: str, start: _dt.date, end: _dt.date) -> dict[int, int]:
    """Cases per institution id of the pool discharged in [start, end] (one aggregate query): what
    a scaled-out run balances its chunks by."""
    rows = (
        Case.objects.filter(region_id=region_id, fund=fund, discharge_date__gte=start, discharge_date__lte=end)
        .values_list("institution_id").annotate(n=Count("id")).order_by()
    )
    return {int(institution_id): int(n) for institution_id, n in rows}


def _units(value, scale: int):
    return pd.NA if value is None else int(Decimal(value) * scale)


def pool_catalog(*, region_id: int, year: int) -> Catalog:
    groups = list(
        DrgGroup.objects.filter(region_id=region_id, year=year).values_list(
            "code", "kind", "base_points", "avg_cost", "daily_points", "same_price", "readmission_exempt"
        )
    )
    frame = pd.DataFrame(
        {
            "code": [g[0] for g in groups],
            "kind": [g[1] for g in groups],
            "base_u": pd.array([_units(g[2], 10_000) for g in groups], dtype="Int64"),
            "avg_fen": pd.array([_units(g[3], 100) for g in groups], dtype="Int64"),
            "daily_u": pd.array([_units(g[4], 10_000) for g in groups], dtype="Int64"),
            "same_price": [bool(g[5]) for g in groups],
            "readmission_exempt": [bool(g[6]) for g in groups],
        }
    )
    own = list(Coefficient.objects.filter(institution__region_id=region_id, year=year).values_list("institution_id", "drg_code", "coefficient"))
    coefficients = pd.DataFrame(
        {"institution": [o[0] for o in own], "drg_code": [o[1] for o in own], "coef_u": [int(o[2] * 10_000) for o in own]}
    )
    defaults = {
        pk: int(coefficient * 10_000)
        for pk, coefficient in Institution.objects.filter(region_id=region_id, coefficient__isnull=False).values_list("id", "coefficient")
    }
    equivalents = dict(TcmEquivalent.objects.filter(region_id=region_id, year=year).values_list("drg_code", "equivalent_code"))
    return Catalog(groups=frame, coefficients=coefficients, institution_coefficients=defaults, tcm_equivalents=equivalents)


def _dec(value) -> Decimal:
    return Decimal(str(value))


@_dataclass(frozen=True)
class SchemeParameters:
    valuation: ValuationScheme
    clearing: ClearingParameters
    as_dict: dict


def pool_scheme(*, region_id: int, year: int) -> SchemeParameters:
    scheme = PaymentScheme.objects.filter(region_id=region_id, year=year).first()
    if scheme is None:
        raise PaymentScheme.DoesNotExist(f"no payment scheme for region {region_id} and year {year}")
    return scheme_parameters(scheme)


def scheme_parameters(scheme: PaymentScheme) -> SchemeParameters:
    """The valuation and clearing parameters of a payment scheme (stored, or an unsaved copy with
    changed values, e.g. a planning scenario's)."""
    valuation = ValuationScheme(
        all_case_avg_cost=scheme.all_case_avg_cost,
        high_outlier_tiers=tuple(Tier(None if t.get("upto") is None else _dec(t["upto"]), _dec(t["multiple"])) for t in scheme.high_outlier_tiers),
        low_outlier_multiple=scheme.low_outlier_multiple,
        readmission_days=scheme.readmission_days,
        readmission_factor=scheme.readmission_factor,
    )
    clearing = ClearingParameters(
        surplus_tiers=tuple(Band(None if t.get("upto") is None else _dec(t["upto"]), _dec(t["hospital_share"])) for t in scheme.surplus_tiers),
        overrun_tiers=tuple(Band(None if t.get("upto") is None else _dec(t["upto"]), _dec(t["fund_share"])) for t in scheme.overrun_tiers),
        tcm_rate_tiers=tuple(UpliftTier(_dec(t["min_rate"]), _dec(t["uplift"])) for t in (scheme.tcm_rate_tiers or [])),
        prepay_ratio=scheme.prepay_ratio,
    )
    as_dict = {
        "all_case_avg_cost": str(scheme.all_case_avg_cost),
        "high_outlier_tiers": scheme.high_outlier_tiers,
        "low_outlier_multiple": str(scheme.low_outlier_multiple),
        "readmission_days": scheme.readmission_days,
        "readmission_factor": str(scheme.readmission_factor),
        "prepay_ratio": str(scheme.prepay_ratio),
        "surplus_tiers": scheme.surplus_tiers,
        "overrun_tiers": scheme.overrun_tiers,
        "tcm_rate_tiers": scheme.tcm_rate_tiers,
    }
    return SchemeParameters(valuation=valuation, clearing=clearing, as_dict=as_dict)


def itemized_total(*, region_id: int, fund: str, year: int, through_month: int = 12) -> Decimal:
    """Approved special-outpatient itemized payments of the pool in months 1..through_month."""
    total = ItemizedClaim.objects.filter(
        region_id=region_id, fund=fund, status=ReviewStatus.APPROVED,
        month__gte=_dt.date(year, 1, 1), month__lte=_dt.date(year, through_month, 1),
    ).aggregate(s=Sum("approved_amount"))["s"]
    return r2(total or Decimal("0"))


def institutions_of_region(*, region_id: int) -> dict[int, Institution]:
    return {inst.pk: inst for inst in Institution.objects.filter(region_id=region_id)}


def pool_penalties(*, region_id: int, fund: str, year: int) -> dict[int, Decimal]:
    """Σ multiple × base_points(group) of approved point adjustments, per institution id."""
    bases = dict(DrgGroup.objects.filter(region_id=region_id, year=year).values_list("code", "base_points"))
    penalties: dict[int, Decimal] = {}
    rows = PointAdjustment.objects.filter(
        institution__region_id=region_id, fund=fund, year=year, status=AdjustmentStatus.APPROVED
    ).values_list("institution_id", "drg_code", "multiple")
    for institution_id, drg_code, multiple in rows:
        penalties[institution_id] = penalties.get(institution_id, Decimal("0")) + multiple * (bases.get(drg_code) or Decimal("0"))
    return penalties


def pool_scores(*, region_id: int, fund: str, year: int) -> dict[int, Decimal]:
    return dict(
        Evaluation.objects.filter(institution__region_id=region_id, fund=fund, year=year, status=AdjustmentStatus.APPROVED)
        .values_list("institution_id", "score")
    )


def latest_finalized_runs(*, region_id: int, fund: str, year: int, kind: str, months=None) -> dict:
    """month (or None for annual) -> the binding run of that period (the one finalized run that is
    not superseded)."""
    runs = ClearingRun.objects.filter(region_id=region_id, fund=fund, year=year, kind=kind, status=RunStatus.FINALIZED)
    if months is not None:
        runs = runs.filter(month__in=list(months))
    latest: dict = {}
    for run in runs.order_by("finalized_at", "id"):
        latest[run.month] = run
    return latest


def binding_run(*, region_id: int, fund: str, year: int, month: int | None = None) -> ClearingRun | None:
    """The binding run of a pool and period (SETTLEMENT.md §6): its finalized, not superseded run."""
    kind = RunKind.MONTHLY if month else RunKind.ANNUAL
    return (
        ClearingRun.objects.filter(region_id=region_id, fund=fund, year=year, kind=kind, month=month, status=RunStatus.FINALIZED)
        .select_related("region").order_by("-finalized_at", "-id").first()
    )


def standing_run(*, region_id: int, fund: str, year: int, month: int | None = None) -> ClearingRun | None:
    """The run that stands for a period: its binding run, or while none is finalized its latest draft."""
    binding = binding_run(region_id=region_id, fund=fund, year=year, month=month)
    if binding is not None:
        return binding
    kind = RunKind.MONTHLY if month else RunKind.ANNUAL
    return (
        ClearingRun.objects.filter(region_id=region_id, fund=fund, year=year, kind=kind, month=month, status=RunStatus.DRAFT)
        .select_related("region").order_by("-created_at", "-id").first()
    )


def paid_run_ids(*, region_id: int, fund: str, year: int) -> list[int]:
    """Ids of every finalized run of the pool-year, superseded ones included: the payment orders a
    new run is net of. A run records them, and its finalization is refused once they have changed."""
    return list(
        ClearingRun.objects.filter(region_id=region_id, fund=fund, year=year, status__in=PAID_RUN_STATUSES)
        .order_by("id").values_list("id", flat=True)
    )


@_dataclass(frozen=True)
class EarlierSettlements:
    """What the pool-year's finalized runs (superseded ones included) already settled, per institution id."""

    run_ids: tuple[int, ...]
    prepaid: dict[int, Decimal]  # Σ prepay over every finalized monthly run of the year
    settled_before: dict[int, Decimal]  # Σ balance over every finalized annual run of the year


def earlier_settlements(*, region_id: int, fund: str, year: int, run_ids: _Sequence[int] | None = None) -> EarlierSettlements:
    """One read of the pool-year's payment orders so far (SETTLEMENT.md §6): Σ prepayments of every
    finalized monthly run and Σ balances of every finalized annual run, per institution id, with the
    ids of the runs summed. `run_ids` names the runs to sum instead (a scenario replays the binding
    run, which is net of the runs it recorded, not of itself)."""
    run_ids = tuple(paid_run_ids(region_id=region_id, fund=fund, year=year) if run_ids is None else sorted(run_ids))
    prepaid: dict[int, Decimal] = {}
    settled: dict[int, Decimal] = {}
    rows = InstitutionLine.objects.filter(run_id__in=run_ids).values_list("institution_id", "run__kind", "prepay", "balance")
    for institution_id, kind, prepay, balance in rows:
        if kind == RunKind.MONTHLY:
            prepaid[institution_id] = prepaid.get(institution_id, Decimal("0")) + (prepay or Decimal("0"))
        else:
            settled[institution_id] = settled.get(institution_id, Decimal("0")) + (balance or Decimal("0"))
    return EarlierSettlements(run_ids=run_ids, prepaid=prepaid, settled_before=settled)


def withheld_latest(*, region_id: int, fund: str, year: int) -> dict[int, Decimal]:
    """withheld per institution id from the binding run of the year's latest finalized month."""
    runs = latest_finalized_runs(region_id=region_id, fund=fund, year=year, kind=RunKind.MONTHLY)
    if not runs:
        return {}
    latest = runs[max(runs)]
    return dict(InstitutionLine.objects.filter(run=latest).values_list("institution_id", "withheld"))


def latest_finalized_month(*, region_id: int, fund: str, year: int) -> int:
    """The latest month of the year with a binding monthly run (0 when none)."""
    return (
        ClearingRun.objects.filter(region_id=region_id, fund=fund, year=year, kind=RunKind.MONTHLY, status=RunStatus.FINALIZED)
        .aggregate(m=Max("month"))["m"] or 0
    )


def latest_run(*, region, fund: str, year: int, month: int | None = None, statuses=None) -> ClearingRun | None:
    """The pool's most recent run of the period (any status unless `statuses` is given)."""
    kind = RunKind.MONTHLY if month else RunKind.ANNUAL
    runs = ClearingRun.objects.filter(region=region, fund=fund, year=year, kind=kind, month=month)
    if statuses:
        runs = runs.filter(status__in=list(statuses))
    return runs.order_by("-created_at", "-id").first()


# --- case results of a run: the one place that reads them ------------------------------------------

CASE_RESULT_COLUMNS = (
    "run_id", "case_id", "institution_id", "valuation_group", "coefficient", "ratio", "category", "base_points",
    "readmission_halved", "points_before_readmission", "points",
)
# the case and institution columns run_case_results_frame(with_case=True) adds
CASE_RESULT_CASE_COLUMNS = ("case_no", "discharge_date", "drg_code", "institution_code")


def run_case_results_frame(*, run, institution_id: int | None = None, with_case: bool = False) -> pd.DataFrame:
    """The per-case results of `run` (only `institution_id`'s when given) as a DataFrame with the
    columns of CASE_RESULT_COLUMNS — amounts and points as exact Decimals (None where NULL), as the
    model holds them — plus, with `with_case`, the case number, discharge date, DRG code and the
    institution's code. Rows in case id order.

    Every reader of case results (statements, the clearing files, the admin, the API, the apps
    above settlement) goes through this function or run_case_result, so where and how the results
    are stored can change in one place."""
    from settlement.models import CaseResult

    rows = CaseResult.objects.filter(run_id=getattr(run, "pk", run))
    if institution_id is not None:
        rows = rows.filter(institution_id=institution_id)
    fields = list(CASE_RESULT_COLUMNS)
    if with_case:
        fields += ["case__case_no", "case__discharge_date", "case__drg_code", "institution__code"]
    frame = pd.DataFrame.from_records(
        list(rows.order_by("case_id").values_list(*fields)),
        columns=list(CASE_RESULT_COLUMNS) + (list(CASE_RESULT_CASE_COLUMNS) if with_case else []),
    )
    return frame


def run_case_result(*, run, case) -> dict | None:
    """One case's result in `run` (a dict of CASE_RESULT_COLUMNS), or None when the run did not value it."""
    from settlement.models import CaseResult

    row = (
        CaseResult.objects.filter(run_id=getattr(run, "pk", run), case_id=getattr(case, "pk", case))
        .values(*CASE_RESULT_COLUMNS).first()
    )
    return row


def run_case_result_count(*, run) -> int:
    """How many case results `run` has stored."""
    from settlement.models import CaseResult

    return CaseResult.objects.filter(run_id=getattr(run, "pk", run)).count()


def run_points_by_discharge_month(*, run) -> dict[int, Decimal]:
    """Σ points of `run`'s case results per discharge month (1..12), summed by the database."""
    from django.db.models.functions import ExtractMonth

    from settlement.models import CaseResult

    rows = (
        CaseResult.objects.filter(run_id=getattr(run, "pk", run))
        .annotate(m=ExtractMonth("case__discharge_date")).values("m").annotate(p=Sum("points")).order_by()
    )
    return {int(row["m"]): row["p"] for row in rows}
