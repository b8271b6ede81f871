"""SETTLEMENT.md §7: incentive rules as data. Pure (stdlib and decimal only).

A rule names its count basis (what is counted), its pricing (a flat amount per unit, amounts per
surgery grade, or a rate of fees), who is paid (the institution or its health-community group),
whether private institutions are left out, its validity [valid_from, valid_to) and an optional
yearly cap per payee. The model `incentives.models.IncentiveRule` stores exactly these fields and
validates them with `rule_spec_errors`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Mapping

# Count bases (the rule codes of the Yuhuan 2024 default set use the same words).
TUMOR_SURGERY = "tumor_surgery"
CHRONIC_ENROLLMENT = "chronic_enrollment"
TCM_PRESCRIPTION = "tcm_prescription"
TCM_BED_DAY = "tcm_bed_day"
HOSPICE_BED = "hospice_bed"
HOSPICE_INPATIENT = "hospice_inpatient"
HOSPICE_HOME = "hospice_home"
SCREENING_WAIVER = "screening_waiver"

BASES: tuple[str, ...] = (
    TUMOR_SURGERY,
    CHRONIC_ENROLLMENT,
    TCM_PRESCRIPTION,
    TCM_BED_DAY,
    HOSPICE_BED,
    HOSPICE_INPATIENT,
    HOSPICE_HOME,
    SCREENING_WAIVER,
)
GRADED_BASES = frozenset({TUMOR_SURGERY})  # priced per surgery grade
MONEY_BASES = frozenset({SCREENING_WAIVER})  # carry a money amount (fees) that a rate applies to

# The kind of source record each basis counts (the line keeps the ids of these records).
SOURCE_OF_BASIS: Mapping[str, str] = {
    TUMOR_SURGERY: "case",
    CHRONIC_ENROLLMENT: "chronic_enrollment",
    TCM_PRESCRIPTION: "tcm_workload",
    TCM_BED_DAY: "case",
    HOSPICE_BED: "hospice_service",
    HOSPICE_INPATIENT: "hospice_service",
    HOSPICE_HOME: "hospice_service",
    SCREENING_WAIVER: "screening",
}

PAYEE_INSTITUTION = "institution"
PAYEE_GROUP = "group"
PAYEES = (PAYEE_INSTITUTION, PAYEE_GROUP)


@dataclass(frozen=True)
class RuleSpec:
    code: str
    basis: str
    amount: Decimal | None = None  # per unit (case, patient, prescription, bed day, bed, screening)
    grade_amounts: Mapping[int, Decimal] = field(default_factory=dict)  # surgery grade -> amount per case
    rate: Decimal | None = None  # share of the fees (screening waiver: 0.30)
    public_only: bool = False
    payee: str = PAYEE_INSTITUTION
    valid_from: date = date(1900, 1, 1)
    valid_to: date | None = None  # exclusive
    yearly_cap: Decimal | None = None  # per payee and year, applied to the line's amount

    @property
    def pricing(self) -> str:
        if self.rate is not None:
            return "rate"
        if self.grade_amounts:
            return "graded"
        return "unit"

    def overlaps_year(self, year: int) -> bool:
        return self.valid_from < date(year + 1, 1, 1) and (self.valid_to is None or self.valid_to > date(year, 1, 1))


def parse_grade_amounts(raw: Mapping | None) -> dict[int, Decimal]:
    """JSON {"3": "1000", "4": "2000"} -> {3: Decimal("1000"), 4: Decimal("2000")}; ValueError if malformed."""
    if not raw:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError('grade amounts must be an object like {"3": "1000", "4": "2000"}')
    parsed: dict[int, Decimal] = {}
    for key, value in raw.items():
        try:
            grade = int(str(key))
        except ValueError:
            raise ValueError(f"grade {key!r} is not a whole number") from None
        if isinstance(value, float):
            raise ValueError(f"grade {key}: write the amount as a string or integer, not a float")
        try:
            amount = Decimal(str(value))
        except ArithmeticError:
            raise ValueError(f"grade {key}: amount {value!r} is not a number") from None
        if not amount.is_finite():
            raise ValueError(f"grade {key}: amount {value!r} is not a number")
        parsed[grade] = amount
    return parsed


def rule_spec_errors(spec: RuleSpec) -> dict[str, str]:
    """Field -> message for every way the rule cannot be applied (empty when it is valid)."""
    errors: dict[str, str] = {}
    if spec.basis not in BASES:
        errors["basis"] = f"unknown basis {spec.basis!r}"
    if spec.payee not in PAYEES:
        errors["payee"] = f"unknown payee {spec.payee!r}"
    if spec.valid_to is not None and spec.valid_to <= spec.valid_from:
        errors["valid_to"] = "must be after valid_from (valid_to is exclusive)"
    priced = [name for name, set_ in (("amount", spec.amount is not None), ("grade_amounts", bool(spec.grade_amounts)), ("rate", spec.rate is not None)) if set_]
    if len(priced) != 1:
        errors["amount"] = "set exactly one of: amount per unit, amounts per grade, rate of fees"
    if spec.basis in GRADED_BASES and not spec.grade_amounts:
        errors["grade_amounts"] = 'a surgery rule is priced per grade, e.g. {"3": "1000", "4": "2000"}'
    if spec.grade_amounts and spec.basis not in GRADED_BASES:
        errors["grade_amounts"] = "amounts per grade apply to surgery rules only"
    for grade, amount in spec.grade_amounts.items():
        if not 1 <= grade <= 4:
            errors["grade_amounts"] = f"grade {grade} is not a surgery grade (1-4)"
        elif amount < 0:
            errors["grade_amounts"] = f"grade {grade}: amount must not be negative"
    if spec.rate is not None:
        if spec.basis not in MONEY_BASES:
            errors["rate"] = "a rate applies to fee-based rules only (screening waiver)"
        elif not Decimal(0) <= spec.rate <= 1:
            errors["rate"] = "must be between 0 and 1"
    if spec.amount is not None and spec.amount < 0:
        errors["amount"] = "must not be negative"
    if spec.yearly_cap is not None and spec.yearly_cap < 0:
        errors["yearly_cap"] = "must not be negative"
    return errors


def overlapping(a: RuleSpec, b: RuleSpec) -> bool:
    """Two rules of the same basis whose validity windows share a day would pay the same record twice."""
    if a.basis != b.basis:
        return False
    a_end = a.valid_to or date.max
    b_end = b.valid_to or date.max
    return a.valid_from < b_end and b.valid_from < a_end
