"""Clearing runs (SETTLEMENT.md §6): start, execute, finalize, export.

A run is recorded and reproducible: its inputs fingerprint, parameters, who started it, timings,
per-case points and per-institution lines. Execution reads the pool's inputs, computes everything
outside any transaction, then writes all results in one transaction while holding the run's row
lock, guarded by its status: a retried or duplicated task never writes twice, and a crash mid-run
leaves nothing half written.

A large pool is valued in chunks of institutions on several workers (a Celery chord, see
settlement/scaleout.py and docs/scaleout.md): each chunk stores its case results idempotently and
returns per-institution aggregates; one reduce step clears the pool with the same `_clear` as the
single-process path and makes the run a draft. Either way the numbers and the fingerprint are the same.
"""
from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
import logging
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Iterable, Sequence

import pandas as pd
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.text import get_text_list
from django.utils.translation import gettext as _

from budget.services import budget_current
from common.bulk import copy_upsert
from common.precision import from_fen, from_ten_thousandths, r2, round_half_up
from common.users import system_user
from drg.domain.valuation import Catalog, value_cases
from drg.models import DrgGroup, PaymentScheme, Region
from drg.revisions import parameter_revisions_for_run
from settlement import dispatch, scaleout, selectors
from settlement.choices import ACTIVE_RUN_STATUSES, PAID_RUN_STATUSES, RunKind, RunStatus
from settlement.domain import results as results_blocks
from settlement.domain.clearing import InstitutionTotals, annual_clearing, monthly_clearing
from settlement.models import CaseResultBlock, ClearingRun, InstitutionLine
from settlement.signals import run_finalized

logger = logging.getLogger(__name__)

ZERO = Decimal("0")
RATE_DECIMALS = 6  # tcm_rate as stored on the statement line
SETTLED_RUNS = "settled_runs"  # parameters key: ids of the finalized runs of the pool-year a run is net of


class ClearingRunConflict(ValidationError):
    """Another run of the pool is queued or running."""


class ClearingRunNotQueued(ValidationError):
    """The run could not be handed to Celery (the broker is unreachable); it was failed at once."""


class ClearingPeriodRefused(ValidationError):
    """The period may not be run (now): a monthly run before the latest finalized month, beyond the
    month after it, or after the year's annual clearing was finalized (SETTLEMENT.md §6)."""


class ClearingRunStale(ValidationError):
    """A draft computed before another run of its pool-year was finalized: the earlier settlements it
    is net of have changed, so it must be run again."""


# --- which periods may run -------------------------------------------------------------------------

def clearing_run_check_period(*, region: Region, fund: str, year: int, month: int | None) -> None:
    """Refuse a period that may not be run (the one check behind the admin start form, `clear`,
    the beat schedule and finalization). SETTLEMENT.md §6: a monthly run only for the month after the
    latest finalized month or for that month itself (a re-run), the first one of a year for January;
    none once the year's annual clearing is finalized. Annual runs may always be run again."""
    if month is None:
        return
    pool = f"{region.code}/{fund}/{year}"
    annual = selectors.binding_run(region_id=region.pk, fund=fund, year=year)
    if annual is not None:
        raise ClearingPeriodRefused(
            _("%(pool)s 的年度清算已定稿（清算 #%(run)s），不能再发起月度预付；病例更正请重新进行年度清算补差。")
            % {"pool": pool, "run": annual.pk},
            code="annual_finalized",
        )
    latest = selectors.latest_finalized_month(region_id=region.pk, fund=fund, year=year)
    allowed = [1] if latest == 0 else [m for m in (latest, latest + 1) if m <= 12]
    if month not in allowed:
        values = {
            "pool": pool, "month": month, "latest": latest,
            "months": get_text_list([str(_("%(month)s 月") % {"month": m}) for m in allowed], _("或")),
        }
        if latest == 0:
            message = _("%(pool)s 不能发起 %(month)s 月的月度预付：本年度尚无已定稿的月度预付，只能发起%(months)s。")
        elif month < latest:
            message = _("%(pool)s 不能发起 %(month)s 月的月度预付：最新已定稿月份为 %(latest)s 月，只能发起%(months)s"
                        "（更早月份的变化由下一次累计清算补差）。")
        else:
            message = _("%(pool)s 不能发起 %(month)s 月的月度预付：最新已定稿月份为 %(latest)s 月，只能发起%(months)s。")
        raise ClearingPeriodRefused(message % values, code="month_out_of_order")


# --- start -----------------------------------------------------------------------------------------

def clearing_run_start(
    *, region: Region, fund: str, year: int, month: int | None = None, user=None, run_async: bool = False,
    chunks: int | None = None,
) -> ClearingRun:
    """Record a new run of the pool and period and execute it (inline, or queued on Celery).

    At most one run per pool is queued or running at a time (a database constraint); a run left
    'running' by a worker that died longer ago than the task time limit is marked failed first.
    `chunks` forces the valuation to be split into that many chunks of institutions (otherwise a
    pool of DRG_SCALEOUT_MIN_CASES cases or more is split by itself). Inline, a split run is
    valued by the Celery workers (or in-process when Celery is eager) and waited for.
    """
    if month is not None and not 1 <= month <= 12:
        raise ValidationError({"month": f"month must be 1..12, got {month}"})
    if chunks is not None and chunks < 1:
        raise ValidationError({"chunks": f"chunks must be ≥ 1, got {chunks}"})
    clearing_run_check_period(region=region, fund=fund, year=year, month=month)
    clearing_run_check_inputs(region=region, fund=fund, year=year)
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
        try:
            dispatch.clearing_run_enqueue(run_id=run.pk, chunks=chunks, on_broker_error=lambda exc: _not_queued(run.pk, exc))
        except dispatch.BrokerUnreachable as exc:
            raise ClearingRunNotQueued(_not_queued_message(run.pk, exc.cause)) from exc
    else:
        clearing_run_execute(run_id=run.pk, chunks=chunks)
        run.refresh_from_db()
        if run.status in ACTIVE_RUN_STATUSES and not transaction.get_connection().in_atomic_block:
            # chunks handed to real workers: wait for the reduce (not inside a transaction, whose
            # commit hands them out)
            run = _wait_for_run(run_id=run.pk, seconds=settings.CELERY_TASK_TIME_LIMIT)
    return run


def _not_queued_message(run_id: int, exc: BaseException) -> str:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200].rstrip(".")
    return (
        f"消息代理不可达，清算未能排队 The message broker (CELERY_BROKER_URL) cannot be reached: {type(exc).__name__}: {reason}. "
        f"Run #{run_id} was marked failed and does not block the pool; start it again once the broker is back."
    )


def _not_queued(run_id: int, exc: BaseException) -> None:
    clearing_run_fail(run_id=run_id, error=_not_queued_message(run_id, exc), statuses=(RunStatus.QUEUED,))


def clearing_run_check_inputs(*, region: Region, fund: str, year: int) -> None:
    """What a run of the pool-year needs before it is recorded: an approved budget, a payment scheme
    and a DRG catalog for the year. ValidationError naming every missing one (no run is left behind)."""
    missing = []
    if budget_current(region=region, fund=fund, year=year) is None:
        missing.append(_("没有已批准的预算（请起草并审核 %(year)s 年预算）") % {"year": year})
    if not PaymentScheme.objects.filter(region=region, year=year).exists():
        missing.append(_("没有 %(year)s 年的支付方案（请开启新年度或起草方案修订并审核）") % {"year": year})
    if not DrgGroup.objects.filter(region=region, year=year).exists():
        missing.append(_("没有 %(year)s 年的病组目录（请开启新年度或起草目录修订并审核）") % {"year": year})
    if missing:
        raise ValidationError([_("统筹区 %(region)s/%(fund)s/%(year)s 无法清算：") % {"region": region.code, "fund": fund, "year": year} + text
                               for text in missing])


def _fail_abandoned_runs(*, region: Region, fund: str, year: int) -> None:
    limit = timezone.now() - dt.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
    # running past the task time limit, or queued that long without a worker ever claiming it (its
    # message was lost, e.g. a broker restarted without persistence): either would block the pool
    stale = Q(status=RunStatus.RUNNING, started_at__lt=limit) | Q(status=RunStatus.QUEUED, created_at__lt=limit)
    abandoned = ClearingRun.objects.filter(stale, region=region, fund=fund, year=year)
    for run_id in abandoned.values_list("pk", flat=True):  # clearing_run_fail also removes what its chunks stored
        clearing_run_fail(run_id=run_id, error="abandoned: no worker finished the run within the task time limit",
                          statuses=ACTIVE_RUN_STATUSES)
    clearing_runs_fail_stalled(region=region, fund=fund, year=year)


# --- stuck runs: heartbeat, stall deadline, failing by hand -----------------------------------------

def _beat(run_id: int) -> None:
    ClearingRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(heartbeat_at=timezone.now())


@contextmanager
def _heartbeat(run_id: int):
    """While the body runs, refresh the run's heartbeat_at every DRG_RUN_HEARTBEAT_SECONDS from a
    thread with its own connection (PostgreSQL; SQLite has one writer, and runs there inline)."""
    _beat(run_id)
    interval = float(settings.DRG_RUN_HEARTBEAT_SECONDS)
    if connection.vendor != "postgresql" or interval <= 0:
        yield
        return
    stop = threading.Event()

    def beat_until_stopped() -> None:
        try:
            while not stop.wait(interval):
                _beat(run_id)
        except Exception:  # a heartbeat must never break the run; a missing one shows as a stall
            logger.warning("run %s: heartbeat failed", run_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat_until_stopped, name=f"run-{run_id}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 10)


def _stalled(now: dt.datetime) -> Q:
    limit = now - dt.timedelta(seconds=float(settings.DRG_RUN_STALL_SECONDS))
    return Q(status=RunStatus.RUNNING) & (Q(heartbeat_at__lt=limit) | Q(heartbeat_at__isnull=True, started_at__lt=limit))


def clearing_runs_fail_stalled(*, region: Region | None = None, fund: str | None = None, year: int | None = None) -> list[int]:
    """Fail every running run (of one pool, or all) whose worker gave no sign of life for
    DRG_RUN_STALL_SECONDS (killed, lost, its machine gone): it blocks its pool otherwise until the
    broker's visibility timeout (an hour) redelivers its task. What its chunks stored is removed.
    Re-checked under the run's row lock, so a run that is still beating is never failed."""
    pools = {k: v for k, v in (("region", region), ("fund", fund), ("year", year)) if v is not None}
    failed = []
    for run_id in ClearingRun.objects.filter(_stalled(timezone.now()), **pools).values_list("pk", flat=True):
        with transaction.atomic():
            locked = ClearingRun.objects.select_for_update().filter(_stalled(timezone.now()), pk=run_id).first()
            if locked is None:
                continue
            last = timezone.localtime(locked.heartbeat_at or locked.started_at)
            clearing_run_fail(
                run_id=run_id, statuses=(RunStatus.RUNNING,),
                error=(
                    f"停滞 stalled: no sign of life from its worker since {last:%Y-%m-%d %H:%M:%S} "
                    f"(more than DRG_RUN_STALL_SECONDS={settings.DRG_RUN_STALL_SECONDS:g} s); the worker was "
                    "probably killed or lost. Start the run again."
                ),
            )
        logger.warning("run %s failed: stalled", run_id)
        failed.append(run_id)
    return failed


def clearing_run_fail_stuck(*, run: ClearingRun, user, reason: str) -> ClearingRun:
    """An approver fails a queued or running run by hand (a stuck run whose pool must be freed), with
    a reason; recorded on the run (failed_by, error). What its chunks stored is removed; a worker
    still at it discards its results (its status guard)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("请填写原因 a reason is required to fail a run by hand")
    with transaction.atomic():
        locked = ClearingRun.objects.select_for_update().get(pk=run.pk)
        if locked.status not in ACTIVE_RUN_STATUSES:
            raise ValidationError(f"run #{locked.pk} is {locked.status}; only a queued or running run can be failed by hand")
        stamp = timezone.localtime()
        clearing_run_fail(
            run_id=locked.pk, statuses=ACTIVE_RUN_STATUSES,
            error=f"由 {user.get_username()} 于 {stamp:%Y-%m-%d %H:%M} 手工标记失败 failed by hand: {reason[:1000]}",
        )
        ClearingRun.objects.filter(pk=locked.pk).update(failed_by=user)
    return ClearingRun.objects.get(pk=run.pk)


def _wait_for_run(*, run_id: int, seconds: float) -> ClearingRun:
    deadline = time.monotonic() + seconds
    run = ClearingRun.objects.get(pk=run_id)
    while run.status in ACTIVE_RUN_STATUSES and time.monotonic() < deadline:
        time.sleep(0.25)
        run = ClearingRun.objects.get(pk=run_id)
    if run.status in ACTIVE_RUN_STATUSES:
        logger.warning("run %s still %s after %ss; it goes on in the background", run_id, run.status, seconds)
    return run


# --- execute ---------------------------------------------------------------------------------------

@dataclass
class _PoolInputs:
    """Everything a clearing reads besides the cases."""

    budget: Any
    start: dt.date
    end: dt.date
    catalog: Catalog
    scheme: selectors.SchemeParameters
    institutions: dict
    itemized: Decimal
    revisions: list


@dataclass
class _Cleared:
    lines: list[dict]
    totals: dict
    parameters: dict


@dataclass
class _Computed:
    cases: pd.DataFrame
    values: pd.DataFrame
    lines: list[dict]
    totals: dict
    parameters: dict
    fingerprint: str
    revisions: list


def clearing_run_execute(*, run_id: int, chunks: int | None = None) -> ClearingRun:
    """Execute a queued run. Idempotent: a run that is already draft, finalized or failed, or whose
    chunks were already handed out, is left as it is.

    A pool of DRG_SCALEOUT_MIN_CASES cases or more (or any pool when `chunks` is given) is valued in
    chunks by a Celery chord: the run stays 'running' until the reduce step makes it a draft.
    """
    now = timezone.now()
    claimed = ClearingRun.objects.filter(pk=run_id, status__in=ACTIVE_RUN_STATUSES, task_id="").update(
        status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, progress="loading inputs", error=""
    )
    run = ClearingRun.objects.select_related("region").get(pk=run_id)
    if not claimed:
        logger.info("run %s is %s%s; nothing to do", run_id, run.status, f" (chunks handed out as {run.task_id})" if run.task_id else "")
        return run
    with _heartbeat(run_id):
        return _execute_claimed(run, run_id=run_id, chunks=chunks)


def _execute_claimed(run: ClearingRun, *, run_id: int, chunks: int | None) -> ClearingRun:
    timings: dict[str, float] = {}
    try:
        started = time.perf_counter()
        layout = _plan(run, chunks)
        if layout:
            return _dispatch_chunks(run, layout, plan_seconds=round(time.perf_counter() - started, 3))
        computed = _compute(run, timings, started=started)
        started = time.perf_counter()
        _progress(run, f"storing {len(computed.cases)} case results")
        with transaction.atomic():
            locked = ClearingRun.objects.select_for_update().get(pk=run_id)
            if locked.status != RunStatus.RUNNING:
                logger.info("run %s became %s while computing; results discarded", run_id, locked.status)
                return locked
            _store(locked, computed)
            locked.parameter_revisions.set(computed.revisions)
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
        clearing_run_fail(run_id=run_id, error=f"{type(exc).__name__}: {exc}", timings=timings or None)
        raise


def clearing_run_fail(*, run_id: int, error: str, timings: dict | None = None, statuses=(RunStatus.RUNNING,)) -> None:
    """Mark a running run (or one in `statuses`) failed and remove whatever its chunks stored, in one
    transaction (waits for chunks that are storing right now: they hold the run's row in share mode)."""
    with transaction.atomic():
        locked = ClearingRun.objects.select_for_update().filter(pk=run_id, status__in=statuses).first()
        if locked is None:
            return
        CaseResultBlock.objects.filter(run_id=run_id).delete()
        InstitutionLine.objects.filter(run_id=run_id).delete()
        locked.status = RunStatus.FAILED
        locked.error = error
        locked.finished_at = timezone.now()
        locked.progress = "failed"
        if timings is not None:
            locked.timings = timings
        locked.save(update_fields=["status", "error", "finished_at", "progress", "timings"])


def _progress(run: ClearingRun, text: str) -> None:
    ClearingRun.objects.filter(pk=run.pk).update(progress=text[:200], heartbeat_at=timezone.now())


def _period(year: int, month: int | None) -> tuple[dt.date, dt.date]:
    last = month or 12
    return dt.date(year, 1, 1), dt.date(year, last, calendar.monthrange(year, last)[1])


def _require_budget(run: ClearingRun):
    budget = budget_current(region=run.region, fund=run.fund, year=run.year)
    if budget is None:
        raise ValidationError(f"pool {run.region.code}/{run.fund}/{run.year} has no approved budget")
    return budget


def _pool_inputs(run: ClearingRun) -> _PoolInputs:
    budget = _require_budget(run)
    start, end = _period(run.year, run.month)
    # recorded first: the values read below are the ones these revisions put in force
    revisions = parameter_revisions_for_run(region=run.region, year=run.year, system_user=system_user())
    return _PoolInputs(
        budget=budget, start=start, end=end, revisions=revisions,
        catalog=selectors.pool_catalog(region_id=run.region_id, year=run.year),
        scheme=selectors.pool_scheme(region_id=run.region_id, year=run.year),
        institutions=selectors.institutions_of_region(region_id=run.region_id),
        itemized=selectors.itemized_total(region_id=run.region_id, fund=run.fund, year=run.year, through_month=run.month or 12),
    )


def _compute(run: ClearingRun, timings: dict, *, started: float | None = None) -> _Computed:
    """The single-process path: every case of the pool in this process."""
    started = time.perf_counter() if started is None else started
    inputs = _pool_inputs(run)
    cases = selectors.pool_cases_frame(region_id=run.region_id, fund=run.fund, start=inputs.start, end=inputs.end)
    timings["load"] = round(time.perf_counter() - started, 3)

    started = time.perf_counter()
    _progress(run, f"valuing {len(cases)} cases")
    values = value_cases(cases, inputs.catalog, inputs.scheme.valuation)
    timings["value"] = round(time.perf_counter() - started, 3)

    started = time.perf_counter()
    _progress(run, "clearing")
    cleared = _clear(run, inputs, scaleout.institution_aggregates(cases, values))
    timings["clear"] = round(time.perf_counter() - started, 3)
    fingerprint = _fingerprint(scaleout.institution_digests(cases), inputs.catalog, cleared.parameters)
    return _Computed(cases=cases, values=values, lines=cleared.lines, totals=cleared.totals,
                     parameters=cleared.parameters, fingerprint=fingerprint, revisions=inputs.revisions)


def _clear(run: ClearingRun, inputs: _PoolInputs, aggregates: Iterable[dict], *,
           settled_run_ids: Iterable[int] | None = None) -> _Cleared:
    """From per-institution aggregates (scaleout.institution_aggregates) to the run's lines, totals
    and parameters: the clearing of SETTLEMENT.md §3–§5, shared by the single and the chunked path.
    `settled_run_ids`: the finalized runs the result is net of (default: every one of the pool-year
    so far; a scenario passes those its binding run recorded)."""
    region_id, fund, year, month = run.region_id, run.fund, run.year, run.month
    budget, scheme, institutions, itemized = inputs.budget, inputs.scheme, inputs.institutions, inputs.itemized
    totals_by_inst = _institution_totals(aggregates, institutions)
    codes = {pk: inst.code for pk, inst in institutions.items()}
    by_code = {inst.code: pk for pk, inst in institutions.items()}
    parameters = {
        "scheme": scheme.as_dict,
        "budget": {"revision": budget.revision, "total": str(budget.total), "reserve": str(budget.reserve),
                   "outpatient": str(budget.outpatient), "inpatient": str(budget.inpatient)},
        "itemized": str(itemized),
        "revisions": {rev.kind: {"id": rev.pk, "revision": rev.revision} for rev in inputs.revisions},
        "period": {"start": inputs.start.isoformat(), "end": inputs.end.isoformat()},
    }
    # What the pool-year's finalized runs already paid (superseded ones included), read once; the ids
    # are recorded so that finalizing this run is refused if another run is finalized in between.
    earlier = selectors.earlier_settlements(region_id=region_id, fund=fund, year=year, run_ids=settled_run_ids)
    parameters[SETTLED_RUNS] = list(earlier.run_ids)
    if month:
        prepaid_before = {codes[k]: v for k, v in earlier.prepaid.items()}
        result = monthly_clearing(
            totals_by_inst, inpatient=budget.inpatient, month=month, itemized_to_date=itemized,
            params=scheme.clearing, prepaid_before=prepaid_before,
        )
        parameters["prepaid_before"] = {code: str(v) for code, v in sorted(prepaid_before.items())}
        lines = [
            {"institution_id": by_code[line.code], "case_count": line.case_count, "raw_points": line.points,
             "points": line.points, "point_value": line.point_value, "self_pay": line.self_pay,
             "itemized_fund": line.itemized_fund, "due": line.due, "due_exact": _fraction_text(line.due_exact),
             "prepaid_to_date": line.prepaid_to_date, "prepay": line.prepay, "withheld": line.withheld,
             "settled_before": prepaid_before.get(line.code, ZERO)}
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
        prepaid, settled_before = earlier.prepaid, earlier.settled_before
        withheld = selectors.withheld_latest(region_id=region_id, fund=fund, year=year)
        result = annual_clearing(
            totals_by_inst, inpatient=budget.inpatient, itemized=itemized, reserve=budget.reserve, params=scheme.clearing,
            penalties={codes[k]: v for k, v in penalties.items()}, prepaid={codes[k]: v for k, v in prepaid.items()},
            withheld={codes[k]: v for k, v in withheld.items()}, scores={codes[k]: v for k, v in scores.items()},
            settled_before={codes[k]: v for k, v in settled_before.items()},
        )
        for name, mapping in (("penalties", penalties), ("scores", scores), ("prepaid", prepaid), ("withheld", withheld),
                              ("settled_before", settled_before)):
            parameters[name] = {codes[k]: str(v) for k, v in sorted(mapping.items(), key=lambda kv: codes[kv[0]])}
        lines = [
            {"institution_id": by_code[line.code], "case_count": line.case_count, "raw_points": line.raw_points,
             "penalty_points": line.penalty_points, "tcm_rate": None if line.tcm_rate is None else round_half_up(line.tcm_rate, RATE_DECIMALS),
             "uplift": line.uplift, "points": line.points, "point_value": line.point_value,
             "gross_amount": line.gross_amount, "self_pay": line.self_pay, "fund_payment": line.fund_payment,
             "itemized_fund": line.itemized_fund, "surplus": line.surplus, "prepaid": line.prepaid,
             "withheld": line.withheld, "quality_score": line.quality_score,
             "quality_deduction": line.quality_deduction, "balance": line.balance, "settled_before": line.settled_before}
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
    return _Cleared(lines=lines, totals=totals, parameters=parameters)


def _institution_totals(aggregates: Iterable[dict], institutions: dict) -> list[InstitutionTotals]:
    totals = []
    for row in sorted(aggregates, key=lambda a: a["institution"]):  # one row per institution, not per case
        inst = institutions[int(row["institution"])]
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


def _fingerprint(digests: dict[int, str], catalog: Catalog, parameters: dict) -> str:
    """sha256 over every input of the run: the case rows (as per-institution digests in institution
    order, scaleout.combined_digest — the same whether the pool was valued in one process or in
    chunks), the catalog and the parameters — which name the parameter revisions the run used and the
    amounts settled before (not the ids of the runs that settled them)."""
    parameters = {key: value for key, value in parameters.items() if key != SETTLED_RUNS}
    digest = hashlib.sha256()
    digest.update(scaleout.combined_digest(digests).encode())
    for frame in (catalog.groups, catalog.coefficients):
        ordered = frame.sort_values(list(frame.columns[:2]), kind="stable") if len(frame) else frame
        digest.update(pd.util.hash_pandas_object(ordered.astype(str), index=False).to_numpy().tobytes())
    digest.update(json.dumps(
        {"defaults": sorted(catalog.institution_coefficients.items()), "tcm": sorted(catalog.tcm_equivalents.items()), "parameters": parameters},
        sort_keys=True, default=str,
    ).encode())
    return digest.hexdigest()


def _case_results_frame(cases: pd.DataFrame, values: pd.DataFrame) -> pd.DataFrame:
    """The valued cases as case-result rows: institution_id plus the block columns, in integer units
    (settlement.domain.results)."""
    return pd.DataFrame(
        {
            "institution_id": cases["institution"].to_numpy(),
            "case_id": cases["case_id"].to_numpy(),
            "valuation_group": values["valuation_group"].to_numpy(),
            "coefficient": values["coef_u"].to_numpy(),
            "ratio": pd.array(values["ratio_u"], dtype="Int64"),
            "category": values["category"].to_numpy(),
            "base_points": pd.array(values["base_u"], dtype="Int64"),
            "readmission_halved": values["readmission_halved"].to_numpy(),
            "points_before_readmission": values["points_before_u"].to_numpy(),
            "points": values["points_u"].to_numpy(),
        }
    )


def _results_write(run_id: int, frame: pd.DataFrame) -> int:
    """Store case-result rows as one compressed block per institution (docs/storage.md)."""
    rows = [
        CaseResultBlock(run_id=run_id, institution_id=institution_id, cases=cases, data=data)
        for institution_id, cases, data in results_blocks.encode_blocks(frame)
    ]
    CaseResultBlock.objects.bulk_create(rows, batch_size=100)
    return len(frame)


def _store(run: ClearingRun, computed: _Computed) -> None:
    CaseResultBlock.objects.filter(run=run).delete()
    InstitutionLine.objects.filter(run=run).delete()
    _results_write(run.pk, _case_results_frame(computed.cases, computed.values))
    InstitutionLine.objects.bulk_create([InstitutionLine(run=run, **line) for line in computed.lines])


# --- execute in chunks (scale-out, docs/scaleout.md) -----------------------------------------------

def _plan(run: ClearingRun, chunks: int | None) -> list[dict]:
    """The run's chunk layout ([] for one process), from one aggregate query of cases per institution."""
    start, end = _period(run.year, run.month)
    counts = selectors.pool_case_counts(region_id=run.region_id, fund=run.fund, start=start, end=end)
    return scaleout.plan_chunks(
        counts, chunks=chunks, min_cases=settings.DRG_SCALEOUT_MIN_CASES, chunk_cases=settings.DRG_SCALEOUT_CHUNK_CASES
    )


def _dispatch_chunks(run: ClearingRun, layout: list[dict], *, plan_seconds: float) -> ClearingRun:
    """Hand the chunks to Celery as a chord (value each chunk, then reduce), once: the chord's id is
    recorded on the run by a guarded UPDATE, so a redelivered run task never dispatches it again."""
    _require_budget(run)  # fail before any chunk works for nothing
    cases = sum(entry["cases"] for entry in layout)
    reduce_id = str(uuid.uuid4())
    handed_out = ClearingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, task_id="").update(
        task_id=reduce_id, timings={"plan": plan_seconds, "chunks": layout},
        progress=f"valuing {cases} cases in {len(layout)} chunks",
    )
    if not handed_out:
        logger.info("run %s: chunks already handed out; nothing to do", run.pk)
        return ClearingRun.objects.get(pk=run.pk)
    dispatch.clearing_run_chunks_dispatch(run_id=run.pk, layout=layout, reduce_id=reduce_id)
    return ClearingRun.objects.select_related("region").get(pk=run.pk)


def _lock_run_shared(run_id: int) -> str | None:
    """The run's status, its row held in share mode until the transaction ends: chunks store side
    by side, while clearing_run_fail and the reduce (FOR UPDATE) wait for them."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT status FROM {ClearingRun._meta.db_table} WHERE id = %s FOR SHARE", [run_id])
            row = cursor.fetchone()
        return row[0] if row else None
    return ClearingRun.objects.select_for_update().filter(pk=run_id).values_list("status", flat=True).first()


def _lock_chunk(run_id: int, chunk_no: int) -> None:
    """Two deliveries of one chunk store one after the other (PostgreSQL; SQLite has one writer)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [run_id % 2**31, chunk_no])


def clearing_run_value_chunk(*, run_id: int, chunk_no: int, institution_ids: list[int], worker: str = "") -> dict:
    """Value one chunk of a running run: its institutions' cases, stored as case-result blocks
    idempotently (that run's rows of those institutions are replaced in one transaction, so a
    retried or redelivered chunk never doubles), and return small JSON-ready aggregates.

    A chunk of a run that is no longer running (failed elsewhere, or already reduced) does nothing.
    A failure marks the run failed (clearing_run_fail) and is re-raised.
    """
    run = ClearingRun.objects.select_related("region").get(pk=run_id)
    if run.status != RunStatus.RUNNING:
        logger.info("run %s is %s; chunk %s skipped", run_id, run.status, chunk_no)
        return {"chunk": chunk_no, "skipped": run.status}
    with _heartbeat(run_id):
        return _value_chunk(run, run_id=run_id, chunk_no=chunk_no, institution_ids=institution_ids, worker=worker)


def _value_chunk(run: ClearingRun, *, run_id: int, chunk_no: int, institution_ids: list[int], worker: str) -> dict:
    timings: dict[str, float] = {}
    try:
        started = time.perf_counter()
        start, end = _period(run.year, run.month)
        catalog = selectors.pool_catalog(region_id=run.region_id, year=run.year)
        scheme = selectors.pool_scheme(region_id=run.region_id, year=run.year)
        cases = selectors.pool_cases_frame(
            region_id=run.region_id, fund=run.fund, start=start, end=end, institution_ids=institution_ids
        )
        timings["load"] = round(time.perf_counter() - started, 3)

        started = time.perf_counter()
        values = value_cases(cases, catalog, scheme.valuation)
        aggregates = scaleout.institution_aggregates(cases, values)
        digests = scaleout.institution_digests(cases)
        timings["value"] = round(time.perf_counter() - started, 3)

        started = time.perf_counter()
        frame = _case_results_frame(cases, values)
        with transaction.atomic():
            status = _lock_run_shared(run_id)
            if status != RunStatus.RUNNING:
                logger.info("run %s became %s while chunk %s was valued; results discarded", run_id, status, chunk_no)
                return {"chunk": chunk_no, "skipped": status}
            _lock_chunk(run_id, chunk_no)
            CaseResultBlock.objects.filter(run_id=run_id, institution_id__in=list(institution_ids)).delete()
            _results_write(run_id, frame)
        timings["store"] = round(time.perf_counter() - started, 3)
    except Exception as exc:
        logger.exception("run %s chunk %s failed", run_id, chunk_no)
        clearing_run_fail(run_id=run_id, error=f"chunk {chunk_no}: {type(exc).__name__}: {exc}")
        raise
    return {
        "chunk": chunk_no,
        "worker": worker,
        "cases": len(cases),
        "institutions": [{**aggregate, "digest": digests[aggregate["institution"]]} for aggregate in aggregates],
        "digest": scaleout.combined_digest(digests),
        "timings": timings,
    }


def clearing_run_reduce(*, run_id: int, results: list) -> ClearingRun:
    """Put the chunks of a run together: check every chunk came back, clear the pool from their
    per-institution aggregates (the same `_clear` as one process), store the institution lines and
    make the run a draft — after checking, under the run's row lock, that the stored case results
    are exactly the chunks' cases. Idempotent; a failure marks the run failed."""
    run = ClearingRun.objects.select_related("region").get(pk=run_id)
    if run.status != RunStatus.RUNNING:
        logger.info("run %s is %s; nothing to reduce", run_id, run.status)
        return run
    with _heartbeat(run_id):
        return _reduce(run, run_id=run_id, results=results)


def _reduce(run: ClearingRun, *, run_id: int, results: list) -> ClearingRun:
    planned = dict(run.timings or {})
    try:
        started = time.perf_counter()
        _progress(run, "clearing")
        chunks = scaleout.collect_chunks(planned.get("chunks") or [], results)
        aggregates = [entry for chunk in chunks for entry in chunk["institutions"]]
        digests = {entry["institution"]: entry["digest"] for entry in aggregates}
        if len(digests) != len(aggregates):
            raise scaleout.ScaleoutError("an institution was valued in two chunks")
        inputs = _pool_inputs(run)
        cleared = _clear(run, inputs, aggregates)
        fingerprint = _fingerprint(digests, inputs.catalog, cleared.parameters)
        clear_seconds = round(time.perf_counter() - started, 3)

        started = time.perf_counter()
        case_count = sum(chunk["cases"] for chunk in chunks)
        with transaction.atomic():
            locked = ClearingRun.objects.select_for_update().get(pk=run_id)
            if locked.status != RunStatus.RUNNING:
                logger.info("run %s became %s while reducing; results discarded", run_id, locked.status)
                return locked
            stored = CaseResultBlock.objects.filter(run_id=run_id).aggregate(n=Sum("cases"))["n"] or 0
            if stored != case_count:
                raise scaleout.ScaleoutError(f"{stored} case results are stored but the chunks valued {case_count} cases")
            InstitutionLine.objects.filter(run=locked).delete()
            InstitutionLine.objects.bulk_create([InstitutionLine(run=locked, **line) for line in cleared.lines])
            locked.parameter_revisions.set(inputs.revisions)
            finished = timezone.now()
            wall = round((finished - locked.started_at).total_seconds(), 3) if locked.started_at else None
            locked.timings = {
                "plan": planned.get("plan"),
                **{phase: round(sum(chunk["timings"].get(phase, 0) for chunk in chunks), 3) for phase in ("load", "value", "store")},
                "clear": clear_seconds,
                "reduce_store": round(time.perf_counter() - started, 3),
                "wall": wall,
                "total": wall,
                "chunks": [
                    {"chunk": chunk["chunk"], "worker": chunk.get("worker", ""), "institutions": len(chunk["institutions"]),
                     "cases": chunk["cases"], **chunk["timings"]}
                    for chunk in chunks
                ],
            }
            locked.status = RunStatus.DRAFT
            locked.finished_at = finished
            locked.progress = "done"
            locked.case_count = case_count
            locked.fingerprint = fingerprint
            locked.parameters = cleared.parameters
            locked.totals = cleared.totals
            locked.save()
        return locked
    except Exception as exc:
        logger.exception("run %s: reduce failed", run_id)
        clearing_run_fail(run_id=run_id, error=f"reduce: {type(exc).__name__}: {exc}")
        raise


# --- finalize --------------------------------------------------------------------------------------

def clearing_run_finalize(*, run: ClearingRun, user=None, system: bool = False) -> ClearingRun:
    """Draft -> finalized, by an approver other than the starter (the batch system user excepted).

    The run becomes the binding run of its period: the finalized run it replaces (same pool, kind and
    month) is marked superseded and the two are linked (SETTLEMENT.md §6). Refused when the run was
    computed before another run of its pool-year was finalized: the earlier settlements it is net of
    (prepayments, annual balances) are stale, so it must be run again — never finalized with amounts
    that would pay twice or not at all. The pool-year's runs are locked (in id order) so that two
    finalizations of one pool-year happen one after the other.
    """
    with transaction.atomic():
        pool_runs = ClearingRun.objects.select_for_update().filter(region_id=run.region_id, fund=run.fund, year=run.year)
        locked_runs = {r.pk: r for r in pool_runs.order_by("pk")}
        locked = locked_runs.get(run.pk) or ClearingRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != RunStatus.DRAFT:
            raise ValidationError(f"run #{locked.pk} is {locked.status}; only a draft run can be finalized")
        if not system and user is not None and locked.started_by_id == user.pk:
            raise PermissionDenied("maker-checker: the user who started a run cannot finalize it")
        _check_not_stale(locked, [r for r in locked_runs.values() if r.pk != locked.pk and r.status in PAID_RUN_STATUSES])
        clearing_run_check_period(region=locked.region, fund=locked.fund, year=locked.year, month=locked.month)
        replaced = next(
            (r for r in locked_runs.values()
             if r.status == RunStatus.FINALIZED and r.kind == locked.kind and r.month == locked.month and r.pk != locked.pk),
            None,
        )
        if replaced is not None:
            replaced.status = RunStatus.SUPERSEDED
            replaced.save(update_fields=["status"])
        locked.status = RunStatus.FINALIZED
        locked.finalized_by = user
        locked.finalized_at = timezone.now()
        locked.supersedes = replaced
        locked.save(update_fields=["status", "finalized_by", "finalized_at", "supersedes"])
        transaction.on_commit(lambda: run_finalized.send(sender=ClearingRun, run=locked))
    return locked


def _check_not_stale(run: ClearingRun, paid: list[ClearingRun]) -> None:
    """The finalized runs of the pool-year must be those the run was computed against."""
    recorded = (run.parameters or {}).get(SETTLED_RUNS)
    if recorded is None:  # computed before runs recorded them: judged by time
        newer = [r for r in paid if r.finalized_at is not None and r.finalized_at >= run.created_at]
    else:
        newer = [r for r in paid if r.pk not in set(recorded)]
    if newer:
        names = ", ".join(f"#{r.pk}" for r in sorted(newer, key=lambda r: r.pk))
        raise ClearingRunStale(
            _("清算 #%(run)s 计算之后，同一基金池年度的清算 %(names)s 已定稿，其已结算金额（预付、此前结算）已过期，"
              "请重新发起清算后再定稿。")
            % {"run": run.pk, "names": names},
            code="stale",
        )


def clearing_run_acknowledge(*, run: ClearingRun, user, note: str) -> ClearingRun:
    """Bureau staff acknowledge a failed run with a note (what was done about it): it stays recorded,
    readable and failed, and leaves the cockpit's count of failed runs."""
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": _("请写明处理说明")})
    with transaction.atomic():
        locked = ClearingRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != RunStatus.FAILED:
            raise ValidationError(_("清算 #%(pk)s 的状态是 %(status)s；只有失败的清算可以确认") % {"pk": locked.pk, "status": locked.status})
        if locked.acknowledged_at is not None:
            raise ValidationError(_("清算 #%(pk)s 已于 %(at)s 确认") % {"pk": locked.pk, "at": locked.acknowledged_at})
        locked.acknowledged_by = user
        locked.acknowledged_at = timezone.now()
        locked.acknowledgement_note = note[:2000]
        locked.save(update_fields=["acknowledged_by", "acknowledged_at", "acknowledgement_note"])
    return locked


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
        except ValidationError as exc:  # e.g. no scheme or catalog for the year: nothing recorded, say why
            logger.warning("pool %s/%s: monthly run for %s not started: %s", region_id, fund, previous, "; ".join(exc.messages))
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
        except ValidationError as exc:
            logger.warning("pool %s/%s: annual run for %s not started: %s", region_id, fund, year, "; ".join(exc.messages))
    return started


# --- itemized payments written by the apps above ---------------------------------------------------

@dataclass(frozen=True)
class ItemizedPayment:
    """One approved special-outpatient itemized payment (§5) of a month, paid at actual."""

    institution_id: int
    claim_no: str
    fund: str
    month: dt.date  # first day of the month
    patient_id: str
    amount: Decimal


ITEMIZED_KEY = ["institution", "claim_no", "source"]
ITEMIZED_UPDATED = ["fund", "month", "patient_id", "claimed_amount", "approved_amount", "status", "decided_by", "decided_at"]


def itemized_payments_sync(
    *, region: Region, source: str, payments: Iterable[ItemizedPayment], remove: Iterable[tuple[int, str]] = (), user=None,
) -> int:
    """Keep the approved itemized claims of ``source`` equal to ``payments`` (upsert by institution,
    claim_no and source; ``remove`` deletes claims that no longer pay). The clearing runs charge
    them to the inpatient budget like any approved itemized claim (§5). Bulk statements only;
    returns the number of rows written."""
    from common.models import ReviewStatus
    from common.users import system_user
    from settlement.choices import ItemizedSource
    from settlement.models import ItemizedClaim

    if source == ItemizedSource.ADJUDICATED:
        raise ValueError("adjudicated itemized claims are loaded or reviewed, not synced")
    decided_by = user or system_user()
    now = timezone.now()
    rows = [
        ItemizedClaim(
            region_id=region.pk, institution_id=p.institution_id, claim_no=p.claim_no, fund=p.fund, month=p.month,
            patient_id=p.patient_id, claimed_amount=p.amount, approved_amount=p.amount, source=source,
            status=ReviewStatus.APPROVED, decided_by=decided_by, decided_at=now,
        )
        for p in payments
    ]
    with transaction.atomic(savepoint=False):
        removals = list(remove)
        if removals:
            query = Q()
            for institution_id, claim_no in removals:
                query |= Q(institution_id=institution_id, claim_no=claim_no)
            ItemizedClaim.objects.filter(query, region=region, source=source).delete()
        copy_upsert(ItemizedClaim, rows, unique_fields=ITEMIZED_KEY, update_fields=ITEMIZED_UPDATED)
    return len(rows)


def itemized_payments_upsert_columns(*, region: Region, source: str, columns: dict[str, Sequence], user=None) -> int:
    """``itemized_payments_sync`` without removals for many payments given as columns (institution_id,
    claim_no, fund, month, patient_id, amount: common.bulk.arrow_column input, amounts as exact text),
    PostgreSQL only: one COPY and one upsert, no objects (a region-year's special-outpatient claims
    settled in bulk). While the region has no payment of that source yet (its first claims), none
    can conflict and the rows are COPYed straight into the table."""
    from common.bulk import copy_create_columns, copy_upsert_columns
    from common.models import ReviewStatus
    from common.users import system_user
    from settlement.models import ItemizedClaim

    count = len(columns["claim_no"])
    decided_by = user or system_user()
    rows = {
        "region_id": region.pk, "institution_id": columns["institution_id"], "claim_no": columns["claim_no"], "fund": columns["fund"],
        "month": columns["month"], "patient_id": columns["patient_id"], "claimed_amount": columns["amount"],
        "approved_amount": columns["amount"], "source": source, "status": ReviewStatus.APPROVED,
        "decided_by_id": decided_by.pk, "decided_at": timezone.now(),
    }
    with transaction.atomic(savepoint=False):
        if not ItemizedClaim.objects.filter(region=region, source=source).exists():
            copy_create_columns(ItemizedClaim, rows, count)
            return count
        return copy_upsert_columns(ItemizedClaim, rows, count, unique_fields=ITEMIZED_KEY, update_fields=ITEMIZED_UPDATED)
