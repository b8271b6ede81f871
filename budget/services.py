"""Budget writes: draft, approve (maker-checker), revise. Lines come from budget.domain.lines."""
from __future__ import annotations

from dataclasses import asdict, fields

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from budget.choices import BudgetStatus
from budget.domain.lines import BudgetInputs, BudgetRuleError, budget_lines
from budget.models import Budget
from drg.models import Region

INPUT_FIELDS = [f.name for f in fields(BudgetInputs)]


def budget_inputs_of(budget: Budget) -> BudgetInputs:
    return BudgetInputs(**{name: getattr(budget, name) for name in INPUT_FIELDS})


def budget_compute_lines(*, budget: Budget) -> None:
    """Fill the computed lines of an unsaved or draft budget; raise ValidationError on a bad input."""
    try:
        lines = budget_lines(budget_inputs_of(budget))
    except BudgetRuleError as exc:
        raise ValidationError({exc.field: exc.message}) from exc
    for name, value in asdict(lines).items():
        setattr(budget, name, value)


@transaction.atomic
def budget_draft(*, region: Region, fund: str, year: int, inputs: BudgetInputs, user=None, reason: str = "") -> Budget:
    """Create the next revision of a pool's budget as a draft."""
    latest = Budget.objects.filter(region=region, fund=fund, year=year).aggregate(r=Max("revision"))["r"]
    if latest is not None and Budget.objects.filter(region=region, fund=fund, year=year, status=BudgetStatus.DRAFT).exists():
        raise ValidationError("this pool already has a draft budget; change or approve that one")
    revision = (latest or 0) + 1
    if revision > 1 and not reason.strip():
        raise ValidationError({"reason": "a revision of an approved budget needs a reason (重大政策调整)"})
    budget = Budget(region=region, fund=fund, year=year, revision=revision, reason=reason, drafted_by=user, **asdict(inputs))
    budget_compute_lines(budget=budget)
    budget.save()
    return budget


@transaction.atomic
def budget_update_draft(*, budget: Budget, inputs: BudgetInputs) -> Budget:
    budget = Budget.objects.select_for_update().get(pk=budget.pk)
    if budget.status != BudgetStatus.DRAFT:
        raise ValidationError("an approved budget is immutable; draft a new revision instead")
    for name, value in asdict(inputs).items():
        setattr(budget, name, value)
    budget_compute_lines(budget=budget)
    budget.save()
    return budget


@transaction.atomic
def budget_approve(*, budget: Budget, user, system: bool = False) -> Budget:
    """Approve a draft. The approver must differ from the drafter unless it is the batch system user."""
    budget = Budget.objects.select_for_update().get(pk=budget.pk)
    if budget.status != BudgetStatus.DRAFT:
        raise ValidationError(f"budget {budget} is not a draft")
    if not system and budget.drafted_by_id is not None and user is not None and budget.drafted_by_id == user.pk:
        raise PermissionDenied("maker-checker: the user who drafted a budget cannot approve it")
    budget_compute_lines(budget=budget)
    budget.status = BudgetStatus.APPROVED
    budget.approved_by = user
    budget.approved_at = timezone.now()
    budget.save()
    return budget


def budget_current(*, region: Region, fund: str, year: int) -> Budget | None:
    """The approved budget in force: the highest approved revision."""
    return (
        Budget.objects.filter(region=region, fund=fund, year=year, status=BudgetStatus.APPROVED)
        .order_by("-revision")
        .first()
    )
