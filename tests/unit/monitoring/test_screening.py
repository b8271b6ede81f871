"""MONITORING.md §2 by hand: each rule on a small pool, at its boundaries."""
from dataclasses import replace
from decimal import Decimal as D

from monitoring.domain.parameters import ScreeningParameters
from monitoring.domain.screening import screen
from tests.unit.monitoring.factories import case, frame, many


def _rule(rows, rule, previous=None, params=None, through_month=12):
    found = screen(frame(rows), previous=frame(previous) if previous else None, params=params, through_month=through_month)
    return {f.institution: f for f in found if f.rule == rule}


# --- split_stay -------------------------------------------------------------------------------------

def _stays(inst, patient, gap_days, *, group="GB25", group2=None, inst2=None, exempt=False, halved=False, nos=None):
    """Two stays of one patient: the first 2025-03-01..03-05, the second admitted gap_days later."""
    import pandas as pd
    second_adm = (pd.Timestamp("2025-03-05") + pd.Timedelta(days=gap_days)).strftime("%Y-%m-%d")
    second_dis = (pd.Timestamp(second_adm) + pd.Timedelta(days=3)).strftime("%Y-%m-%d")
    a, b = nos or (None, None)
    return [
        case(inst, a, patient=patient, adm="2025-03-01", dis="2025-03-05", group=group, exempt=exempt, halved=halved),
        case(inst2 or inst, b, patient=patient, adm=second_adm, dis=second_dis, group=group2 or group),
    ]


def test_split_stay_counts_a_readmission_exactly_15_days_later_and_not_16():
    rows = []
    for i in range(3):
        rows += _stays("H1", f"p{i}", 15)
    rows += many(6, inst="H2")
    found = _rule(rows, "split_stay")
    assert set(found) == {"H1"}
    # 3 pairs / 6 cases = 0.5; pool 3 / 12 = 0.25: exactly 2 × → flagged
    assert found["H1"].value == D("0.5000") and found["H1"].reference == D("0.2500")
    assert len(found["H1"].evidence) == 6

    rows16 = []
    for i in range(3):
        rows16 += _stays("H1", f"p{i}", 16)
    rows16 += many(6, inst="H2")
    assert _rule(rows16, "split_stay") == {}


def test_split_stay_needs_twice_the_pool_share_and_three_pairs():
    rows = []
    for i in range(3):
        rows += _stays("H1", f"p{i}", 0)
    rows += many(5, inst="H2")  # pool 3/11: H1 0.5 < 2 × 3/11 = 0.545…
    assert _rule(rows, "split_stay") == {}
    two = _stays("H1", "p0", 3) + _stays("H1", "p1", 3) + many(100, inst="H2")
    assert _rule(two, "split_stay") == {}  # 2 pairs only


def test_split_stay_drops_exempt_and_halved_same_group_pairs_but_keeps_other_institutions():
    rows = []
    rows += _stays("H1", "p0", 2, exempt=True)                       # dropped: exempt group
    rows += _stays("H1", "p1", 2, halved=True)                       # dropped: same inst+group, first halved
    rows += _stays("H1", "p2", 2, halved=True, group2="GB29")        # kept: other group
    rows += _stays("H1", "p3", 2, inst2="H3", nos=("x3", "y3"))      # kept: second stay at H3, counts for H1
    rows += _stays("H1", "p4", 2)                                    # kept
    rows += many(20, inst="H2")
    found = _rule(rows, "split_stay")
    assert set(found) == {"H1"}
    assert found["H1"].value == D("0.3333")  # 3 pairs / 9 H1 cases
    assert ("H3", "y3") in found["H1"].evidence and ("H1", "x3") in found["H1"].evidence
    assert len(found["H1"].evidence) == 6


def test_split_stay_pairs_neighbours_first():
    # stays 1, 2 (exempt), 3 of one patient: 1–2 and 2–3 are dropped; 1 and 3 are not neighbours
    rows = [
        case("H1", patient="p", adm="2025-03-01", dis="2025-03-02"),
        case("H1", patient="p", adm="2025-03-03", dis="2025-03-04", exempt=True),
        case("H1", patient="p", adm="2025-03-05", dis="2025-03-06"),
    ]
    rows += [case("H1", patient="q", adm="2025-03-01", dis="2025-03-02"), case("H1", patient="q", adm="2025-03-03", dis="2025-03-04")] * 1
    found = _rule(rows + many(30, inst="H2"), "split_stay", params=replace(ScreeningParameters(), split_stay_min_pairs=1))
    assert found["H1"].value == D("0.2000")  # q's pair only: 1 of 5 cases (1–3 would make it 0.4)
    assert len(found["H1"].evidence) == 2


# --- low_standard_admission -------------------------------------------------------------------------

def test_low_standard_admission_boundaries_two_bed_days_ratio_point_four_five_cases():
    low = many(5, inst="H1", adm="2025-03-01", dis="2025-03-03", total=400, avg=1000)   # 2 days, r = 0.4 exactly
    normal_h1 = many(5, inst="H1", adm="2025-03-01", dis="2025-03-04", total=400)         # 3 days: no
    h2 = many(10, inst="H2", total=1000) + many(0, inst="H2")
    # pool share 5/20 = 0.25, H1 5/10 = 0.5 = 2 ×: flagged
    found = _rule(low + normal_h1 + h2, "low_standard_admission")
    assert set(found) == {"H1"} and found["H1"].value == D("0.5000") and found["H1"].reference == D("0.2500")
    assert len(found["H1"].evidence) == 5
    # r just above 0.4 (401/1000): no such case
    above = many(5, inst="H1", adm="2025-03-01", dis="2025-03-03", total=401, avg=1000)
    assert _rule(above + normal_h1 + h2, "low_standard_admission") == {}
    # four cases only
    assert _rule(low[:4] + normal_h1 + h2, "low_standard_admission") == {}
    # a transfer is not a low-standard admission
    transfer = many(5, inst="H1", adm="2025-03-01", dis="2025-03-03", total=400, status="transfer")
    assert _rule(transfer + normal_h1 + h2, "low_standard_admission") == {}


def test_low_standard_admission_below_twice_the_pool_share_is_not_flagged():
    low = many(5, inst="H1", adm="2025-03-01", dis="2025-03-03", total=300)
    h1 = many(5, inst="H1")
    h2 = many(1, inst="H2", adm="2025-03-01", dis="2025-03-03", total=300) + many(9, inst="H2")
    # pool 6/20 = 0.3; H1 0.5 < 0.6
    assert _rule(low + h1 + h2, "low_standard_admission") == {}


# --- upcoding --------------------------------------------------------------------------------------

def test_upcoding_exactly_one_and_a_half_times_the_pool_share_with_twenty_cases():
    # H1: 20 cases of ADRG GB2, 6 in GB21 (0.30). H2: 20 cases, 2 in GB21. Pool 8/40 = 0.20; 1.5 × = 0.30
    h1 = many(6, inst="H1", group="GB21") + many(14, inst="H1", group="GB23")
    h2 = many(2, inst="H2", group="GB21") + many(18, inst="H2", group="GB25")
    found = _rule(h1 + h2, "upcoding")
    assert set(found) == {"H1"}
    assert (found["H1"].value, found["H1"].reference) == (D("0.3000"), D("0.2000"))
    assert len(found["H1"].evidence) == 6 and found["H1"].detail["adrg"] == "GB2"
    # 19 cases: no
    assert _rule(h1[:19] + h2, "upcoding").get("H1") is None
    # one fewer severity-1 case: 5/19… below
    h1b = many(5, inst="H1", group="GB21") + many(15, inst="H1", group="GB23")
    assert _rule(h1b + h2, "upcoding") == {}


def test_upcoding_ignores_adrgs_without_severity_one_cases_in_the_pool_and_non_adrg_codes():
    h1 = many(20, inst="H1", group="GB23") + many(20, inst="H1", group="0000", stable=False)
    h2 = many(20, inst="H2", group="GB25")
    assert _rule(h1 + h2, "upcoding") == {}


def test_upcoding_by_cmi_growth_against_the_same_months_of_the_previous_year():
    now = many(10, inst="H1", base=110, dis="2025-03-05") + many(10, inst="H2", base=100)
    previous = many(10, inst="H1", base=100, adm="2024-03-01", dis="2024-03-05") + many(10, inst="H1", base=200, adm="2024-11-01", dis="2024-11-05")
    found = _rule(now, "upcoding", previous=previous, through_month=3)  # November left out: CMI 1.00 → 1.10
    assert set(found) == {"H1"}
    assert (found["H1"].value, found["H1"].reference, found["H1"].evidence) == (D("1.1000"), D("1.0000"), ())
    assert _rule(now, "upcoding", previous=previous, through_month=12) == {}  # whole year CMI 1.50


# --- cost_shifting ---------------------------------------------------------------------------------

def test_cost_shifting_exactly_five_points_above_the_pool_share():
    # pool: H1 self 300 of 2000; H2 self 100 of 2000 → pool 400/4000 = 0.10; H1 0.15 = 0.10 + 0.05
    h1 = [case("H1", "a", total=1000, self_pay=250), case("H1", "b", total=1000, self_pay=50)]
    h2 = [case("H2", total=1000, self_pay=50), case("H2", total=1000, self_pay=50)]
    found = _rule(h1 + h2, "cost_shifting")
    assert set(found) == {"H1"} and (found["H1"].value, found["H1"].reference) == (D("0.1500"), D("0.1000"))
    assert found["H1"].evidence == (("H1", "a"),)  # 0.25 ≥ 0.15; b's 0.05 is not
    h1.append(case("H1", total=1, self_pay=0))   # 300 / 2001 < 0.15 now (pool 400/4001)
    assert _rule(h1 + h2, "cost_shifting") == {}


def test_cost_shifting_against_its_own_previous_year():
    now = [case("H1", total=1000, self_pay=150)] + [case("H2", total=1000, self_pay=200)]
    previous = [case("H1", total=1000, self_pay=100, adm="2024-03-01", dis="2024-03-05")]
    found = _rule(now, "cost_shifting", previous=previous)
    assert set(found) == {"H1"} and found["H1"].reference == D("0.1000") and found["H1"].basis == "previous_year"


# --- patient_selection ------------------------------------------------------------------------------

def test_patient_selection_exactly_twice_the_pool_transfer_share_with_five_transfers():
    h1 = many(5, inst="H1", status="transfer") + many(5, inst="H1")
    h2 = many(10, inst="H2")
    found = _rule(h1 + h2, "patient_selection")
    assert set(found) == {"H1"} and (found["H1"].value, found["H1"].reference) == (D("0.5000"), D("0.2500"))
    assert len(found["H1"].evidence) == 5
    assert _rule(h1[1:] + h2, "patient_selection") == {}  # four transfers


def test_patient_selection_when_high_cases_halve_against_twenty_the_previous_year():
    prev = many(20, inst="H1", category="high", adm="2024-03-01", dis="2024-03-05") + many(20, inst="H1", adm="2024-03-01", dis="2024-03-05")
    now = many(10, inst="H1", category="high") + many(30, inst="H1") + many(40, inst="H2")
    found = _rule(now, "patient_selection", previous=prev)  # 0.25 = 0.5 × 0.5
    assert set(found) == {"H1"} and (found["H1"].value, found["H1"].reference) == (D("0.2500"), D("0.5000"))
    assert _rule(now, "patient_selection", previous=prev[1:]) == {}  # 19 high cases the previous year
    now_more = many(11, inst="H1", category="high") + many(29, inst="H1") + many(40, inst="H2")
    assert _rule(now_more, "patient_selection", previous=prev) == {}


def test_a_switched_off_rule_finds_nothing_and_parameters_change_the_threshold():
    h1 = many(5, inst="H1", status="transfer") + many(5, inst="H1")
    h2 = many(10, inst="H2")
    off = replace(ScreeningParameters(), patient_selection_enabled=False)
    assert _rule(h1 + h2, "patient_selection", params=off) == {}
    stricter = replace(ScreeningParameters(), patient_selection_transfer_factor=D("2.01"))
    assert _rule(h1 + h2, "patient_selection", params=stricter) == {}


def test_parameters_from_mapping_refuse_unknown_or_bad_values():
    import pytest
    assert ScreeningParameters.from_mapping({"split_stay_days": 10}).split_stay_days == 10
    for bad in ({"nope": 1}, {"split_stay_days": "1e3"}, {"split_stay_factor": "NaN"}, {"split_stay_factor": "-1"},
                {"upcoding_enabled": "yes"}, {"split_stay_days": True}):
        with pytest.raises(ValueError):
            ScreeningParameters.from_mapping(bad)
