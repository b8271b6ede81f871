"""SETTLEMENT.md §1: the regional total budget lines of a pool. Pure calculation."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from common.precision import EXACT, r2

ZERO = Decimal("0")


class BudgetRuleError(ValueError):
    """A budget input the rules refuse (the message names the field and why)."""

    def __init__(self, field: str, message: str, *, code: str = "", **params):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.code = code  # with params: lets the interface say it in the user's language
        self.params = params


@dataclass(frozen=True)
class BudgetInputs:
    base_amount: Decimal
    growth_rate: Decimal
    growth_cap: Decimal = Decimal("0.10")
    policy_adjustment: Decimal = ZERO
    reserve_rate: Decimal = Decimal("0.05")
    outpatient_share: Decimal = ZERO
    primary_care_share: Decimal = ZERO


@dataclass(frozen=True)
class BudgetLines:
    total: Decimal
    reserve: Decimal
    outpatient: Decimal
    inpatient: Decimal
    primary_care_earmark: Decimal


def validate_budget_inputs(inputs: BudgetInputs) -> None:
    if inputs.base_amount < 0:
        raise BudgetRuleError("base_amount", "must not be negative", code="negative")
    if inputs.growth_rate > inputs.growth_cap:
        raise BudgetRuleError(
            "growth_rate",
            f"growth rate {inputs.growth_rate} exceeds the growth cap {inputs.growth_cap} "
            "(年增速不超过上限); lower the rate or record a different cap",
            code="above_cap", rate=inputs.growth_rate, cap=inputs.growth_cap,
        )
    for field in ("reserve_rate", "outpatient_share", "primary_care_share"):
        value = getattr(inputs, field)
        if not ZERO <= value <= 1:
            raise BudgetRuleError(field, f"must be between 0 and 1, got {value}", code="out_of_range", value=value)


def budget_lines(inputs: BudgetInputs) -> BudgetLines:
    """total, reserve, outpatient, inpatient and primary-care earmark, exactly as §1."""
    validate_budget_inputs(inputs)
    total = r2(EXACT.add(EXACT.multiply(inputs.base_amount, 1 + inputs.growth_rate), inputs.policy_adjustment))
    reserve = r2(EXACT.multiply(total, inputs.reserve_rate))
    outpatient = r2(EXACT.multiply(total - reserve, inputs.outpatient_share))
    inpatient = total - reserve - outpatient
    earmark = r2(EXACT.multiply(max(total - inputs.base_amount, ZERO), inputs.primary_care_share))
    if earmark > outpatient:
        raise BudgetRuleError(
            "primary_care_share",
            f"the primary-care earmark {earmark} would exceed the outpatient budget {outpatient}; "
            "it is reported inside the outpatient budget",
            code="earmark_above_outpatient", earmark=earmark, outpatient=outpatient,
        )
    if total < 0:
        raise BudgetRuleError("policy_adjustment", f"the total budget would be negative ({total})", code="negative_total", total=total)
    return BudgetLines(total=total, reserve=reserve, outpatient=outpatient, inpatient=inpatient, primary_care_earmark=earmark)
