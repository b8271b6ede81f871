"""Incentive writes: compute a year's payout (draft), approve it (maker-checker), mark it paid.
The numbers come from incentives.domain.payouts; the rules from the database. The files of
`pay_incentives` are written by exchange/exports.py."""
from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from common.users import system_user
from drg.models import Region
from incentives.choices import PayoutStatus
from incentives.domain.payouts import IncentiveInputError, payout_lines
from incentives.models import IncentiveRule, Payout, PayoutLine
from incentives.selectors import incentive_budget_amount, incentive_inputs, rules_in_force

LINE_BATCH = 200  # lines carry source id lists; keep insert statements small


def _rule_snapshot(rule: IncentiveRule) -> dict:
    return {
        "code": rule.code,
        "name": rule.name,
        "basis": rule.basis,
        "amount": None if rule.amount is None else str(rule.amount),
        "grade_amounts": {str(k): str(v) for k, v in (rule.grade_amounts or {}).items()},
        "rate": None if rule.rate is None else str(rule.rate),
        "public_only": rule.public_only,
        "payee": rule.payee,
        "valid_from": rule.valid_from.isoformat(),
        "valid_to": rule.valid_to.isoformat() if rule.valid_to else None,
        "yearly_cap": None if rule.yearly_cap is None else str(rule.yearly_cap),
    }


@transaction.atomic
def payouts_compute(*, region: Region, year: int, user=None) -> Payout:
    """Compute the region's incentive payout for the year as a new draft.

    A draft of the same region and year is replaced (deleted with its lines; the payout history
    keeps a row of the deletion). An approved or paid payout is final: computing again raises
    ValidationError. `user=None` acts as the batch system user.
    """
    user = user or system_user()
    existing = Payout.objects.select_for_update().filter(region=region, year=year).first()
    if existing is not None and existing.status != PayoutStatus.DRAFT:
        raise ValidationError(
            f"the {year} incentive payout of {region.code} is already {existing.status}; it cannot be recomputed"
        )
    rules = rules_in_force(year=year)
    by_code = {rule.code: rule for rule in rules}
    budget = incentive_budget_amount(region=region, year=year)
    try:
        result = payout_lines(rules=[rule.to_spec() for rule in rules], inputs=incentive_inputs(region=region, year=year), year=year, budget=budget)
    except (IncentiveInputError, ValueError) as exc:
        raise ValidationError(str(exc)) from exc
    if existing is not None:
        existing._history_user = user
        existing._change_reason = "replaced by a recomputation"
        existing.delete()
    payout = Payout(
        region=region,
        year=year,
        status=PayoutStatus.DRAFT,
        computed_by=user,
        computed_at=timezone.now(),
        gross_total=result.gross_total,
        capped_total=result.capped_total,
        total=result.total,
        budget_amount=budget,
        prorated=result.prorated,
        rules_snapshot=[_rule_snapshot(by_code[code]) for code in result.rule_codes],
    )
    payout._history_user = user
    payout.save()
    PayoutLine.objects.bulk_create(
        (
            PayoutLine(
                payout=payout,
                payee_code=line.payee_code,
                institution_id=line.institution_id,
                rule=by_code[line.rule_code],
                rule_code=line.rule_code,
                count=line.count,
                unit_amount=line.unit_amount,
                rate=line.rate,
                basis_amount=line.basis_amount,
                detail=line.detail,
                gross_amount=line.gross_amount,
                capped_amount=line.capped_amount,
                amount=line.amount,
                source_model=line.source_model,
                source_ids=list(line.source_ids),
            )
            for line in result.lines
        ),
        batch_size=LINE_BATCH,
    )
    return payout


def _locked(payout: Payout) -> Payout:
    return Payout.objects.select_for_update().get(pk=payout.pk)


@transaction.atomic
def payout_approve(*, payout: Payout, user) -> Payout:
    """Approve a draft. Maker-checker: the approver needs `incentives.approve_payout` and must not be
    the user who computed it (经办与审核须为不同人员)."""
    payout = _locked(payout)
    if payout.status != PayoutStatus.DRAFT:
        raise ValidationError(f"{payout} is not a draft")
    if user is None or not user.has_perm("incentives.approve_payout"):
        raise PermissionDenied("you may not approve incentive payouts")
    if user.pk == payout.computed_by_id:
        raise PermissionDenied("maker-checker: the user who computed a payout cannot approve it")
    payout.status = PayoutStatus.APPROVED
    payout.approved_by = user
    payout.approved_at = timezone.now()
    payout._history_user = user
    payout.save(update_fields=["status", "approved_by", "approved_at"])
    return payout


@transaction.atomic
def payout_mark_paid(*, payout: Payout, user, paid_at=None) -> Payout:
    """Record that finance paid an approved payout (needs `incentives.pay_payout`)."""
    payout = _locked(payout)
    if payout.status != PayoutStatus.APPROVED:
        raise ValidationError(f"{payout} must be approved before it is paid")
    if user is None or not user.has_perm("incentives.pay_payout"):
        raise PermissionDenied("you may not mark incentive payouts paid")
    payout.status = PayoutStatus.PAID
    payout.paid_by = user
    payout.paid_at = paid_at or timezone.now()
    payout._history_user = user
    payout.save(update_fields=["status", "paid_by", "paid_at"])
    return payout
