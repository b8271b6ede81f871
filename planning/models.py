"""Planning records: rate-setting proposals (测算结果, adopted under maker-checker), scenarios
(模拟测算, never binding, per-institution lines only) and point-value forecasts (点值预测, estimates)."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from drg.choices import Fund
from drg.models import MONEY, POINTS, Institution, Region
from planning.choices import ScenarioStatus
from settlement.models import ClearingRun


class RateSetting(models.Model):
    """A rate-setting result the bureau adopted for year Y: the report as computed, and the parameter
    revisions it drafted (year Y's catalog and payment scheme), which another person approves."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+", verbose_name=_("统筹区"))
    year = models.PositiveSmallIntegerField(_("目标年度"))
    reference_years = models.JSONField(_("参考年度"))
    weights = models.JSONField(_("权重"))
    all_case_avg_cost = models.DecimalField(_("全部病例次均费用 A"), **MONEY)
    summary = models.JSONField(default=dict, verbose_name=_("测算汇总"))
    report = models.JSONField(default=list, help_text=_("rate_setting.csv 各行（文本）"), verbose_name=_("测算报表"))
    catalog = models.JSONField(default=list, help_text=_("drg_groups.csv 各行（文本）"), verbose_name=_("病组目录"))
    reason = models.TextField(_("理由"), blank=True)
    created_at = models.DateTimeField(_("采纳时间"), auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("起草人"))
    applied = models.JSONField(_("起草的参数修订"), default=dict, blank=True,
                               help_text=_("为 Y 年起草的参数修订：catalog_revision、scheme_revision（编号）"))

    class Meta:
        verbose_name = _("基准点数测算")
        verbose_name_plural = pgettext_lazy("plural", "基准点数测算")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.region.code} {self.year} #{self.pk}"


class Scenario(models.Model):
    """A what-if clearing of a pool and period with changed inputs: recorded, compared, never
    finalized or paid."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+", verbose_name=_("统筹区"))
    fund = models.CharField(_("险种"), max_length=16, choices=Fund.choices)
    year = models.PositiveSmallIntegerField(_("年度"))
    month = models.PositiveSmallIntegerField(_("月份"), null=True, blank=True, help_text=_("月度模拟填 1–12；年度清算留空"))
    name = models.CharField(_("名称"), max_length=200)
    base_run = models.ForeignKey(ClearingRun, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("基准运行（生效）"))
    changes = models.JSONField(_("变更内容"), default=dict, blank=True)
    status = models.CharField(_("状态"), max_length=16, choices=ScenarioStatus.choices, default=ScenarioStatus.QUEUED, db_index=True)
    fingerprint = models.CharField(_("输入指纹"), max_length=64, blank=True)
    same_inputs_as_base = models.BooleanField(_("输入与基准运行相同"), null=True)
    totals = models.JSONField(default=dict, blank=True, verbose_name=_("合计"))
    timings = models.JSONField(default=dict, blank=True, verbose_name=_("耗时"))
    error = models.TextField(blank=True, verbose_name=_("错误"))
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("创建人"))
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("模拟测算")
        verbose_name_plural = pgettext_lazy("plural", "模拟测算")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        period = f"{self.year}-{self.month:02d}" if self.month else str(self.year)
        return f"{self.name} ({self.region.code} {self.fund} {period})"


class ScenarioLine(models.Model):
    """One institution's result in a scenario (annual: fund payment, surplus, balance; monthly:
    due as fund payment, surplus = due − itemized claims, balance = this month's prepayment)."""

    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="lines", verbose_name=_("模拟测算"))
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="+", verbose_name=_("定点医疗机构"))
    case_count = models.PositiveIntegerField(_("病例数"), default=0)
    points = models.DecimalField(_("点数"), **POINTS)
    point_value = models.DecimalField(_("点值"), **POINTS)
    self_pay = models.DecimalField(_("个人负担"), **MONEY)
    itemized_fund = models.DecimalField(_("基金按项目"), **MONEY)
    fund_payment = models.DecimalField(_("基金支付"), **MONEY)
    surplus = models.DecimalField(_("结余/超支"), **MONEY)
    balance = models.DecimalField(_("应付差额"), **MONEY)

    class Meta:
        verbose_name = _("模拟测算行")
        verbose_name_plural = pgettext_lazy("plural", "模拟测算行")
        ordering = ["scenario", "institution__code"]
        constraints = [models.UniqueConstraint(fields=["scenario", "institution"], name="scenario_line_unique")]


class Season(models.Model):
    """The share basis of PLANNING.md §3 from one binding annual run: Σ case points and Σ fund claims
    by discharge month (exact decimal strings), recorded once when the run is finalized so that a
    forecast never scans a year of case results."""

    run = models.OneToOneField(ClearingRun, on_delete=models.CASCADE, related_name="+", verbose_name=_("清算批次"))
    points_by_month = models.JSONField(default=dict, verbose_name=_("各月点数"))
    claims_by_month = models.JSONField(default=dict, verbose_name=_("各月基金申报"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("创建时间"))


class Forecast(models.Model):
    """The year-end estimate made after the finalized monthly run of month m (PLANNING.md §3).
    An estimate: never used for payment."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+", verbose_name=_("统筹区"))
    fund = models.CharField(_("险种"), max_length=16, choices=Fund.choices)
    year = models.PositiveSmallIntegerField(_("年度"))
    month = models.PositiveSmallIntegerField(_("月份"))
    run = models.ForeignKey(ClearingRun, on_delete=models.CASCADE, related_name="+", verbose_name=_("月度运行"))
    season_points = models.CharField(max_length=200, help_text=_("season_P，精确分数"), verbose_name=_("季节点数"))
    season_claims = models.CharField(max_length=200, help_text=_("season_F，精确分数"), verbose_name=_("季节基金申报"))
    season_source = models.CharField(_("季节系数来源"), max_length=16, help_text=_("previous_year（上年）或 uniform（m/12）"))
    run_point_value = models.DecimalField(_("月度点值 V_m"), **POINTS)
    point_value = models.DecimalField(_("预测点值"), **POINTS)
    distributed = models.DecimalField(_("预测可分配总额"), **MONEY)
    points = models.DecimalField(_("预测年度点数"), **POINTS)
    fund_claims = models.DecimalField(_("预测基金按项目"), **MONEY)
    band = models.DecimalField(_("历史误差带"), max_digits=9, decimal_places=6, null=True, blank=True,
                               help_text=_("往年同月预测的最大 |V̂ − V| / V（无历史时为空）"))
    created_at = models.DateTimeField(_("预测时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("点值预测（估算）")
        verbose_name_plural = pgettext_lazy("plural", "点值预测（估算）")
        ordering = ["region", "fund", "year", "month"]
        constraints = [models.UniqueConstraint(fields=["run"], name="forecast_one_per_run")]


class ForecastLine(models.Model):
    forecast = models.ForeignKey(Forecast, on_delete=models.CASCADE, related_name="lines", verbose_name=_("点值预测"))
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="+", verbose_name=_("定点医疗机构"))
    points = models.DecimalField(**POINTS, help_text=_("截至目前的点数"), verbose_name=_("至今点数"))
    points_forecast = models.DecimalField(**POINTS, verbose_name=_("预测年度点数"))
    payment = models.DecimalField(_("预测年度基金支付"), **MONEY)

    class Meta:
        verbose_name = _("点值预测行")
        verbose_name_plural = pgettext_lazy("plural", "点值预测行")
        ordering = ["forecast", "institution__code"]
        constraints = [models.UniqueConstraint(fields=["forecast", "institution"], name="forecast_line_unique")]
