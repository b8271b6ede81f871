"""区域总额预算: the regional total budget per pool (region × fund × year), with revisions."""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from budget.choices import BudgetStatus
from drg.choices import Fund
from drg.models import MONEY, RATE, Region


class Budget(models.Model):
    """One revision of a pool's budget. Inputs are entered; the lines are computed by
    budget.domain.lines (SETTLEMENT.md §1) and stored. An approved revision is immutable; a major
    policy change (重大政策调整) is a new revision with a reason."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="budgets")
    fund = models.CharField(max_length=16, choices=Fund.choices)
    year = models.PositiveSmallIntegerField()
    revision = models.PositiveSmallIntegerField(default=1)
    reason = models.TextField(blank=True, help_text="why this revision (required from revision 2 on)")

    base_amount = models.DecimalField("上年度决算 base", **MONEY)
    growth_rate = models.DecimalField(**RATE)
    growth_cap = models.DecimalField(**RATE, default=Decimal("0.10"))
    policy_adjustment = models.DecimalField(**MONEY, default=Decimal("0"))
    reserve_rate = models.DecimalField(**RATE, default=Decimal("0.05"))
    outpatient_share = models.DecimalField(**RATE, default=Decimal("0"))
    primary_care_share = models.DecimalField(**RATE, default=Decimal("0"))

    total = models.DecimalField(**MONEY)
    reserve = models.DecimalField("调剂金 reserve", **MONEY)
    outpatient = models.DecimalField(**MONEY)
    inpatient = models.DecimalField(**MONEY)
    primary_care_earmark = models.DecimalField(**MONEY)

    status = models.CharField(max_length=16, choices=BudgetStatus.choices, default=BudgetStatus.DRAFT, db_index=True)
    drafted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        permissions = [("approve_budget", "Can approve a budget (maker-checker)")]
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
        return f"{self.region.code} {self.fund} {self.year} r{self.revision} ({self.status})"
