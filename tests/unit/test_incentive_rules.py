"""SETTLEMENT.md §7 rule by rule, on small hand-made DataFrames (no database)."""
from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incentives.domain import inputs as schema
from incentives.domain.defaults import YUHUAN_2024
from incentives.domain.inputs import IncentiveInputs, frame
from incentives.domain.payouts import PayoutLineResult, bed_days, payout_lines, prorate
from incentives.domain.rules import RuleSpec, overlapping, parse_grade_amounts, rule_spec_errors

D = Decimal
RULES = {rule.code: rule for rule in YUHUAN_2024}
# id, code, is_public, group_code
INSTITUTIONS = [(1, "H1", True, "G1"), (2, "H2", True, "G2"), (3, "H3", True, "G1"), (4, "P9", False, ""), (5, "H5", True, "")]


def inputs(*, cases=(), enrollments=(), workloads=(), hospice=(), screenings=(), institutions=INSTITUTIONS) -> IncentiveInputs:
    return IncentiveInputs(
        institutions=frame(list(institutions), schema.INSTITUTION_COLUMNS),
        cases=frame(list(cases), schema.CASE_COLUMNS),
        enrollments=frame(list(enrollments), schema.ENROLLMENT_COLUMNS),
        tcm_workloads=frame(list(workloads), schema.TCM_WORKLOAD_COLUMNS),
        hospice_services=frame(list(hospice), schema.HOSPICE_COLUMNS),
        screenings=frame(list(screenings), schema.SCREENING_COLUMNS),
    )


def case(id, inst, admitted, discharged, *, tcm=False, grade=0, malignant=False):
    return (id, inst, date.fromisoformat(admitted), date.fromisoformat(discharged), tcm, grade, malignant)


def lines_of(rule_code: str, data: IncentiveInputs, year: int = 2025, **rule_changes):
    rule = replace(RULES[rule_code], **rule_changes)
    return {line.payee_code: line for line in payout_lines(rules=[rule], inputs=data, year=year).lines}


# --- tumour surgery ---------------------------------------------------------------------------

def test_tumor_surgery_pays_1000_per_grade_3_and_2000_per_grade_4_case():
    data = inputs(cases=[
        case(1, 1, "2025-01-03", "2025-01-10", grade=3, malignant=True),
        case(2, 1, "2025-02-03", "2025-02-10", grade=4, malignant=True),
        case(3, 1, "2025-03-03", "2025-03-10", grade=4, malignant=True),
    ])
    line = lines_of("tumor_surgery", data)["H1"]
    assert (line.count, line.amount, line.detail) == (3, D("5000.00"), {"grades": {"3": 1, "4": 2}})
    assert line.source_ids == (1, 2, 3)
    assert line.source_model == "case"


def test_tumor_surgery_leaves_out_lower_grades_and_non_malignant_surgery():
    data = inputs(cases=[
        case(1, 1, "2025-01-03", "2025-01-10", grade=2, malignant=True),
        case(2, 1, "2025-02-03", "2025-02-10", grade=4, malignant=False),
        case(3, 1, "2025-03-03", "2025-03-10", grade=3, malignant=True),
    ])
    line = lines_of("tumor_surgery", data)["H1"]
    assert (line.count, line.amount, line.source_ids) == (1, D("1000.00"), (3,))


def test_a_case_is_counted_once_at_its_highest_grade():
    # the same case reported twice (a grade-3 and a grade-4 operation in one stay): one case, grade 4
    data = inputs(cases=[
        case(7, 1, "2025-01-03", "2025-01-10", grade=3, malignant=True),
        case(7, 1, "2025-01-03", "2025-01-10", grade=4, malignant=True),
    ])
    line = lines_of("tumor_surgery", data)["H1"]
    assert (line.count, line.amount, line.detail) == (1, D("2000.00"), {"grades": {"4": 1}})


def test_only_cases_discharged_in_the_year_count():
    data = inputs(cases=[
        case(1, 1, "2024-12-20", "2025-01-01", grade=3, malignant=True),  # discharged 1 Jan: counts
        case(2, 1, "2024-12-01", "2024-12-31", grade=3, malignant=True),  # last year
        case(3, 1, "2025-12-28", "2026-01-01", grade=3, malignant=True),  # next year
        case(4, 1, "2025-12-28", "2025-12-31", grade=4, malignant=True),
    ])
    line = lines_of("tumor_surgery", data)["H1"]
    assert (line.count, line.amount, line.source_ids) == (2, D("3000.00"), (1, 4))


# --- chronic enrollment -----------------------------------------------------------------------

def enrol(id, inst, patient, disease, on):
    return (id, inst, patient, disease, date.fromisoformat(on))


def test_a_patient_enrolled_in_two_diseases_counts_once_at_the_first_enrollment():
    data = inputs(enrollments=[
        enrol(1, 2, "P1", "diabetes", "2025-06-01"),
        enrol(2, 1, "P1", "hypertension", "2025-03-01"),
    ])
    lines = lines_of("chronic_enrollment", data)
    assert list(lines) == ["G1"]  # H1's group, not H2's
    assert (lines["G1"].count, lines["G1"].amount, lines["G1"].source_ids) == (1, D("50.00"), (2,))


def test_a_patient_first_enrolled_last_year_does_not_count_again():
    data = inputs(enrollments=[
        enrol(1, 1, "P1", "hypertension", "2024-05-01"),
        enrol(2, 1, "P1", "diabetes", "2025-02-01"),
        enrol(3, 2, "P2", "copd", "2025-04-01"),
    ])
    assert {code: line.count for code, line in lines_of("chronic_enrollment", data).items()} == {"G2": 1}
    assert lines_of("chronic_enrollment", data, year=2024)["G1"].count == 1


def test_first_enrollment_ties_go_to_the_lowest_institution_code():
    data = inputs(enrollments=[enrol(1, 2, "P1", "copd", "2025-04-01"), enrol(2, 1, "P1", "copd", "2025-04-01")])
    lines = lines_of("chronic_enrollment", data)
    assert list(lines) == ["G1"] and lines["G1"].source_ids == (2,)


def test_chronic_enrollment_pays_the_group_or_the_institution_itself_without_a_group():
    data = inputs(enrollments=[
        enrol(1, 1, "P1", "copd", "2025-01-01"),
        enrol(2, 3, "P2", "copd", "2025-12-31"),
        enrol(3, 5, "P3", "copd", "2025-07-01"),
    ])
    lines = lines_of("chronic_enrollment", data)
    assert {code: (line.count, line.amount, line.institution_id) for code, line in lines.items()} == {
        "G1": (2, D("100.00"), None),  # H1 and H3 are both in G1
        "H5": (1, D("50.00"), 5),  # no group: paid to itself
    }


# --- TCM ---------------------------------------------------------------------------------------

def test_tcm_prescriptions_of_the_months_of_the_year_count_and_private_institutions_are_left_out():
    data = inputs(workloads=[
        (1, 2, date(2025, 1, 1), 1200),
        (2, 2, date(2025, 12, 1), 100),
        (3, 2, date(2024, 12, 1), 999),
        (4, 4, date(2025, 3, 1), 500),  # private: the rule is public-only
    ])
    lines = lines_of("tcm_prescription", data)
    assert list(lines) == ["H2"]
    assert (lines["H2"].count, lines["H2"].amount, lines["H2"].unit_amount) == (1300, D("6500.00"), D("5"))
    assert lines_of("tcm_prescription", data, public_only=False)["P9"].amount == D("2500.00")


def test_tcm_bed_days_are_max_one_of_the_stay_length_of_tcm_cases():
    data = inputs(cases=[
        case(1, 2, "2025-03-05", "2025-03-12", tcm=True),  # 7
        case(2, 2, "2025-04-01", "2025-04-01", tcm=True),  # same day: 1
        case(3, 2, "2025-04-01", "2025-04-09"),  # not TCM
        case(4, 4, "2025-05-01", "2025-05-21", tcm=True),  # private
        case(5, 2, "2024-12-25", "2025-01-04", tcm=True),  # 10, discharged in the year
    ])
    lines = lines_of("tcm_bed_day", data)
    assert list(lines) == ["H2"]
    assert (lines["H2"].count, lines["H2"].amount, lines["H2"].source_ids) == (18, D("540.00"), (1, 2, 5))


def test_bed_days_follow_section_2():
    import pandas as pd

    admitted = pd.Series(pd.to_datetime(["2025-01-01", "2025-01-01", "2024-12-31"]))
    discharged = pd.Series(pd.to_datetime(["2025-01-01", "2025-02-15", "2025-01-01"]))
    assert bed_days(admitted, discharged).tolist() == [1, 45, 1]


# --- hospice -----------------------------------------------------------------------------------

def hospice(id, inst, kind, patient, on, quantity=1):
    return (id, inst, kind, patient, date.fromisoformat(on), quantity)


def test_hospice_beds_sum_quantities_and_patients_are_counted_once_per_institution_and_kind():
    data = inputs(hospice=[
        hospice(1, 1, "bed", "", "2025-03-01", 4),
        hospice(2, 1, "bed", "", "2025-09-01", 2),
        hospice(3, 1, "inpatient", "P1", "2025-03-10"),
        hospice(4, 1, "inpatient", "P1", "2025-05-10"),
        hospice(5, 1, "inpatient", "P2", "2025-06-10"),
        hospice(6, 1, "home", "P1", "2025-07-10"),
        hospice(7, 2, "inpatient", "P1", "2025-08-10"),
        hospice(8, 1, "inpatient", "P3", "2026-01-01"),
    ])
    assert (lines_of("hospice_bed", data)["H1"].count, lines_of("hospice_bed", data)["H1"].amount) == (6, D("180000.00"))
    inpatient = lines_of("hospice_inpatient", data)
    assert {code: (line.count, line.amount) for code, line in inpatient.items()} == {"H1": (2, D("4000.00")), "H2": (1, D("2000.00"))}
    assert inpatient["H1"].source_ids == (3, 4, 5)
    assert lines_of("hospice_home", data)["H1"].amount == D("1000.00")


def test_a_private_institution_gets_no_hospice_bed_money_but_its_hospice_patients_count():
    data = inputs(hospice=[hospice(1, 4, "bed", "", "2025-03-01", 3), hospice(2, 4, "home", "P1", "2025-03-02")])
    assert lines_of("hospice_bed", data) == {}
    assert lines_of("hospice_home", data)["P9"].amount == D("1000.00")


# --- screening waiver --------------------------------------------------------------------------

def screening(id, inst, patient, on, fee, high_risk=True):
    return (id, inst, patient, date.fromisoformat(on), int(D(fee) * 100), high_risk)


def test_screening_waiver_is_30_percent_of_the_fees_of_high_risk_screenings():
    data = inputs(screenings=[
        screening(1, 3, "P1", "2025-04-01", "600.00"),
        screening(2, 3, "P2", "2025-04-02", "600.00", high_risk=False),
        screening(3, 1, "P3", "2025-05-02", "1250.00"),
    ])
    lines = lines_of("screening_waiver", data)
    assert {code: (line.count, line.basis_amount, line.rate, line.amount) for code, line in lines.items()} == {
        "H1": (1, D("1250.00"), D("0.30"), D("375.00")),
        "H3": (1, D("600.00"), D("0.30"), D("180.00")),
    }


def test_a_line_is_rounded_to_cents_once_not_per_record():
    # per record r2(0.3 × 0.05) = 0.02, three times 0.06; once per line r2(0.3 × 0.15) = 0.05
    data = inputs(screenings=[screening(i, 1, f"P{i}", "2025-04-01", "0.05") for i in (1, 2, 3)])
    assert lines_of("screening_waiver", data)["H1"].amount == D("0.05")


# --- validity, caps, the fiscal budget ---------------------------------------------------------

def test_a_rule_counts_only_records_inside_its_validity_and_a_successor_takes_over():
    data = inputs(workloads=[(1, 2, date(2025, m, 1), 100) for m in range(1, 13)])
    old = replace(RULES["tcm_prescription"], valid_to=date(2025, 7, 1))
    new = replace(RULES["tcm_prescription"], code="tcm_prescription_2025h2", amount=D("6"), valid_from=date(2025, 7, 1))
    result = payout_lines(rules=[old, new], inputs=data, year=2025)
    assert [(line.rule_code, line.count, line.amount) for line in result.lines] == [
        ("tcm_prescription", 600, D("3000.00")),
        ("tcm_prescription_2025h2", 600, D("3600.00")),
    ]
    assert result.rule_codes == ("tcm_prescription", "tcm_prescription_2025h2")
    assert payout_lines(rules=[old], inputs=data, year=2026).lines == ()


def test_a_yearly_cap_limits_each_payee_separately():
    data = inputs(workloads=[(1, 1, date(2025, 1, 1), 1000), (2, 2, date(2025, 1, 1), 100)])
    lines = lines_of("tcm_prescription", data, yearly_cap=D("2000"))
    assert (lines["H1"].gross_amount, lines["H1"].capped_amount, lines["H1"].amount) == (D("5000.00"), D("2000.00"), D("2000.00"))
    assert (lines["H2"].gross_amount, lines["H2"].capped_amount) == (D("500.00"), D("500.00"))


def test_a_fiscal_budget_below_the_capped_total_prorates_to_the_cent_by_largest_remainder():
    data = inputs(workloads=[(1, 1, date(2025, 1, 1), 1000), (2, 2, date(2025, 1, 1), 20), (3, 3, date(2025, 1, 1), 20), (4, 5, date(2025, 1, 1), 20)])
    rule = replace(RULES["tcm_prescription"], yearly_cap=D("100"))
    result = payout_lines(rules=[rule], inputs=data, year=2025, budget=D("100.00"))
    # capped: H1 5000 -> 100, H2 100, H3 100, H5 100; total 400 > 100: each 25.00 exactly
    assert result.capped_total == D("400.00") and result.prorated
    assert [line.amount for line in result.lines] == [D("25.00")] * 4
    # three equal lines, one cent to hand out: the lowest payee code gets it
    result = payout_lines(rules=[rule], inputs=data, year=2025, budget=D("100.01"))
    assert [(line.payee_code, line.amount) for line in result.lines] == [("H1", D("25.01")), ("H2", D("25.00")), ("H3", D("25.00")), ("H5", D("25.00"))]
    assert result.total == D("100.01")


def test_a_fiscal_budget_above_the_total_changes_nothing():
    data = inputs(workloads=[(1, 1, date(2025, 1, 1), 10)])
    result = payout_lines(rules=[RULES["tcm_prescription"]], inputs=data, year=2025, budget=D("1000000"))
    assert not result.prorated and result.total == D("50.00") == result.lines[0].amount


def _line(payee: str, amount: Decimal) -> PayoutLineResult:
    return PayoutLineResult(payee, None, "r", 1, None, None, None, {}, amount, amount, amount, "case", ())


@settings(max_examples=200, deadline=None)
@given(
    amounts=st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=30),
    budget_share=st.fractions(min_value=0, max_value=1),
)
def test_pro_rata_conserves_cents_and_never_pays_a_line_more_than_its_capped_amount(amounts, budget_share):
    lines = [_line(f"H{i:02d}", Decimal(fen).scaleb(-2)) for i, fen in enumerate(amounts)]
    total_fen = sum(amounts)
    budget = Decimal(int(total_fen * budget_share)).scaleb(-2)
    if total_fen == 0:
        return
    paid = prorate(lines, budget)
    assert sum(line.amount for line in paid) == budget
    assert all(line.amount <= line.capped_amount + Decimal("0.01") and line.amount >= 0 for line in paid)
    assert all(type(line.amount) is Decimal for line in paid)


# --- rule validation ---------------------------------------------------------------------------

def test_the_default_rule_set_is_valid_and_priced_as_section_7():
    assert all(rule_spec_errors(rule) == {} for rule in YUHUAN_2024)
    assert RULES["tumor_surgery"].grade_amounts == {3: D("1000"), 4: D("2000")}
    assert {code for code, rule in RULES.items() if rule.public_only} == {"tcm_prescription", "tcm_bed_day", "hospice_bed"}
    assert RULES["chronic_enrollment"].payee == "group"


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"grade_amounts": {}, "amount": D("1000")}, "grade_amounts"),
        ({"grade_amounts": {5: D("1")}}, "grade_amounts"),
        ({"valid_to": date(2023, 1, 1)}, "valid_to"),
        ({"rate": D("0.3")}, "amount"),  # two pricings at once
        ({"yearly_cap": D("-1")}, "yearly_cap"),
    ],
)
def test_a_rule_that_cannot_be_applied_is_refused(changes, field):
    assert field in rule_spec_errors(replace(RULES["tumor_surgery"], **changes))


def test_a_rate_is_only_for_fee_based_rules():
    errors = rule_spec_errors(replace(RULES["tcm_prescription"], amount=None, rate=D("0.3")))
    assert "rate" in errors


def test_grade_amounts_are_parsed_exactly_and_floats_are_refused():
    assert parse_grade_amounts({"3": "1000", "4": 2000}) == {3: D("1000"), 4: D("2000")}
    with pytest.raises(ValueError):
        parse_grade_amounts({"3": 1000.5})
    with pytest.raises(ValueError):
        parse_grade_amounts({"x": "1"})


def test_rules_of_one_basis_with_overlapping_windows_are_detected():
    a = replace(RULES["tcm_bed_day"], valid_to=date(2025, 7, 1))
    b = replace(RULES["tcm_bed_day"], code="b", valid_from=date(2025, 7, 1))
    c = replace(RULES["tcm_bed_day"], code="c", valid_from=date(2025, 6, 30))
    assert not overlapping(a, b) and overlapping(a, c) and not overlapping(a, RULES["hospice_bed"])


def test_the_whole_year_of_all_rules_gives_one_line_per_payee_and_rule_in_file_order():
    data = inputs(
        cases=[case(1, 1, "2025-01-03", "2025-01-10", tcm=True, grade=3, malignant=True)],
        enrollments=[enrol(1, 1, "P1", "copd", "2025-01-01")],
        workloads=[(1, 1, date(2025, 1, 1), 10)],
        screenings=[screening(1, 1, "P1", "2025-01-01", "10.00")],
    )
    result = payout_lines(rules=YUHUAN_2024, inputs=data, year=2025)
    assert [line.key for line in result.lines] == [
        ("G1", "chronic_enrollment"),
        ("H1", "screening_waiver"),
        ("H1", "tcm_bed_day"),
        ("H1", "tcm_prescription"),
        ("H1", "tumor_surgery"),
    ]
    assert result.total == D("50.00") + D("3.00") + D("210.00") + D("50.00") + D("1000.00")
