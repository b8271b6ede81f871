"""Monitoring writes: indicators stored per pool, screening runs and findings, the findings queue
(confirm / dismiss with a reason), proposals from confirmed findings (point adjustments through
settlement, evaluation deductions), evaluation scores, and the `screen` files (MONITORING.md §4)."""
from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from common.spreadsheet import formula_safe
from common.reviews import review_approve, review_reject
from drg import selectors as drg_selectors
from drg.models import Institution, Region
from monitoring import selectors
from monitoring.choices import FindingStatus, ParameterStatus
from monitoring.domain.cases import POOL
from monitoring.domain.indicators import INDICATOR_FIELDS, IndicatorRow, indicators_compute
from monitoring.domain.parameters import ScreeningParameters
from monitoring.domain.screening import Finding as FoundFlag
from monitoring.domain.screening import screen
from monitoring.models import (
    EvaluationDeduction, EvaluationScore, Finding, FindingAdjustment, FindingCase, IndicatorValue,
    ScreeningParameterSet, ScreeningRun,
)
from settlement import quality
from settlement.models import ClearingRun

logger = logging.getLogger(__name__)


def _text(value: str, *, field: str, message: str, limit: int) -> str:
    """A reason as stored: stripped, non-empty, no NUL or other control characters but line breaks."""
    text = (value or "").strip()
    if not text:
        raise ValidationError({field: message})
    if any(ch < " " and ch not in "\n\r\t" for ch in text):
        raise ValidationError({field: "含有无效的控制字符"})
    return text[:limit]


class NoBindingRun(ValidationError):
    """The pool has no finalized run to monitor yet."""


@dataclass(frozen=True)
class PoolScreen:
    """What the monitoring of one pool computed: the run, the indicator rows, the findings."""

    run: ClearingRun
    previous_run: ClearingRun | None
    indicators: list[IndicatorRow]
    findings: list[FoundFlag]
    parameters: ScreeningParameters
    timings: dict


def pool_screen(*, region: Region, fund: str, year: int) -> PoolScreen:
    """Indicators and findings of the pool's binding run (read only). Previous-year comparisons use
    the previous year's binding run where there is one."""
    run = selectors.binding_run(region_id=region.pk, fund=fund, year=year)
    if run is None:
        raise NoBindingRun(f"{region.code} {fund} {year}：尚无已定稿的结算运行，无法监测")
    previous_run = selectors.binding_run(region_id=region.pk, fund=fund, year=year - 1)
    params, _ = selectors.screening_parameters_in_force(region_id=region.pk)
    return run_screen(run=run, previous_run=previous_run, params=params)


def run_screen(*, run: ClearingRun, previous_run: ClearingRun | None, params: ScreeningParameters) -> PoolScreen:
    """Indicators and findings of one run's valued cases (read only), timed per phase."""
    started = time.perf_counter()
    cases = selectors.run_cases_frame(run=run)
    previous = selectors.run_cases_frame(run=previous_run) if previous_run else None
    read = time.perf_counter()
    rows = indicators_compute(cases, year=run.year)
    indicated = time.perf_counter()
    findings = screen(cases, params=params, previous=previous, through_month=selectors.run_through_month(run))
    done = time.perf_counter()
    timings = {"read": round(read - started, 3), "indicators": round(indicated - read, 3), "screen": round(done - indicated, 3), "cases": len(cases)}
    return PoolScreen(run=run, previous_run=previous_run, indicators=rows, findings=findings, parameters=params, timings=timings)


# --- files (MONITORING.md §4) -----------------------------------------------------------------------

INDICATOR_COLUMNS = list(INDICATOR_FIELDS)
INDICATOR_COLUMNS[0] = "institution_code"
FINDING_COLUMNS = ["rule", "institution_code", "period", "value", "reference", "cases"]
FINDING_CASE_COLUMNS = ["rule", "institution_code", "case_institution_code", "case_no"]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:.4f}"
    return formula_safe(str(value))


def screen_files_write(*, result: PoolScreen, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    year = str(result.run.year)
    paths = [out_dir / "indicators.csv", out_dir / "findings.csv", out_dir / "finding_cases.csv"]
    with open(paths[0], "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(INDICATOR_COLUMNS)
        for row in result.indicators:
            writer.writerow([_cell(getattr(row, name)) for name in INDICATOR_FIELDS])
    with open(paths[1], "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(FINDING_COLUMNS)
        for f in result.findings:
            writer.writerow([f.rule, formula_safe(f.institution), year, _cell(f.value), _cell(f.reference), len(f.evidence)])
    with open(paths[2], "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(FINDING_CASE_COLUMNS)
        for f in result.findings:
            writer.writerows([f.rule, formula_safe(f.institution), formula_safe(inst), formula_safe(no)] for inst, no in f.evidence)
    return paths


def screen_export(*, region: Region, fund: str, year: int, out_dir: Path) -> PoolScreen:
    """`screen --region R --fund F --year Y --out DIR`: the three files of MONITORING.md §4."""
    result = pool_screen(region=region, fund=fund, year=year)
    screen_files_write(result=result, out_dir=out_dir)
    return result


# --- stored indicators ------------------------------------------------------------------------------

@transaction.atomic
def indicators_store(*, region: Region, fund: str, year: int, run: ClearingRun, rows: list[IndicatorRow]) -> int:
    institutions = dict(Institution.objects.filter(region=region).values_list("code", "id"))
    IndicatorValue.objects.filter(region=region, fund=fund, year=year).delete()
    objs = [
        IndicatorValue(
            region=region, fund=fund, year=year, run=run, institution_id=None if row.institution == POOL else institutions.get(row.institution),
            institution_code=row.institution, **{name: getattr(row, name) for name in INDICATOR_FIELDS if name != "institution"},
        )
        for row in rows
    ]
    IndicatorValue.objects.bulk_create(objs, batch_size=1000)
    return len(objs)


def indicators_refresh(*, region_id: int, fund: str, year: int) -> int:
    """Recompute and store the pool's indicators from its binding run (0 when there is none)."""
    region = Region.objects.get(pk=region_id)
    run = selectors.binding_run(region_id=region_id, fund=fund, year=year)
    if run is None:
        return 0
    rows = indicators_compute(selectors.run_cases_frame(run=run), year=year)
    return indicators_store(region=region, fund=fund, year=year, run=run, rows=rows)


# --- screening parameters (maker-checker) -----------------------------------------------------------

def screening_parameters_draft(*, region: Region, values: dict, reason: str, user) -> ScreeningParameterSet:
    """A draft parameter set of the region: the values are checked now (unknown names, bad numbers
    refused), the set is in force once another person approves it."""
    reason = _text(reason, field="reason", message="请填写修改理由", limit=500)
    try:
        params = ScreeningParameters.from_mapping(values)
    except ValueError as exc:
        raise ValidationError({"values": str(exc)}) from exc
    record = ScreeningParameterSet(region=region, values=params.as_mapping(), reason=reason[:500], created_by=user)
    record._history_user = user
    record.save()
    return record


def screening_parameters_decide(*, record: ScreeningParameterSet, user, approve: bool, reason: str = "") -> ScreeningParameterSet:
    if approve:
        return review_approve(record=record, user=user, note=reason)
    return review_reject(record=record, user=user, reason=reason)


# --- screening runs and findings -------------------------------------------------------------------

@transaction.atomic
def screening_run_record(*, region: Region, fund: str, year: int, user=None) -> ScreeningRun:
    """Screen the pool and store the findings: a new flag opens a finding; an open finding flagged
    again gets the new numbers and evidence; an open one no longer flagged is withdrawn; a reviewed
    (confirmed or dismissed) finding keeps what was reviewed."""
    result = pool_screen(region=region, fund=fund, year=year)
    screening = ScreeningRun.objects.create(
        region=region, fund=fund, year=year, run=result.run, previous_run=result.previous_run,
        parameters=result.parameters.as_mapping(), finding_count=len(result.findings), created_by=user,
    )
    institutions = {inst.code: inst for inst in Institution.objects.filter(region=region)}
    existing = {(f.rule, f.institution.code): f for f in Finding.objects.select_for_update().filter(region=region, fund=fund, year=year).select_related("institution")}
    flagged = set()
    evidence_keys = {pair for flag in result.findings for pair in flag.evidence}
    case_ids = _case_ids(region=region, keys=evidence_keys)
    for flag in result.findings:
        key = (flag.rule, flag.institution)
        flagged.add(key)
        finding = existing.get(key)
        if finding is not None and finding.status in (FindingStatus.CONFIRMED, FindingStatus.DISMISSED):
            continue
        values = dict(
            period=str(year), screening=screening, value=flag.value, reference=flag.reference, basis=flag.basis,
            detail=flag.detail, case_count=len(flag.evidence), status=FindingStatus.OPEN,
        )
        if finding is None:
            finding = Finding(region=region, fund=fund, year=year, rule=flag.rule, institution=institutions[flag.institution], **values)
        else:
            for name, value in values.items():
                setattr(finding, name, value)
            FindingCase.objects.filter(finding=finding).delete()
        finding._history_user = user
        finding.save()
        FindingCase.objects.bulk_create(
            [FindingCase(finding=finding, case_id=case_ids[pair], case_institution_code=pair[0], case_no=pair[1]) for pair in flag.evidence],
            batch_size=2000,
        )
    for key, finding in existing.items():
        if key not in flagged and finding.status == FindingStatus.OPEN:
            finding.status = FindingStatus.WITHDRAWN
            finding._history_user = user
            finding._change_reason = "not flagged by the latest screening"
            finding.save(update_fields=["status"])
    return screening


def _case_ids(*, region: Region, keys: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    if not keys:
        return {}
    return drg_selectors.case_ids(region_id=region.pk, institution_ids=drg_selectors.institution_ids(region_id=region.pk), keys=keys)


def _check_reviewer(user, finding: Finding) -> None:
    if user is None or not user.has_perm("monitoring.review_finding"):
        raise PermissionDenied("你没有审核疑点的权限")


@transaction.atomic
def finding_review(*, finding: Finding, user, confirm: bool, reason: str) -> Finding:
    """Confirm or dismiss an open finding, with a reason."""
    reason = _text(reason, field="review_reason", message="确认或排除疑点须填写理由", limit=2000)
    finding = Finding.objects.select_for_update().get(pk=finding.pk)
    _check_reviewer(user, finding)
    if finding.status != FindingStatus.OPEN:
        raise ValidationError(f"疑点 #{finding.pk} 状态为 {finding.get_status_display()}，只能审核待审核的疑点")
    finding.status = FindingStatus.CONFIRMED if confirm else FindingStatus.DISMISSED
    finding.review_reason = reason[:2000]
    finding.reviewed_by = user
    finding.reviewed_at = timezone.now()
    finding._history_user = user
    finding._change_reason = f"{finding.status}: {reason}"[:100]
    finding.save()
    return finding


def _confirmed(finding: Finding) -> Finding:
    finding = Finding.objects.select_for_update().select_related("institution").get(pk=finding.pk)
    if finding.status != FindingStatus.CONFIRMED:
        raise ValidationError("只有已确认的疑点才能提出扣点或扣分")
    return finding


@transaction.atomic
def finding_propose_adjustment(*, finding: Finding, user, drg_code: str, multiple: Decimal, reason: str) -> FindingAdjustment:
    """A confirmed finding proposes a point adjustment (违规扣点), drafted in settlement; another person approves it."""
    _check_reviewer(user, finding)
    finding = _confirmed(finding)
    adjustment = quality.point_adjustment_draft(
        institution=finding.institution, fund=finding.fund, year=finding.year, drg_code=drg_code, multiple=multiple,
        reason=f"{finding.get_rule_display()}（疑点 #{finding.pk}）：{(reason or '').strip()}" if (reason or "").strip() else "", user=user,
    )
    return FindingAdjustment.objects.create(finding=finding, adjustment=adjustment)


@transaction.atomic
def finding_propose_deduction(*, finding: Finding, user, points: Decimal | None = None) -> EvaluationDeduction:
    """A confirmed finding proposes an evaluation deduction (default: the rule's ⚙ deduction)."""
    _check_reviewer(user, finding)
    finding = _confirmed(finding)
    if EvaluationDeduction.objects.filter(finding=finding).exists():
        raise ValidationError("该疑点已提出评价扣分")
    if points is None:
        params, _ = selectors.screening_parameters_in_force(region_id=finding.region_id)
        points = params.deduction(finding.rule)
    if not Decimal("0") <= Decimal(points) <= Decimal("100"):
        raise ValidationError({"points": "扣分须在 0 到 100 之间"})
    deduction = EvaluationDeduction(
        finding=finding, institution=finding.institution, fund=finding.fund, year=finding.year, rule=finding.rule,
        points=Decimal(points), created_by=user,
    )
    deduction._history_user = user
    deduction.save()
    return deduction


def evaluation_deduction_decide(*, deduction: EvaluationDeduction, user, approve: bool, reason: str = "") -> EvaluationDeduction:
    if approve:
        return review_approve(record=deduction, user=user, note=reason)
    return review_reject(record=deduction, user=user, reason=reason)


# --- evaluation score (MONITORING.md §3) ------------------------------------------------------------

def evaluation_score_computed(*, institution: Institution, fund: str, year: int) -> Decimal:
    """max(0, 100 − Σ approved deductions of the institution's confirmed findings), a rule counted
    once per year (the largest approved deduction of that rule)."""
    per_rule: dict[str, Decimal] = {}
    for rule, points in EvaluationDeduction.objects.filter(
        institution=institution, fund=fund, year=year, status=ParameterStatus.APPROVED, finding__status=FindingStatus.CONFIRMED
    ).values_list("rule", "points"):
        per_rule[rule] = max(per_rule.get(rule, Decimal("0")), points)
    total = sum(per_rule.values(), Decimal("0"))
    return max(Decimal("0"), Decimal("100") - total)


@transaction.atomic
def evaluation_score_draft(
    *, institution: Institution, fund: str, year: int, user, override: Decimal | None = None, override_reason: str = ""
) -> EvaluationScore:
    """(Re)compute the score as a draft; an override needs a reason. Approved by another person."""
    override_reason = _text(override_reason, field="override_reason", message="调整评价得分须填写理由", limit=500) if override is not None else ""
    if override is not None:
        if not Decimal("0") <= Decimal(override) <= Decimal("100"):
            raise ValidationError({"override": "评价得分须在 0 到 100 之间"})
        if not override_reason:
            raise ValidationError({"override_reason": "调整评价得分须填写理由"})
    record = EvaluationScore.objects.select_for_update().filter(institution=institution, fund=fund, year=year).first()
    if record is None:
        record = EvaluationScore(institution=institution, fund=fund, year=year)
    record.computed = evaluation_score_computed(institution=institution, fund=fund, year=year)
    record.override = None if override is None else Decimal(override)
    record.override_reason = override_reason[:500] if override is not None else ""
    record.status = ParameterStatus.DRAFT
    record.created_by = user
    record.decided_by = None
    record.decided_at = None
    record._history_user = user
    record.save()
    return record


@transaction.atomic
def evaluation_score_decide(*, record: EvaluationScore, user, approve: bool, reason: str = "") -> EvaluationScore:
    """Approve (another person than who drafted it) and put the score in force for the annual
    clearing's quality deduction, or reject with a reason."""
    if not approve:
        return review_reject(record=record, user=user, reason=reason)
    record = review_approve(record=record, user=user, note=reason)
    note = f"monitoring evaluation score #{record.pk}" + (f": {record.override_reason}" if record.override is not None else "")
    quality.evaluation_record(
        institution=record.institution, fund=record.fund, year=record.year, score=record.score,
        created_by=record.created_by, approved_by=user, reason=note,
    )
    return record

