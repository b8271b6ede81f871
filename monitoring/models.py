"""Monitoring records (MONITORING.md): stored indicators, screening parameters per region (maker-checker),
screening runs and their findings with evidence cases, evaluation deductions and scores."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from simple_history.models import HistoricalRecords

from drg.choices import Fund
from drg.models import POINTS, Case, Institution, Region
from monitoring.choices import Basis, FindingStatus, ParameterStatus, Rule
from settlement.models import ClearingRun, PointAdjustment

RATIO = {"max_digits": 14, "decimal_places": 4}


class IndicatorValue(models.Model):
    """One row of indicators.csv (MONITORING.md §1): an institution (``*`` = the pool) and a period
    (``YYYY`` or ``YYYY-MM``) of a pool, from the run it was computed from. Replaced on recompute."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+", verbose_name=_("统筹区"))
    fund = models.CharField(max_length=16, choices=Fund.choices, verbose_name=_("险种"))
    year = models.PositiveSmallIntegerField(verbose_name=_("年度"))
    run = models.ForeignKey(ClearingRun, on_delete=models.PROTECT, related_name="+", verbose_name=_("清算批次"))
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, null=True, blank=True, related_name="indicators", verbose_name=_("定点医疗机构"))
    institution_code = models.CharField(max_length=32, help_text=_("* 表示整个基金池"), verbose_name=_("机构编码"))
    period = models.CharField(max_length=7, verbose_name=_("期间"))
    cases = models.PositiveIntegerField(verbose_name=_("病例数"))
    points = models.DecimalField(**POINTS, verbose_name=_("点数"))
    cmi = models.DecimalField(**RATIO, null=True, verbose_name=_("病例组合指数 CMI"))
    cost_per_point = models.DecimalField(**RATIO, null=True, verbose_name=_("每点费用"))
    time_index = models.DecimalField(**RATIO, null=True, verbose_name=_("时间消耗指数"))
    cost_index = models.DecimalField(**RATIO, null=True, verbose_name=_("费用消耗指数"))
    high_share = models.DecimalField(**RATIO, null=True, verbose_name=_("高倍率病例占比"))
    low_share = models.DecimalField(**RATIO, null=True, verbose_name=_("低倍率病例占比"))
    readmission_share = models.DecimalField(**RATIO, null=True, verbose_name=_("再入院病例占比"))
    self_pay_share = models.DecimalField(**RATIO, null=True, verbose_name=_("个人负担占比"))
    special_review_share = models.DecimalField(**RATIO, null=True, verbose_name=_("特病单议占比"))
    transfer_share = models.DecimalField(**RATIO, null=True, verbose_name=_("转院病例占比"))
    computed_at = models.DateTimeField(auto_now=True, verbose_name=_("计算时间"))

    class Meta:
        verbose_name = _("运行指标")
        verbose_name_plural = pgettext_lazy("plural", "运行指标")
        ordering = ["region", "fund", "year", "institution_code", "period"]
        constraints = [models.UniqueConstraint(fields=["region", "fund", "year", "institution_code", "period"], name="indicator_unique")]
        indexes = [models.Index(fields=["institution", "year"], name="indicator_inst_year_idx")]


class ScreeningParameterSet(models.Model):
    """The screening and evaluation parameters of a region (MONITORING.md §2 ⚙, §3), as data: a
    draft is approved by another person; the latest approved set is in force."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="screening_parameters", verbose_name=_("统筹区"))
    values = models.JSONField(default=dict, blank=True, help_text=_("覆盖默认值的参数（名称: 值）"), verbose_name=_("参数值"))
    reason = models.CharField(max_length=500, verbose_name=_("理由"))
    status = models.CharField(max_length=16, choices=ParameterStatus.choices, default=ParameterStatus.DRAFT, db_index=True, verbose_name=_("状态"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("创建时间"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("经办人"))
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("审核人"))
    decided_at = models.DateTimeField(null=True, blank=True, verbose_name=_("审核时间"))
    rejection_reason = models.TextField(blank=True, verbose_name=_("驳回理由"))
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("筛查参数")
        verbose_name_plural = pgettext_lazy("plural", "筛查参数")
        ordering = ["region", "-created_at", "-id"]
        permissions = [("approve_screeningparameterset", _("可批准筛查参数"))]

    def __str__(self) -> str:
        return f"{self.region.code} #{self.pk} ({self.status})"


class ScreeningRun(models.Model):
    """One screening of a pool's binding run with the parameters in force."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+", verbose_name=_("统筹区"))
    fund = models.CharField(max_length=16, choices=Fund.choices, verbose_name=_("险种"))
    year = models.PositiveSmallIntegerField(verbose_name=_("年度"))
    run = models.ForeignKey(ClearingRun, on_delete=models.PROTECT, related_name="+", verbose_name=_("清算批次"))
    previous_run = models.ForeignKey(ClearingRun, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("上一清算批次"))
    parameters = models.JSONField(default=dict, verbose_name=_("参数"))
    finding_count = models.PositiveIntegerField(default=0, verbose_name=_("疑点数"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("创建时间"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("发起人"))

    class Meta:
        verbose_name = _("筛查运行")
        verbose_name_plural = pgettext_lazy("plural", "筛查运行")
        ordering = ["-created_at", "-id"]


class Finding(models.Model):
    """A flag of one rule on one institution for a year: evidence for a person to review, never an
    automatic penalty. One per (pool, rule, institution); a later screening updates an open one."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+", verbose_name=_("统筹区"))
    fund = models.CharField(max_length=16, choices=Fund.choices, verbose_name=_("险种"))
    year = models.PositiveSmallIntegerField(verbose_name=_("年度"))
    rule = models.CharField(max_length=32, choices=Rule.choices, verbose_name=_("筛查规则"))
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="findings", verbose_name=_("定点医疗机构"))
    period = models.CharField(max_length=7, verbose_name=_("期间"))
    screening = models.ForeignKey(ScreeningRun, on_delete=models.PROTECT, related_name="findings", verbose_name=_("筛查运行"))
    value = models.DecimalField(**RATIO, verbose_name=_("指标值"))
    reference = models.DecimalField(**RATIO, verbose_name=_("参照值"))
    basis = models.CharField(max_length=16, choices=Basis.choices, default=Basis.POOL, verbose_name=_("参照基准"))
    detail = models.JSONField(default=dict, blank=True, verbose_name=_("明细"))
    case_count = models.PositiveIntegerField(default=0, verbose_name=_("病例数"))
    status = models.CharField(max_length=16, choices=FindingStatus.choices, default=FindingStatus.OPEN, db_index=True, verbose_name=_("状态"))
    review_reason = models.TextField(blank=True, verbose_name=_("审核理由"))
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("审核人"))
    reviewed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("审核时间"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("创建时间"))
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("疑点")
        verbose_name_plural = pgettext_lazy("plural", "疑点队列")
        ordering = ["-year", "rule", "institution__code"]
        permissions = [("review_finding", _("可审核疑点（确认或排除）"))]
        constraints = [models.UniqueConstraint(fields=["region", "fund", "year", "rule", "institution"], name="finding_unique")]

    def __str__(self) -> str:
        return f"{self.get_rule_display()} {self.institution.code} {self.period}"


class FindingCase(models.Model):
    """An evidence case of a finding (for split_stay, the second stay may be another institution's)."""

    finding = models.ForeignKey(Finding, on_delete=models.CASCADE, related_name="cases", verbose_name=_("疑点"))
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="+", db_constraint=False, verbose_name=_("病例"))
    case_institution_code = models.CharField(max_length=32, verbose_name=_("机构编码"))
    case_no = models.CharField(max_length=40, verbose_name=_("病案号"))

    class Meta:
        verbose_name = _("疑点病例")
        verbose_name_plural = pgettext_lazy("plural", "疑点病例")
        ordering = ["finding", "case_institution_code", "case_no"]
        constraints = [models.UniqueConstraint(fields=["finding", "case"], name="finding_case_unique")]


class FindingAdjustment(models.Model):
    """A point adjustment (违规扣点) proposed from a confirmed finding; settlement keeps the adjustment."""

    finding = models.ForeignKey(Finding, on_delete=models.PROTECT, related_name="adjustments", verbose_name=_("疑点"))
    adjustment = models.OneToOneField(PointAdjustment, on_delete=models.PROTECT, related_name="+", verbose_name=_("扣点"))

    class Meta:
        verbose_name = _("违规扣点建议")
        verbose_name_plural = pgettext_lazy("plural", "违规扣点建议")


class EvaluationDeduction(models.Model):
    """An evaluation deduction proposed from a confirmed finding (MONITORING.md §3), approved by
    another person; counts once per institution, fund, rule and year."""

    finding = models.OneToOneField(Finding, on_delete=models.PROTECT, related_name="deduction", verbose_name=_("疑点"))
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="+", verbose_name=_("定点医疗机构"))
    fund = models.CharField(max_length=16, choices=Fund.choices, verbose_name=_("险种"))
    year = models.PositiveSmallIntegerField(verbose_name=_("年度"))
    rule = models.CharField(max_length=32, choices=Rule.choices, verbose_name=_("筛查规则"))
    points = models.DecimalField(max_digits=6, decimal_places=2, verbose_name=_("扣分"))
    status = models.CharField(max_length=16, choices=ParameterStatus.choices, default=ParameterStatus.DRAFT, db_index=True, verbose_name=_("状态"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("经办人"))
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("审核人"))
    decided_at = models.DateTimeField(null=True, blank=True, verbose_name=_("审核时间"))
    rejection_reason = models.TextField(blank=True, verbose_name=_("驳回理由"))
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("评价扣分")
        verbose_name_plural = pgettext_lazy("plural", "评价扣分")
        ordering = ["institution__code", "year", "rule"]
        permissions = [("approve_evaluationdeduction", _("可批准评价扣分"))]
        constraints = [
            models.CheckConstraint(condition=Q(points__gte=0, points__lte=100), name="deduction_points_0_100"),
        ]


class EvaluationScore(models.Model):
    """DRG付费评价 score of an institution for a fund and year: computed from approved deductions,
    overridable with a reason; approved by another person, it is written to settlement's Evaluation."""

    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="+", verbose_name=_("定点医疗机构"))
    fund = models.CharField(max_length=16, choices=Fund.choices, verbose_name=_("险种"))
    year = models.PositiveSmallIntegerField(verbose_name=_("年度"))
    computed = models.DecimalField(max_digits=6, decimal_places=2, verbose_name=_("计算得分"))
    override = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True, verbose_name=_("人工调整得分"))
    override_reason = models.CharField(max_length=500, blank=True, verbose_name=_("调整理由"))
    status = models.CharField(max_length=16, choices=ParameterStatus.choices, default=ParameterStatus.DRAFT, db_index=True, verbose_name=_("状态"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("经办人"))
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("审核人"))
    decided_at = models.DateTimeField(null=True, blank=True, verbose_name=_("审核时间"))
    rejection_reason = models.TextField(blank=True, verbose_name=_("驳回理由"))
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("评价得分")
        verbose_name_plural = pgettext_lazy("plural", "评价得分")
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
