"""Catalogs (regions, institutions, DRG groups per region and year, coefficients, TCM equivalents,
payment scheme parameters) and the cases hospitals submit."""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from common.models import Reviewable
from drg.choices import ChangeSource, DischargeStatus, Fund, GroupKind, InstitutionCategory, ParameterKind, RevisionStatus

MONEY = {"max_digits": 16, "decimal_places": 2}
POINTS = {"max_digits": 14, "decimal_places": 4}
RATE = {"max_digits": 9, "decimal_places": 6}


class Region(models.Model):
    """统筹区: a pooling area (city or county)."""

    code = models.CharField(max_length=12, unique=True)
    name = models.CharField(max_length=100)
    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Institution(models.Model):
    """定点医疗机构."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="institutions")
    code = models.CharField(max_length=32)
    name = models.CharField(max_length=200)
    level = models.PositiveSmallIntegerField()
    category = models.CharField(max_length=16, choices=InstitutionCategory.choices)
    is_public = models.BooleanField(default=True)
    group_code = models.CharField("health-community group 健共体", max_length=32, blank=True)
    coefficient = models.DecimalField("default coefficient 差异系数", max_digits=8, decimal_places=4, null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
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

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="drg_groups")
    year = models.PositiveSmallIntegerField()
    code = models.CharField(max_length=16)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=GroupKind.choices)
    base_points = models.DecimalField(**POINTS, null=True, blank=True)
    avg_cost = models.DecimalField(**MONEY, null=True, blank=True)
    daily_points = models.DecimalField(**POINTS, null=True, blank=True)
    same_price = models.BooleanField("同病同价 (no coefficient)", default=False)
    readmission_exempt = models.BooleanField(default=False)
    history = HistoricalRecords()

    class Meta:
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

    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="coefficients")
    year = models.PositiveSmallIntegerField()
    drg_code = models.CharField(max_length=16)
    coefficient = models.DecimalField(max_digits=8, decimal_places=4)
    history = HistoricalRecords()

    class Meta:
        ordering = ["institution__code", "year", "drg_code"]
        constraints = [
            models.UniqueConstraint(fields=["institution", "year", "drg_code"], name="coefficient_unique"),
            models.CheckConstraint(condition=Q(coefficient__gt=0), name="coefficient_positive"),
        ]


class TcmEquivalent(models.Model):
    """中医优势病种: a TCM-treated case of drg_code is valued as equivalent_code (同病同效同价)."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="tcm_equivalents")
    year = models.PositiveSmallIntegerField()
    drg_code = models.CharField(max_length=16)
    equivalent_code = models.CharField(max_length=16)
    history = HistoricalRecords()

    class Meta:
        ordering = ["region__code", "year", "drg_code"]
        constraints = [models.UniqueConstraint(fields=["region", "year", "drg_code"], name="tcm_equivalent_unique")]


def default_high_outlier_tiers() -> list:
    return [{"upto": 100, "multiple": 3}, {"upto": 200, "multiple": 2}, {"upto": None, "multiple": 1.5}]


def default_surplus_tiers() -> list:
    return [{"upto": 0.10, "hospital_share": 0.85}, {"upto": None, "hospital_share": 0}]


def default_overrun_tiers() -> list:
    return [{"upto": 0.05, "fund_share": 0.5}, {"upto": 0.10, "fund_share": 0.3}, {"upto": None, "fund_share": 0}]


class PaymentScheme(models.Model):
    """The payment scheme parameters (⚙ in SETTLEMENT.md) of one region and year; defaults per spec."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="schemes")
    year = models.PositiveSmallIntegerField()
    all_case_avg_cost = models.DecimalField("全部病例次均费用 A", **MONEY)
    high_outlier_tiers = models.JSONField(default=default_high_outlier_tiers)
    low_outlier_multiple = models.DecimalField(**RATE, default=Decimal("0.4"))
    readmission_days = models.PositiveSmallIntegerField(default=15)
    readmission_factor = models.DecimalField(**RATE, default=Decimal("0.5"))
    prepay_ratio = models.DecimalField(**RATE, default=Decimal("0.95"))
    surplus_tiers = models.JSONField(default=default_surplus_tiers)
    overrun_tiers = models.JSONField(default=default_overrun_tiers)
    tcm_rate_tiers = models.JSONField(default=list, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["region__code", "year"]
        constraints = [
            models.UniqueConstraint(fields=["region", "year"], name="scheme_unique"),
            models.CheckConstraint(condition=Q(all_case_avg_cost__gt=0), name="scheme_avg_cost_positive"),
            models.CheckConstraint(condition=Q(prepay_ratio__gte=Decimal("0.85"), prepay_ratio__lte=1), name="scheme_prepay_ratio_range"),
        ]

    def __str__(self) -> str:
        return f"scheme {self.region.code} {self.year}"


class ParameterRevision(models.Model):
    """One revision of the parameters in force (SETTLEMENT.md §6): a region-year's payment scheme, a
    region-year's catalog (DRG groups, coefficients, TCM equivalents) or a region's institution
    attributes. Drafted with a reason by one person, approved by another (drg.revisions); approval
    puts ``values`` in force in the catalog tables. ``values`` is the full snapshot of what the
    revision puts in force, so a run that recorded the revision is explained by it long after."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="parameter_revisions")
    kind = models.CharField(max_length=16, choices=ParameterKind.choices)
    year = models.PositiveSmallIntegerField(null=True, blank=True, help_text="empty for institution attributes (not per year)")
    revision = models.PositiveSmallIntegerField()
    reason = models.TextField()
    values = models.JSONField(help_text="the full snapshot this revision puts in force")
    based_on = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="the approved revision in force when this one was drafted",
    )
    status = models.CharField(max_length=16, choices=RevisionStatus.choices, default=RevisionStatus.DRAFT, db_index=True)
    drafted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "参数修订 parameter revision"
        verbose_name_plural = "参数修订 parameter revisions"
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
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="cases", db_index=False, db_constraint=False)
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="cases", db_index=False)
    case_no = models.CharField(max_length=40)
    fund = models.CharField(max_length=16, choices=Fund.choices)
    patient_id = models.CharField(max_length=64)
    admission_date = models.DateField()
    discharge_date = models.DateField()
    drg_code = models.CharField(max_length=16)
    total_cost = models.DecimalField(**MONEY)
    self_pay = models.DecimalField(**MONEY)
    discharge_status = models.CharField(max_length=16, choices=DischargeStatus.choices, default=DischargeStatus.NORMAL)
    tcm_treatment = models.BooleanField(default=False)
    tcm_cost = models.DecimalField(**MONEY, default=Decimal("0"))
    surgery_grade = models.PositiveSmallIntegerField(default=0)
    malignant_tumor_surgery = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
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
        return f"{self.case_no} @ {self.institution_id}"


class CaseCorrection(models.Model):
    """A recorded change to a stored case (what before, what after, who, from where)."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="corrections")
    source = models.CharField(max_length=16, choices=ChangeSource.choices)
    changed_at = models.DateTimeField(auto_now_add=True)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    before = models.JSONField()
    after = models.JSONField()
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-changed_at", "-id"]


class CorrectionRequest(Reviewable):
    """A hospital's request about a case of a finalized period; the bureau approves it and the next
    (cumulative or annual) run picks it up (SETTLEMENT.md §6).

    Two kinds: a **change** to a stored case (``case`` set, ``proposed`` holds the fields to change)
    and a **late case**, a new case discharged in a finalized period (``case_no`` set, ``proposed``
    holds the whole case row; approval creates the case and links it in ``case``)."""

    class Kind(models.TextChoices):
        CHANGE = "change", "更正 change to a stored case"
        LATE_CASE = "late_case", "补报 late case of a finalized period"

    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="correction_requests")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CHANGE)
    case = models.ForeignKey(
        Case, on_delete=models.PROTECT, related_name="correction_requests", null=True, blank=True,
        help_text="the case to change; for a late case, the case its approval created",
    )
    case_no = models.CharField(max_length=40, blank=True, help_text="late case: the new case's case_no")
    proposed = models.JSONField(help_text="change: the case fields as the hospital wants them; late case: the whole case row")
    reason = models.TextField()
    history = HistoricalRecords()

    class Meta:
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

    def __str__(self) -> str:
        return f"{self.kind} {self.target_case_no}"

    @property
    def target_case_no(self) -> str:
        """The case_no the request is about (the stored case's, or the late case's)."""
        if self.kind == self.Kind.LATE_CASE or self.case_id is None:
            return self.case_no
        return self.case.case_no


class SpecialReview(Reviewable):
    """特病单议: a case paid at an approved cost instead of its group points."""

    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="special_reviews")
    case = models.OneToOneField(Case, on_delete=models.PROTECT, related_name="special_review")
    requested_cost = models.DecimalField(**MONEY, null=True, blank=True)
    approved_cost = models.DecimalField(**MONEY, null=True, blank=True)
    reason = models.TextField(blank=True)
    documents = models.JSONField(default=list, blank=True, help_text="references to supporting documents")
    history = HistoricalRecords()

    class Meta:
        permissions = [("review_specialreview", "Can approve or reject special reviews")]
        ordering = ["institution__code", "case__case_no"]
        constraints = [
            models.CheckConstraint(condition=Q(approved_cost__isnull=True) | Q(approved_cost__gte=0), name="special_review_cost_nonneg"),
            models.CheckConstraint(condition=~Q(status="approved") | Q(approved_cost__isnull=False), name="special_review_approved_has_cost"),
        ]


class InstitutionCredential(models.Model):
    """An API key of one institution. Only a hash is stored; the key is shown once when issued."""

    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="credentials")
    name = models.CharField(max_length=100, help_text="what system uses the key, e.g. HIS production")
    prefix = models.CharField(max_length=12, unique=True)
    key_hash = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["institution__code", "-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.institution.code})"


class IdempotencyRecord(models.Model):
    """The first answer to a request sent with an Idempotency-Key, replayed on retries."""

    institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=128)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=300)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["institution", "key"], name="idempotency_key_unique")]
