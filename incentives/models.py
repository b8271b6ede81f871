"""Incentive inputs (the events hospitals report). Rules and payouts: see below the inputs."""
from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from common.models import Reviewable, review_indexes
from drg.models import MONEY, RATE, Institution, Region
from incentives.choices import IncentiveBasis, PayeeKind, PayoutStatus
from incentives.domain.rules import RuleSpec, overlapping, parse_grade_amounts, rule_spec_errors


class HospiceKind(models.TextChoices):
    BED = "bed", _("新增安宁疗护床位")
    INPATIENT = "inpatient", _("住院安宁疗护")
    HOME = "home", _("居家安宁疗护")


class ChronicEnrollment(Reviewable):
    institution = models.ForeignKey(Institution, verbose_name=_("定点医疗机构"), on_delete=models.PROTECT, related_name="chronic_enrollments",
                                    db_index=False)  # the unique constraint begins with it
    patient_id = models.CharField(_("患者编号"), max_length=64)
    disease = models.CharField(_("慢病病种"), max_length=64)
    enrolled_on = models.DateField(_("纳管日期"))

    class Meta:
        verbose_name = _("慢病纳管")
        verbose_name_plural = pgettext_lazy("plural", "慢病纳管")
        ordering = ["institution__code", "patient_id", "disease"]
        constraints = [models.UniqueConstraint(fields=["institution", "patient_id", "disease"], name="chronic_enrollment_unique")]
        indexes = [models.Index(fields=["patient_id", "enrolled_on"], name="chronic_patient_idx"), *review_indexes("chronic")]

    def __str__(self) -> str:
        return f"{self.institution.code} {self.institution.name} · {self.patient_id} · {self.disease}"


class TcmWorkload(Reviewable):
    institution = models.ForeignKey(Institution, verbose_name=_("定点医疗机构"), on_delete=models.PROTECT, related_name="tcm_workloads",
                                    db_index=False)  # the unique constraint begins with it
    month = models.DateField(_("月份"), help_text=_("填报月份的第一天"))
    prescriptions = models.PositiveIntegerField(_("中药饮片处方数"))

    class Meta:
        verbose_name = _("中医工作量")
        verbose_name_plural = pgettext_lazy("plural", "中医工作量")
        ordering = ["institution__code", "month"]
        constraints = [models.UniqueConstraint(fields=["institution", "month"], name="tcm_workload_unique")]
        indexes = review_indexes("tcm_workload")

    def __str__(self) -> str:
        return f"{self.institution.code} {self.institution.name} · {self.month:%Y-%m}"


class HospiceService(Reviewable):
    institution = models.ForeignKey(Institution, verbose_name=_("定点医疗机构"), on_delete=models.PROTECT, related_name="hospice_services",
                                    db_index=False)  # the unique constraint begins with it
    kind = models.CharField(_("服务类型"), max_length=16, choices=HospiceKind.choices)
    patient_id = models.CharField(_("患者编号"), max_length=64, blank=True)
    service_date = models.DateField(_("服务日期"))
    quantity = models.PositiveIntegerField(_("数量"), default=1)

    class Meta:
        verbose_name = _("安宁疗护服务")
        verbose_name_plural = pgettext_lazy("plural", "安宁疗护服务")
        ordering = ["institution__code", "service_date", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["institution", "kind", "patient_id", "service_date"], name="hospice_service_unique"),
            models.CheckConstraint(condition=Q(kind="bed") | ~Q(patient_id=""), name="hospice_patient_required"),
        ]
        indexes = review_indexes("hospice")

    def __str__(self) -> str:
        return f"{self.institution.code} {self.institution.name} · {self.get_kind_display()} · {self.service_date}"


class Screening(Reviewable):
    institution = models.ForeignKey(Institution, verbose_name=_("定点医疗机构"), on_delete=models.PROTECT, related_name="screenings",
                                    db_index=False)  # the unique constraint begins with it
    patient_id = models.CharField(_("患者编号"), max_length=64)
    screening_date = models.DateField(_("筛查日期"))
    fee = models.DecimalField(_("筛查费用"), **MONEY)
    high_risk = models.BooleanField(_("高风险"), default=False)

    class Meta:
        verbose_name = _("高风险人群筛查")
        verbose_name_plural = pgettext_lazy("plural", "高风险人群筛查")
        ordering = ["institution__code", "screening_date", "patient_id"]
        constraints = [
            models.UniqueConstraint(fields=["institution", "patient_id", "screening_date"], name="screening_unique"),
            models.CheckConstraint(condition=Q(fee__gte=0), name="screening_fee_nonneg"),
        ]
        indexes = review_indexes("screening")


# --- Rules and payouts (SETTLEMENT.md §7; see docs/incentives.md) ---------------------------------

    def __str__(self) -> str:
        return f"{self.institution.code} {self.institution.name} · {self.patient_id} · {self.screening_date}"


class IncentiveRule(models.Model):
    """One incentive rule, as data: what it counts (basis), how it is priced (amount per unit,
    amounts per surgery grade, or a rate of fees), who is paid, and when it is in force
    [valid_from, valid_to). A record counts under the rule whose window holds the record's date.
    To change a rule from a date on, close it (valid_to) and add a successor with a new code."""

    code = models.CharField(_("规则编码"), max_length=64, unique=True, help_text=_("写入 incentives.csv 的编码，例如 tumor_surgery"))
    name = models.CharField(_("规则名称"), max_length=200)
    basis = models.CharField(_("计奖依据"), max_length=32, choices=IncentiveBasis.choices)
    amount = models.DecimalField(_("每单位金额"), **MONEY, null=True, blank=True)
    grade_amounts = models.JSONField(
        _("分级金额"), default=dict, blank=True, help_text=_('仅手术类规则，例如 {"3": "1000", "4": "2000"}')
    )
    rate = models.DecimalField(_("费用比例"), **RATE, null=True, blank=True, help_text=_("仅按费用计奖的规则，例如 0.30 即 30%"))
    public_only = models.BooleanField(_("仅限公立机构"), default=False)
    payee = models.CharField(_("收款方"), max_length=16, choices=PayeeKind.choices, default=PayeeKind.INSTITUTION)
    valid_from = models.DateField(_("生效日期"))
    valid_to = models.DateField(_("失效日期"), null=True, blank=True, help_text=_("不含当日；留空为长期有效"))
    yearly_cap = models.DecimalField(_("每年封顶"), **MONEY, null=True, blank=True)
    description = models.TextField(_("文件依据"), blank=True, help_text=_("政策文件名称与文号"))
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("奖补规则")
        verbose_name_plural = pgettext_lazy("plural", "奖补规则")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(valid_to__isnull=True) | Q(valid_to__gt=F("valid_from")), name="incentive_rule_valid_window"),
            models.CheckConstraint(condition=Q(amount__isnull=True) | Q(amount__gte=0), name="incentive_rule_amount_nonneg"),
            models.CheckConstraint(condition=Q(rate__isnull=True) | Q(rate__gte=0, rate__lte=1), name="incentive_rule_rate_range"),
            models.CheckConstraint(condition=Q(yearly_cap__isnull=True) | Q(yearly_cap__gte=0), name="incentive_rule_cap_nonneg"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    def to_spec(self) -> RuleSpec:
        return RuleSpec(
            code=self.code,
            basis=self.basis,
            amount=self.amount,
            grade_amounts=parse_grade_amounts(self.grade_amounts),
            rate=self.rate,
            public_only=self.public_only,
            payee=self.payee,
            valid_from=self.valid_from,
            valid_to=self.valid_to,
            yearly_cap=self.yearly_cap,
        )

    def clean(self) -> None:
        super().clean()
        if self.valid_from is None or not self.basis:
            return
        try:
            spec = self.to_spec()
        except ValueError as exc:
            raise ValidationError({"grade_amounts": str(exc)}) from exc
        errors = rule_spec_errors(spec)
        if not errors:
            for other in IncentiveRule.objects.filter(basis=self.basis).exclude(pk=self.pk):
                if overlapping(spec, other.to_spec()):
                    errors["valid_from"] = (
                        f"rule {other.code} counts the same basis from {other.valid_from} to "
                        f"{other.valid_to or 'open end'}; close it first so no record is paid twice"
                    )
                    break
        if errors:
            raise ValidationError(errors)


class IncentiveBudget(models.Model):
    """财政 budget line for a region's incentives of one year. When the payouts exceed it, every
    line is scaled down pro rata (largest remainder to the cent), so Σ payout = this amount."""

    region = models.ForeignKey(Region, verbose_name=_("统筹区"), on_delete=models.PROTECT, related_name="incentive_budgets")
    year = models.PositiveSmallIntegerField(_("年度"))
    amount = models.DecimalField(_("预算金额"), **MONEY)
    note = models.TextField(_("备注"), blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("奖补财政预算")
        verbose_name_plural = pgettext_lazy("plural", "奖补财政预算")
        ordering = ["region__code", "year"]
        constraints = [
            models.UniqueConstraint(fields=["region", "year"], name="incentive_budget_unique"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="incentive_budget_nonneg"),
        ]

    def __str__(self) -> str:
        return _("%(region)s %(year)s 年奖补预算 %(amount)s 元") % {"region": self.region.name, "year": self.year, "amount": f"{self.amount:,.2f}"}


class Payout(models.Model):
    """A region's incentive payout for one year: computed (draft), approved by another user than
    the one who computed it, then marked paid. One per region and year; a draft is replaced when
    recomputed, an approved or paid payout is final."""

    region = models.ForeignKey(Region, verbose_name=_("统筹区"), on_delete=models.PROTECT, related_name="incentive_payouts")
    year = models.PositiveSmallIntegerField(_("年度"))
    status = models.CharField(_("状态"), max_length=16, choices=PayoutStatus.choices, default=PayoutStatus.DRAFT, db_index=True)
    computed_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("计算人"), on_delete=models.PROTECT, related_name="+")
    computed_at = models.DateTimeField(_("计算时间"))
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("批准人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    approved_at = models.DateTimeField(_("批准时间"), null=True, blank=True)
    paid_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("支付人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    paid_at = models.DateTimeField(_("支付时间"), null=True, blank=True)
    gross_total = models.DecimalField(_("封顶前合计"), **MONEY)
    capped_total = models.DecimalField(_("封顶后合计"), **MONEY)
    total = models.DecimalField(_("应付合计"), **MONEY)
    budget_amount = models.DecimalField(_("财政预算"), **MONEY, null=True, blank=True)
    prorated = models.BooleanField(_("按比例分配"), default=False)
    rules_snapshot = models.JSONField(_("计算时规则"), default=list, help_text=_("计算时的规则"))
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("奖补发放")
        verbose_name_plural = pgettext_lazy("plural", "奖补发放")
        ordering = ["region__code", "-year"]
        permissions = [
            ("approve_payout", "Can approve an incentive payout (maker-checker)"),
            ("pay_payout", "Can mark an incentive payout paid"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["region", "year"], name="incentive_payout_unique"),
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True) | ~Q(approved_by=F("computed_by")), name="incentive_payout_maker_checker"
            ),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(approved_by__isnull=False, approved_at__isnull=False),
                name="incentive_payout_approved_has_approver",
            ),
            models.CheckConstraint(condition=~Q(status="paid") | Q(paid_at__isnull=False), name="incentive_payout_paid_has_date"),
        ]

    def __str__(self) -> str:
        return _("%(region)s %(year)s 年奖补发放 #%(id)s（%(status)s）") % {
            "region": self.region.name, "year": self.year, "id": self.pk, "status": self.get_status_display(),
        }


class PayoutLine(models.Model):
    """One payee and rule of a payout. `amount` is what is paid: gross_amount (r2 of the exact sum)
    after the rule's cap (capped_amount) and the fiscal budget's pro rata. source_ids lists the
    ids of the counted records of source_model (compact: one JSON array per line)."""

    payout = models.ForeignKey(Payout, verbose_name=_("奖补发放"), on_delete=models.CASCADE, related_name="lines")
    payee_code = models.CharField(_("收款方编码"), max_length=32)
    institution = models.ForeignKey(
        Institution, verbose_name=_("机构"), null=True, blank=True, on_delete=models.PROTECT, related_name="incentive_lines", help_text=_("付给健共体集团时为空")
    )
    rule = models.ForeignKey(IncentiveRule, verbose_name=_("奖补规则"), on_delete=models.PROTECT, related_name="payout_lines")
    rule_code = models.CharField(_("规则编码"), max_length=64)
    count = models.PositiveBigIntegerField(_("计数"))
    unit_amount = models.DecimalField(_("单价"), **MONEY, null=True, blank=True)
    rate = models.DecimalField(_("比例"), **RATE, null=True, blank=True)
    basis_amount = models.DecimalField(_("计奖费用"), **MONEY, null=True, blank=True)
    detail = models.JSONField(_("明细"), default=dict, blank=True)
    gross_amount = models.DecimalField(_("封顶前金额"), **MONEY)
    capped_amount = models.DecimalField(_("封顶后金额"), **MONEY)
    amount = models.DecimalField(_("应付金额"), **MONEY)
    source_model = models.CharField(_("来源记录类型"), max_length=32)
    source_ids = models.JSONField(_("来源记录"), default=list)

    class Meta:
        verbose_name = _("奖补明细")
        verbose_name_plural = pgettext_lazy("plural", "奖补明细")
        ordering = ["payout_id", "payee_code", "rule_code"]
        constraints = [models.UniqueConstraint(fields=["payout", "payee_code", "rule_code"], name="incentive_line_unique")]
        indexes = [models.Index(fields=["institution", "payout"], name="incentive_line_inst_idx")]

    def __str__(self) -> str:
        return f"{self.payee_code} · {self.rule_code} · {self.amount:,.2f}"
