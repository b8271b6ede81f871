"""Special-outpatient benefits (BENEFITS.md): patients with their category, the special-disease
catalog, benefit parameters per region/fund/year, the claims with their settled split and
explanation, and the corrections a re-settlement records."""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from simple_history.models import HistoricalRecords

from benefits.choices import ClaimSource, DiseaseClass, PatientCategory
from drg.choices import Fund
from drg.models import MONEY, RATE, Institution, Region


class Patient(models.Model):
    """A listed patient (patients.csv). A patient not listed is ordinary, with any fund. The category
    changes a family's money, so every change is kept (history) and re-settles the patient's claims."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="benefit_patients", verbose_name=_("统筹区"))
    patient_id = models.CharField(_("参保人编号"), max_length=64)
    fund = models.CharField(_("险种"), max_length=16, choices=Fund.choices)
    category = models.CharField(_("人员类别"), max_length=16, choices=PatientCategory.choices, default=PatientCategory.ORDINARY)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("参保人")
        verbose_name_plural = pgettext_lazy("plural", "参保人")
        ordering = ["region__code", "patient_id"]
        constraints = [models.UniqueConstraint(fields=["region", "patient_id"], name="benefit_patient_unique")]

    def __str__(self) -> str:
        return f"{self.patient_id} ({self.get_category_display()})"


class SpecialDisease(models.Model):
    """门诊特殊病种 of one region's catalog for one year (class I/II, annual cap per patient)."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="special_diseases", verbose_name=_("统筹区"))
    year = models.PositiveSmallIntegerField(_("年度"))
    code = models.CharField(_("病种编码"), max_length=32)
    name = models.CharField(_("病种名称"), max_length=200)
    disease_class = models.CharField(_("类别"), max_length=2, choices=DiseaseClass.choices)
    annual_cap = models.DecimalField(_("年度限额"), **MONEY, null=True, blank=True, help_text=_("空 = 按类别默认限额"))
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("门诊特殊病种")
        verbose_name_plural = pgettext_lazy("plural", "门诊特殊病种目录")
        ordering = ["region__code", "year", "code"]
        constraints = [
            models.UniqueConstraint(fields=["region", "year", "code"], name="special_disease_unique"),
            models.CheckConstraint(condition=Q(annual_cap__isnull=True) | Q(annual_cap__gte=0), name="special_disease_cap_nonneg"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name} ({self.year})"


class BenefitParameters(models.Model):
    """⚙ of BENEFITS.md for one region, fund and year; a pool-year without a row takes the defaults."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="benefit_parameters", verbose_name=_("统筹区"))
    fund = models.CharField(_("险种"), max_length=16, choices=Fund.choices)
    year = models.PositiveSmallIntegerField(_("年度"))
    ratio_level_1 = models.DecimalField(_("一级机构报销比例"), **RATE)
    ratio_level_2 = models.DecimalField(_("二级机构报销比例"), **RATE)
    ratio_level_3 = models.DecimalField(_("三级机构报销比例"), **RATE)
    deductible = models.DecimalField(_("起付标准"), **MONEY, default=Decimal("0"))
    shared_annual_cap = models.DecimalField(_("门诊住院共用年度最高支付限额"), **MONEY)
    critical_deductible = models.DecimalField(_("大病保险起付线"), **MONEY, default=Decimal("7500"))
    critical_ratio = models.DecimalField(_("大病保险支付比例"), **RATE, default=Decimal("0.50"))
    class_cap_i = models.DecimalField(_("一类病种默认限额"), **MONEY, default=Decimal("100000"))
    class_cap_ii = models.DecimalField(_("二类病种默认限额"), **MONEY, default=Decimal("5000"))
    easy_deductible_factor = models.DecimalField(_("困难群体起付线系数"), **RATE, default=Decimal("0.5"))
    easy_critical_ratio = models.DecimalField(_("困难群体大病支付比例"), **RATE, default=Decimal("0.90"))
    assistance_ratio = models.DecimalField(_("医疗救助比例"), **RATE, default=Decimal("0.70"))
    subsistence_uplift = models.DecimalField(_("低保对象救助比例上浮"), **RATE, default=Decimal("0.05"))
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("待遇参数")
        verbose_name_plural = pgettext_lazy("plural", "待遇参数")
        ordering = ["region__code", "year", "fund"]
        constraints = [
            models.UniqueConstraint(fields=["region", "fund", "year"], name="benefit_parameters_unique"),
            models.CheckConstraint(
                condition=Q(assistance_ratio__gte=0) & Q(subsistence_uplift__gte=0)
                & Q(assistance_ratio__lte=Decimal(1) - F("subsistence_uplift")),
                name="benefit_assistance_within_one",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.region.code} {self.fund} {self.year}"


class SpecialOutpatientClaim(models.Model):
    """门诊特殊病种 claim settled at inpatient level in three layers. Stored claims are valid (a
    refused claim is answered with its reason and never stored); the split is the current
    settlement of the patient's fund-year, recomputed as a whole when an earlier claim or a stay
    arrives (each change recorded as a SettlementCorrection)."""

    # region is denormalised from the institution (whose FK is enforced), as a case's is: no second
    # per-row FK check (docs/decisions.md item 64)
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="special_outpatient_claims", db_index=False,
                               db_constraint=False, verbose_name=_("统筹区"))
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="special_outpatient_claims", db_index=False, verbose_name=_("定点医疗机构"))
    claim_no = models.CharField(_("结算单号"), max_length=40)
    fund = models.CharField(_("险种"), max_length=16, choices=Fund.choices)
    patient_id = models.CharField(_("参保人编号"), max_length=64)
    disease_code = models.CharField(_("病种编码"), max_length=32)
    service_date = models.DateField(_("就诊日期"))
    total_cost = models.DecimalField(_("医疗总费用"), **MONEY)
    eligible_cost = models.DecimalField(_("政策范围内费用"), **MONEY)
    source = models.CharField(_("来源"), max_length=16, choices=ClaimSource.choices)
    basic = models.DecimalField(_("基本医保"), **MONEY, null=True, blank=True)
    critical = models.DecimalField(_("大病保险"), **MONEY, null=True, blank=True)
    assistance = models.DecimalField(_("医疗救助"), **MONEY, null=True, blank=True)
    patient_pay = models.DecimalField(_("个人负担"), **MONEY, null=True, blank=True)
    explanation = models.JSONField(_("计算说明"), default=dict, blank=True)
    settled_at = models.DateTimeField(_("结算时间"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("创建时间"))

    class Meta:
        verbose_name = _("门诊特殊病种结算")
        verbose_name_plural = pgettext_lazy("plural", "门诊特殊病种结算")
        ordering = ["service_date", "claim_no"]
        constraints = [
            models.UniqueConstraint(fields=["institution", "claim_no"], name="special_outpatient_claim_unique"),
            models.CheckConstraint(condition=Q(eligible_cost__gte=0) & Q(eligible_cost__lte=F("total_cost")), name="so_claim_eligible_within_total"),
            models.CheckConstraint(
                condition=Q(settled_at__isnull=True) | (Q(basic__gte=0) & Q(critical__gte=0) & Q(assistance__gte=0) & Q(patient_pay__gte=0)),
                name="so_claim_layers_nonneg",
            ),
        ]
        indexes = [
            models.Index(fields=["region", "patient_id", "fund", "service_date"], name="so_claim_patient_idx"),
            models.Index(fields=["region", "service_date"], name="so_claim_period_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.claim_no} @ {self.institution_id}"

    @property
    def year(self) -> int:
        return self.service_date.year


class SettlementCorrection(models.Model):
    """A settled claim whose split changed when its patient's year was settled again (an earlier
    claim or stay arrived late, a category changed): what before, what after, why."""

    claim = models.ForeignKey(SpecialOutpatientClaim, on_delete=models.CASCADE, related_name="corrections", verbose_name=_("门诊特殊病种结算"))
    before = models.JSONField(_("更正前"))
    after = models.JSONField(_("更正后"))
    cause = models.CharField(_("原因"), max_length=300)
    source = models.CharField(_("来源"), max_length=16, choices=ClaimSource.choices)
    changed_at = models.DateTimeField(_("更正时间"), auto_now_add=True)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("更正人"))

    class Meta:
        verbose_name = _("结算更正")
        verbose_name_plural = pgettext_lazy("plural", "结算更正")
        ordering = ["-changed_at", "-id"]
