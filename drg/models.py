"""Catalogs (regions, institutions, DRG groups per region and year, coefficients, TCM equivalents,
payment scheme parameters) and the cases hospitals submit."""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from common.models import IdentifierField, Reviewable, review_indexes
from drg.choices import ChangeSource, DischargeStatus, Fund, GroupKind, InstitutionCategory, ParameterKind, RevisionStatus

MONEY = {"max_digits": 16, "decimal_places": 2}
POINTS = {"max_digits": 14, "decimal_places": 4}
RATE = {"max_digits": 9, "decimal_places": 6}


class Region(models.Model):
    """统筹区: a pooling area (city or county)."""

    code = models.CharField(_("统筹区编码"), max_length=12, unique=True)
    name = models.CharField(_("统筹区名称"), max_length=100)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("统筹区")
        verbose_name_plural = pgettext_lazy("plural", "统筹区")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Institution(models.Model):
    """定点医疗机构."""

    region = models.ForeignKey(Region, verbose_name=_("统筹区"), on_delete=models.PROTECT, related_name="institutions")
    code = models.CharField(_("机构编码"), max_length=32)
    name = models.CharField(_("机构名称"), max_length=200)
    level = models.PositiveSmallIntegerField(_("医院等级"))
    category = models.CharField(_("机构类别"), max_length=16, choices=InstitutionCategory.choices)
    is_public = models.BooleanField(_("公立"), default=True)
    group_code = models.CharField(_("健共体编码"), max_length=32, blank=True)
    coefficient = models.DecimalField(_("默认差异系数"), max_digits=8, decimal_places=4, null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("定点医疗机构")
        verbose_name_plural = pgettext_lazy("plural", "定点医疗机构")
        ordering = ["region__code", "code"]
        constraints = [
            models.UniqueConstraint(fields=["region", "code"], name="institution_code_unique_in_region"),
            models.CheckConstraint(condition=Q(level__gte=1, level__lte=3), name="institution_level_1_3"),
            models.CheckConstraint(condition=Q(coefficient__isnull=True) | Q(coefficient__gt=0), name="institution_coefficient_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def payee_group(self) -> str:
        return self.group_code or self.code


class DrgGroup(models.Model):
    """病组 of one region's catalog for one year (base points are recalculated yearly)."""

    region = models.ForeignKey(Region, verbose_name=_("统筹区"), on_delete=models.PROTECT, related_name="drg_groups")
    year = models.PositiveSmallIntegerField(_("年度"))
    code = models.CharField(_("DRG 编码"), max_length=16)
    name = models.CharField(_("病组名称"), max_length=200)
    kind = models.CharField(_("病组类型"), max_length=16, choices=GroupKind.choices)
    base_points = models.DecimalField(_("基准点数"), **POINTS, null=True, blank=True)
    avg_cost = models.DecimalField(_("次均费用"), **MONEY, null=True, blank=True)
    daily_points = models.DecimalField(_("床日点数"), **POINTS, null=True, blank=True)
    same_price = models.BooleanField(_("同病同价（不乘系数）"), default=False)
    readmission_exempt = models.BooleanField(_("再入院不减半"), default=False)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("DRG 病组")
        verbose_name_plural = pgettext_lazy("plural", "DRG 病组")
        ordering = ["region__code", "year", "code"]
        constraints = [
            models.UniqueConstraint(fields=["region", "year", "code"], name="drg_group_unique"),
            models.CheckConstraint(condition=Q(base_points__isnull=True) | Q(base_points__gte=0), name="drg_base_points_nonneg"),
            models.CheckConstraint(condition=Q(avg_cost__isnull=True) | Q(avg_cost__gt=0), name="drg_avg_cost_positive"),
            models.CheckConstraint(condition=Q(daily_points__isnull=True) | Q(daily_points__gte=0), name="drg_daily_points_nonneg"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name} ({self.year})"


class Coefficient(models.Model):
    """An institution's own coefficient for one group and year (overrides its default)."""

    institution = models.ForeignKey(Institution, verbose_name=_("定点医疗机构"), on_delete=models.PROTECT, related_name="coefficients")
    year = models.PositiveSmallIntegerField(_("年度"))
    drg_code = models.CharField(_("DRG 编码"), max_length=16)
    coefficient = models.DecimalField(_("差异系数"), max_digits=8, decimal_places=4)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("差异系数")
        verbose_name_plural = pgettext_lazy("plural", "差异系数")
        ordering = ["institution__code", "year", "drg_code"]
        constraints = [
            models.UniqueConstraint(fields=["institution", "year", "drg_code"], name="coefficient_unique"),
            models.CheckConstraint(condition=Q(coefficient__gt=0), name="coefficient_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.institution.code} {self.institution.name} · {self.drg_code} · {self.year}"


class TcmEquivalent(models.Model):
    """中医优势病种: a TCM-treated case of drg_code is valued as equivalent_code (同病同效同价)."""

    region = models.ForeignKey(Region, verbose_name=_("统筹区"), on_delete=models.PROTECT, related_name="tcm_equivalents")
    year = models.PositiveSmallIntegerField(_("年度"))
    drg_code = models.CharField(_("DRG 编码"), max_length=16)
    equivalent_code = models.CharField(_("中医优势病种对应编码"), max_length=16)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("中医优势病种对应")
        verbose_name_plural = pgettext_lazy("plural", "中医优势病种对应")
        ordering = ["region__code", "year", "drg_code"]
        constraints = [models.UniqueConstraint(fields=["region", "year", "drg_code"], name="tcm_equivalent_unique")]


def default_high_outlier_tiers() -> list:
    return [{"upto": 100, "multiple": 3}, {"upto": 200, "multiple": 2}, {"upto": None, "multiple": 1.5}]


def default_surplus_tiers() -> list:
    return [{"upto": 0.10, "hospital_share": 0.85}, {"upto": None, "hospital_share": 0}]


def default_overrun_tiers() -> list:
    return [{"upto": 0.05, "fund_share": 0.5}, {"upto": 0.10, "fund_share": 0.3}, {"upto": None, "fund_share": 0}]

    def __str__(self) -> str:
        return f"{self.drg_code} → {self.equivalent_code} · {self.year}"


class PaymentScheme(models.Model):
    """The payment scheme parameters (⚙ in SETTLEMENT.md) of one region and year; defaults per spec."""

    region = models.ForeignKey(Region, verbose_name=_("统筹区"), on_delete=models.PROTECT, related_name="schemes")
    year = models.PositiveSmallIntegerField(_("年度"))
    all_case_avg_cost = models.DecimalField(_("全部病例次均费用"), **MONEY)
    high_outlier_tiers = models.JSONField(_("高倍率分档"), default=default_high_outlier_tiers)
    low_outlier_multiple = models.DecimalField(_("低倍率界值"), **RATE, default=Decimal("0.4"))
    readmission_days = models.PositiveSmallIntegerField(_("再入院天数"), default=15)
    readmission_factor = models.DecimalField(_("再入院系数"), **RATE, default=Decimal("0.5"))
    prepay_ratio = models.DecimalField(_("预付比例"), **RATE, default=Decimal("0.95"))
    surplus_tiers = models.JSONField(_("结余分档"), default=default_surplus_tiers)
    overrun_tiers = models.JSONField(_("超支分档"), default=default_overrun_tiers)
    tcm_rate_tiers = models.JSONField(_("中医占比分档"), default=list, blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("付费方案")
        verbose_name_plural = pgettext_lazy("plural", "付费方案")
        ordering = ["region__code", "year"]
        constraints = [
            models.UniqueConstraint(fields=["region", "year"], name="scheme_unique"),
            models.CheckConstraint(condition=Q(all_case_avg_cost__gt=0), name="scheme_avg_cost_positive"),
            models.CheckConstraint(condition=Q(prepay_ratio__gte=Decimal("0.85"), prepay_ratio__lte=1), name="scheme_prepay_ratio_range"),
        ]

    def __str__(self) -> str:
        return _("%(region)s %(year)s 年付费方案") % {"region": f"{self.region.code} {self.region.name}", "year": self.year}


class ParameterRevision(models.Model):
    """One revision of the parameters in force (SETTLEMENT.md §6): a region-year's payment scheme, a
    region-year's catalog (DRG groups, coefficients, TCM equivalents) or a region's institution
    attributes. Drafted with a reason by one person, approved by another (drg.revisions); approval
    puts ``values`` in force in the catalog tables. ``values`` is the full snapshot of what the
    revision puts in force, so a run that recorded the revision is explained by it long after."""

    region = models.ForeignKey(Region, verbose_name=_("统筹区"), on_delete=models.PROTECT, related_name="parameter_revisions")
    kind = models.CharField(_("参数类别"), max_length=16, choices=ParameterKind.choices)
    year = models.PositiveSmallIntegerField(_("年度"), null=True, blank=True, help_text=_("机构属性不分年度，留空"))
    revision = models.PositiveSmallIntegerField(_("修订号"))
    reason = models.TextField(_("修订理由"))
    values = models.JSONField(_("参数内容"), help_text=_("本次修订生效的完整参数快照"))
    based_on = models.ForeignKey(
        "self", verbose_name=_("所依据的修订"), null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text=_("起草本修订时现行的已批准修订"),
    )
    status = models.CharField(_("状态"), max_length=16, choices=RevisionStatus.choices, default=RevisionStatus.DRAFT, db_index=True)
    drafted_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("起草人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("审核人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)
    decided_at = models.DateTimeField(_("审核时间"), null=True, blank=True)
    rejection_reason = models.TextField(_("驳回理由"), blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("参数修订")
        verbose_name_plural = pgettext_lazy("plural", "参数修订")
        permissions = [("approve_parameterrevision", "Can approve or reject parameter revisions (maker-checker)")]
        ordering = ["region__code", "kind", "-year", "-revision"]
        constraints = [
            models.UniqueConstraint(fields=["region", "kind", "year", "revision"], condition=Q(year__isnull=False),
                                    name="parameter_revision_unique"),
            models.UniqueConstraint(fields=["region", "kind", "revision"], condition=Q(year__isnull=True),
                                    name="parameter_revision_unique_yearless"),
            models.UniqueConstraint(fields=["region", "kind", "year"], condition=Q(status="draft", year__isnull=False),
                                    name="parameter_revision_one_draft"),
            models.UniqueConstraint(fields=["region", "kind"], condition=Q(status="draft", year__isnull=True),
                                    name="parameter_revision_one_draft_yearless"),
            models.CheckConstraint(condition=Q(kind="institutions", year__isnull=True) | (~Q(kind="institutions") & Q(year__isnull=False)),
                                   name="parameter_revision_year_by_kind"),
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | Q(drafted_by__isnull=True) | ~Q(decided_by=F("drafted_by")),
                name="parameter_revision_maker_checker",
            ),
        ]

    def __str__(self) -> str:
        year = f" {self.year}" if self.year else ""
        return f"{self.region.code} {self.kind}{year} r{self.revision} ({self.status})"


class Case(models.Model):
    """病例: one inpatient stay, settled on its discharge date; identified by (institution, case_no)."""

    # No single-column FK indexes: case_pool_period_idx leads with region and the (institution,
    # case_no) unique constraint with institution; redundant indexes only slow bulk loads.
    # region is denormalised from the institution (whose FK is enforced): no second per-row FK check.
    region = models.ForeignKey(Region, verbose_name=_("统筹区"), on_delete=models.PROTECT, related_name="cases", db_index=False, db_constraint=False)
    institution = models.ForeignKey(Institution, verbose_name=_("定点医疗机构"), on_delete=models.PROTECT, related_name="cases", db_index=False)
    case_no = IdentifierField(_("病案号"), max_length=40)
    fund = models.CharField(_("险种"), max_length=16, choices=Fund.choices)
    patient_id = IdentifierField(_("患者编号"), max_length=64)
    admission_date = models.DateField(_("入院日期"))
    discharge_date = models.DateField(_("出院日期"))
    drg_code = models.CharField(_("DRG 编码"), max_length=16)
    total_cost = models.DecimalField(_("总费用"), **MONEY)
    self_pay = models.DecimalField(_("个人自付"), **MONEY)
    discharge_status = models.CharField(_("离院方式"), max_length=16, choices=DischargeStatus.choices, default=DischargeStatus.NORMAL)
    tcm_treatment = models.BooleanField(_("中医治疗"), default=False)
    tcm_cost = models.DecimalField(_("中医费用"), **MONEY, default=Decimal("0"))
    surgery_grade = models.PositiveSmallIntegerField(_("手术等级"), default=0)
    malignant_tumor_surgery = models.BooleanField(_("恶性肿瘤手术"), default=False)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("病例")
        verbose_name_plural = pgettext_lazy("plural", "病例")
        ordering = ["institution__code", "case_no"]
        constraints = [
            models.UniqueConstraint(fields=["institution", "case_no"], name="case_no_unique_per_institution"),
            models.CheckConstraint(condition=Q(total_cost__gte=0), name="case_total_cost_nonneg"),
            models.CheckConstraint(condition=Q(self_pay__gte=0), name="case_self_pay_nonneg"),
            models.CheckConstraint(condition=Q(self_pay__lte=F("total_cost")), name="case_self_pay_within_total"),
            models.CheckConstraint(condition=Q(tcm_cost__gte=0), name="case_tcm_cost_nonneg"),
            models.CheckConstraint(condition=Q(discharge_date__gte=F("admission_date")), name="case_discharge_after_admission"),
            models.CheckConstraint(condition=Q(surgery_grade__lte=4), name="case_surgery_grade_0_4"),
        ]
        indexes = [
            models.Index(fields=["region", "fund", "discharge_date"], name="case_pool_period_idx"),
            models.Index(fields=["patient_id"], name="case_patient_idx"),
        ]

    def __str__(self) -> str:
        return _("病案号 %(case_no)s") % {"case_no": self.case_no}


class CaseCorrection(models.Model):
    """A recorded change to a stored case (what before, what after, who, from where)."""

    # db_constraint=False on the three keys into Case: drg_case is partitioned by region on
    # PostgreSQL (drg.partitions), where no unique key on id alone can back a foreign key
    case = models.ForeignKey(Case, verbose_name=_("病例"), on_delete=models.CASCADE, related_name="corrections", db_constraint=False)
    source = models.CharField(_("来源"), max_length=16, choices=ChangeSource.choices)
    changed_at = models.DateTimeField(_("更正时间"), auto_now_add=True)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("更正人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    before = models.JSONField(_("更正前"))
    after = models.JSONField(_("更正后"))
    reason = models.TextField(_("理由"), blank=True)

    class Meta:
        verbose_name = _("病例更正记录")
        verbose_name_plural = pgettext_lazy("plural", "病例更正记录")
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return _("病案号 %(case_no)s 的更正（%(when)s）") % {"case_no": self.case.case_no, "when": f"{self.changed_at:%Y-%m-%d %H:%M}" if self.changed_at else "—"}


class CorrectionRequest(Reviewable):
    """A hospital's request about a case of a finalized period; the bureau approves it and the next
    (cumulative or annual) run picks it up (SETTLEMENT.md §6).

    Two kinds: a **change** to a stored case (``case`` set, ``proposed`` holds the fields to change)
    and a **late case**, a new case discharged in a finalized period (``case_no`` set, ``proposed``
    holds the whole case row; approval creates the case and links it in ``case``)."""

    class Kind(models.TextChoices):
        CHANGE = "change", _("更正已入库病例")
        LATE_CASE = "late_case", _("已定稿期间补报病例")

    institution = models.ForeignKey(Institution, verbose_name=_("定点医疗机构"), on_delete=models.PROTECT, related_name="correction_requests")
    kind = models.CharField(_("申请类型"), max_length=16, choices=Kind.choices, default=Kind.CHANGE)
    case = models.ForeignKey(
        Case, verbose_name=_("病例"), on_delete=models.PROTECT, related_name="correction_requests", null=True, blank=True,
        db_constraint=False, help_text=_("要更正的病例；补报病例为批准后新建的病例"),
    )
    case_no = models.CharField(_("补报病案号"), max_length=40, blank=True, help_text=_("补报病例：新病例的病案号"))
    proposed = models.JSONField(_("申请内容"), help_text=_("更正：医院要求的病例字段；补报：整条病例"))
    reason = models.TextField(_("理由"))
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("更正申请")
        verbose_name_plural = pgettext_lazy("plural", "更正申请")
        permissions = [("review_correctionrequest", "Can approve or reject correction requests")]
        ordering = ["-submitted_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="change", case__isnull=False, case_no="") | (Q(kind="late_case") & ~Q(case_no=""))),
                name="correction_request_kind_target",
                violation_error_message="a change names a stored case (and no case_no); a late case names its new case_no",
            ),
            # one late case of a case_no awaits a decision at a time
            models.UniqueConstraint(
                fields=["institution", "case_no"], condition=Q(kind="late_case", status="submitted"),
                name="correction_request_one_pending_late_case",
                violation_error_message="a late case of this case_no already awaits a decision",
            ),
        ]
        indexes = review_indexes("correction_req")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.target_case_no}"

    @property
    def target_case_no(self) -> str:
        """The case_no the request is about (the stored case's, or the late case's)."""
        if self.kind == self.Kind.LATE_CASE or self.case_id is None:
            return self.case_no
        return self.case.case_no


class SpecialReview(Reviewable):
    """特病单议: a case paid at an approved cost instead of its group points."""

    institution = models.ForeignKey(Institution, verbose_name=_("定点医疗机构"), on_delete=models.PROTECT, related_name="special_reviews")
    case = models.OneToOneField(Case, verbose_name=_("病例"), on_delete=models.PROTECT, related_name="special_review", db_constraint=False)
    requested_cost = models.DecimalField(_("申请费用"), **MONEY, null=True, blank=True)
    approved_cost = models.DecimalField(_("核定费用"), **MONEY, null=True, blank=True)
    reason = models.TextField(_("理由"), blank=True)
    documents = models.JSONField(_("附件"), default=list, blank=True, help_text=_("佐证材料的引用"))
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("特病单议")
        verbose_name_plural = pgettext_lazy("plural", "特病单议")
        permissions = [("review_specialreview", "Can approve or reject special reviews")]
        ordering = ["institution__code", "case__case_no"]
        constraints = [
            models.CheckConstraint(condition=Q(approved_cost__isnull=True) | Q(approved_cost__gte=0), name="special_review_cost_nonneg"),
            models.CheckConstraint(condition=~Q(status="approved") | Q(approved_cost__isnull=False), name="special_review_approved_has_cost"),
        ]
        indexes = review_indexes("special_review")

    def __str__(self) -> str:
        return _("病案号 %(case_no)s 的特病单议") % {"case_no": self.case.case_no}


class InstitutionCredential(models.Model):
    """An API key of one institution. Only a hash is stored; the key is shown once when issued."""

    institution = models.ForeignKey(Institution, verbose_name=_("定点医疗机构"), on_delete=models.PROTECT, related_name="credentials")
    name = models.CharField(_("用途"), max_length=100, help_text=_("使用该密钥的系统，例如 HIS 生产环境"))
    prefix = models.CharField(_("密钥前缀"), max_length=12, unique=True)
    key_hash = models.CharField(_("密钥摘要"), max_length=128)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("经办人"), null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    revoked_at = models.DateTimeField(_("吊销时间"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("最近使用"), null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("接口密钥")
        verbose_name_plural = pgettext_lazy("plural", "接口密钥")
        ordering = ["institution__code", "-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.institution.code} {self.institution.name})"


class IdempotencyRecord(models.Model):
    """The first answer to a request sent with an Idempotency-Key, replayed on retries."""

    institution = models.ForeignKey(Institution, verbose_name=_("定点医疗机构"), on_delete=models.CASCADE, related_name="+")
    key = models.CharField(_("幂等键"), max_length=128)
    method = models.CharField(_("方法"), max_length=8)
    path = models.CharField(_("路径"), max_length=300)
    request_hash = models.CharField(_("请求摘要"), max_length=64)
    status_code = models.PositiveSmallIntegerField(_("状态码"))
    response_body = models.JSONField(_("应答"))
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("幂等记录")
        verbose_name_plural = pgettext_lazy("plural", "幂等记录")
        constraints = [models.UniqueConstraint(fields=["institution", "key"], name="idempotency_key_unique")]

    def __str__(self) -> str:
        return f"{self.institution.code} · {self.key}"
