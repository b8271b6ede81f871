"""Budget writes: draft, approve (maker-checker), revise. Lines come from budget.domain.lines."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal

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


# --- opening a new year ---------------------------------------------------------------------------

@dataclass
class YearOpened:
    """What opening a year drafted: the parameter revisions and the budget drafts, all awaiting approval."""

    region: Region
    year: int
    revisions: list = field(default_factory=list)
    budgets: list = field(default_factory=list)


@transaction.atomic
def year_open(*, region: Region, year: int, user=None) -> YearOpened:
    """Open year Y of a region: draft Y's payment scheme and catalog (DRG groups, coefficients, TCM
    equivalents) as copies of Y−1's in force, and for every fund with an approved Y−1 budget a Y
    budget draft whose base (上年度决算) is Y−1's approved total, the other inputs carried over (the
    one-off policy adjustment reset to 0). Nothing is in force until each draft is approved by
    another person. ValidationError when Y−1 is missing or Y is already open."""
    from django.utils.translation import gettext as _

    from drg.choices import ParameterKind
    from drg.models import DrgGroup, ParameterRevision, PaymentScheme
    from drg.revisions import parameter_revision_draft, parameter_values_in_force

    Region.objects.select_for_update().get(pk=region.pk)
    opened = []
    if PaymentScheme.objects.filter(region=region, year=year).exists():
        opened.append(_("支付方案"))
    if DrgGroup.objects.filter(region=region, year=year).exists():
        opened.append(_("病组目录"))
    if ParameterRevision.objects.filter(region=region, year=year).exclude(status="rejected").exists():
        opened.append(_("参数修订"))
    if Budget.objects.filter(region=region, year=year).exists():
        opened.append(_("预算"))
    if opened:
        raise ValidationError(_("统筹区 %(region)s 的 %(year)s 年已经开启（已有%(what)s）") % {
            "region": region.code, "year": year, "what": "、".join(opened)})
    previous = year - 1
    missing = []
    if not PaymentScheme.objects.filter(region=region, year=previous).exists():
        missing.append(_("支付方案"))
    if not DrgGroup.objects.filter(region=region, year=previous).exists():
        missing.append(_("病组目录"))
    previous_budgets = {
        fund: budget_current(region=region, fund=fund, year=previous)
        for fund in Budget.objects.filter(region=region, year=previous).values_list("fund", flat=True).distinct().order_by("fund")
    }
    previous_budgets = {fund: b for fund, b in previous_budgets.items() if b is not None}
    if not previous_budgets:
        missing.append(_("已批准的预算"))
    if missing:
        raise ValidationError(_("统筹区 %(region)s 没有 %(prev)s 年的%(what)s，无法开启 %(year)s 年") % {
            "region": region.code, "prev": previous, "what": "、".join(missing), "year": year})
    result = YearOpened(region=region, year=year)
    reason = _("开启 %(year)s 年：沿用 %(prev)s 年的现行参数") % {"year": year, "prev": previous}
    for kind in (ParameterKind.SCHEME, ParameterKind.CATALOG):
        values = parameter_values_in_force(region=region, kind=kind, year=previous)
        result.revisions.append(parameter_revision_draft(region=region, kind=kind, year=year, values=values, reason=reason, user=user))
    for fund, last in previous_budgets.items():
        inputs = budget_inputs_of(last)
        inputs = BudgetInputs(**{**asdict(inputs), "base_amount": last.total, "policy_adjustment": Decimal("0")})
        budget_reason = _("开启 %(year)s 年：基数为 %(prev)s 年已批准总额 %(total)s（r%(rev)s）") % {
            "year": year, "prev": previous, "total": last.total, "rev": last.revision}
        result.budgets.append(budget_draft(region=region, fund=fund, year=year, inputs=inputs, user=user, reason=budget_reason))
    return result
