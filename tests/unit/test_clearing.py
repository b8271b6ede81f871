"""settlement.domain.clearing: §3–§5 on hand-computed pools and invariants."""
from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.precision import allocate_largest_remainder
from settlement.domain.clearing import (
    Band, ClearingParameters, InstitutionTotals, UpliftTier, annual_clearing, bands, monthly_budget, monthly_clearing,
)

PARAMS = ClearingParameters(tcm_rate_tiers=(UpliftTier(D("0.3"), D("0.02")), UpliftTier(D("0.4"), D("0.04"))))

EMPLOYEE = [
    InstitutionTotals("H1", D("2187.4000"), D("47400.00"), D("194100.00"), D("241500.00"), D("0"), 13, "general", 3),
    InstitutionTotals("H2", D("985.0000"), D("17500.00"), D("93000.00"), D("110500.00"), D("34700.00"), 5, "tcm", 2),
    InstitutionTotals("H3", D("85.0000"), D("1350.00"), D("7650.00"), D("9000.00"), D("0"), 2, "primary", 1),
]


def test_annual_employee_pool_of_the_worked_example():
    result = annual_clearing(
        EMPLOYEE, inpatient=D("308796.55"), itemized=D("3800.00"), reserve=D("16252.45"), params=PARAMS,
        penalties={"H1": D("80")},
        prepaid={"H1": D("185266.81"), "H2": D("87079.10"), "H3": D("7666.59")},
        withheld={"H1": D("9750.88"), "H2": D("4583.11"), "H3": D("403.50")},
        scores={"H1": D("92"), "H2": D("100"), "H3": D("85")},
    )
    assert result.drg_budget == D("304996.55")
    assert result.distributed == D("303459.57")  # F + 85% of the 10246.55 surplus
    assert result.point_value == D("115.6390")
    h1, h2, h3 = result.lines
    assert (h1.points, h2.points, h3.points) == (D("2107.4000"), D("1004.7000"), D("85.0000"))
    assert h2.uplift == D("0.02") and h2.tcm_rate == Fraction(347, 1105)
    assert (h1.fund_payment, h2.fund_payment, h3.fund_payment) == (D("196297.71"), D("98682.54"), D("8479.32"))
    assert h1.gross_amount == D("243697.71") and h1.surplus == D("2197.71")
    assert h1.quality_deduction == D("780.07") and h1.balance == D("10250.83")
    assert h3.quality_deduction == D("60.53") and h3.balance == D("752.20")
    assert sum(line.fund_payment for line in result.lines) == result.distributed


def test_overrun_is_shared_by_band_and_paid_from_the_reserve():
    # resident pool: B 38841.60, F 41580.00, overrun 2738.40 = 7.05% of B
    assert bands(D("2738.40"), D("38841.60"), PARAMS.overrun_tiers) == Fraction(D("1942.08")) * Fraction(1, 2) + Fraction(D("796.32")) * Fraction(3, 10)
    insts = [
        InstitutionTotals("H1", D("363"), D("11100.00"), D("25900.00"), case_count=2),
        InstitutionTotals("H2", D("244"), D("4800.00"), D("11200.00"), case_count=2),
        InstitutionTotals("H3", D("68"), D("1920.00"), D("4480.00"), case_count=1),
    ]
    result = annual_clearing(insts, inpatient=D("39641.60"), itemized=D("800.00"), reserve=D("2086.40"), params=PARAMS)
    assert result.distributed == D("40051.54") and result.from_reserve == D("1209.94")
    assert result.point_value == D("85.7356")
    assert [line.fund_payment for line in result.lines] == [D("20022.03"), D("16119.49"), D("3910.02")]


def test_overrun_beyond_the_reserve_is_capped_by_it():
    insts = [InstitutionTotals("H1", D("100"), D("0"), D("2000.00"), case_count=1)]
    result = annual_clearing(insts, inpatient=D("1000.00"), itemized=D("0"), reserve=D("10.00"), params=PARAMS)
    assert result.distributed == D("1010.00") and result.from_reserve == D("10.00")


def test_monthly_first_month_of_the_worked_example():
    insts = [InstitutionTotals("H1", D("324"), D("9400.00"), D("37600.00"), case_count=3)]
    result = monthly_clearing(insts, inpatient=D("308796.55"), month=1, itemized_to_date=D("0"), params=PARAMS)
    assert result.budget_to_date == D("25733.05")
    line = result.lines[0]
    assert (line.point_value, line.due, line.prepay, line.withheld) == (D("108.4353"), D("25733.05"), D("24446.40"), D("1286.65"))


def test_monthly_prepayment_is_net_of_earlier_prepayments_and_may_be_negative():
    insts = [InstitutionTotals("H1", D("100"), D("0"), D("1000.00"), case_count=1)]
    result = monthly_clearing(insts, inpatient=D("1200.00"), month=1, itemized_to_date=D("0"), params=PARAMS,
                              prepaid_before={"H1": D("200.00")})
    assert result.lines[0].due == D("100.00") and result.lines[0].prepay == D("95.00") - D("200.00")
    assert monthly_budget(inpatient=D("100.00"), month=5, itemized_to_date=D("1.00")) == D("40.67")


def test_largest_remainder_gives_missing_cents_to_the_largest_fractions_then_lowest_code():
    exact = {"B": Fraction(1, 3), "A": Fraction(1, 3), "C": Fraction(1, 3)}
    assert allocate_largest_remainder(exact, D("1.00"), order=["A", "B", "C"]) == {"A": D("0.34"), "B": D("0.33"), "C": D("0.33")}
    exact = {"A": Fraction(1001, 1000), "B": Fraction(2009, 1000)}
    assert allocate_largest_remainder(exact, D("3.01"), order=["A", "B"]) == {"A": D("1.00"), "B": D("2.01")}


amounts = st.integers(0, 10_000_000_00).map(lambda f: D(f).scaleb(-2))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 50_000_0000), amounts, amounts), min_size=1, max_size=30),
    st.integers(1, 2_000_000_000_00), st.integers(0, 500_000_00),
)
def test_payments_add_up_to_the_distributed_pool_to_the_cent(rows, budget_fen, reserve_fen):
    insts = [
        InstitutionTotals(f"H{i:03d}", D(p).scaleb(-4), min(a, b), max(a, b) - min(a, b), max(a, b), case_count=1)
        for i, (p, a, b) in enumerate(rows)
    ]
    result = annual_clearing(insts, inpatient=D(budget_fen).scaleb(-2), itemized=D("0"), reserve=D(reserve_fen).scaleb(-2),
                             params=ClearingParameters())
    assert sum(line.fund_payment for line in result.lines) == result.distributed
    assert all(line.points >= 0 for line in result.lines)
    for line in result.lines:  # each payment is within a cent of its exact share
        exact = Fraction(line.points) * result.point_value_exact - Fraction(line.self_pay)
        assert abs(Fraction(line.fund_payment) - exact) < Fraction(1, 100)


def test_points_never_go_negative_after_penalties():
    insts = [InstitutionTotals("H1", D("10"), D("0"), D("100.00"), case_count=1), InstitutionTotals("H2", D("10"), D("0"), D("100.00"), case_count=1)]
    result = annual_clearing(insts, inpatient=D("200.00"), itemized=D("0"), reserve=D("0"), params=PARAMS, penalties={"H1": D("500")})
    assert result.lines[0].points == D("0") and result.lines[0].fund_payment == D("0.00") - D("0")
    assert sum(line.fund_payment for line in result.lines) == result.distributed


def test_surplus_bands_retain_85_percent_up_to_10_percent_of_budget_and_nothing_beyond():
    tiers = (Band(D("0.10"), D("0.85")), Band(None, D("0")))
    assert bands(D("50"), D("1000"), tiers) == Fraction(85, 2)
    assert bands(D("300"), D("1000"), tiers) == Fraction(85)


def test_itemized_payments_that_use_up_the_inpatient_budget_are_refused_with_a_clear_error():
    from decimal import Decimal as D

    from settlement.domain.clearing import ClearingError, ClearingParameters, InstitutionTotals, annual_clearing, monthly_clearing

    inst = InstitutionTotals(code="H1", raw_points=D("100"), self_pay=D("10"), fund_claims=D("90"), total_cost=D("100"),
                             tcm_cost=D("0"), case_count=1, category="general", level=2)
    with pytest.raises(ClearingError, match="no DRG budget is left"):
        annual_clearing([inst], inpatient=D("1000"), itemized=D("1000"), reserve=D("0"), params=ClearingParameters())
    with pytest.raises(ClearingError, match="budget to month 1"):
        monthly_clearing([inst], inpatient=D("1200"), month=1, itemized_to_date=D("150"), params=ClearingParameters())


# --- exact quotients: the value is the mathematical value, rounded only where the spec rounds ------

def test_the_budget_to_date_rounds_an_exact_half_cent_up_even_through_m_over_12():
    # 1000.02 × 5 / 12 = 416.675 exactly (5/12 does not terminate); × 3 / 12 = 250.005; × 9 / 12 = 750.015
    assert monthly_budget(inpatient=D("1000.02"), month=5, itemized_to_date=D("0")) == D("416.68")
    assert monthly_budget(inpatient=D("1000.02"), month=3, itemized_to_date=D("0")) == D("250.01")
    assert monthly_budget(inpatient=D("1000.02"), month=9, itemized_to_date=D("0.02")) == D("750.02") - D("0.02")


def test_a_prepayment_exactly_half_a_cent_is_rounded_up_although_the_point_value_does_not_terminate():
    # V = 1000.60 / 3 = 333.5333…; due = 1.5 × V = 500.30 exactly; × 0.95 = 475.285 → 475.29, × 0.05 = 25.015 → 25.02.
    # A truncated V (28 or 60 digits) leaves due a hair off 500.30 and can round the other way.
    insts = [InstitutionTotals("H1", D("1.5"), D("0"), D("2000.00"), case_count=1), InstitutionTotals("H2", D("1.5"), D("0"), D("2000.00"), case_count=1)]
    result = monthly_clearing(insts, inpatient=D("1000.60"), month=12, itemized_to_date=D("0"), params=ClearingParameters())
    assert result.point_value_exact == Fraction(100060, 300) and result.point_value == D("333.5333")
    for line in result.lines:
        assert line.due_exact == Fraction(50030, 100)
        assert (line.due, line.prepaid_to_date, line.prepay, line.withheld) == (D("500.30"), D("475.29"), D("475.29"), D("25.02"))


def test_gross_and_the_quality_deduction_round_exact_halves_up():
    # V = 1000.61 / 3; gross = 1.5 × V = 500.305 exactly → 500.31; the exact pays are 500.305 each: the
    # missing cent goes to H1 (largest remainder, ties by code). Quality: 0.10 × (100 − 95) / 100 = 0.005 → 0.01.
    insts = [InstitutionTotals("H1", D("1.5"), D("0"), D("1000.61"), case_count=1), InstitutionTotals("H2", D("1.5"), D("0"), D("0"), case_count=1)]
    result = annual_clearing(insts, inpatient=D("1000.61"), itemized=D("0"), reserve=D("0"), params=ClearingParameters(),
                             withheld={"H1": D("0.10")}, scores={"H1": D("95")})
    h1, h2 = result.lines
    assert (h1.gross_amount, h2.gross_amount) == (D("500.31"), D("500.31"))
    assert (h1.fund_payment, h2.fund_payment) == (D("500.31"), D("500.30"))
    assert h1.quality_deduction == D("0.01") and h1.balance == D("500.31") - D("0.01")


def test_the_tcm_rate_is_compared_with_its_tiers_exactly():
    # 200 / 300 = 2/3 lies below 0.6666666666666666666666666667, which is what a 28-digit Decimal makes of
    # it (rounded up): the tier must not apply
    tiers = (UpliftTier(D("0.6666666666666666666666666667"), D("0.05")), UpliftTier(D("0.3"), D("0.02")))
    params = ClearingParameters(tcm_rate_tiers=tiers)
    insts = [InstitutionTotals("H2", D("100"), D("0"), D("300.00"), D("300.00"), D("200.00"), 1, "tcm", 2)]
    line = annual_clearing(insts, inpatient=D("1000.00"), itemized=D("0"), reserve=D("0"), params=params).lines[0]
    assert line.tcm_rate == Fraction(2, 3) and line.uplift == D("0.02") and line.points == D("102.0000")


def test_an_annual_rerun_is_net_of_the_balances_already_settled_and_recovers_from_an_institution_without_cases():
    insts = [InstitutionTotals("H1", D("100"), D("0"), D("600.00"), case_count=1), InstitutionTotals("H2", D("100"), D("0"), D("400.00"), case_count=1)]
    result = annual_clearing(
        insts, inpatient=D("1000.00"), itemized=D("0"), reserve=D("0"), params=ClearingParameters(),
        prepaid={"H1": D("450.00"), "H2": D("400.00"), "H9": D("30.00")}, settled_before={"H1": D("40.00"), "H9": D("5.00")},
    )
    h1, h2, h9 = result.lines
    assert (h1.fund_payment, h1.settled_before, h1.balance) == (D("500.00"), D("40.00"), D("500.00") - D("450.00") - D("40.00"))
    assert (h2.settled_before, h2.balance) == (D("0"), D("100.00"))
    # H9 was paid before but has no valued case now: no points, no payment, its payments recovered
    assert (h9.code, h9.case_count, h9.points, h9.fund_payment, h9.quality_deduction) == ("H9", 0, D("0"), D("0"), D("0"))
    assert h9.balance == D("-35.00") and h9.prepaid + h9.settled_before + h9.balance == 0
    assert sum(line.fund_payment for line in result.lines) == result.distributed


def test_a_monthly_rerun_recovers_the_prepayments_of_an_institution_without_cases_any_more():
    insts = [InstitutionTotals("H1", D("100"), D("0"), D("1000.00"), case_count=1)]
    result = monthly_clearing(insts, inpatient=D("1200.00"), month=1, itemized_to_date=D("0"), params=PARAMS,
                              prepaid_before={"H1": D("90.00"), "H9": D("12.34")})
    h1, h9 = result.lines
    assert h1.prepay == D("95.00") - D("90.00")
    assert (h9.code, h9.case_count, h9.prepaid_to_date, h9.prepay, h9.withheld) == ("H9", 0, D("0"), D("-12.34"), D("0"))


def _monthly_reference(rows, inpatient_fen: int, month: int, itemized_fen: int, ratio: Fraction, before: dict):
    """§5 from the text in Fraction arithmetic, rounded to the cent where the spec says r2 (ROUND_HALF_UP:
    ties away from zero, also for a negative due)."""
    def r2(x: Fraction) -> Fraction:
        magnitude = Fraction((abs(x) * 100 + Fraction(1, 2)).__floor__(), 100)
        return magnitude if x >= 0 else -magnitude

    b_m = r2(Fraction(inpatient_fen, 100) * month / 12) - Fraction(itemized_fen, 100)
    f = sum(Fraction(fund, 100) for _, _, fund in rows)
    s = sum(Fraction(self_pay, 100) for _, self_pay, _ in rows)
    p = sum(Fraction(points, 10_000) for points, _, _ in rows)
    v = (min(b_m, f) + s) / p
    lines = []
    for i, (points, self_pay, _) in enumerate(rows):
        due = Fraction(points, 10_000) * v - Fraction(self_pay, 100)
        to_date = r2(due * ratio)
        lines.append((r2(due), to_date, to_date - before.get(f"H{i:03d}", 0), r2(due * (1 - ratio))))
    return v, lines


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 5_000_0000), st.integers(0, 10_000_00), st.integers(0, 1_000_000_00)), min_size=1, max_size=12),
    st.integers(1_000_00, 100_000_000_00), st.integers(1, 12), st.sampled_from(["0.95", "0.85", "0.9", "0.875", "1"]),
    st.integers(0, 1000_00),
)
def test_the_monthly_clearing_equals_exact_rational_arithmetic(rows, inpatient_fen, month, ratio, before_fen):
    itemized_fen = 0
    assume_budget = Fraction(inpatient_fen, 100) * month / 12
    if assume_budget < 1:
        return
    before = {"H000": Fraction(before_fen, 100)}
    insts = [InstitutionTotals(f"H{i:03d}", D(p).scaleb(-4), D(sp).scaleb(-2), D(fund).scaleb(-2), case_count=1) for i, (p, sp, fund) in enumerate(rows)]
    result = monthly_clearing(insts, inpatient=D(inpatient_fen).scaleb(-2), month=month, itemized_to_date=D(itemized_fen).scaleb(-2),
                              params=ClearingParameters(prepay_ratio=D(ratio)), prepaid_before={k: D(v.numerator * 100 // v.denominator).scaleb(-2) for k, v in before.items()})
    v, expected = _monthly_reference(rows, inpatient_fen, month, itemized_fen, Fraction(D(ratio)), before)
    assert result.point_value_exact == v
    assert [(Fraction(l.due), Fraction(l.prepaid_to_date), Fraction(l.prepay), Fraction(l.withheld)) for l in result.lines] == expected
