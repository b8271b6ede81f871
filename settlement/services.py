"""Clearing runs (SETTLEMENT.md §6): start, execute, finalize, export.

A run is recorded and reproducible: its inputs fingerprint, parameters, who started it, timings,
per-case points and per-institution lines. Execution reads the pool's inputs, computes everything
outside any transaction, then writes all results in one transaction while holding the run's row
lock, guarded by its status: a retried or duplicated task never writes twice, and a crash mid-run
leaves nothing half written.
"""
from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pandas as pd
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from budget.services import budget_current
from common.bulk import units_to_text, write_frame
from common.precision import from_fen, from_ten_thousandths, r2, r4, to_decimal
from drg.domain.valuation import value_cases
from drg.models import Region
from settlement import selectors
from settlement.choices import ACTIVE_RUN_STATUSES, RunKind, RunStatus
from settlement.domain.clearing import InstitutionTotals, annual_clearing, monthly_clearing
from settlement.models import CaseResult, ClearingRun, InstitutionLine

logger = logging.getLogger(__name__)

ZERO = Decimal("0")
RATE_PLACES = Decimal("0.000001")


class ClearingRunConflict(ValidationError):
    """Another run of the pool is queued or running."""


# --- start -----------------------------------------------------------------------------------------

def clearing_run_start(*, region: Region, fund: str, year: int, month: int | None = None, user=None, run_async: bool = False) -> ClearingRun:
    """Record a new run of the pool and period and execute it (inline, or queued on Celery).

    At most one run per pool is queued or running at a time (a database constraint); a run left
    'running' by a worker that died longer ago than the task time limit is marked failed first.
    """
    if month is not None and not 1 <= month <= 12:
        raise ValidationError({"month": f"month must be 1..12, got {month}"})
    _fail_abandoned_runs(region=region, fund=fund, year=year)
    try:
        with transaction.atomic():
            run = ClearingRun.objects.create(
                region=region,
                fund=fund,
                year=year,
                month=month,
                kind=RunKind.MONTHLY if month else RunKind.ANNUAL,
                status=RunStatus.QUEUED,
                started_by=user,
                progress="queued",
            )
    except IntegrityError as exc:
        active = ClearingRun.objects.filter(region=region, fund=fund, year=year, status__in=ACTIVE_RUN_STATUSES).first()
        raise ClearingRunConflict(
            f"pool {region.code}/{fund}/{year} already has run #{active.pk if active else '?'} queued or running; "
            "wait for it to finish"
        ) from exc
    if run_async:
        from settlement.tasks import clearing_run_task

        transaction.on_commit(lambda: clearing_run_task.apply_async(kwargs={"run_id": run.pk}))
    else:
        clearing_run_execute(run_id=run.pk)
        run.refresh_from_db()
    return run


def _fail_abandoned_runs(*, region: Region, fund: str, year: int) -> None:
    limit = timezone.now() - dt.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
    ClearingRun.objects.filter(
        region=region, fund=fund, year=year, status=RunStatus.RUNNING, started_at__lt=limit
    ).update(status=RunStatus.FAILED, error="abandoned: the worker stopped before the run finished", finished_at=timezone.now())


# --- execute ---------------------------------------------------------------------------------------

@dataclass
class _Computed:
    cases: pd.DataFrame
    values: pd.DataFrame
    lines: list[dict]
    totals: dict
    parameters: dict
    fingerprint: str


def clearing_run_execute(*, run_id: int) -> ClearingRun:
    """Execute a queued run. Idempotent: a run that is already draft, finalized or failed is left as it is."""
    claimed = ClearingRun.objects.filter(pk=run_id, status__in=ACTIVE_RUN_STATUSES).update(
        status=RunStatus.RUNNING, started_at=timezone.now(), progress="loading inputs", error=""
    )
    run = ClearingRun.objects.select_related("region").get(pk=run_id)
    if not claimed:
        logger.info("run %s is %s; nothing to do", run_id, run.status)
        return run
    timings: dict[str, float] = {}
    try:
        computed = _compute(run, timings)
        started = time.perf_counter()
        _progress(run, f"storing {len(computed.cases)} case results")
        with transaction.atomic():
            locked = ClearingRun.objects.select_for_update().get(pk=run_id)
            if locked.status != RunStatus.RUNNING:
                logger.info("run %s became %s while computing; results discarded", run_id, locked.status)
                return locked
            _store(locked, computed)
            timings["store"] = round(time.perf_counter() - started, 3)
            timings["total"] = round(sum(v for k, v in timings.items() if k != "total"), 3)
            locked.status = RunStatus.DRAFT
            locked.finished_at = timezone.now()
            locked.timings = timings
            locked.progress = "done"
            locked.case_count = len(computed.cases)
            locked.fingerprint = computed.fingerprint
            locked.parameters = computed.parameters
            locked.totals = computed.totals
            locked.save()
        return locked
    except Exception as exc:  # recorded on the run, then re-raised for the caller / worker log
        logger.exception("run %s failed", run_id)
        ClearingRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
            status=RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now(), timings=timings
        )
        raise


def _progress(run: ClearingRun, text: str) -> None:
    ClearingRun.objects.filter(pk=run.pk).update(progress=text[:200])


def _period(year: int, month: int | None) -> tuple[dt.date, dt.date]:
    last = month or 12
    return dt.date(year, 1, 1), dt.date(year, last, calendar.monthrange(year, last)[1])


def _compute(run: ClearingRun, timings: dict) -> _Computed:
    region_id, fund, year, month = run.region_id, run.fund, run.year, run.month
    started = time.perf_counter()
    budget = budget_current(region=run.region, fund=fund, year=year)
    if budget is None:
        raise ValidationError(f"pool {run.region.code}/{fund}/{year} has no approved budget")
    start, end = _period(year, month)
    cases = selectors.pool_cases_frame(region_id=region_id, fund=fund, start=start, end=end)
    catalog = selectors.pool_catalog(region_id=region_id, year=year)
    scheme = selectors.pool_scheme(region_id=region_id, year=year)
    institutions = selectors.institutions_of_region(region_id=region_id)
    itemized = selectors.itemized_total(region_id=region_id, fund=fund, year=year, through_month=month or 12)
    timings["load"] = round(time.perf_counter() - started, 3)

    started = time.perf_counter()
    _progress(run, f"valuing {len(cases)} cases")
    values = value_cases(cases, catalog, scheme.valuation)
    timings["value"] = round(time.perf_counter() - started, 3)

    started = time.perf_counter()
    _progress(run, "clearing")
    totals_by_inst = _institution_totals(cases, values, institutions)
    codes = {pk: inst.code for pk, inst in institutions.items()}
    by_code = {inst.code: pk for pk, inst in institutions.items()}
    parameters = {
        "scheme": scheme.as_dict,
        "budget": {"revision": budget.revision, "total": str(budget.total), "reserve": str(budget.reserve),
                   "outpatient": str(budget.outpatient), "inpatient": str(budget.inpatient)},
        "itemized": str(itemized),
        "period": {"start": start.isoformat(), "end": end.isoformat()},
    }
    if month:
        prepaid_before = selectors.prepayments_before(region_id=region_id, fund=fund, year=year, month=month)
        result = monthly_clearing(
            totals_by_inst, inpatient=budget.inpatient, month=month, itemized_to_date=itemized,
            params=scheme.clearing, prepaid_before={codes[k]: v for k, v in prepaid_before.items()},
        )
        parameters["prepaid_before"] = {codes[k]: str(v) for k, v in sorted(prepaid_before.items())}
        lines = [
            {"institution_id": by_code[line.code], "case_count": line.case_count, "raw_points": line.points,
             "points": line.points, "point_value": line.point_value, "self_pay": line.self_pay,
             "itemized_fund": line.itemized_fund, "due": line.due, "due_exact": _fraction_text(line.due_exact),
             "prepaid_to_date": line.prepaid_to_date, "prepay": line.prepay, "withheld": line.withheld}
            for line in result.lines
        ]
        totals = {
            "inpatient": str(budget.inpatient), "special_outpatient": str(itemized),
            "budget_to_date": str(result.budget_to_date), "fund_claims": str(result.fund_claims),
            "self_pay": str(result.self_pay), "points": str(result.points),
            "point_value": str(result.point_value), "point_value_exact": _fraction_text(result.point_value_exact),
        }
    else:
        penalties = selectors.pool_penalties(region_id=region_id, fund=fund, year=year)
        scores = selectors.pool_scores(region_id=region_id, fund=fund, year=year)
        prepaid = selectors.prepayments_before(region_id=region_id, fund=fund, year=year, month=13)
        withheld = selectors.withheld_latest(region_id=region_id, fund=fund, year=year)
        result = annual_clearing(
            totals_by_inst, inpatient=budget.inpatient, itemized=itemized, reserve=budget.reserve, params=scheme.clearing,
            penalties={codes[k]: v for k, v in penalties.items()}, prepaid={codes[k]: v for k, v in prepaid.items()},
            withheld={codes[k]: v for k, v in withheld.items()}, scores={codes[k]: v for k, v in scores.items()},
        )
        for name, mapping in (("penalties", penalties), ("scores", scores), ("prepaid", prepaid), ("withheld", withheld)):
            parameters[name] = {codes[k]: str(v) for k, v in sorted(mapping.items(), key=lambda kv: codes[kv[0]])}
        lines = [
            {"institution_id": by_code[line.code], "case_count": line.case_count, "raw_points": line.raw_points,
             "penalty_points": line.penalty_points, "tcm_rate": None if line.tcm_rate is None else to_decimal(line.tcm_rate).quantize(RATE_PLACES),
             "uplift": line.uplift, "points": line.points, "point_value": line.point_value,
             "gross_amount": line.gross_amount, "self_pay": line.self_pay, "fund_payment": line.fund_payment,
             "itemized_fund": line.itemized_fund, "surplus": line.surplus, "prepaid": line.prepaid,
             "withheld": line.withheld, "quality_score": line.quality_score,
             "quality_deduction": line.quality_deduction, "balance": line.balance}
            for line in result.lines
        ]
        totals = {
            "total": str(budget.total), "reserve": str(budget.reserve), "outpatient": str(budget.outpatient),
            "inpatient": str(budget.inpatient), "drg_budget": str(result.drg_budget),
            "special_outpatient": str(itemized), "fund_claims": str(result.fund_claims),
            "distributed": str(result.distributed), "point_value": str(result.point_value),
            "point_value_exact": _fraction_text(result.point_value_exact), "self_pay": str(result.self_pay),
            "points": str(result.points), "banded": str(r2(result.banded)), "from_reserve": str(result.from_reserve),
        }
    timings["clear"] = round(time.perf_counter() - started, 3)
    fingerprint = _fingerprint(cases, catalog, parameters)
    return _Computed(cases=cases, values=values, lines=lines, totals=totals, parameters=parameters, fingerprint=fingerprint)


def _institution_totals(cases: pd.DataFrame, values: pd.DataFrame, institutions: dict) -> list[InstitutionTotals]:
    frame = pd.DataFrame(
        {
            "institution": cases["institution"].to_numpy(),
            "points_u": values["points_u"].to_numpy(),
            "self_fen": cases["self_fen"].to_numpy(),
            "fund_fen": (cases["total_fen"] - cases["self_fen"]).to_numpy(),
            "total_fen": cases["total_fen"].to_numpy(),
            "tcm_fen": cases["tcm_fen"].to_numpy(),
        }
    )
    grouped = frame.groupby("institution", sort=True).agg(
        points_u=("points_u", "sum"), self_fen=("self_fen", "sum"), fund_fen=("fund_fen", "sum"),
        total_fen=("total_fen", "sum"), tcm_fen=("tcm_fen", "sum"), case_count=("points_u", "size"),
    )
    totals = []
    for institution_id, row in grouped.iterrows():  # one row per institution, not per case
        inst = institutions[int(institution_id)]
        totals.append(
            InstitutionTotals(
                code=inst.code,
                raw_points=from_ten_thousandths(int(row["points_u"])),
                self_pay=from_fen(int(row["self_fen"])),
                fund_claims=from_fen(int(row["fund_fen"])),
                total_cost=from_fen(int(row["total_fen"])),
                tcm_cost=from_fen(int(row["tcm_fen"])),
                case_count=int(row["case_count"]),
                category=inst.category,
                level=inst.level,
            )
        )
    return totals


def _fraction_text(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def _fingerprint(cases: pd.DataFrame, catalog, parameters: dict) -> str:
    """sha256 over every input of the run: the case rows, the catalog and the parameters."""
    digest = hashlib.sha256()
    case_part = cases.drop(columns=["case_id"]).sort_values(["institution", "case_no"], kind="stable")
    digest.update(pd.util.hash_pandas_object(case_part, index=False).to_numpy().tobytes())
    for frame in (catalog.groups, catalog.coefficients):
        ordered = frame.sort_values(list(frame.columns[:2]), kind="stable") if len(frame) else frame
        digest.update(pd.util.hash_pandas_object(ordered.astype(str), index=False).to_numpy().tobytes())
    digest.update(json.dumps(
        {"defaults": sorted(catalog.institution_coefficients.items()), "tcm": sorted(catalog.tcm_equivalents.items()), "parameters": parameters},
        sort_keys=True, default=str,
    ).encode())
    return digest.hexdigest()


def _store(run: ClearingRun, computed: _Computed) -> None:
    CaseResult.objects.filter(run=run).delete()
    InstitutionLine.objects.filter(run=run).delete()
    values, cases = computed.values, computed.cases
    ratio = values["ratio_u"]
    base = values["base_u"]
    frame = pd.DataFrame(
        {
            "run_id": run.pk,
            "case_id": cases["case_id"].to_numpy(),
            "institution_id": cases["institution"].to_numpy(),
            "valuation_group": values["valuation_group"].to_numpy(),
            "coefficient": units_to_text(values["coef_u"], 4).to_numpy(),
            "ratio": units_to_text(ratio.fillna(0), 4).where(ratio.notna().to_numpy(), None).to_numpy(),
            "category": values["category"].to_numpy(),
            "base_points": units_to_text(base.fillna(0), 4).where(base.notna().to_numpy(), None).to_numpy(),
            "readmission_halved": values["readmission_halved"].to_numpy(),
            "points_before_readmission": units_to_text(values["points_before_u"], 4).to_numpy(),
            "points": units_to_text(values["points_u"], 4).to_numpy(),
        }
    )
    write_frame(CaseResult._meta.db_table, frame, list(frame.columns))
    InstitutionLine.objects.bulk_create([InstitutionLine(run=run, **line) for line in computed.lines])


# --- finalize --------------------------------------------------------------------------------------

def clearing_run_finalize(*, run: ClearingRun, user=None, system: bool = False) -> ClearingRun:
    """Draft -> finalized, by an approver other than the starter (the batch system user excepted)."""
    with transaction.atomic():
        locked = ClearingRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != RunStatus.DRAFT:
            raise ValidationError(f"run #{locked.pk} is {locked.status}; only a draft run can be finalized")
        if not system and user is not None and locked.started_by_id == user.pk:
            raise PermissionDenied("maker-checker: the user who started a run cannot finalize it")
        locked.status = RunStatus.FINALIZED
        locked.finalized_by = user
        locked.finalized_at = timezone.now()
        locked.save(update_fields=["status", "finalized_by", "finalized_at"])
    return locked


# --- export ----------------------------------------------------------------------------------------

ANNUAL_COLUMNS = ["institution_code", "points", "point_value", "gross_amount", "self_pay", "fund_payment",
                  "itemized_fund", "surplus", "prepaid", "withheld", "quality_deduction", "balance"]
MONTHLY_COLUMNS = ["institution_code", "points", "point_value", "due", "prepay", "withheld"]
POOL_KEYS = ["total", "reserve", "outpatient", "inpatient", "drg_budget", "special_outpatient", "fund_claims",
             "distributed", "point_value"]
POINT_FIELDS = {"points", "point_value"}


def _text(name: str, value) -> str:
    if value is None:
        value = ZERO
    return str(r4(value)) if name in POINT_FIELDS else str(r2(value))


def clearing_export(*, run: ClearingRun, out_dir: Path) -> list[Path]:
    """Write the run's outputs as EXCHANGE.md says; returns the files written."""
    import csv

    if run.status not in (RunStatus.DRAFT, RunStatus.FINALIZED):
        raise ValidationError(f"run #{run.pk} is {run.status}; it has no results to export")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = list(run.lines.select_related("institution").order_by("institution__code"))
    written = []
    columns = MONTHLY_COLUMNS if run.kind == RunKind.MONTHLY else ANNUAL_COLUMNS
    name = "monthly.csv" if run.kind == RunKind.MONTHLY else "clearing.csv"
    with open(out_dir / name, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for line in lines:
            writer.writerow([line.institution.code] + [_text(c, getattr(line, c)) for c in columns[1:]])
    written.append(out_dir / name)
    if run.kind == RunKind.ANNUAL:
        results = pd.DataFrame.from_records(
            CaseResult.objects.filter(run=run).values_list("case__case_no", "institution__code", "valuation_group", "category", "points"),
            columns=["case_no", "institution_code", "valuation_group", "category", "points"],
        )
        results = results.sort_values(["institution_code", "case_no"], kind="stable")
        results.insert(2, "fund", run.fund)
        results["points"] = [str(r4(p)) for p in results["points"]]
        results.to_csv(out_dir / "case_points.csv", index=False, lineterminator="\r\n")
        written.append(out_dir / "case_points.csv")
        pool = {key: run.totals[key] for key in POOL_KEYS}
        (out_dir / "pool.json").write_text(json.dumps(pool, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(out_dir / "pool.json")
    return written


# --- scheduled runs (beat) -------------------------------------------------------------------------

def _pools_with_budget(year: int):
    from budget.choices import BudgetStatus
    from budget.models import Budget

    return (
        Budget.objects.filter(year=year, status=BudgetStatus.APPROVED)
        .values_list("region_id", "fund").distinct().order_by("region_id", "fund")
    )


def clearing_runs_schedule_monthly(*, today: dt.date) -> list[ClearingRun]:
    """Queue the previous month's run for every pool with an approved budget (skips pools that
    already have a run of that month or one in progress)."""
    first = today.replace(day=1)
    previous = first - dt.timedelta(days=1)
    started = []
    for region_id, fund in _pools_with_budget(previous.year):
        exists = ClearingRun.objects.filter(
            region_id=region_id, fund=fund, year=previous.year, kind=RunKind.MONTHLY, month=previous.month,
            status__in=[RunStatus.DRAFT, RunStatus.FINALIZED, *ACTIVE_RUN_STATUSES],
        ).exists()
        if exists:
            continue
        try:
            started.append(clearing_run_start(region=Region.objects.get(pk=region_id), fund=fund, year=previous.year,
                                              month=previous.month, user=None, run_async=True))
        except ClearingRunConflict:
            logger.warning("pool %s/%s busy; monthly run for %s skipped", region_id, fund, previous)
    return started


def clearing_runs_offer_annual(*, today: dt.date) -> list[ClearingRun]:
    """After year end, queue last year's annual run for each pool that has none yet."""
    year = today.year - 1
    started = []
    for region_id, fund in _pools_with_budget(year):
        if ClearingRun.objects.filter(region_id=region_id, fund=fund, year=year, kind=RunKind.ANNUAL).exclude(status=RunStatus.FAILED).exists():
            continue
        try:
            started.append(clearing_run_start(region=Region.objects.get(pk=region_id), fund=fund, year=year, user=None, run_async=True))
        except ClearingRunConflict:
            logger.warning("pool %s/%s busy; annual run for %s skipped", region_id, fund, year)
    return started
