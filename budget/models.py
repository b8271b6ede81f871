"""区域总额预算: the regional total budget per pool (region × fund × year), with revisions."""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from budget.choices import BudgetStatus
from drg.choices import Fund
from drg.models import MONEY, RATE, Region


class Budget(models.Model):
    """One revision of a pool's budget. Inputs are entered; the lines are computed by
    budget.domain.lines (SETTLEMENT.md §1) and stored. An approved revision is immutable; a major
    policy change (重大政策调整) is a new revision with a reason."""

    region = models.ForeignKey(Region, verbose_name=_("统筹区"), on_delete=models.PROTECT, related_name="budgets")
    fund = models.CharField(_("险种"), max_length=16, choices=Fund.choices)
    year = models.PositiveSmallIntegerField(_("年度"))
    revision = models.PositiveSmallIntegerField(_("修订版次"), default=1)
    reason = models.TextField(_("理由"), blank=True, help_text=_("修订原因（第 2 版起必填）"))

    base_amount = models.DecimalField(_("上年度决算"), **MONEY)
    growth_rate = models.DecimalField(_("增长率"), **RATE)
    growth_cap = models.DecimalField(_("增长率上限"), **RATE, default=Decimal("0.10"))
    policy_adjustment = models.DecimalField(_("政策调整"), **MONEY, default=Decimal("0"))
    reserve_rate = models.DecimalField(_("调剂金比例"), **RATE, default=Decimal("0.05"))
    outpatient_share = models.DecimalField(_("门诊占比"), **RATE, default=Decimal("0"))
    primary_care_share = models.DecimalField(_("基层倾斜比例"), **RATE, default=Decimal("0"))

    total = models.DecimalField(_("总额"), **MONEY)
    reserve = models.DecimalField(_("调剂金"), **MONEY)
    outpatient = models.DecimalField(_("门诊"), **MONEY)
    inpatient = models.DecimalField(_("住院"), **MONEY)
    primary_care_earmark = models.DecimalField(_("基层倾斜"), **MONEY)

    status = models.CharField(_("状态"), max_length=16, choices=BudgetStatus.choices, default=BudgetStatus.DRAFT, db_index=True)
    drafted_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("经办人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("批准人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    approved_at = models.DateTimeField(_("批准时间"), null=True, blank=True)
    returned_reason = models.TextField(_("退回理由"), blank=True)
    returned_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("退回人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    returned_at = models.DateTimeField(_("退回时间"), null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("区域总额预算")
        verbose_name_plural = pgettext_lazy("plural", "区域总额预算")
        permissions = [("approve_budget", _("可批准预算（经办与审核分离）"))]
        ordering = ["region__code", "year", "fund", "-revision"]
        constraints = [
            models.UniqueConstraint(fields=["region", "fund", "year", "revision"], name="budget_revision_unique"),
            models.CheckConstraint(condition=Q(growth_rate__lte=F("growth_cap")), name="budget_growth_within_cap"),
            models.CheckConstraint(condition=Q(base_amount__gte=0), name="budget_base_nonneg"),
            models.CheckConstraint(condition=Q(reserve_rate__gte=0, reserve_rate__lt=1), name="budget_reserve_rate_range"),
            models.CheckConstraint(condition=Q(outpatient_share__gte=0, outpatient_share__lte=1), name="budget_outpatient_share_range"),
            models.CheckConstraint(condition=Q(primary_care_share__gte=0, primary_care_share__lte=1), name="budget_primary_share_range"),
            models.CheckConstraint(condition=Q(primary_care_earmark__lte=F("outpatient")), name="budget_earmark_within_outpatient"),
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True) | Q(drafted_by__isnull=True) | ~Q(approved_by=F("drafted_by")),
                name="budget_maker_checker",
            ),
        ]

    def __str__(self) -> str:
        return _("%(region)s %(fund)s %(year)s 年预算 第 %(revision)s 版（%(status)s）") % {
            "region": self.region.name, "fund": self.get_fund_display(), "year": self.year, "revision": self.revision,
            "status": self.get_status_display(),
        }
