"""SETTLEMENT.md §3–§5: institution points, annual clearing and monthly provisional clearing.

Works on per-institution totals (a pool has tens to a few thousand institutions), in exact
rational arithmetic: Decimal for the given amounts (exact), Fraction for every quotient and every
product a rounding is applied to (B_m, V, gross, due, prepaid to date, withheld, quality deduction,
the TCM rate), and the roundings of common.precision exactly where the spec rounds. Pure: no Django.

A statement is a payment order (SETTLEMENT.md §6): a monthly prepayment is net of every earlier
finalized prepayment of the year, an annual balance net of the prepayments and of every earlier
finalized annual balance (`settled_before`). An institution that was paid before but has no valued
case any more gets a line that recovers what it was paid.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Mapping, Sequence

from common.precision import allocate_largest_remainder, r2, r4

ZERO = Decimal("0")
HUNDRED = Decimal("100")


class ClearingError(ValueError):
    """The pool cannot be cleared as given (e.g. no points at all)."""


@dataclass(frozen=True)
class Band:
    """A band of x measured as a fraction of B: slices of x up to `upto` × B get `share`."""

    upto: Decimal | None
    share: Decimal


@dataclass(frozen=True)
class UpliftTier:
    min_rate: Decimal
    uplift: Decimal


@dataclass(frozen=True)
class InstitutionTotals:
    """Sums over one institution's valued cases of the pool and period."""

    code: str
    raw_points: Decimal
    self_pay: Decimal
    fund_claims: Decimal  # Σ (total_cost − self_pay): the fund's itemized share F_h
    total_cost: Decimal = ZERO
    tcm_cost: Decimal = ZERO
    case_count: int = 0
    category: str = "general"
    level: int = 1


@dataclass(frozen=True)
class ClearingParameters:
    surplus_tiers: tuple[Band, ...] = (Band(Decimal("0.10"), Decimal("0.85")), Band(None, ZERO))
    overrun_tiers: tuple[Band, ...] = (
        Band(Decimal("0.05"), Decimal("0.5")), Band(Decimal("0.10"), Decimal("0.3")), Band(None, ZERO),
    )
    tcm_rate_tiers: tuple[UpliftTier, ...] = ()
    prepay_ratio: Decimal = Decimal("0.95")


@dataclass(frozen=True)
class AnnualLine:
    code: str
    case_count: int
    raw_points: Decimal
    penalty_points: Decimal
    tcm_rate: Fraction | None
    uplift: Decimal
    points: Decimal
    point_value: Decimal
    gross_amount: Decimal
    self_pay: Decimal
    fund_payment: Decimal
    itemized_fund: Decimal
    surplus: Decimal
    prepaid: Decimal
    withheld: Decimal
    quality_score: Decimal
    quality_deduction: Decimal
    balance: Decimal
    settled_before: Decimal = ZERO


@dataclass(frozen=True)
class AnnualResult:
    drg_budget: Decimal
    fund_claims: Decimal
    self_pay: Decimal
    points: Decimal
    distributed: Decimal
    banded: Fraction  # retained surplus (B ≥ F) or fund share of the overrun (B < F), exact
    from_reserve: Decimal
    point_value_exact: Fraction
    point_value: Decimal
    lines: tuple[AnnualLine, ...]


@dataclass(frozen=True)
class MonthlyLine:
    code: str
    case_count: int
    points: Decimal
    point_value: Decimal
    due_exact: Fraction
    due: Decimal
    prepaid_to_date: Decimal
    prepay: Decimal
    withheld: Decimal
    self_pay: Decimal
    itemized_fund: Decimal


@dataclass(frozen=True)
class MonthlyResult:
    budget_to_date: Decimal
    fund_claims: Decimal
    self_pay: Decimal
    points: Decimal
    point_value_exact: Fraction
    point_value: Decimal
    lines: tuple[MonthlyLine, ...] = field(default_factory=tuple)


def bands(x: Decimal, base: Decimal, tiers: Sequence[Band]) -> Fraction:
    """Σ over bands of (the slice of x inside the band) × share; bands are fractions of `base`."""
    x_f, base_f = Fraction(x), Fraction(base)
    result = Fraction(0)
    lower = Fraction(0)
    for tier in tiers:
        upper = None if tier.upto is None else Fraction(tier.upto) * base_f
        top = x_f if upper is None else min(x_f, upper)
        if top > lower:
            result += (top - lower) * Fraction(tier.share)
        if upper is None or x_f <= upper:
            break
        lower = upper
    return result


def tcm_uplift(*, tcm_cost: Decimal, total_cost: Decimal, tiers: Sequence[UpliftTier]) -> tuple[Fraction, Decimal]:
    """中治率 and its uplift: the uplift of the highest tier whose min_rate ≤ the rate (else 0)."""
    rate = Fraction(tcm_cost) / Fraction(total_cost) if total_cost else Fraction(0)
    uplift = ZERO
    best = None
    for tier in tiers:
        if Fraction(tier.min_rate) <= rate and (best is None or tier.min_rate > best):
            best, uplift = tier.min_rate, tier.uplift
    return rate, uplift


def institution_points(*, raw_points: Decimal, penalty: Decimal, uplift: Decimal) -> Decimal:
    """points_h = max(0, r4((raw − penalty) × (1 + uplift)))."""
    return max(ZERO, r4((Fraction(raw_points) - Fraction(penalty)) * (1 + Fraction(uplift))))


def quality_deduction(*, withheld: Decimal, score: Decimal) -> Decimal:
    """r2(withheld × (100 − score) / 100)."""
    return r2(Fraction(withheld) * (100 - Fraction(score)) / 100)


def distributed_amount(*, drg_budget: Decimal | Fraction, fund_claims: Decimal | Fraction, reserve: Decimal, params: ClearingParameters) -> tuple[Decimal, Fraction, Decimal]:
    """A of §4, with the banded amount and what comes out of the reserve (调剂金)."""
    if drg_budget >= fund_claims:
        retained = bands(drg_budget - fund_claims, drg_budget, params.surplus_tiers)
        return r2(Fraction(fund_claims) + retained), retained, ZERO
    shared = bands(fund_claims - drg_budget, drg_budget, params.overrun_tiers)
    covered = min(shared, Fraction(reserve))
    return r2(Fraction(drg_budget) + covered), shared, r2(covered)


def annual_clearing(
    institutions: Sequence[InstitutionTotals],
    *,
    inpatient: Decimal,
    itemized: Decimal,
    reserve: Decimal,
    params: ClearingParameters,
    penalties: Mapping[str, Decimal] | None = None,
    prepaid: Mapping[str, Decimal] | None = None,
    withheld: Mapping[str, Decimal] | None = None,
    scores: Mapping[str, Decimal] | None = None,
    settled_before: Mapping[str, Decimal] | None = None,
) -> AnnualResult:
    """§3/§4. `prepaid`: Σ of the year's finalized monthly prepayments per institution;
    `settled_before`: Σ of its balances in the pool-year's earlier finalized annual runs."""
    penalties, prepaid, withheld, scores = penalties or {}, prepaid or {}, withheld or {}, scores or {}
    settled_before = settled_before or {}
    members = sorted((i for i in institutions if i.case_count > 0), key=lambda i: i.code)
    if not members:
        raise ClearingError("the pool has no valued cases in the period")

    drg_budget = inpatient - itemized
    if drg_budget <= 0:
        raise ClearingError(
            f"special-outpatient itemized payments {itemized} use up the inpatient budget {inpatient}: "
            "no DRG budget is left to price points (revise the budget or review the itemized claims)")
    fund_claims = sum((i.fund_claims for i in members), ZERO)
    self_pay = sum((i.self_pay for i in members), ZERO)

    points: dict[str, Decimal] = {}
    rates: dict[str, Fraction | None] = {}
    uplifts: dict[str, Decimal] = {}
    for inst in members:
        rate, uplift = None, ZERO
        if inst.category == "tcm" and inst.level >= 2:
            rate, uplift = tcm_uplift(tcm_cost=inst.tcm_cost, total_cost=inst.total_cost, tiers=params.tcm_rate_tiers)
        rates[inst.code], uplifts[inst.code] = rate, uplift
        points[inst.code] = institution_points(raw_points=inst.raw_points, penalty=penalties.get(inst.code, ZERO), uplift=uplift)
    total_points = sum(points.values(), ZERO)
    if total_points <= 0:
        raise ClearingError("the pool has no points after adjustments; a point value cannot be set")

    distributed, banded, from_reserve = distributed_amount(
        drg_budget=drg_budget, fund_claims=fund_claims, reserve=reserve, params=params
    )
    value = (Fraction(distributed) + Fraction(self_pay)) / Fraction(total_points)
    exact_pay = {i.code: Fraction(points[i.code]) * value - Fraction(i.self_pay) for i in members}
    pay = allocate_largest_remainder(exact_pay, distributed, order=[i.code for i in members])

    lines = []
    for inst in members:
        code = inst.code
        held = withheld.get(code, ZERO)
        score = Decimal(scores.get(code, HUNDRED))
        quality = quality_deduction(withheld=held, score=score)
        paid_before = prepaid.get(code, ZERO)
        settled = settled_before.get(code, ZERO)
        lines.append(
            AnnualLine(
                code=code,
                case_count=inst.case_count,
                raw_points=inst.raw_points,
                penalty_points=penalties.get(code, ZERO),
                tcm_rate=rates[code],
                uplift=uplifts[code],
                points=points[code],
                point_value=r4(value),
                gross_amount=r2(Fraction(points[code]) * value),
                self_pay=inst.self_pay,
                fund_payment=pay[code],
                itemized_fund=inst.fund_claims,
                surplus=pay[code] - inst.fund_claims,
                prepaid=paid_before,
                withheld=held,
                quality_score=score,
                quality_deduction=quality,
                balance=pay[code] - quality - paid_before - settled,
                settled_before=settled,
            )
        )
    for code in _paid_without_cases(members, prepaid, settled_before):
        paid_before, settled = prepaid.get(code, ZERO), settled_before.get(code, ZERO)
        lines.append(
            AnnualLine(
                code=code, case_count=0, raw_points=ZERO, penalty_points=ZERO, tcm_rate=None, uplift=ZERO, points=ZERO,
                point_value=r4(value), gross_amount=ZERO, self_pay=ZERO, fund_payment=ZERO, itemized_fund=ZERO,
                surplus=ZERO, prepaid=paid_before, withheld=ZERO, quality_score=Decimal(scores.get(code, HUNDRED)),
                quality_deduction=ZERO, balance=-paid_before - settled, settled_before=settled,
            )
        )
    lines.sort(key=lambda line: line.code)
    return AnnualResult(
        drg_budget=drg_budget,
        fund_claims=fund_claims,
        self_pay=self_pay,
        points=total_points,
        distributed=distributed,
        banded=banded,
        from_reserve=from_reserve,
        point_value_exact=value,
        point_value=r4(value),
        lines=tuple(lines),
    )


def _paid_without_cases(members: Sequence[InstitutionTotals], *paid: Mapping[str, Decimal]) -> list[str]:
    """Codes paid before (a non-zero amount in any of `paid`) without a valued case now: their line
    recovers what they were paid (no points, no payment)."""
    present = {inst.code for inst in members}
    return sorted({code for mapping in paid for code, amount in mapping.items() if amount and code not in present})


def monthly_budget(*, inpatient: Decimal, month: int, itemized_to_date: Decimal) -> Decimal:
    """B_m = r2(inpatient × m / 12) − approved itemized of months 1..m."""
    return r2(Fraction(inpatient) * month / 12) - itemized_to_date


def monthly_clearing(
    institutions: Sequence[InstitutionTotals],
    *,
    inpatient: Decimal,
    month: int,
    itemized_to_date: Decimal,
    params: ClearingParameters,
    prepaid_before: Mapping[str, Decimal] | None = None,
) -> MonthlyResult:
    """§5: cumulative year-to-date provisional clearing, without penalties or TCM uplift.
    `prepaid_before`: Σ of every prepayment of the year's finalized monthly runs per institution
    (superseded runs included: whatever was paid counts)."""
    if not 1 <= month <= 12:
        raise ClearingError(f"month must be 1..12, got {month}")
    prepaid_before = prepaid_before or {}
    members = sorted((i for i in institutions if i.case_count > 0), key=lambda i: i.code)
    if not members:
        raise ClearingError("the pool has no valued cases in the period")
    budget_to_date = monthly_budget(inpatient=inpatient, month=month, itemized_to_date=itemized_to_date)
    if budget_to_date <= 0:
        raise ClearingError(
            f"special-outpatient itemized payments {itemized_to_date} use up the budget to month {month}: "
            "no DRG budget is left to price points (revise the budget or review the itemized claims)")
    fund_claims = sum((i.fund_claims for i in members), ZERO)
    self_pay = sum((i.self_pay for i in members), ZERO)
    total_points = sum((i.raw_points for i in members), ZERO)
    if total_points <= 0:
        raise ClearingError("the pool has no points year to date; a point value cannot be set")
    value = (Fraction(min(budget_to_date, fund_claims)) + Fraction(self_pay)) / Fraction(total_points)
    ratio = Fraction(params.prepay_ratio)
    lines = []
    for inst in members:
        due = Fraction(inst.raw_points) * value - Fraction(inst.self_pay)
        to_date = r2(due * ratio)
        lines.append(
            MonthlyLine(
                code=inst.code,
                case_count=inst.case_count,
                points=inst.raw_points,
                point_value=r4(value),
                due_exact=due,
                due=r2(due),
                prepaid_to_date=to_date,
                prepay=to_date - prepaid_before.get(inst.code, ZERO),
                withheld=r2(due * (1 - ratio)),
                self_pay=inst.self_pay,
                itemized_fund=inst.fund_claims,
            )
        )
    for code in _paid_without_cases(members, prepaid_before):
        lines.append(
            MonthlyLine(
                code=code, case_count=0, points=ZERO, point_value=r4(value), due_exact=Fraction(0), due=ZERO,
                prepaid_to_date=ZERO, prepay=-prepaid_before[code], withheld=ZERO, self_pay=ZERO, itemized_fund=ZERO,
            )
        )
    lines.sort(key=lambda line: line.code)
    return MonthlyResult(
        budget_to_date=budget_to_date,
        fund_claims=fund_claims,
        self_pay=self_pay,
        points=total_points,
        point_value_exact=value,
        point_value=r4(value),
        lines=tuple(lines),
    )
