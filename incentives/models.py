"""Incentive inputs (the events hospitals report). Rules and payouts: see below the inputs."""
from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from common.models import Reviewable
from drg.models import MONEY, RATE, Institution, Region
from incentives.choices import IncentiveBasis, PayeeKind, PayoutStatus
from incentives.domain.rules import RuleSpec, overlapping, parse_grade_amounts, rule_spec_errors


class HospiceKind(models.TextChoices):
    BED = "bed", "新增安宁疗护床位 bed"
    INPATIENT = "inpatient", "住院安宁疗护 inpatient"
    HOME = "home", "居家安宁疗护 home"


class ChronicEnrollment(Reviewable):
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="chronic_enrollments")
    patient_id = models.CharField(max_length=64)
    disease = models.CharField(max_length=64)
    enrolled_on = models.DateField()

    class Meta:
        ordering = ["institution__code", "patient_id", "disease"]
        constraints = [models.UniqueConstraint(fields=["institution", "patient_id", "disease"], name="chronic_enrollment_unique")]
        indexes = [models.Index(fields=["patient_id", "enrolled_on"], name="chronic_patient_idx")]


class TcmWorkload(Reviewable):
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="tcm_workloads")
    month = models.DateField(help_text="first day of the month reported")
    prescriptions = models.PositiveIntegerField()

    class Meta:
        ordering = ["institution__code", "month"]
        constraints = [models.UniqueConstraint(fields=["institution", "month"], name="tcm_workload_unique")]


class HospiceService(Reviewable):
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="hospice_services")
    kind = models.CharField(max_length=16, choices=HospiceKind.choices)
    patient_id = models.CharField(max_length=64, blank=True)
    service_date = models.DateField()
    quantity = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["institution__code", "service_date", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["institution", "kind", "patient_id", "service_date"], name="hospice_service_unique"),
            models.CheckConstraint(condition=Q(kind="bed") | ~Q(patient_id=""), name="hospice_patient_required"),
        ]


class Screening(Reviewable):
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="screenings")
    patient_id = models.CharField(max_length=64)
    screening_date = models.DateField()
    fee = models.DecimalField(**MONEY)
    high_risk = models.BooleanField(default=False)

    class Meta:
        ordering = ["institution__code", "screening_date", "patient_id"]
        constraints = [
            models.UniqueConstraint(fields=["institution", "patient_id", "screening_date"], name="screening_unique"),
            models.CheckConstraint(condition=Q(fee__gte=0), name="screening_fee_nonneg"),
        ]


# --- Rules and payouts (SETTLEMENT.md §7; see docs/incentives.md) ---------------------------------


class IncentiveRule(models.Model):
    """One incentive rule, as data: what it counts (basis), how it is priced (amount per unit,
    amounts per surgery grade, or a rate of fees), who is paid, and when it is in force
    [valid_from, valid_to). A record counts under the rule whose window holds the record's date.
    To change a rule from a date on, close it (valid_to) and add a successor with a new code."""

    code = models.CharField(max_length=64, unique=True, help_text="written in incentives.csv, e.g. tumor_surgery")
    name = models.CharField(max_length=200)
    basis = models.CharField(max_length=32, choices=IncentiveBasis.choices)
    amount = models.DecimalField("amount per unit", **MONEY, null=True, blank=True)
    grade_amounts = models.JSONField(
        "amounts per surgery grade", default=dict, blank=True, help_text='surgery rules only, e.g. {"3": "1000", "4": "2000"}'
    )
    rate = models.DecimalField("rate of fees", **RATE, null=True, blank=True, help_text="fee-based rules only, e.g. 0.30")
    public_only = models.BooleanField("public institutions only", default=False)
    payee = models.CharField(max_length=16, choices=PayeeKind.choices, default=PayeeKind.INSTITUTION)
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True, help_text="exclusive; empty = open-ended")
    yearly_cap = models.DecimalField("yearly cap per payee", **MONEY, null=True, blank=True)
    description = models.TextField(blank=True, help_text="policy reference (文件依据)")
    history = HistoricalRecords()

    class Meta:
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

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="incentive_budgets")
    year = models.PositiveSmallIntegerField()
    amount = models.DecimalField(**MONEY)
    note = models.TextField(blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["region__code", "year"]
        constraints = [
            models.UniqueConstraint(fields=["region", "year"], name="incentive_budget_unique"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="incentive_budget_nonneg"),
        ]

    def __str__(self) -> str:
        return f"{self.region.code} {self.year}: {self.amount}"


class Payout(models.Model):
    """A region's incentive payout for one year: computed (draft), approved by another user than
    the one who computed it, then marked paid. One per region and year; a draft is replaced when
    recomputed, an approved or paid payout is final."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="incentive_payouts")
    year = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=PayoutStatus.choices, default=PayoutStatus.DRAFT, db_index=True)
    computed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    computed_at = models.DateTimeField()
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    paid_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    paid_at = models.DateTimeField(null=True, blank=True)
    gross_total = models.DecimalField("Σ line amounts before caps", **MONEY)
    capped_total = models.DecimalField("Σ after caps", **MONEY)
    total = models.DecimalField("Σ payable", **MONEY)
    budget_amount = models.DecimalField("fiscal budget applied", **MONEY, null=True, blank=True)
    prorated = models.BooleanField(default=False)
    rules_snapshot = models.JSONField(default=list, help_text="the rules as they were when computed")
    history = HistoricalRecords()

    class Meta:
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
        return f"incentives {self.region.code} {self.year} ({self.status})"


class PayoutLine(models.Model):
    """One payee and rule of a payout. `amount` is what is paid: gross_amount (r2 of the exact sum)
    after the rule's cap (capped_amount) and the fiscal budget's pro rata. source_ids lists the
    ids of the counted records of source_model (compact: one JSON array per line)."""

    payout = models.ForeignKey(Payout, on_delete=models.CASCADE, related_name="lines")
    payee_code = models.CharField(max_length=32)
    institution = models.ForeignKey(
        Institution, null=True, blank=True, on_delete=models.PROTECT, related_name="incentive_lines", help_text="empty when a group is paid"
    )
    rule = models.ForeignKey(IncentiveRule, on_delete=models.PROTECT, related_name="payout_lines")
    rule_code = models.CharField(max_length=64)
    count = models.PositiveBigIntegerField()
    unit_amount = models.DecimalField(**MONEY, null=True, blank=True)
    rate = models.DecimalField(**RATE, null=True, blank=True)
    basis_amount = models.DecimalField("fees the rate applies to", **MONEY, null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    gross_amount = models.DecimalField(**MONEY)
    capped_amount = models.DecimalField(**MONEY)
    amount = models.DecimalField(**MONEY)
    source_model = models.CharField(max_length=32)
    source_ids = models.JSONField(default=list)

    class Meta:
        ordering = ["payout_id", "payee_code", "rule_code"]
        constraints = [models.UniqueConstraint(fields=["payout", "payee_code", "rule_code"], name="incentive_line_unique")]
        indexes = [models.Index(fields=["institution", "payout"], name="incentive_line_inst_idx")]

    def __str__(self) -> str:
        return f"{self.payee_code} {self.rule_code} {self.amount}"
