"""Reads for clearing: finalized periods, latest runs, pool inputs as DataFrames."""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass as _dataclass
from decimal import Decimal
from typing import Sequence as _Sequence

import pandas as pd
from django.db.models import Count, Max, Sum

from common.bulk import is_postgres, read_frame
from common.models import ReviewStatus
from common.precision import r2
from drg.choices import CaseCategory
from drg.domain.valuation import Catalog, Tier, ValuationScheme
from drg.models import Case, Coefficient, DrgGroup, Institution, PaymentScheme, SpecialReview, TcmEquivalent
from settlement.choices import PAID_RUN_STATUSES, AdjustmentStatus, RunKind, RunStatus
from settlement.domain import results as results_blocks
from settlement.domain.clearing import Band, ClearingParameters, UpliftTier
from settlement.models import CaseResultBlock, ClearingRun, Evaluation, InstitutionLine, ItemizedClaim, PointAdjustment


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
CASE_RESULT_TABLES = ("settlement_caseresultblock",)


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
# Stored as one compressed block per (run, institution) (settlement.domain.results, docs/storage.md).

CASE_RESULT_COLUMNS = (
    "run_id", "case_id", "institution_id", "valuation_group", "coefficient", "ratio", "category", "base_points",
    "readmission_halved", "points_before_readmission", "points",
)
# the case and institution columns run_case_results_frame(with_case=True) adds
CASE_RESULT_CASE_COLUMNS = ("case_no", "discharge_date", "drg_code", "institution_code")
# run statuses whose results stand for "the latest valuation" of a case (the API, the case page)
VALUED_RUN_STATUSES = (RunStatus.DRAFT, RunStatus.FINALIZED)


def _run_id(run) -> int:
    return int(getattr(run, "pk", run))


def _decoded(blocks) -> pd.DataFrame:
    """(run_id, institution_id, data) rows -> one frame of CASE_RESULT_COLUMNS in integer units."""
    parts = []
    for run_id, institution_id, data in blocks:
        part = results_blocks.decode_block(data)
        part.insert(0, "institution_id", institution_id)
        part.insert(0, "run_id", run_id)
        parts.append(part)
    if not parts:
        empty = results_blocks.empty_frame()
        empty.insert(0, "institution_id", pd.Series(dtype="int64"))
        empty.insert(0, "run_id", pd.Series(dtype="int64"))
        return empty
    frame = pd.concat(parts, ignore_index=True)
    return frame.astype({"run_id": "int64", "institution_id": "int64"})


def run_case_results_units(*, run, institution_id: int | None = None, with_case: bool = False) -> pd.DataFrame:
    """The per-case results of `run` (only `institution_id`'s when given): CASE_RESULT_COLUMNS with
    coefficient, ratio and points in integer ten-thousandths (Int64 with NA where NULL), in case id
    order, plus the CASE_RESULT_CASE_COLUMNS with `with_case`. The bulk readers' form (monitoring,
    planning, the clearing files)."""
    blocks = CaseResultBlock.objects.filter(run_id=_run_id(run))
    if institution_id is not None:
        blocks = blocks.filter(institution_id=institution_id)
    frame = _decoded(blocks.order_by("institution_id").values_list("run_id", "institution_id", "data").iterator(chunk_size=20))
    frame = frame.sort_values("case_id", kind="stable", ignore_index=True)
    if with_case:
        frame = frame.merge(_case_columns(frame), on="case_id", how="left", sort=False)
    return frame


def _case_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """case_no, discharge_date, drg_code, institution_code of the frame's cases (one read of their institutions'
    cases in the frame's id range, merged on the id)."""
    columns = ["case_id", "case_no", "discharge_date", "drg_code", "institution_code"]
    if frame.empty:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in columns})
    institutions = sorted(int(i) for i in frame["institution_id"].unique())
    ids = frame["case_id"]
    rows = (
        Case.objects.filter(institution_id__in=institutions, id__gte=int(ids.min()), id__lte=int(ids.max()))
        .values_list("id", "case_no", "discharge_date", "drg_code", "institution__code")
    )
    if len(frame) > 50_000:
        sql, params = rows.query.sql_with_params()
        cases = read_frame(sql, params, columns, {"case_id": "int64", "case_no": str, "drg_code": str, "institution_code": str})
        cases["discharge_date"] = pd.to_datetime(cases["discharge_date"]).dt.date
    else:
        cases = pd.DataFrame.from_records(list(rows), columns=columns)
    return cases


def run_case_results_frame(*, run, institution_id: int | None = None, with_case: bool = False) -> pd.DataFrame:
    """The per-case results of `run` (only `institution_id`'s when given) as a DataFrame with the
    columns of CASE_RESULT_COLUMNS — coefficient, ratio and points as exact Decimals (None where
    NULL) — plus, with `with_case`, the case number, discharge date, DRG code and the institution's
    code. Rows in case id order.

    Every reader of case results (statements, the clearing files, the admin, the API, the apps
    above settlement) goes through this module, so where and how the results are stored is decided
    in one place."""
    frame = results_blocks.as_decimals(run_case_results_units(run=run, institution_id=institution_id))
    if with_case:
        frame = frame.merge(_case_columns(frame), on="case_id", how="left", sort=False)
    return frame[list(CASE_RESULT_COLUMNS) + (list(CASE_RESULT_CASE_COLUMNS) if with_case else [])]


def case_results_with_cases(frame: pd.DataFrame) -> pd.DataFrame:
    """Case results in integer units (a slice of run_case_results_units) -> exact Decimals plus the
    case columns of CASE_RESULT_CASE_COLUMNS, in the frame's order."""
    out = results_blocks.as_decimals(frame)
    return out.merge(_case_columns(frame), on="case_id", how="left", sort=False)


def run_case_result(*, run, case) -> dict | None:
    """One case's result in `run` (a dict of CASE_RESULT_COLUMNS, Decimals), or None when the run did not value it."""
    case_id = int(getattr(case, "pk", case))
    institution_id = getattr(case, "institution_id", None)
    if institution_id is None:
        institution_id = Case.objects.filter(pk=case_id).values_list("institution_id", flat=True).first()
    frame = run_case_results_units(run=run, institution_id=institution_id)
    found = frame[frame["case_id"] == case_id]
    if found.empty:
        return None
    return _records(results_blocks.as_decimals(found))[0]


_records = results_blocks.as_records


def run_case_result_count(*, run) -> int:
    """How many case results `run` has stored."""
    return CaseResultBlock.objects.filter(run_id=_run_id(run)).aggregate(n=Sum("cases"))["n"] or 0


def run_case_result_bytes(*, run) -> int:
    """Bytes of `run`'s stored case-result blocks (their compressed size)."""
    from django.db.models.functions import Length

    return CaseResultBlock.objects.filter(run_id=_run_id(run)).aggregate(n=Sum(Length("data")))["n"] or 0


def run_month_sums(*, run) -> pd.DataFrame:
    """Per discharge month (1..12) of `run`'s valued cases: Σ points (ten-thousandths), Σ total cost and
    Σ self pay (fen) — columns month, points_u, total_fen, self_fen, months with cases only."""
    frame = run_case_results_units(run=run)
    columns = ["month", "points_u", "total_fen", "self_fen"]
    if frame.empty:
        return pd.DataFrame({name: pd.Series(dtype="int64") for name in columns})
    institutions = sorted(int(i) for i in frame["institution_id"].unique())
    ids = frame["case_id"]
    sql = (
        "SELECT id, CAST(EXTRACT(MONTH FROM discharge_date) AS INTEGER), CAST(ROUND(total_cost * 100) AS BIGINT), "
        "CAST(ROUND(self_pay * 100) AS BIGINT) FROM drg_case WHERE id >= %s AND id <= %s AND institution_id IN ("
        + ", ".join(["%s"] * len(institutions)) + ")"
    )
    if not is_postgres():
        sql = sql.replace("CAST(EXTRACT(MONTH FROM discharge_date) AS INTEGER)", "CAST(strftime('%%m', discharge_date) AS INTEGER)")
    cases = read_frame(sql, [int(ids.min()), int(ids.max()), *institutions], ["case_id", "month", "total_fen", "self_fen"],
                       {"case_id": "int64", "month": "int64", "total_fen": "int64", "self_fen": "int64"})
    merged = frame[["case_id", "points"]].merge(cases, on="case_id", how="inner", sort=False)
    sums = merged.groupby("month", sort=True)[["points", "total_fen", "self_fen"]].sum().reset_index()
    return sums.rename(columns={"points": "points_u"})[columns].astype("int64")


def run_points_by_discharge_month(*, run) -> dict[int, Decimal]:
    """Σ points of `run`'s case results per discharge month (1..12)."""
    sums = run_month_sums(run=run)
    return {int(m): Decimal(int(p)).scaleb(-4) for m, p in zip(sums["month"], sums["points_u"])}


def case_latest_results(*, institution_id: int, case_ids=None, statuses=VALUED_RUN_STATUSES) -> pd.DataFrame:
    """The latest valuation of an institution's cases: for each case, its result in the newest run (by
    creation) among the runs in `statuses` that valued it. Only `case_ids` when given (the newest
    blocks are read first and reading stops once every case is found). CASE_RESULT_COLUMNS with
    exact Decimals plus run_created_at, indexed by nothing, one row per case found."""
    wanted = None if case_ids is None else {int(c) for c in case_ids}
    blocks = (
        CaseResultBlock.objects.filter(institution_id=institution_id, run__status__in=list(statuses))
        .order_by("-run__created_at", "-run_id").values_list("run_id", "institution_id", "data", "run__created_at")
    )
    parts, found = [], set()
    for run_id, inst, data, created in blocks.iterator(chunk_size=4):
        if wanted is not None and wanted <= found:
            break
        part = _decoded([(run_id, inst, data)])
        if wanted is not None:
            part = part[part["case_id"].isin(list(wanted - found))]
        else:
            part = part[~part["case_id"].isin(list(found))] if found else part
        if part.empty:
            continue
        part["run_created_at"] = created
        found.update(part["case_id"].tolist())
        parts.append(part)
    if not parts:
        empty = _decoded([])
        empty["run_created_at"] = pd.Series(dtype=object)
        return results_blocks.as_decimals(empty)
    return results_blocks.as_decimals(pd.concat(parts, ignore_index=True))


def case_results_by_run(*, case) -> list[dict]:
    """Every valuation of one case, newest run first: dicts of CASE_RESULT_COLUMNS (Decimals) with `run`
    (the ClearingRun). For the case page."""
    blocks = (
        CaseResultBlock.objects.filter(institution_id=case.institution_id, run__region_id=case.region_id)
        .select_related("run__region").order_by("-run_id")
    )
    out = []
    for block in blocks.iterator(chunk_size=4):
        part = _decoded([(block.run_id, block.institution_id, block.data)])
        part = part[part["case_id"] == case.pk]
        if part.empty:
            continue
        record = _records(results_blocks.as_decimals(part))[0]
        out.append({**record, "run": block.run, "category_label": CaseCategory(record["category"]).label})
    return out
