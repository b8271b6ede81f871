"""Services for the clearing's quality inputs kept by the bureau: point adjustments (违规扣点,
SETTLEMENT.md §3) and evaluation scores (DRG付费评价, §4's quality deduction).

The apps above (monitoring) write these records only through here; settlement never imports them.
Approval of a drafted adjustment goes through common.reviews (maker-checker).
"""
from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from drg.models import DrgGroup, Institution
from settlement.choices import AdjustmentStatus
from settlement.models import Evaluation, PointAdjustment


def point_adjustment_draft(
    *, institution: Institution, fund: str, year: int, drg_code: str, multiple: Decimal, reason: str, user
) -> PointAdjustment:
    """A draft point adjustment (multiple × base points of the group), to be approved by another person."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "违规扣点须填写理由"})
    if "\x00" in reason or "\x00" in (drg_code or "") or len(drg_code or "") > 16:
        raise ValidationError({"reason": "理由或病组含有无效字符"})
    if multiple is None or Decimal(multiple) <= 0 or Decimal(multiple) > 100:
        raise ValidationError({"multiple": "扣点倍数须大于 0 且不超过 100"})
    if not DrgGroup.objects.filter(region_id=institution.region_id, year=year, code=drg_code).exists():
        raise ValidationError({"drg_code": f"病组 {drg_code} 不在 {year} 年本统筹区目录中"})
    if PointAdjustment.objects.filter(institution=institution, fund=fund, year=year, drg_code=drg_code, reason=reason[:500]).exists():
        raise ValidationError({"reason": "相同机构、险种、年度、病组与理由的扣点已存在"})
    adjustment = PointAdjustment(
        institution=institution, fund=fund, year=year, drg_code=drg_code, multiple=Decimal(multiple),
        reason=reason[:500], status=AdjustmentStatus.DRAFT, created_by=user,
    )
    adjustment._history_user = user
    adjustment._change_reason = "drafted"
    adjustment.save()
    return adjustment


@transaction.atomic
def evaluation_record(*, institution: Institution, fund: str, year: int, score: Decimal, created_by, approved_by, reason: str) -> Evaluation:
    """Put an approved evaluation score in force for (institution, fund, year): the next annual
    clearing's quality deduction uses it. The caller has had it approved by another person."""
    score = Decimal(score)
    if not Decimal("0") <= score <= Decimal("100"):
        raise ValidationError({"score": "评价得分须在 0 到 100 之间"})
    evaluation = Evaluation.objects.select_for_update().filter(institution=institution, fund=fund, year=year).first()
    if evaluation is None:
        evaluation = Evaluation(institution=institution, fund=fund, year=year, created_by=created_by)
    evaluation.score = score
    evaluation.status = AdjustmentStatus.APPROVED
    evaluation.decided_by = approved_by
    evaluation.decided_at = timezone.now()
    evaluation._history_user = approved_by
    evaluation._change_reason = (reason or "approved")[:100]
    evaluation.save()
    return evaluation
