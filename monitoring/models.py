"""Monitoring records (MONITORING.md): stored indicators, screening parameters per region (maker-checker),
screening runs and their findings with evidence cases, evaluation deductions and scores."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from drg.choices import Fund
from drg.models import POINTS, Case, Institution, Region
from monitoring.choices import Basis, FindingStatus, ParameterStatus, Rule
from settlement.models import ClearingRun, PointAdjustment

RATIO = {"max_digits": 14, "decimal_places": 4}


class IndicatorValue(models.Model):
    """One row of indicators.csv (MONITORING.md §1): an institution (``*`` = the pool) and a period
    (``YYYY`` or ``YYYY-MM``) of a pool, from the run it was computed from. Replaced on recompute."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    fund = models.CharField(max_length=16, choices=Fund.choices)
    year = models.PositiveSmallIntegerField()
    run = models.ForeignKey(ClearingRun, on_delete=models.PROTECT, related_name="+")
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, null=True, blank=True, related_name="indicators")
    institution_code = models.CharField(max_length=32, help_text="* for the pool")
    period = models.CharField(max_length=7)
    cases = models.PositiveIntegerField()
    points = models.DecimalField(**POINTS)
    cmi = models.DecimalField(**RATIO, null=True)
    cost_per_point = models.DecimalField(**RATIO, null=True)
    time_index = models.DecimalField(**RATIO, null=True)
    cost_index = models.DecimalField(**RATIO, null=True)
    high_share = models.DecimalField(**RATIO, null=True)
    low_share = models.DecimalField(**RATIO, null=True)
    readmission_share = models.DecimalField(**RATIO, null=True)
    self_pay_share = models.DecimalField(**RATIO, null=True)
    special_review_share = models.DecimalField(**RATIO, null=True)
    transfer_share = models.DecimalField(**RATIO, null=True)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("运行指标")
        verbose_name_plural = _("运行指标")
        ordering = ["region", "fund", "year", "institution_code", "period"]
        constraints = [models.UniqueConstraint(fields=["region", "fund", "year", "institution_code", "period"], name="indicator_unique")]
        indexes = [models.Index(fields=["institution", "year"], name="indicator_inst_year_idx")]


class ScreeningParameterSet(models.Model):
    """The screening and evaluation parameters of a region (MONITORING.md §2 ⚙, §3), as data: a
    draft is approved by another person; the latest approved set is in force."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="screening_parameters")
    values = models.JSONField(default=dict, blank=True, help_text=_("覆盖默认值的参数（名称: 值）"))
    reason = models.CharField(max_length=500)
    status = models.CharField(max_length=16, choices=ParameterStatus.choices, default=ParameterStatus.DRAFT, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("筛查参数")
        verbose_name_plural = _("筛查参数")
        ordering = ["region", "-created_at", "-id"]
        permissions = [("approve_screeningparameterset", _("可批准筛查参数"))]

    def __str__(self) -> str:
        return f"{self.region.code} #{self.pk} ({self.status})"


class ScreeningRun(models.Model):
    """One screening of a pool's binding run with the parameters in force."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    fund = models.CharField(max_length=16, choices=Fund.choices)
    year = models.PositiveSmallIntegerField()
    run = models.ForeignKey(ClearingRun, on_delete=models.PROTECT, related_name="+")
    previous_run = models.ForeignKey(ClearingRun, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    parameters = models.JSONField(default=dict)
    finding_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        verbose_name = _("筛查运行")
        verbose_name_plural = _("筛查运行")
        ordering = ["-created_at", "-id"]


class Finding(models.Model):
    """A flag of one rule on one institution for a year: evidence for a person to review, never an
    automatic penalty. One per (pool, rule, institution); a later screening updates an open one."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    fund = models.CharField(max_length=16, choices=Fund.choices)
    year = models.PositiveSmallIntegerField()
    rule = models.CharField(max_length=32, choices=Rule.choices)
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="findings")
    period = models.CharField(max_length=7)
    screening = models.ForeignKey(ScreeningRun, on_delete=models.PROTECT, related_name="findings")
    value = models.DecimalField(**RATIO)
    reference = models.DecimalField(**RATIO)
    basis = models.CharField(max_length=16, choices=Basis.choices, default=Basis.POOL)
    detail = models.JSONField(default=dict, blank=True)
    case_count = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=FindingStatus.choices, default=FindingStatus.OPEN, db_index=True)
    review_reason = models.TextField(blank=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("疑点")
        verbose_name_plural = _("疑点队列")
        ordering = ["-year", "rule", "institution__code"]
        permissions = [("review_finding", _("可审核疑点（确认或排除）"))]
        constraints = [models.UniqueConstraint(fields=["region", "fund", "year", "rule", "institution"], name="finding_unique")]

    def __str__(self) -> str:
        return f"{self.get_rule_display()} {self.institution.code} {self.period}"


class FindingCase(models.Model):
    """An evidence case of a finding (for split_stay, the second stay may be another institution's)."""

    finding = models.ForeignKey(Finding, on_delete=models.CASCADE, related_name="cases")
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="+", db_constraint=False)
    case_institution_code = models.CharField(max_length=32)
    case_no = models.CharField(max_length=40)

    class Meta:
        ordering = ["finding", "case_institution_code", "case_no"]
        constraints = [models.UniqueConstraint(fields=["finding", "case"], name="finding_case_unique")]


class FindingAdjustment(models.Model):
    """A point adjustment (违规扣点) proposed from a confirmed finding; settlement keeps the adjustment."""

    finding = models.ForeignKey(Finding, on_delete=models.PROTECT, related_name="adjustments")
    adjustment = models.OneToOneField(PointAdjustment, on_delete=models.PROTECT, related_name="+")

    class Meta:
        verbose_name = _("违规扣点建议")
        verbose_name_plural = _("违规扣点建议")


class EvaluationDeduction(models.Model):
    """An evaluation deduction proposed from a confirmed finding (MONITORING.md §3), approved by
    another person; counts once per institution, fund, rule and year."""

    finding = models.OneToOneField(Finding, on_delete=models.PROTECT, related_name="deduction")
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="+")
    fund = models.CharField(max_length=16, choices=Fund.choices)
    year = models.PositiveSmallIntegerField()
    rule = models.CharField(max_length=32, choices=Rule.choices)
    points = models.DecimalField(max_digits=6, decimal_places=2)
    status = models.CharField(max_length=16, choices=ParameterStatus.choices, default=ParameterStatus.DRAFT, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("评价扣分")
        verbose_name_plural = _("评价扣分")
        ordering = ["institution__code", "year", "rule"]
        permissions = [("approve_evaluationdeduction", _("可批准评价扣分"))]
        constraints = [
            models.CheckConstraint(condition=Q(points__gte=0, points__lte=100), name="deduction_points_0_100"),
        ]


class EvaluationScore(models.Model):
    """DRG付费评价 score of an institution for a fund and year: computed from approved deductions,
    overridable with a reason; approved by another person, it is written to settlement's Evaluation."""

    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="+")
    fund = models.CharField(max_length=16, choices=Fund.choices)
    year = models.PositiveSmallIntegerField()
    computed = models.DecimalField(max_digits=6, decimal_places=2)
    override = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    override_reason = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=ParameterStatus.choices, default=ParameterStatus.DRAFT, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("评价得分")
        verbose_name_plural = _("评价得分")
        ordering = ["institution__code", "year", "fund"]
        permissions = [("approve_evaluationscore", _("可批准评价得分"))]
        constraints = [
            models.UniqueConstraint(fields=["institution", "fund", "year"], name="evaluation_score_unique"),
            models.CheckConstraint(condition=Q(computed__gte=0, computed__lte=100), name="evaluation_computed_0_100"),
            models.CheckConstraint(condition=Q(override__isnull=True) | Q(override__gte=0, override__lte=100), name="evaluation_override_0_100"),
        ]

    @property
    def score(self):
        return self.computed if self.override is None else self.override
