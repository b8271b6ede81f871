"""Clearing inputs kept by the bureau (itemized claims, point adjustments, evaluations) and the
recorded clearing runs with their per-case and per-institution results."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from django.db.models import Q
from simple_history.models import HistoricalRecords

from common.models import Reviewable, review_indexes
from drg.choices import Fund
from drg.models import MONEY, POINTS, RATE, Institution, ParameterRevision, Region
from settlement.choices import ACTIVE_RUN_STATUSES, AdjustmentStatus, ItemizedSource, RunKind, RunStatus


class ItemizedClaim(Reviewable):
    """门诊特殊病 单议后按实支付: paid at actual in the month approved, outside points, charged to the
    pool's inpatient budget."""

    # no index of their own: itemized_pool_month_idx and itemized_claim_unique begin with them.
    # region is denormalised from the institution (whose FK is enforced), as a case's is: no second
    # per-row FK check (docs/decisions.md item 64)
    region = models.ForeignKey(Region, verbose_name=_("统筹区"), on_delete=models.PROTECT, related_name="itemized_claims", db_index=False,
                               db_constraint=False)
    institution = models.ForeignKey(
        Institution, verbose_name=_("定点医疗机构"), on_delete=models.PROTECT, related_name="itemized_claims", db_index=False)
    claim_no = models.CharField(_("单据号"), max_length=40)
    fund = models.CharField(_("险种"), max_length=16, choices=Fund.choices)
    month = models.DateField(_("月份"), help_text=_("核定所属月份的第一天"))
    patient_id = models.CharField(_("患者编号"), max_length=64)
    claimed_amount = models.DecimalField(_("申报金额"), **MONEY, null=True, blank=True)
    approved_amount = models.DecimalField(_("核定金额"), **MONEY, null=True, blank=True)
    source = models.CharField(
        _("来源"), max_length=24, choices=ItemizedSource.choices, default=ItemizedSource.ADJUDICATED, blank=True,
        help_text=_("在别处审核（数据包、管理后台），或由门诊特殊病种结算写入（与之同步）"),
    )
    # a claim's history is read by the claim (its id) or by date, never by these
    history = HistoricalRecords(no_db_index=["region", "institution", "decided_by", "assigned_to"])

    class Meta:
        verbose_name = _("按项目付费申报")
        verbose_name_plural = pgettext_lazy("plural", "按项目付费申报")
        permissions = [("review_itemizedclaim", "Can approve or reject itemized claims")]
        ordering = ["institution__code", "claim_no"]
        constraints = [
            models.UniqueConstraint(fields=["institution", "claim_no", "source"], name="itemized_claim_unique"),
            models.CheckConstraint(condition=Q(approved_amount__isnull=True) | Q(approved_amount__gte=0), name="itemized_amount_nonneg"),
            models.CheckConstraint(condition=~Q(status="approved") | Q(approved_amount__isnull=False), name="itemized_approved_has_amount"),
        ]
        indexes = [models.Index(fields=["region", "fund", "month"], name="itemized_pool_month_idx"), *review_indexes("itemized")]

    def __str__(self) -> str:
        return _("按项目付费申报 %(claim_no)s（%(institution)s）") % {"claim_no": self.claim_no, "institution": self.institution.name}


class PointAdjustment(models.Model):
    """违规扣点: multiple × base points of the group, deducted from the institution's annual points."""

    institution = models.ForeignKey(Institution, verbose_name=_("定点医疗机构"), on_delete=models.PROTECT, related_name="point_adjustments")
    fund = models.CharField(_("险种"), max_length=16, choices=Fund.choices)
    year = models.PositiveSmallIntegerField(_("年度"))
    drg_code = models.CharField(_("DRG 编码"), max_length=16)
    multiple = models.DecimalField(_("扣点倍数"), max_digits=8, decimal_places=4)
    reason = models.CharField(_("扣点理由"), max_length=500)
    status = models.CharField(_("状态"), max_length=16, choices=AdjustmentStatus.choices, default=AdjustmentStatus.DRAFT, db_index=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("经办人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("审核人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(_("审核时间"), null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("扣点")
        verbose_name_plural = pgettext_lazy("plural", "扣点")
        permissions = [("approve_pointadjustment", "Can approve point adjustments")]
        ordering = ["institution__code", "year", "fund", "drg_code"]
        constraints = [
            models.CheckConstraint(condition=Q(multiple__gt=0), name="point_adjustment_multiple_positive"),
            models.UniqueConstraint(fields=["institution", "fund", "year", "drg_code", "reason"], name="point_adjustment_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.institution.code} {self.institution.name} · {self.drg_code} · {self.year}"


class Evaluation(models.Model):
    """DRG付费评价 score (0–100) of an institution for a fund and year; drives the quality deduction."""

    institution = models.ForeignKey(Institution, verbose_name=_("定点医疗机构"), on_delete=models.PROTECT, related_name="evaluations")
    fund = models.CharField(_("险种"), max_length=16, choices=Fund.choices)
    year = models.PositiveSmallIntegerField(_("年度"))
    score = models.DecimalField(_("考核得分"), max_digits=6, decimal_places=2)
    status = models.CharField(_("状态"), max_length=16, choices=AdjustmentStatus.choices, default=AdjustmentStatus.DRAFT, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("经办人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("审核人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(_("审核时间"), null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("年度考核")
        verbose_name_plural = pgettext_lazy("plural", "年度考核")
        permissions = [("approve_evaluation", "Can approve evaluations")]
        ordering = ["institution__code", "year", "fund"]
        constraints = [
            models.UniqueConstraint(fields=["institution", "fund", "year"], name="evaluation_unique"),
            models.CheckConstraint(condition=Q(score__gte=0, score__lte=100), name="evaluation_score_0_100"),
        ]

    def __str__(self) -> str:
        return f"{self.institution.code} {self.institution.name} · {self.get_fund_display()} · {self.year}"


class ClearingRun(models.Model):
    """A recorded, reproducible clearing job of one pool and period (SETTLEMENT.md §6)."""

    region = models.ForeignKey(Region, verbose_name=_("统筹区"), on_delete=models.PROTECT, related_name="clearing_runs")
    fund = models.CharField(_("险种"), max_length=16, choices=Fund.choices)
    year = models.PositiveSmallIntegerField(_("年度"))
    month = models.PositiveSmallIntegerField(_("月份"), null=True, blank=True, help_text=_("月度预付填 1–12；年度清算留空"))
    kind = models.CharField(_("清算类型"), max_length=16, choices=RunKind.choices)
    status = models.CharField(_("状态"), max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    parameters = models.JSONField(_("参数"), default=dict, blank=True)
    fingerprint = models.CharField(_("输入指纹"), max_length=64, blank=True)
    totals = models.JSONField(_("合计"), default=dict, blank=True)
    timings = models.JSONField(_("耗时"), default=dict, blank=True)
    progress = models.CharField(_("进度"), max_length=200, blank=True)
    error = models.TextField(_("错误"), blank=True)
    case_count = models.PositiveIntegerField(_("病例数"), default=0)
    task_id = models.CharField(_("任务编号"), max_length=64, blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("发起人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    finalized_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("定稿人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    started_at = models.DateTimeField(_("开始时间"), null=True, blank=True)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)
    finalized_at = models.DateTimeField(_("定稿时间"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        _("心跳时间"), null=True, blank=True, help_text=_("执行该清算的后台进程最近一次报告存活的时间（DRG_RUN_HEARTBEAT_SECONDS）")
    )
    failed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("标记失败人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text=_("将卡住的清算手工标记为失败的审核人（原因见“错误”）"),
    )
    # One binding run per pool and period (SETTLEMENT.md §6): finalizing a run marks the finalized run
    # of the same pool, kind and month superseded and links the two (run.supersedes / run.superseded_by).
    supersedes = models.OneToOneField(
        "self", verbose_name=_("取代的清算"), null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by",
        help_text=_("本清算定稿时所取代的同期已定稿清算"),
    )
    # the parameter revisions (scheme, catalog, institution attributes) the run used (SETTLEMENT.md §6)
    parameter_revisions = models.ManyToManyField(ParameterRevision, verbose_name=_("参数修订"), blank=True, related_name="clearing_runs")
    # a failed run acknowledged by bureau staff, with a note, leaves the cockpit's count
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("确认人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    acknowledged_at = models.DateTimeField(_("确认时间"), null=True, blank=True)
    acknowledgement_note = models.TextField(_("确认说明"), blank=True)

    class Meta:
        verbose_name = _("清算批次")
        verbose_name_plural = pgettext_lazy("plural", "清算批次")
        permissions = [
            ("start_clearingrun", "Can start a clearing run"),
            ("finalize_clearingrun", "Can finalize a clearing run (maker-checker)"),
            ("acknowledge_clearingrun", "Can acknowledge a failed clearing run with a note"),
        ]
        ordering = ["-created_at", "-id"]
        constraints = [
            # One queued or running run per pool, enforced by the database.
            models.UniqueConstraint(
                fields=["region", "fund", "year"],
                condition=Q(status__in=[s.value for s in ACTIVE_RUN_STATUSES]),
                name="one_active_run_per_pool",
            ),
            models.CheckConstraint(
                condition=(Q(kind=RunKind.MONTHLY, month__gte=1, month__lte=12) | Q(kind=RunKind.ANNUAL, month__isnull=True)),
                name="run_month_matches_kind",
            ),
            # One binding (finalized, not superseded) run per pool and period; annual runs have no
            # month (NULL), hence a constraint of their own.
            models.UniqueConstraint(
                fields=["region", "fund", "year", "month"],
                condition=Q(status=RunStatus.FINALIZED, kind=RunKind.MONTHLY),
                name="one_binding_monthly_run",
            ),
            models.UniqueConstraint(
                fields=["region", "fund", "year"],
                condition=Q(status=RunStatus.FINALIZED, kind=RunKind.ANNUAL),
                name="one_binding_annual_run",
            ),
        ]
        indexes = [models.Index(fields=["region", "fund", "year", "kind", "month", "status"], name="run_pool_period_idx")]

    def __str__(self) -> str:
        """What an officer reads: #28 职工医保 2025 年度清算, #17 职工医保 2025 年 3 月预付."""
        if self.kind == RunKind.MONTHLY and self.month:
            period = _("%(year)s 年 %(month)s 月预付") % {"year": self.year, "month": self.month}
        else:
            period = _("%(year)s 年度清算") % {"year": self.year}
        return f"#{self.pk} {self.get_fund_display()} {period}"

    @property
    def is_binding(self) -> bool:
        return self.status == RunStatus.FINALIZED

    @property
    def successor(self) -> "ClearingRun | None":
        """The run that superseded this one (None while it is binding, a draft, …)."""
        try:
            return self.superseded_by
        except ClearingRun.DoesNotExist:
            return None


class CaseResultBlock(models.Model):
    """One institution's per-case results in one run (valuation group, coefficient, cost ratio,
    category, base points, readmission halving, points: SETTLEMENT.md §2.6), stored as one compressed
    Parquet block (settlement.domain.results, docs/storage.md). Read through settlement.selectors
    (run_case_results_frame, run_case_result, case_latest_results), never decoded elsewhere."""

    run = models.ForeignKey(ClearingRun, verbose_name=_("清算批次"), on_delete=models.CASCADE, related_name="result_blocks")
    institution = models.ForeignKey(Institution, verbose_name=_("定点医疗机构"), on_delete=models.PROTECT, related_name="+")
    cases = models.PositiveIntegerField(_("病例数"))
    data = models.BinaryField(_("计点结果（列式压缩）"))

    class Meta:
        verbose_name = _("病例计点结果块")
        verbose_name_plural = pgettext_lazy("plural", "病例计点结果块")
        ordering = ["run", "institution"]
        constraints = [models.UniqueConstraint(fields=["run", "institution"], name="case_result_block_run_inst")]

    def __str__(self) -> str:
        return f"{self.run} · {self.institution_id}"


class InstitutionLine(models.Model):
    """One institution's statement line in one run (monthly: due/prepay/withheld; annual: all)."""

    run = models.ForeignKey(ClearingRun, verbose_name=_("清算批次"), on_delete=models.CASCADE, related_name="lines")
    institution = models.ForeignKey(Institution, verbose_name=_("定点医疗机构"), on_delete=models.PROTECT, related_name="clearing_lines")
    case_count = models.PositiveIntegerField(_("病例数"), default=0)
    raw_points = models.DecimalField(_("原始点数"), **POINTS)
    penalty_points = models.DecimalField(_("扣减点数"), **POINTS, default=0)
    tcm_rate = models.DecimalField(_("中医占比"), **RATE, null=True, blank=True)
    uplift = models.DecimalField(_("中医加成"), **RATE, default=0)
    points = models.DecimalField(_("点数"), **POINTS)
    point_value = models.DecimalField(_("点值"), **POINTS)
    gross_amount = models.DecimalField(_("应付总额"), **MONEY, null=True, blank=True)
    self_pay = models.DecimalField(_("个人自付"), **MONEY)
    itemized_fund = models.DecimalField(_("按项目统筹支付"), **MONEY)
    fund_payment = models.DecimalField(_("统筹支付"), **MONEY, null=True, blank=True)
    surplus = models.DecimalField(_("结余留用/超支分担"), **MONEY, null=True, blank=True)
    due = models.DecimalField(_("应预付"), **MONEY, null=True, blank=True, help_text=_("月度：精确应预付，显示时舍入"))
    due_exact = models.CharField(_("应预付（精确值）"), max_length=80, blank=True, help_text=_("月度：以分数表示的精确应预付"))
    prepaid_to_date = models.DecimalField(_("累计已预付"), **MONEY, null=True, blank=True)
    prepay = models.DecimalField(_("本月预付"), **MONEY, null=True, blank=True)
    prepaid = models.DecimalField(_("已预付"), **MONEY, null=True, blank=True)
    withheld = models.DecimalField(_("暂扣"), **MONEY, default=0)
    quality_score = models.DecimalField(_("考核得分"), max_digits=6, decimal_places=2, null=True, blank=True)
    quality_deduction = models.DecimalField(_("考核扣款"), **MONEY, null=True, blank=True)
    balance = models.DecimalField(_("清算差额"), **MONEY, null=True, blank=True)
    settled_before = models.DecimalField(
        _("此前已结算"), **MONEY, null=True, blank=True,
        help_text=_("本基金池本年度此前已定稿清算已结算的金额：月度为此前预付之和；年度为此前已定稿年度清算的清算差额之和（SETTLEMENT.md §6）"),
    )

    class Meta:
        verbose_name = _("机构结算行")
        verbose_name_plural = pgettext_lazy("plural", "机构结算行")
        ordering = ["run", "institution__code"]
        constraints = [models.UniqueConstraint(fields=["run", "institution"], name="line_unique_per_run")]

    def __str__(self) -> str:
        return f"{self.institution.code} {self.institution.name} · {self.run}"
