"""drg.domain.valuation: hand-computed cases of SETTLEMENT.md §2/§8 and property tests against a
plain Decimal implementation."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drg.domain.valuation import Catalog, Tier, ValuationInputError, ValuationScheme, value_cases
from tests.unit.reference_valuation import days, value_cases_reference

SCHEME = ValuationScheme(all_case_avg_cost=D("10000.00"))


def fen(value: str) -> int:
    return int(D(value) * 100)


def u(value: str) -> int:
    return int(D(value) * 10_000)


def catalog(groups: list[dict], coefficients=(), defaults=None, tcm=None) -> Catalog:
    frame = pd.DataFrame(
        {
            "code": [g["code"] for g in groups],
            "kind": [g.get("kind", "stable") for g in groups],
            "base_u": pd.array([u(g["base"]) if g.get("base") else None for g in groups], dtype="Int64"),
            "avg_fen": pd.array([fen(g["avg"]) if g.get("avg") else None for g in groups], dtype="Int64"),
            "daily_u": pd.array([u(g["daily"]) if g.get("daily") else None for g in groups], dtype="Int64"),
            "same_price": [g.get("same_price", False) for g in groups],
            "readmission_exempt": [g.get("exempt", False) for g in groups],
        }
    )
    coef = pd.DataFrame(list(coefficients), columns=["institution", "drg_code", "coef_u"])
    return Catalog(frame, coef, defaults or {}, tcm or {})


def cases_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "case_no": [r.get("case_no", f"c{i:03d}") for i, r in enumerate(rows)],
            "institution": [r.get("institution", "H1") for r in rows],
            "patient_id": [r.get("patient_id", f"P{i}") for i, r in enumerate(rows)],
            "admission_date": pd.to_datetime([r.get("admission", dt.date(2025, 1, 1)) for r in rows]),
            "discharge_date": pd.to_datetime([r.get("discharge", dt.date(2025, 1, 8)) for r in rows]),
            "drg_code": [r["drg"] for r in rows],
            "total_fen": [fen(r["total"]) for r in rows],
            "discharge_status": [r.get("status", "normal") for r in rows],
            "tcm_treatment": [r.get("tcm", False) for r in rows],
            "review_fen": [fen(r["review"]) if r.get("review") else -1 for r in rows],
        }
    )


GB25 = {"code": "GB25", "base": "80", "avg": "8000"}
ES23 = {"code": "ES23", "base": "250", "avg": "25000"}


def points_of(result: pd.DataFrame) -> list[str]:
    return [f"{D(int(p)).scaleb(-4):.4f}" for p in result["points_u"]]


def test_high_outlier_adds_the_excess_ratio_times_base_at_the_tier_multiple():
    result = value_cases(cases_frame([{"drg": "GB25", "total": "30000.00"}]), catalog([GB25], defaults={"H1": 11000}), SCHEME)
    assert result["category"].tolist() == ["high"]
    assert points_of(result) == ["148.0000"]  # 80×1.1 + 80×(3.75−3)


def test_low_ratio_is_capped_at_base_and_an_incomplete_stay_is_low_whatever_its_ratio():
    cat = catalog([GB25, ES23], defaults={"H1": 11000})
    result = value_cases(
        cases_frame([
            {"drg": "GB25", "total": "2400.00"},
            {"drg": "ES23", "total": "20000.00", "status": "death"},
            {"drg": "GB25", "total": "7900.00", "status": "transfer"},
        ]),
        cat, SCHEME,
    )
    assert result["category"].tolist() == ["low", "low", "low"]
    # 80×1.1×0.3 = 26.4; min(250×1.1×0.8, 250) = 220; min(80×1.1×0.9875, 80) = 80 (capped)
    assert points_of(result) == ["26.4000", "220.0000", "80.0000"]


def test_ratio_exactly_at_the_low_multiple_is_low_and_exactly_at_m_is_high():
    result = value_cases(cases_frame([{"drg": "GB25", "total": "3200.00"}, {"drg": "GB25", "total": "24000.00"}]), catalog([GB25]), SCHEME)
    assert result["category"].tolist() == ["low", "high"]
    assert points_of(result) == ["32.0000", "80.0000"]


def test_per_diem_unstable_special_review_same_price_and_tcm_equivalent():
    cat = catalog(
        [GB25, ES23, {"code": "MH01", "kind": "per_diem", "daily": "4"}, {"code": "0000", "kind": "unstable"},
         {"code": "FM19", "base": "120", "avg": "12000", "same_price": True}, {"code": "GX11", "base": "60", "avg": "6000"}],
        coefficients=[("H2", "ES23", 9000)], defaults={"H1": 11000, "H2": 10000}, tcm={"GX11": "GB25"},
    )
    result = value_cases(
        cases_frame([
            {"drg": "MH01", "total": "18000.00", "admission": dt.date(2025, 2, 10), "discharge": dt.date(2025, 3, 27)},
            {"drg": "0000", "total": "15000.00", "institution": "H2"},
            {"drg": "FM19", "total": "12000.00"},
            {"drg": "GX11", "total": "5000.00", "tcm": True, "institution": "H2"},
            {"drg": "ES23", "total": "90000.00", "review": "80000.00"},
            {"drg": "ES23", "total": "60000.00", "institution": "H2"},
        ]),
        cat, SCHEME,
    )
    assert result["category"].tolist() == ["per_diem", "unstable", "normal", "normal", "special_review", "high"]
    assert result["valuation_group"].tolist() == ["MH01", "0000", "FM19", "GB25", "ES23", "ES23"]
    assert points_of(result) == ["180.0000", "150.0000", "120.0000", "80.0000", "800.0000", "450.0000"]
    assert result["coef_u"].tolist() == [11000, 10000, 10000, 10000, 11000, 9000]


def test_readmission_halves_the_earlier_stay_within_the_window_only():
    cat = catalog([GB25, {"code": "RE13", "base": "50", "avg": "5000", "exempt": True}], defaults={"H1": 11000})
    rows = [
        {"drg": "GB25", "total": "7600.00", "patient_id": "P9", "admission": dt.date(2025, 5, 2), "discharge": dt.date(2025, 5, 6)},
        {"drg": "GB25", "total": "8200.00", "patient_id": "P9", "admission": dt.date(2025, 5, 15), "discharge": dt.date(2025, 5, 20)},
        {"drg": "GB25", "total": "8000.00", "patient_id": "P9", "admission": dt.date(2025, 6, 5), "discharge": dt.date(2025, 6, 9)},  # 16 days later
        {"drg": "RE13", "total": "5200.00", "patient_id": "P10", "admission": dt.date(2025, 6, 1), "discharge": dt.date(2025, 6, 4)},
        {"drg": "RE13", "total": "5100.00", "patient_id": "P10", "admission": dt.date(2025, 6, 10), "discharge": dt.date(2025, 6, 13)},
    ]
    result = value_cases(cases_frame(rows), cat, SCHEME)
    assert result["readmission_halved"].tolist() == [True, False, False, False, False]
    assert points_of(result) == ["44.0000", "88.0000", "88.0000", "55.0000", "55.0000"]


def test_a_stable_group_without_base_points_is_refused_by_name():
    with pytest.raises(ValuationInputError, match="XX01"):
        value_cases(cases_frame([{"drg": "XX01", "total": "100.00"}]), catalog([{"code": "XX01", "avg": "100"}]), SCHEME)


def test_huge_values_fall_back_to_exact_python_integers():
    # base_u × total_fen ≈ 1e8 × 1e11 leaves int64; the points themselves (≈1e12) do not
    cat = catalog([{"code": "BIG", "base": "9999.9999", "avg": "10.00"}], defaults={"H1": 99999})
    result = value_cases(cases_frame([{"drg": "BIG", "total": "999999999.99"}]), cat, SCHEME)
    base, avg, total, c = D("9999.9999"), D("10.00"), D("999999999.99"), D("9.9999")
    expected = (base * c + base * (total / avg - D("1.5"))).quantize(D("0.0001"), rounding="ROUND_HALF_UP")
    assert points_of(result) == [f"{expected:.4f}"]


# --- property tests against the plain Decimal implementation -------------------------------------

money = st.integers(min_value=1, max_value=5_000_000_00).map(lambda f: D(f).scaleb(-2))
points4 = st.integers(min_value=1, max_value=3000_0000).map(lambda p: D(p).scaleb(-4))
coef = st.integers(min_value=5000, max_value=20000).map(lambda c: D(c).scaleb(-4))


@st.composite
def pools(draw):
    n_groups = draw(st.integers(1, 5))
    groups = {}
    for i in range(n_groups):
        kind = draw(st.sampled_from(["stable", "stable", "stable", "per_diem", "unstable"]))
        groups[f"G{i}"] = {
            "kind": kind, "base": draw(points4) if kind == "stable" else None,
            "avg": draw(money) if kind == "stable" else None,
            "daily": draw(points4) if kind == "per_diem" else None,
            "same_price": draw(st.booleans()), "exempt": draw(st.booleans()),
        }
    codes = sorted(groups)
    tcm = {codes[0]: codes[-1]} if len(codes) > 1 and draw(st.booleans()) else {}
    insts = ["H1", "H2", "H3"]
    defaults = {h: draw(st.one_of(st.none(), coef)) for h in insts}
    coefficients = {(h, g): draw(coef) for h in insts for g in codes if draw(st.integers(0, 3)) == 0}
    n = draw(st.integers(1, 40))
    cases = []
    for i in range(n):
        start = draw(st.integers(0, 300))
        cases.append({
            "case_no": f"c{draw(st.integers(0, 999)):03d}-{i}", "institution": draw(st.sampled_from(insts)),
            "patient_id": draw(st.sampled_from(["P1", "P2", "P3", "P4"])), "admission_date": days(start),
            "discharge_date": days(start + draw(st.integers(0, 30))), "drg_code": draw(st.sampled_from(codes)),
            "total": draw(money), "status": draw(st.sampled_from(["normal", "normal", "transfer", "death", "against_advice"])),
            "tcm_treatment": draw(st.booleans()), "review": draw(st.one_of(st.none(), st.none(), money)),
        })
    tiers = draw(st.sampled_from([
        ((D(100), D(3)), (D(200), D(2)), (None, D("1.5"))),
        ((D(50), D("2.5")), (None, D(2))),
        ((D(150), D(3)),),
    ]))
    scheme = {"A": draw(money), "tiers": tiers, "low": draw(st.sampled_from([D("0.4"), D("0.5"), D("0.33")])),
              "days": draw(st.sampled_from([0, 7, 15, 30])), "factor": draw(st.sampled_from([D("0.5"), D("0.7"), D("0.3333")]))}
    return groups, coefficients, defaults, tcm, cases, scheme


def run_engine(groups, coefficients, defaults, tcm, cases, scheme, scale=1, keyed=False):
    cat = Catalog(
        pd.DataFrame({
            "code": list(groups),
            "kind": [g["kind"] for g in groups.values()],
            "base_u": pd.array([int(g["base"] * 10_000) if g["base"] else None for g in groups.values()], dtype="Int64"),
            "avg_fen": pd.array([int(g["avg"] * 100 * scale) if g["avg"] else None for g in groups.values()], dtype="Int64"),
            "daily_u": pd.array([int(g["daily"] * 10_000) if g["daily"] else None for g in groups.values()], dtype="Int64"),
            "same_price": [g["same_price"] for g in groups.values()],
            "readmission_exempt": [g["exempt"] for g in groups.values()],
        }),
        pd.DataFrame([(h, g, int(c * 10_000)) for (h, g), c in coefficients.items()], columns=["institution", "drg_code", "coef_u"]),
        {h: int(c * 10_000) for h, c in defaults.items() if c is not None},
        tcm,
    )
    frame = pd.DataFrame({
        "case_no": [c["case_no"] for c in cases], "institution": [c["institution"] for c in cases],
        "patient_id": [c["patient_id"] for c in cases],
        "admission_date": pd.to_datetime([c["admission_date"] for c in cases]),
        "discharge_date": pd.to_datetime([c["discharge_date"] for c in cases]),
        "drg_code": [c["drg_code"] for c in cases], "total_fen": [int(c["total"] * 100 * scale) for c in cases],
        "discharge_status": [c["status"] for c in cases], "tcm_treatment": [c["tcm_treatment"] for c in cases],
        "review_fen": [int(c["review"] * 100 * scale) if c["review"] is not None else -1 for c in cases],
    })
    if keyed:  # as settlement's pool reader gives the frame: integer patient keys, categorical codes
        frame["patient_key"] = pd.factorize(frame["patient_id"].to_numpy()[::-1])[0][::-1].astype("int64")
        frame["drg_code"] = frame["drg_code"].astype("category")
        frame["discharge_status"] = frame["discharge_status"].astype("category")
    sch = ValuationScheme(
        all_case_avg_cost=scheme["A"] * scale, high_outlier_tiers=tuple(Tier(a, b) for a, b in scheme["tiers"]),
        low_outlier_multiple=scheme["low"], readmission_days=scheme["days"], readmission_factor=scheme["factor"],
    )
    return value_cases(frame, cat, sch)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pools())
def test_vectorised_valuation_equals_plain_decimal_arithmetic(pool):
    groups, coefficients, defaults, tcm, cases, scheme = pool
    result = run_engine(*pool)
    reference = value_cases_reference(
        [{**c, "total": c["total"], "review": c["review"]} for c in cases],
        {k: {**g, "exempt": g["exempt"]} for k, g in groups.items()}, coefficients,
        {h: c for h, c in defaults.items()}, tcm, scheme,
    )
    assert result["valuation_group"].tolist() == [r["group"] for r in reference]
    assert result["category"].tolist() == [r["category"] for r in reference]
    assert result["readmission_halved"].tolist() == [r["halved"] for r in reference]
    assert [D(int(p)).scaleb(-4) for p in result["points_u"]] == [r["points"] for r in reference]
    assert (result["points_u"] >= 0).all()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pools(), st.sampled_from([2, 3, 10, 100]))
def test_scaling_every_cost_together_leaves_points_unchanged(pool, k):
    assert run_engine(*pool)["points_u"].tolist() == run_engine(*pool, scale=k)["points_u"].tolist()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pools())
def test_integer_patient_keys_and_categorical_codes_value_exactly_as_the_strings(pool):
    keyed = run_engine(*pool, keyed=True)
    pd.testing.assert_frame_equal(keyed, run_engine(*pool), check_exact=True)


def test_readmission_pairs_by_patient_key_when_the_frame_has_one():
    g = {"G1": {"kind": "stable", "base": D("100"), "avg": D("10000"), "daily": None, "same_price": False, "exempt": False}}
    scheme = {"A": D("10000"), "tiers": ((None, D(3)),), "low": D("0.4"), "days": 15, "factor": D("0.5")}
    stay = lambda no, patient, start: {"case_no": no, "institution": "H1", "patient_id": patient, "admission_date": days(start),
                                       "discharge_date": days(start + 5), "drg_code": "G1", "total": D("10000"),
                                       "status": "normal", "tcm_treatment": False, "review": None}
    cases = [stay("a", "P-1", 0), stay("b", "P-2", 10), stay("c", "P-1", 12), stay("d", "P-1", 40)]
    for keyed in (False, True):
        result = run_engine(g, {}, {"H1": None}, {}, cases, scheme, keyed=keyed)
        assert result["readmission_halved"].tolist() == [True, False, False, False]
        assert points_of(result) == ["50.0000", "100.0000", "100.0000", "100.0000"]


def test_an_exact_half_reached_through_a_non_terminating_ratio_is_rounded_as_28_digit_decimal_does():
    # r = 2.96 / 0.24 = 12.333…; exactly 37.9155 × 0.5 + 37.9155 × (r − 3) = 372.83575, but the
    # spec's reference arithmetic (Decimal, 28 digits, r first) gives 372.83574999… → 372.8357.
    groups = [{"code": "G1", "base": "37.9155", "avg": "0.24"}]
    result = value_cases(cases_frame([{"drg": "G1", "total": "2.96"}]),
                         catalog(groups, coefficients=[("H1", "G1", u("0.5"))]), SCHEME)

    assert result["category"].tolist() == ["high"]
    assert result["points_u"].tolist() == [u("372.8357")]
