"""Budget writes: draft, approve (maker-checker), revise. Lines come from budget.domain.lines."""
from __future__ import annotations

from dataclasses import asdict, fields

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from budget.choices import BudgetStatus
from budget.domain.lines import BudgetInputs, BudgetRuleError, budget_lines
from budget.models import Budget
from drg.models import Region

INPUT_FIELDS = [f.name for f in fields(BudgetInputs)]


def budget_inputs_of(budget: Budget) -> BudgetInputs:
    return BudgetInputs(**{name: getattr(budget, name) for name in INPUT_FIELDS})


def _pct(value) -> str:
    return f"{value * 100:.2f}".rstrip("0").rstrip(".") + "%"


def budget_rule_message(exc: BudgetRuleError) -> str:
    """The budget rules' refusal in the user's language (the domain says it in English only)."""
    p = exc.params
    messages = {
        "negative": lambda: _("不能为负数"),
        "above_cap": lambda: _("增长率 %(rate)s 超过增长率上限 %(cap)s（年增速不超过上限）：请降低增长率或另定上限")
        % {"rate": _pct(p["rate"]), "cap": _pct(p["cap"])},
        "out_of_range": lambda: _("须在 0% 到 100% 之间，当前为 %(value)s") % {"value": _pct(p["value"])},
        "earmark_above_outpatient": lambda: _("基层倾斜 %(earmark)s 将超过门诊预算 %(outpatient)s（基层倾斜计入门诊预算）")
        % {"earmark": f"{p['earmark']:,.2f}", "outpatient": f"{p['outpatient']:,.2f}"},
        "negative_total": lambda: _("预算总额将为负数（%(total)s）") % {"total": f"{p['total']:,.2f}"},
    }
    return str(messages[exc.code]()) if exc.code in messages else exc.message


def budget_compute_lines(*, budget: Budget) -> None:
    """Fill the computed lines of an unsaved or draft budget; raise ValidationError on a bad input."""
    try:
        lines = budget_lines(budget_inputs_of(budget))
    except BudgetRuleError as exc:
        raise ValidationError({exc.field: budget_rule_message(exc)}) from exc
    for name, value in asdict(lines).items():
        setattr(budget, name, value)


@transaction.atomic
def budget_draft(*, region: Region, fund: str, year: int, inputs: BudgetInputs, user=None, reason: str = "") -> Budget:
    """Create the next revision of a pool's budget as a draft."""
    latest = Budget.objects.filter(region=region, fund=fund, year=year).aggregate(r=Max("revision"))["r"]
    if latest is not None and Budget.objects.filter(region=region, fund=fund, year=year, status=BudgetStatus.DRAFT).exists():
        raise ValidationError(_("此基金池已有预算草稿：请修改或批准该草稿"))
    revision = (latest or 0) + 1
    if revision > 1 and not reason.strip():
        raise ValidationError({"reason": _("已批准预算的修订须填写理由（重大政策调整）")})
    budget = Budget(region=region, fund=fund, year=year, revision=revision, reason=reason, drafted_by=user, **asdict(inputs))
    budget_compute_lines(budget=budget)
    budget.save()
    return budget


@transaction.atomic
def budget_update_draft(*, budget: Budget, inputs: BudgetInputs) -> Budget:
    budget = Budget.objects.select_for_update().get(pk=budget.pk)
    if budget.status != BudgetStatus.DRAFT:
        raise ValidationError(_("已批准预算不可修改：请起草新修订"))
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
        raise ValidationError(_("%(budget)s 不是草稿") % {"budget": budget})
    if not system and budget.drafted_by_id is not None and user is not None and budget.drafted_by_id == user.pk:
        raise PermissionDenied(_("经办与审核须为不同人员：起草预算的人不能批准它"))
    budget_compute_lines(budget=budget)
    budget.status = BudgetStatus.APPROVED
    budget.approved_by = user
    budget.approved_at = timezone.now()
    budget.save()
    return budget


@transaction.atomic
def budget_send_back(*, budget: Budget, user, reason: str) -> Budget:
    """Return a draft to its maker with a reason: it stays a draft (the maker changes it and asks
    again); the reason, who and when are kept on the budget and in its history."""
    budget = Budget.objects.select_for_update().get(pk=budget.pk)
    if budget.status != BudgetStatus.DRAFT:
        raise ValidationError(_("%(budget)s 不是草稿") % {"budget": budget})
    if not reason.strip():
        raise ValidationError({"returned_reason": _("退回须填写理由")})
    if budget.drafted_by_id is not None and user is not None and budget.drafted_by_id == user.pk:
        raise PermissionDenied(_("经办与审核须为不同人员：起草人不能退回自己的草稿"))
    budget.returned_reason = reason.strip()
    budget.returned_by = user
    budget.returned_at = timezone.now()
    budget.save(update_fields=["returned_reason", "returned_by", "returned_at"])
    return budget


def budget_current(*, region: Region, fund: str, year: int) -> Budget | None:
    """The approved budget in force: the highest approved revision."""
    return (
        Budget.objects.filter(region=region, fund=fund, year=year, status=BudgetStatus.APPROVED)
        .order_by("-revision")
        .first()
    )
