"""SETTLEMENT.md §7: the lines of a year's incentive payout. Pure (pandas + decimal).

For each rule in force in the year: take the basis events of the year inside the rule's validity,
leave out private institutions when the rule is public-only, group them by payee, count, price
exactly, round once per line (r2), then apply the rule's yearly cap per payee, then the optional
fiscal budget (pro rata, largest remainder to the cent). Every line keeps its source record ids.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Sequence

import pandas as pd

from common.precision import EXACT, allocate_largest_remainder, r2, total_of
from incentives.domain.inputs import IncentiveInputs
from incentives.domain.rules import (
    CHRONIC_ENROLLMENT,
    HOSPICE_BED,
    HOSPICE_HOME,
    HOSPICE_INPATIENT,
    PAYEE_GROUP,
    SCREENING_WAIVER,
    SOURCE_OF_BASIS,
    TCM_BED_DAY,
    TCM_PRESCRIPTION,
    TUMOR_SURGERY,
    RuleSpec,
)

ZERO = Decimal("0")
EVENT_COLUMNS = ["source_id", "institution_id", "on", "quantity", "grade", "fee_fen", "unit"]
# Bases that count distinct patients per institution instead of summing quantities.
DISTINCT_BASES = frozenset({HOSPICE_INPATIENT, HOSPICE_HOME})


class IncentiveInputError(ValueError):
    """The inputs cannot be computed (e.g. a record of an institution outside the region)."""


@dataclass(frozen=True)
class PayoutLineResult:
    payee_code: str
    institution_id: int | None  # the paid institution; None when the payee is a group
    rule_code: str
    count: int
    unit_amount: Decimal | None  # amount per unit (unit-priced rules)
    rate: Decimal | None  # share of fees (rate rules)
    basis_amount: Decimal | None  # the fees the rate applies to (rate rules)
    detail: dict  # e.g. {"grades": {"3": 3, "4": 2}} for a graded rule
    gross_amount: Decimal  # r2 of the exact sum
    capped_amount: Decimal  # after the rule's yearly cap
    amount: Decimal  # payable: after the fiscal budget's pro rata
    source_model: str
    source_ids: tuple[int, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.payee_code, self.rule_code)


@dataclass(frozen=True)
class PayoutComputation:
    year: int
    lines: tuple[PayoutLineResult, ...]
    gross_total: Decimal
    capped_total: Decimal
    total: Decimal
    budget: Decimal | None
    prorated: bool
    rule_codes: tuple[str, ...] = field(default=())


def _events(rows: pd.DataFrame, *, on: str, quantity=1, grade=0, fee_fen=0, unit="") -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "source_id": rows["id"].astype("int64"),
            "institution_id": rows["institution_id"].astype("int64"),
            "on": pd.to_datetime(rows[on]).astype("datetime64[s]"),
        }
    )
    for name, value in (("quantity", quantity), ("grade", grade), ("fee_fen", fee_fen)):
        out[name] = (rows[value] if isinstance(value, str) else value)
        out[name] = out[name].astype("int64")
    out["unit"] = rows[unit].astype("object") if unit else ""
    return out[EVENT_COLUMNS].reset_index(drop=True)


def bed_days(admission: pd.Series, discharge: pd.Series) -> pd.Series:
    """§2 step 3: max(1, discharge − admission in days)."""
    days = (pd.to_datetime(discharge) - pd.to_datetime(admission)).dt.days.astype("int64")
    return days.clip(lower=1)


def first_enrollments(enrollments: pd.DataFrame, institutions: pd.DataFrame) -> pd.DataFrame:
    """Each patient's first ever enrollment, any disease: earliest enrolled_on, ties lowest
    institution code (then lowest record id, so the choice is deterministic)."""
    codes = institutions.set_index("id")["code"]
    df = enrollments.assign(_code=enrollments["institution_id"].map(codes))
    if df["_code"].isna().any():
        raise IncentiveInputError("an enrollment refers to an institution outside the region")
    df = df.sort_values(["patient_id", "enrolled_on", "_code", "id"], kind="mergesort")
    return df.drop_duplicates("patient_id", keep="first").drop(columns="_code")


def basis_events(basis: str, inputs: IncentiveInputs) -> pd.DataFrame:
    """The countable events of a basis, one row per source record (not yet limited to a year)."""
    if basis == TUMOR_SURGERY:
        cases = inputs.cases[inputs.cases["malignant_tumor_surgery"] & (inputs.cases["surgery_grade"] > 0)]
        # 一次就高不重复: one event per case, at its highest grade.
        cases = cases.sort_values(["id", "surgery_grade"]).drop_duplicates("id", keep="last")
        return _events(cases, on="discharge_date", grade="surgery_grade")
    if basis == CHRONIC_ENROLLMENT:
        return _events(first_enrollments(inputs.enrollments, inputs.institutions), on="enrolled_on", unit="patient_id")
    if basis == TCM_PRESCRIPTION:
        return _events(inputs.tcm_workloads, on="month", quantity="prescriptions")
    if basis == TCM_BED_DAY:
        cases = inputs.cases[inputs.cases["tcm_treatment"]]
        cases = cases.assign(_bed_days=bed_days(cases["admission_date"], cases["discharge_date"]))
        return _events(cases, on="discharge_date", quantity="_bed_days")
    if basis in (HOSPICE_BED, HOSPICE_INPATIENT, HOSPICE_HOME):
        kind = basis.removeprefix("hospice_")
        rows = inputs.hospice_services[inputs.hospice_services["kind"] == kind]
        if basis == HOSPICE_BED:
            return _events(rows, on="service_date", quantity="quantity")
        return _events(rows, on="service_date", unit="patient_id")
    if basis == SCREENING_WAIVER:
        rows = inputs.screenings[inputs.screenings["high_risk"]]
        return _events(rows, on="screening_date", fee_fen="fee_fen")
    raise IncentiveInputError(f"unknown basis {basis!r}")


def _window(rule: RuleSpec, year: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = max(date(year, 1, 1), rule.valid_from)
    end = min(date(year + 1, 1, 1), rule.valid_to or date.max)
    return pd.Timestamp(start), pd.Timestamp(end)


def _with_payee(events: pd.DataFrame, institutions: pd.DataFrame, rule: RuleSpec) -> pd.DataFrame:
    inst = institutions.set_index("id")
    known = events["institution_id"].isin(inst.index)
    if not known.all():
        raise IncentiveInputError("a record refers to an institution outside the region")
    own_code = events["institution_id"].map(inst["code"])
    if rule.public_only:
        public = events["institution_id"].map(inst["is_public"]).astype(bool)
        events, own_code = events[public], own_code[public]
    if rule.payee == PAYEE_GROUP:
        group = events["institution_id"].map(inst["group_code"]).fillna("").astype("object")
        payee = group.where(group != "", own_code)
    else:
        payee = own_code
    return events.assign(payee_code=payee.astype("object"))


def _fen_to_yuan(fen: int) -> Decimal:
    return Decimal(int(fen)).scaleb(-2)


def rule_lines(rule: RuleSpec, events: pd.DataFrame, institutions: pd.DataFrame, year: int) -> list[PayoutLineResult]:
    """The uncapped lines (one per payee) of one rule for one year."""
    start, end = _window(rule, year)
    if start >= end:
        return []
    events = events[(events["on"] >= start) & (events["on"] < end)]
    if rule.pricing == "graded":
        events = events[events["grade"].isin(list(rule.grade_amounts))]
    events = _with_payee(events, institutions, rule)
    if events.empty:
        return []
    code_to_id = dict(zip(institutions["code"], institutions["id"]))
    # One pass per aggregate over the whole frame (fast for 100k+ events), then one line per payee.
    events = events.sort_values(["payee_code", "source_id"], kind="mergesort")
    by_payee = events.groupby("payee_code", sort=True)
    if rule.basis in DISTINCT_BASES:
        counts = events.drop_duplicates(["payee_code", "institution_id", "unit"]).groupby("payee_code").size()
    else:
        counts = by_payee["quantity"].sum()
    fees = by_payee["fee_fen"].sum()
    grades = events.groupby(["payee_code", "grade"]).size() if rule.pricing == "graded" else None
    sources = {payee: ids.tolist() for payee, ids in by_payee["source_id"].unique().items()}
    lines: list[PayoutLineResult] = []
    for payee_code in by_payee.groups:
        count = int(counts[payee_code])
        detail: dict = {}
        unit_amount = rate = basis_amount = None
        if rule.pricing == "graded":
            per_grade = {int(g): int(n) for g, n in grades[payee_code].items()}
            detail["grades"] = {str(g): n for g, n in sorted(per_grade.items())}
            exact = total_of(EXACT.multiply(rule.grade_amounts[g], Decimal(n)) for g, n in per_grade.items())
        elif rule.pricing == "rate":
            rate = rule.rate
            basis_amount = _fen_to_yuan(int(fees[payee_code]))
            exact = EXACT.multiply(rate, basis_amount)
        else:
            unit_amount = rule.amount
            exact = EXACT.multiply(unit_amount, Decimal(count))
        gross = r2(exact)
        capped = min(gross, r2(rule.yearly_cap)) if rule.yearly_cap is not None else gross
        institution_id = code_to_id.get(payee_code)
        lines.append(
            PayoutLineResult(
                payee_code=str(payee_code),
                institution_id=int(institution_id) if institution_id is not None else None,
                rule_code=rule.code,
                count=count,
                unit_amount=unit_amount,
                rate=rate,
                basis_amount=basis_amount,
                detail=detail,
                gross_amount=gross,
                capped_amount=capped,
                amount=capped,
                source_model=SOURCE_OF_BASIS[rule.basis],
                source_ids=tuple(int(i) for i in sources[payee_code]),
            )
        )
    lines.sort(key=lambda line: line.payee_code)
    return lines


def prorate(lines: Sequence[PayoutLineResult], budget: Decimal) -> list[PayoutLineResult]:
    """Scale capped amounts down to `budget`: exact share capped × budget / Σ capped, floored to the
    cent, the missing cents to the largest dropped fractions (ties: payee code, then rule code)."""
    total = total_of(line.capped_amount for line in lines)
    keys = sorted(line.key for line in lines)
    exact = {line.key: Fraction(line.capped_amount) * Fraction(budget) / Fraction(total) for line in lines}
    allocated = allocate_largest_remainder(exact, budget, order=keys)
    return [replace(line, amount=allocated[line.key]) for line in lines]


def payout_lines(
    *, rules: Sequence[RuleSpec], inputs: IncentiveInputs, year: int, budget: Decimal | None = None
) -> PayoutComputation:
    """All lines of the year, sorted by payee code then rule code, with totals."""
    events_of: dict[str, pd.DataFrame] = {}
    lines: list[PayoutLineResult] = []
    used: list[str] = []
    for rule in sorted(rules, key=lambda r: r.code):
        if not rule.overlaps_year(year):
            continue
        used.append(rule.code)
        if rule.basis not in events_of:
            events_of[rule.basis] = basis_events(rule.basis, inputs)
        lines.extend(rule_lines(rule, events_of[rule.basis], inputs.institutions, year))
    lines.sort(key=lambda line: line.key)
    gross_total = total_of(line.gross_amount for line in lines)
    capped_total = total_of(line.capped_amount for line in lines)
    prorated = budget is not None and capped_total > budget
    if prorated:
        lines = prorate(lines, r2(budget))
    return PayoutComputation(
        year=year,
        lines=tuple(lines),
        gross_total=gross_total,
        capped_total=capped_total,
        total=total_of(line.amount for line in lines),
        budget=budget,
        prorated=prorated,
        rule_codes=tuple(used),
    )
