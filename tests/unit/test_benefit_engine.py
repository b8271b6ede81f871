"""The three-layer settlement of BENEFITS.md, hand-computed at every boundary, and the bulk path
agreeing with the reference loop to the fen (property test)."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import hypothesis.strategies as st
import pandas as pd
import pytest
from hypothesis import given, settings

from benefits.domain.engine import (
    REFUSE_ELIGIBLE_ABOVE_TOTAL,
    REFUSE_FUND_MISMATCH,
    REFUSE_UNKNOWN_DISEASE,
    REFUSE_UNKNOWN_INSTITUTION,
    RESULT_COLUMNS,
    ClaimIn,
    StayIn,
    refusals,
    settle_frame,
    settle_patient_year,
)
from benefits.domain.parameters import default_terms, parse_benefits_text

CAPS = {"D1": 10_000_000, "D2": 500_000}  # class I default 100000 yuan, class II default 5000 yuan (fen)


def fen(text: str) -> int:
    return int(Decimal(text) * 100)


def claim(no: str, day: date, eligible: str, total: str | None = None, *, level: int = 2, disease: str = "D1") -> ClaimIn:
    return ClaimIn(claim_no=no, institution_code="H1", service_date=day, disease_code=disease, level=level,
                   total=fen(total or eligible), eligible=fen(eligible), key=no)


def parts(split) -> tuple[str, str, str, str]:
    return tuple(str(Decimal(getattr(split, n)).scaleb(-2)) for n in ("basic", "critical", "assistance", "patient"))


def settle(claims, stays=(), *, category="ordinary", terms=None, caps=CAPS):
    return settle_patient_year(claims=claims, stays=stays, category=category, terms=terms or default_terms("resident"), disease_caps=caps)


def test_deductible_crossing_inside_a_claim_is_used_only_up_to_what_is_left():
    terms = replace(default_terms("resident"), deductible=Decimal("1000"))
    a, b = settle([claim("A", date(2025, 1, 5), "600", "700"), claim("B", date(2025, 2, 1), "2000", "2500")], terms=terms)
    assert (a.deductible, a.base, a.basic) == (60000, 0, 0)
    assert parts(a) == ("0.00", "0.00", "0.00", "700.00")
    assert (b.deductible, b.base) == (40000, 128000)  # min(2000, 1000 − 600); r2(1600 × 0.80)
    assert parts(b) == ("1280.00", "0.00", "0.00", "1220.00")
    assert b.burden == fen("1320")  # 600 + (2000 − 1280)


def test_the_deductible_counts_as_used_even_when_a_cap_leaves_basic_at_zero():
    terms = replace(default_terms("resident"), deductible=Decimal("500"))
    stays = [StayIn(date(2025, 1, 1), fen("200000"))]  # the shared cap is used up by a stay
    a, b = settle([claim("A", date(2025, 1, 2), "300"), claim("B", date(2025, 1, 3), "400")], stays, terms=terms)
    assert (a.deductible, a.basic, b.deductible, b.basic) == (30000, 0, 20000, 0)


def test_shared_cap_reached_by_an_inpatient_stay_discharged_the_same_day_as_a_claim():
    stays = [StayIn(date(2025, 3, 1), fen("199000"))]
    c1, c2, c3, c4 = settle(
        [claim("C1", date(2025, 2, 28), "1000", level=1), claim("C2", date(2025, 3, 1), "5000", "6000", level=1),
         claim("C3", date(2025, 3, 5), "2000", level=1), claim("C4", date(2025, 3, 6), "1000", level=1)],
        stays,
    )
    assert parts(c1) == ("900.00", "0.00", "0.00", "100.00")
    assert (c2.base, c2.cap_left) == (fen("4500"), fen("100"))  # 200000 − 900 − 199000: the stay comes first
    assert parts(c2) == ("100.00", "0.00", "0.00", "5900.00")
    assert (c3.basic, c3.cap_left, c3.burden) == (0, 0, fen("7000"))
    assert parts(c4) == ("0.00", "250.00", "0.00", "750.00")  # burden 8000: r2((8000 − 7500) × 0.50)


def test_inpatient_shares_of_the_employee_fund_use_the_employee_cap():
    terms = default_terms("employee")
    (only,) = settle([claim("E", date(2025, 6, 1), "10000", level=3)], [StayIn(date(2025, 5, 1), fen("469000"))], terms=terms)
    assert (only.base, only.cap_left, only.basic) == (fen("8800"), fen("1000"), fen("1000"))


def test_disease_cap_is_per_disease_and_over_basic_only():
    c1, other, c2, c3 = settle([
        claim("1", date(2025, 1, 1), "4000", disease="D2"), claim("2", date(2025, 1, 2), "1000", disease="D1"),
        claim("3", date(2025, 1, 3), "4000", disease="D2"), claim("4", date(2025, 1, 4), "1000", disease="D2"),
    ])
    assert (c1.basic, c1.disease_cap_left) == (fen("3200"), fen("5000"))
    assert other.basic == fen("800")
    assert (c2.base, c2.disease_cap_left, c2.basic) == (fen("3200"), fen("1800"), fen("1800"))
    assert (c3.basic, c3.disease_cap_left) == (0, 0)
    assert c3.burden == fen("800") + fen("200") + fen("2200") + fen("1000")


def test_critical_threshold_crossed_inside_a_claim_with_rounding_against_the_year_to_date():
    c1, c2, c3 = settle([
        claim("1", date(2025, 1, 1), "10000", level=3), claim("2", date(2025, 2, 1), "10000", level=3),
        claim("3", date(2025, 3, 1), "333.33", level=3),
    ])
    assert (c1.basic, c1.critical, c1.burden) == (fen("6000"), 0, fen("4000"))
    assert parts(c2) == ("6000.00", "250.00", "0.00", "3750.00")
    # base r2(199.998) = 200.00; burden 8133.33; r2(633.33 × 0.5) = r2(316.665) = 316.67; 316.67 − 250
    assert parts(c3) == ("200.00", "66.67", "0.00", "66.66")


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("ordinary", ("24000.00", "0.00", "0.00", "8000.00")),
        ("poor", ("24000.00", "2025.00", "2782.50", "3192.50")),  # threshold 3750, 90 %; 70 % of 3975
        ("subsistence", ("24000.00", "0.00", "4500.00", "3500.00")),  # 75 % of 6000
        ("destitute", ("24000.00", "0.00", "6000.00", "2000.00")),  # the whole remainder
        ("birth_defect", ("24000.00", "2025.00", "0.00", "5975.00")),  # easy critical terms, no assistance
    ],
)
def test_each_category(category, expected):
    (only,) = settle([claim("X", date(2025, 4, 1), "30000", "32000")], category=category)
    assert parts(only) == expected


def test_refused_claims_are_named_and_count_in_no_running_total():
    frame = pd.DataFrame([
        dict(patient_id="P1", fund="resident", category="ordinary", claim_no="ok1", institution_code="H1",
             service_date=date(2025, 1, 1), disease_code="D2", level=2, total=fen("4000"), eligible=fen("4000")),
        dict(patient_id="P1", fund="resident", category="ordinary", claim_no="bad-disease", institution_code="H1",
             service_date=date(2025, 1, 2), disease_code="ZZ", level=2, total=fen("4000"), eligible=fen("4000")),
        dict(patient_id="P1", fund="resident", category="ordinary", claim_no="bad-inst", institution_code="H9",
             service_date=date(2025, 1, 2), disease_code="D2", level=2, total=fen("4000"), eligible=fen("4000")),
        dict(patient_id="P1", fund="employee", category="ordinary", claim_no="bad-fund", institution_code="H1",
             service_date=date(2025, 1, 2), disease_code="D2", level=2, total=fen("4000"), eligible=fen("4000")),
        dict(patient_id="P1", fund="resident", category="ordinary", claim_no="bad-amount", institution_code="H1",
             service_date=date(2025, 1, 2), disease_code="D2", level=2, total=fen("100"), eligible=fen("4000")),
        dict(patient_id="P1", fund="resident", category="ordinary", claim_no="ok2", institution_code="H1",
             service_date=date(2025, 1, 3), disease_code="D2", level=2, total=fen("4000"), eligible=fen("4000")),
    ])
    reasons = refusals(frame, institutions={"H1"}, diseases={"D1", "D2"}, patient_funds={"P1": "resident"})
    assert list(reasons) == ["", REFUSE_UNKNOWN_DISEASE, REFUSE_UNKNOWN_INSTITUTION, REFUSE_FUND_MISMATCH, REFUSE_ELIGIBLE_ABOVE_TOTAL, ""]
    accepted = frame[reasons == ""]
    result = settle_frame(accepted, pd.DataFrame(columns=["patient_id", "fund", "discharge_date", "share"]),
                          terms={f: default_terms(f) for f in ("employee", "resident")}, disease_caps=CAPS)
    # the second accepted claim sees only the first in the disease cap and the burden: 3200, then 1800
    assert list(result["basic"]) == [fen("3200"), fen("1800")]
    assert list(result["burden"]) == [fen("800"), fen("3000")]


def test_claims_of_the_same_date_are_ordered_by_claim_no_as_a_string():
    a, b = settle([claim("10", date(2025, 1, 1), "4000", disease="D2"), claim("9", date(2025, 1, 1), "4000", disease="D2")])
    assert (a.claim_no, a.basic, b.claim_no, b.basic) == ("10", fen("3200"), "9", fen("1800"))


def test_params_json_benefits_key_is_exact_and_validated():
    terms, errors = parse_benefits_text('{"employee": {"ratio_by_level": {"1": 0.95}, "deductible": "300"}, "assistance_ratio": "0.80"}')
    assert errors == []
    assert terms["employee"].ratio(1) == Decimal("0.95") and terms["employee"].ratio(2) == Decimal("0.90")
    assert terms["employee"].deductible == Decimal("300") and terms["resident"].assistance_ratio == Decimal("0.80")
    _, errors = parse_benefits_text('{"resident": {"critical_ratio": "1.2", "bogus": 1}, "assistance_ratio": "0.98"}')
    assert ("benefits.resident.critical_ratio", "must lie in [0, 1], got 1.2") in errors
    assert ("benefits.resident.bogus", "unknown key") in errors
    assert ("benefits.subsistence_uplift", "assistance_ratio + subsistence_uplift must not exceed 1") in errors


# --- property: the bulk path equals the reference; the four parts add up to the total ---------------

CATEGORIES = ("ordinary", "poor", "subsistence", "destitute", "birth_defect")
amount = st.integers(min_value=0, max_value=6_000_000)


@st.composite
def region_year(draw):
    patients = draw(st.lists(st.tuples(st.sampled_from(("employee", "resident")), st.sampled_from(CATEGORIES)), min_size=1, max_size=4))
    claims, stays = [], []
    for p, (fund, category) in enumerate(patients):
        for i in range(draw(st.integers(0, 12))):
            eligible = draw(amount)
            claims.append(dict(
                patient_id=f"P{p}", fund=fund, category=category, claim_no=draw(st.sampled_from(("a", "b", "c10", "c9"))) + str(i),
                institution_code="H1", service_date=date(2025, 1, 1) + timedelta(days=draw(st.integers(0, 40))),
                disease_code=draw(st.sampled_from(("D1", "D2"))), level=draw(st.integers(1, 3)),
                total=eligible + draw(st.integers(0, 100_000)), eligible=eligible,
            ))
        for _ in range(draw(st.integers(0, 3))):
            stays.append(dict(patient_id=f"P{p}", fund=fund, discharge_date=date(2025, 1, 1) + timedelta(days=draw(st.integers(0, 40))),
                              share=draw(st.integers(0, 8_000_000))))
    return pd.DataFrame(claims, columns=["patient_id", "fund", "category", "claim_no", "institution_code", "service_date",
                                         "disease_code", "level", "total", "eligible"]), \
        pd.DataFrame(stays, columns=["patient_id", "fund", "discharge_date", "share"])


@settings(max_examples=150, deadline=None)
@given(region_year(), st.sampled_from(("0", "1000", "123.45")))
def test_bulk_settlement_equals_the_reference_and_conserves_every_fen(data, deductible):
    claims, stays = data
    terms = {f: replace(default_terms(f), deductible=Decimal(deductible), shared_annual_cap=Decimal("150000")) for f in ("employee", "resident")}
    result = settle_frame(claims, stays, terms=terms, disease_caps=CAPS)
    for (pid, fund), rows in claims.groupby(["patient_id", "fund"]):
        mine = stays[(stays["patient_id"] == pid) & (stays["fund"] == fund)]
        splits = settle_patient_year(
            claims=[ClaimIn(r.claim_no, r.institution_code, r.service_date, r.disease_code, r.level, r.total, r.eligible, key=k)
                    for k, r in rows.iterrows()],
            stays=[StayIn(s.discharge_date, s.share) for s in mine.itertuples()], category=rows["category"].iloc[0],
            terms=terms[fund], disease_caps=CAPS,
        )
        for split in splits:
            assert [int(result.at[split.key, c]) for c in RESULT_COLUMNS] == [int(getattr(split, c)) for c in RESULT_COLUMNS]
    if len(claims):
        assert ((result[["basic", "critical", "assistance", "patient"]] >= 0).all()).all()
        assert (result["basic"] + result["critical"] + result["assistance"] + result["patient"] == claims["total"]).all()
        assert (result["basic"] + result["critical"] + result["assistance"] <= claims["eligible"]).all()


def test_the_explanation_keeps_each_ratio_s_own_digits_whatever_was_explained_before():
    from benefits.domain.engine import ClaimSplit

    def split(critical_ratio, assistance_ratio):
        return ClaimSplit(
            key=1, claim_no="A", institution_code="H1", basic=0, critical=0, assistance=0, patient=0, ratio=Decimal("0.80"),
            deductible=0, base=0, cap_left=0, disease_cap_left=0, burden=0, threshold=Fraction(7500),
            critical_ratio=critical_ratio, assistance_ratio=assistance_ratio,
        ).explanation()

    # equal Decimals with different digits (a default "0.50", a stored "0.500000") hash alike
    assert split(Decimal("0.500000"), Decimal("0.5"))["critical_ratio"] == "0.500000"
    assert split(Decimal("0.50"), Decimal("0.50"))["critical_ratio"] == "0.50"
    assert split(Decimal("0.50"), Decimal("0.50"))["assistance_ratio"] == "0.50"
    assert split(Decimal("0.50"), None)["assistance_ratio"] == "full"


@settings(max_examples=60, deadline=None)
@given(region_year(), st.sampled_from(("0.5", "0.500000", "0.55")))
def test_explanations_built_by_columns_are_the_objects_built_one_by_one(data, critical_ratio):
    """explanation_texts (a region-year in bulk) gives, as JSON text, what explanation_of gives per
    claim: the same keys, the ratios with their own digits, fen as yuan."""
    import json

    from benefits.domain.engine import explanation_of, explanation_texts

    claims, stays = data
    terms = {f: replace(default_terms(f), critical_ratio=Decimal(critical_ratio)) for f in ("employee", "resident")}
    result = claims.join(settle_frame(claims, stays, terms=terms, disease_caps=CAPS))
    texts = explanation_texts(result, terms).to_pylist()
    assert len(texts) == len(result)
    for text, row in zip(texts, result.to_dict("records")):
        assert json.loads(text) == explanation_of(row, terms=terms[row["fund"]], level=row["level"], category=row["category"])


def test_units_as_text_by_columns_equal_the_yuan_of_each_fen():
    from benefits.domain.engine import _yuan
    from common.units_text import units_text_array, units_to_text

    values = [0, 5, -5, 100, -105, 12_345_678_901, -1]
    assert units_text_array(values, 2).to_pylist() == [_yuan(v) for v in values] == ["0.00", "0.05", "-0.05", "1.00", "-1.05", "123456789.01", "-0.01"]
    assert units_to_text(pd.Series(values, index=list("abcdefg")), 4).to_dict() == {
        "a": "0.0000", "b": "0.0005", "c": "-0.0005", "d": "0.0100", "e": "-0.0105", "f": "1234567.8901", "g": "-0.0001"}
    assert units_text_array(pd.Series([5, None, -105], dtype="Int64"), 2).to_pylist() == ["0.05", None, "-1.05"]
    assert units_to_text(pd.Series([None, 12_345], dtype="Int64", index=["x", "y"]), 4).to_dict() == {"x": None, "y": "1.2345"}


def test_units_as_arrow_decimals_are_the_exact_decimals_of_their_text():
    """units_decimal_array writes the decimal's words from the units: the same values as the text,
    signs, nulls and the largest 18-digit amounts included, and the same CSV as the text."""
    import io
    from decimal import Decimal

    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    from common.units_text import units_decimal_array, units_text_array

    rng = np.random.default_rng(7)
    values = [0, 5, -5, 100, -105, 12_345_678_901, -1, 10**18 - 1, -(10**18) + 1, *rng.integers(-10**15, 10**15, 200).tolist()]
    decimals = units_decimal_array(values, 2)
    assert decimals.type == pa.decimal128(18, 2)
    assert decimals.to_pylist() == [Decimal(text) for text in units_text_array(values, 2).to_pylist()]
    assert units_decimal_array(values, 4, precision=18).to_pylist()[:3] == [Decimal("0.0000"), Decimal("0.0005"), Decimal("-0.0005")]
    with_nulls = units_decimal_array(pd.Series([5, None, -105], dtype="Int64"), 2)
    assert with_nulls.to_pylist() == [Decimal("0.05"), None, Decimal("-1.05")] and with_nulls.null_count == 1
    # as COPY's CSV (common.bulk.copy_columns) writes them: the text, no exponent
    sink = io.BytesIO()
    pa_csv.write_csv(pa.table({"a": units_decimal_array(values[:9], 2)}), sink, pa_csv.WriteOptions(include_header=False))
    assert sink.getvalue().decode().split() == units_text_array(values[:9], 2).to_pylist()
    # a narrower column's cast checks the digits, as binary COPY does (common.bulk.copy_columns_binary)
    assert units_decimal_array([123_456], 2).cast(pa.decimal128(16, 2)).to_pylist() == [Decimal("1234.56")]
    with pytest.raises(pa.ArrowInvalid):
        units_decimal_array([10**16], 2).cast(pa.decimal128(16, 2))
    with pytest.raises(ValueError, match="more than 3 digits"):
        units_decimal_array([1000], 2, precision=3)
    with pytest.raises(ValueError, match="more than 18 digits"):
        units_decimal_array([10**18], 2)
