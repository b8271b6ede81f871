"""exchange.domain.bundle (with the row, case and scheme rules of drg.domain it builds on): reading
and checking the exchange files (no database)."""
from __future__ import annotations

import json
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drg.domain import rows
from exchange.domain import bundle as b
from exchange.domain.bundle import RowError

CASES_HEADER = ("case_no,institution_code,fund,patient_id,admission_date,discharge_date,drg_code,total_cost,self_pay,"
                "discharge_status,tcm_treatment,tcm_cost,surgery_grade,malignant_tumor_surgery")
GOOD_CASE = "c01,H1,employee,P001,2025-01-03,2025-01-10,GB25,8000.00,1600.00,normal,0,0,3,1"
KNOWN = {"known_institutions": {"H1", "H2"}, "known_groups": {"GB25", "ES23"}}


def where(errors: list[RowError]) -> list[tuple[str, int, str]]:
    return sorted((e.file, e.line, e.column) for e in errors)


def cases(*lines: str, header: str = CASES_HEADER):
    frame, errors = b.read_csv_text("\n".join([header, *lines]) + "\n", b.CASES)
    assert errors == []
    return b.parse_cases(frame, **KNOWN)


def test_the_domain_choices_are_the_models_choices():
    from drg.choices import DischargeStatus, Fund, GroupKind, InstitutionCategory
    from incentives.models import HospiceKind

    assert set(b.FUNDS) == set(Fund.values)
    assert set(b.INSTITUTION_CATEGORIES) == set(InstitutionCategory.values)
    assert set(b.GROUP_KINDS) == set(GroupKind.values)
    assert set(b.DISCHARGE_STATUSES) == set(DischargeStatus.values)
    assert set(b.HOSPICE_KINDS) == set(HospiceKind.values)


def test_a_valid_case_is_typed_exactly():
    typed, errors = cases(GOOD_CASE, "c02,H2,resident,P002,2025-02-01,2025-02-01,ES23,12345678901234.56,0.5,death,1,,,")

    assert errors == []
    first, second = typed.iloc[0], typed.iloc[1]
    assert (first["total_fen"], first["self_fen"], first["tcm_fen"]) == (800000, 160000, 0)
    assert first["surgery_grade"] == 3 and bool(first["malignant_tumor_surgery"]) is True
    assert second["total_fen"] == 1234567890123456  # 16 digits, exact (never float)
    assert second["self_fen"] == 50
    assert (second["tcm_fen"], second["surgery_grade"], bool(second["tcm_treatment"])) == (0, 0, True)
    assert list(typed["_line"]) == [2, 3]
    assert typed["total_fen"].dtype == np.int64


def test_column_order_is_free_and_a_bom_is_tolerated():
    columns = CASES_HEADER.split(",")
    values = GOOD_CASE.split(",")
    header, row = ",".join(reversed(columns)), ",".join(reversed(values))
    frame, errors = b.read_csv_text("\ufeff" + header + "\n" + row + "\n", b.CASES)
    typed, row_errors = b.parse_cases(frame, **KNOWN)

    assert errors == [] and row_errors == []
    assert typed.iloc[0]["case_no"] == "c01" and typed.iloc[0]["total_fen"] == 800000


def test_unknown_duplicate_and_missing_columns_are_header_errors():
    frame, errors = b.read_csv_text("code,name,level,category,extra,code\nH1,x,1,general,y,H1\n", b.INSTITUTIONS)

    assert where(errors) == [
        ("institutions.csv", 1, "code"),  # duplicate
        ("institutions.csv", 1, "extra"),  # unknown
        ("institutions.csv", 1, "is_public"),  # missing required
    ]
    assert [e.reason for e in errors if e.column == "extra"][0].startswith("unknown column")


def test_optional_columns_may_be_left_out_of_the_header():
    header = ",".join(c for c in CASES_HEADER.split(",") if c not in ("tcm_treatment", "tcm_cost", "surgery_grade", "malignant_tumor_surgery"))
    typed, errors = cases("c01,H1,employee,P001,2025-01-03,2025-01-10,GB25,8000.00,1600.00,normal", header=header)

    assert errors == []
    assert (typed.iloc[0]["tcm_fen"], typed.iloc[0]["surgery_grade"], bool(typed.iloc[0]["tcm_treatment"])) == (0, 0, False)


def test_blank_lines_are_skipped_and_line_numbers_follow_the_file():
    text = f"{CASES_HEADER}\n{GOOD_CASE}\n\n{GOOD_CASE.replace('c01', 'c02').replace('8000.00', 'x')}\n"
    frame, errors = b.read_csv_text(text, b.CASES)
    typed, row_errors = b.parse_cases(frame, **KNOWN)

    assert errors == []
    assert list(typed["_line"]) == [2, 4]
    assert where(row_errors) == [("cases.csv", 4, "total_cost")]


@pytest.mark.parametrize("text", [
    "drg_code,equivalent_code\nGX11,GB25\n\nGX12, GB26 \nNA,null\n中医,ＧＢ\n",
    "drg_code,equivalent_code\r\nGX11,GB25\r\n\r\nGX12,\r\n",
    "drg_code,equivalent_code\nGX11,GB25",                       # no newline at the end
    "drg_code,equivalent_code\n",
    "drg_code,equivalent_code\nGX\x0011,GB25\x00\n\t,\x1b\n=1+2,@x\n",  # NUL, controls, formula leads
    "drg_code,equivalent_code\n\n\n,\n ,  \n",                         # empty and blank values
])
def test_arrow_reads_plain_files_as_the_csv_module_does(text, monkeypatch):
    plain = []
    arrow_frame = rows._arrow_frame
    monkeypatch.setattr(rows, "_arrow_frame", lambda *args: plain.append(arrow_frame(*args)) or plain[-1])
    fast = b.read_csv_text(text, b.TCM_EQUIVALENTS)
    assert plain and plain[0] is not None  # read by Arrow, not the fallback
    monkeypatch.setattr(rows, "_arrow_frame", lambda *args: None)
    slow = b.read_csv_text(text, b.TCM_EQUIVALENTS)
    assert fast[1] == slow[1]
    # the same values; Arrow's columns are held by Arrow, the csv module's by Python (both pandas' str)
    pd.testing.assert_frame_equal(fast[0], slow[0], check_dtype=False)
    assert [str(fast[0][c].dtype) for c in ("drg_code", "equivalent_code")] == ["str", "str"]
    assert list(fast[0].columns) == ["drg_code", "equivalent_code", "_line"]


def _decoded_read(raw: bytes, spec):
    """What read_csv_bytes gave before it read any file from its bytes: the decoded text's reading
    (_read_decoded, which reads every file the text way)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return rows._empty_frame(spec.columns), [RowError(spec.name, line, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
    return rows._read_decoded(text, raw, spec)


@pytest.mark.parametrize("raw, usual", [
    (b"drg_code,equivalent_code\nGX11,GB25\nGX12,GB26\n", True),
    (b"drg_code,equivalent_code\nGX11,GB25", True),                                  # no newline at the end
    (b"drg_code,equivalent_code\r\nGX11,GB25\r\nGX12,\r\n", True),
    ("\ufeffdrg_code,equivalent_code\r\n中医,ＧＢ\r\n".encode(), True),               # BOM, CRLF, not ASCII
    (b"drg_code,equivalent_code\nGX\x0011,GB25\x00\n\t,\x1b\n=1+2,@x\n", True),       # NUL, controls, formula leads
    (b"drg_code,equivalent_code\n", True),                                           # a header alone
    (b"drg_code,extra\nGX11,y\n", True),                                             # header errors, records read
    (b"drg_code,equivalent_code\nGX11,GB25\n\nGX12,GB26\n", False),                 # a blank line
    (b"drg_code,equivalent_code\r\nGX11,GB25\r\n\r\nGX12,\r\n", False),
    (b'drg_code,equivalent_code\nGX11,"GB25"\n', False),                             # a quote
    (b"drg_code,equivalent_code\nGX11,GB25\rGX12,GB26\n", False),                    # a carriage return alone
    (b"drg_code,equivalent_code\nGX11,GB\xff25\nGX12,GB26\n", False),               # not UTF-8 in a value
    (b"drg_code,equi\xc3valent_code\nGX11,GB25\n", False),                           # ... in the header
    (b"drg_code,equivalent_code\nGX11\nGX12,GB26,x\n", False),                       # wrong numbers of fields
    (b"drg_code,drg_code\nGX11,GB25\n", False),                                      # a repeated column
    (b"drg_code,equivalent_code", False),                                             # no line ends
    (b"", False),
    (b",\n,\n", False),                                                              # an empty header
])
def test_a_file_read_from_its_bytes_reads_as_its_decoded_text(raw, usual):
    assert (rows._read_usual(raw, b.TCM_EQUIVALENTS) is not None) == usual
    frame, errors = rows.read_csv_bytes(raw, b.TCM_EQUIVALENTS)
    text_frame, text_errors = _decoded_read(raw, b.TCM_EQUIVALENTS)
    assert errors == text_errors
    pd.testing.assert_frame_equal(frame, text_frame)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["GX11", "", " ", "中医", "\x00", "\r", "\n", '"', ",", "\ufeff", "=1", "\udcff"]),
                         min_size=0, max_size=3), max_size=6),
       st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_any_file_read_from_its_bytes_reads_as_its_decoded_text(records, newline, bom):
    text = ("\ufeff" if bom else "") + newline.join(["drg_code,equivalent_code", *("".join(r) for r in records)])
    raw = text.encode("utf-8", "surrogateescape")  # a lone surrogate escape: a byte that is not UTF-8
    frame, errors = rows.read_csv_bytes(raw, b.TCM_EQUIVALENTS)
    text_frame, text_errors = _decoded_read(raw, b.TCM_EQUIVALENTS)
    assert errors == text_errors
    pd.testing.assert_frame_equal(frame, text_frame)


@pytest.mark.parametrize("text, line", [
    ("drg_code,equivalent_code\nGX11,GB25\rGX12,GB26\nGX13,GB25\n", 2),
    ('drg_code,equivalent_code\nGX11,"GB25"\nGX12,GB\r26\n', 3),
    ("drg_code,equi\rvalent_code\nGX11,GB25\n", 1),
])
def test_a_carriage_return_alone_inside_a_record_is_an_error_naming_its_line(text, line):
    frame, errors = b.read_csv_text(text, b.TCM_EQUIVALENTS)
    assert frame.empty
    assert [(e.line, e.reason) for e in errors] == [
        (line, "a carriage return (CR) alone inside a record: lines end with LF or CRLF")]


def test_records_with_the_wrong_number_of_fields_are_named_and_left_out():
    text = "drg_code,equivalent_code\nGX11,GB25\nGX12\nGX13,GB25,extra\nGX14,GB25\n"
    frame, errors = b.read_csv_text(text, b.TCM_EQUIVALENTS)

    assert [(e.line, e.reason) for e in errors] == [(3, "expected 2 fields, found 1"), (4, "expected 2 fields, found 3")]
    assert list(frame["drg_code"]) == ["GX11", "GX14"] and list(frame["_line"]) == [2, 5]


def test_a_large_file_with_a_bad_record_or_a_value_larger_than_a_block_is_read_to_the_same_rows():
    """Arrow refuses the first (a record's fields are wrong) and cannot split the second (one value
    larger than its 4 MiB block): either way the file is read again by the way that names every line."""
    good = "".join(f"GX{i},GB{i % 7}\n" for i in range(60_000))
    header = "drg_code,equivalent_code\n"
    frame, errors = b.read_csv_text(header + good + "GX_bad\n" + good, b.TCM_EQUIVALENTS)
    assert [(e.line, e.reason) for e in errors] == [(60_002, "expected 2 fields, found 1")]
    assert len(frame) == 120_000 and list(frame["_line"].iloc[[0, 59_999, 60_000, -1]]) == [2, 60_001, 60_003, 120_002]

    huge = "x" * (5 << 20)
    frame, errors = b.read_csv_text(header + good + f"GX{huge},=1+2\x00\n" + "GX_last,GB1\n", b.TCM_EQUIVALENTS)
    assert errors == [] and len(frame) == 60_002
    assert len(frame["drg_code"].iat[60_000]) == len(huge) + 2 and frame["equivalent_code"].iat[60_000] == "=1+2\x00"
    assert (frame["drg_code"].iat[-1], frame["_line"].iat[-1]) == ("GX_last", 60_003)


def test_quoted_values_with_commas_and_quotes_are_read():
    text = 'institution_code,drg_code,multiple,reason,fund\nH1,GB25,1,"分解住院, c09 ""and"" c10",employee\n'
    frame, errors = b.read_csv_text(text, b.POINT_ADJUSTMENTS)
    typed, row_errors = b.parse_point_adjustments(frame, **KNOWN)

    assert errors == [] and row_errors == []
    assert typed.iloc[0]["reason"] == '分解住院, c09 "and" c10'
    assert typed.iloc[0]["multiple_u"] == 10000


def test_every_bad_case_row_is_named_by_file_line_and_column():
    typed, errors = cases(
        GOOD_CASE,                                                                                  # 2 fine
        "c02,H9,employee,P002,2025-01-03,2025-01-10,GB25,8000.00,1600.00,normal,0,0,0,0",           # 3 unknown institution
        "c03,H1,employee,P003,2025-01-10,2025-01-03,GB25,8000.00,1600.00,normal,0,0,0,0",           # 4 discharge < admission
        "c04,H1,employee,P004,2025-01-03,2025-01-10,GB25,8000.00,8000.01,normal,0,0,0,0",           # 5 self_pay > total
        "c05,H1,employee,P005,2025-01-03,2025-01-10,GB25,80O0.00,1600.00,normal,0,0,0,0",           # 6 malformed amount
        "c01,H1,resident,P006,2025-01-03,2025-01-10,GB25,8000.00,1600.00,normal,0,0,0,0",           # 7 duplicate of line 2
        "c07,H1,pension,P007,2025-02-30,2025/03/01,XX99,-5.00,1.234,alive,2,9000.00,5,y",           # 8 many at once
        "c08,H2,resident,,2025-01-03,2025-01-10,ES23,100.00,0,normal,1,100.01,0,0",                 # 9 no patient, tcm > total
    )

    assert where(errors) == [
        ("cases.csv", 3, "institution_code"),
        ("cases.csv", 4, "discharge_date"),
        ("cases.csv", 5, "self_pay"),
        ("cases.csv", 6, "total_cost"),
        ("cases.csv", 7, "case_no"),
        ("cases.csv", 8, "admission_date"),
        ("cases.csv", 8, "discharge_date"),
        ("cases.csv", 8, "discharge_status"),
        ("cases.csv", 8, "drg_code"),
        ("cases.csv", 8, "fund"),
        ("cases.csv", 8, "malignant_tumor_surgery"),
        ("cases.csv", 8, "self_pay"),
        ("cases.csv", 8, "surgery_grade"),
        ("cases.csv", 8, "tcm_treatment"),
        ("cases.csv", 8, "total_cost"),
        ("cases.csv", 9, "patient_id"),
        ("cases.csv", 9, "tcm_cost"),
    ]
    reasons = {(e.line, e.column): e.reason for e in errors}
    assert reasons[(3, "institution_code")] == "unknown institution 'H9'"
    assert reasons[(4, "discharge_date")] == "discharge_date 2025-01-03 is before admission_date 2025-01-10"
    assert reasons[(5, "self_pay")] == "self_pay 8000.01 exceeds total_cost 8000.00"
    assert reasons[(7, "case_no")] == "duplicate key (institution_code, case_no) = ('H1', 'c01'); first at line 2"
    assert reasons[(8, "total_cost")] == "negative amount: '-5.00'"
    assert reasons[(8, "self_pay")] == "'1.234' has more than 2 decimals"
    assert reasons[(8, "admission_date")] == "2025-02-30 is not a calendar date"
    assert reasons[(8, "surgery_grade")] == "5 is outside 0–4"


def test_the_case_keys_checked_apart_are_the_same_errors_as_checked_with_the_rest():
    """parse_cases(keys=False) leaves the repeated keys to case_key_errors (the loader checks them
    once a new region's cases are being stored): together, the errors of parse_cases."""
    lines = (GOOD_CASE,
             "c01,H1,resident,P006,2025-01-03,2025-01-10,GB25,8000.00,1600.00,normal,0,0,0,0",  # 3 repeats line 2
             "c01,H9,resident,P006,2025-01-03,2025-01-10,GB25,80O0.00,1600.00,normal,0,0,0,0",  # 4 another institution
             "c01,H1,employee,P007,2025-01-03,2025-01-10,GB25,8000.00,1600.00,normal,0,0,0,0")  # 5 repeats line 2
    frame, read_errors = b.read_csv_text("\n".join([",".join(b.CASES.columns), *lines]) + "\n", b.CASES)
    assert read_errors == []
    whole, errors = b.parse_cases(frame, **KNOWN)
    apart, rest = b.parse_cases(frame, keys=False, **KNOWN)
    keys = b.case_key_errors(frame)
    pd.testing.assert_frame_equal(whole, apart)
    assert sorted(rest + keys) == sorted(errors)
    assert [(e.line, e.column, e.reason) for e in keys] == [
        (3, "case_no", "duplicate key (institution_code, case_no) = ('H1', 'c01'); first at line 2"),
        (5, "case_no", "duplicate key (institution_code, case_no) = ('H1', 'c01'); first at line 2"),
    ]
    assert b.case_key_errors(frame.iloc[[0, 2]]) == []


def test_group_rules_need_the_numbers_their_kind_uses():
    text = ("code,name,kind,base_points,avg_cost,daily_points,same_price,readmission_exempt\n"
            "GB25,a,stable,80.0000,8000.00,,0,0\nMH01,b,per_diem,,,,0,0\nXX01,c,stable,,0,,0,0\n"
            "0000,d,unstable,,,,0,0\nYY01,e,weird,1.12345,,,,\n")
    frame, _ = b.read_csv_text(text, b.DRG_GROUPS)
    typed, errors = b.parse_groups(frame)

    assert where(errors) == [
        ("drg_groups.csv", 3, "daily_points"),
        ("drg_groups.csv", 4, "avg_cost"),
        ("drg_groups.csv", 4, "base_points"),
        ("drg_groups.csv", 6, "base_points"),
        ("drg_groups.csv", 6, "kind"),
    ]
    assert typed.iloc[0]["base_u"] == 800000 and typed.iloc[0]["avg_fen"] == 800000
    assert typed["daily_u"].isna().sum() == 5


def test_references_to_cases_must_exist():
    frame, _ = b.read_csv_text("institution_code,case_no,approved_cost\nH1,c16,80000.00\nH1,c99,1.00\n", b.SPECIAL_REVIEWS)
    typed, errors = b.parse_special_reviews(frame, known_cases={("H1", "c16")})

    assert where(errors) == [("special_reviews.csv", 3, "case_no")]
    assert typed.iloc[0]["approved_fen"] == 8000000


def test_months_become_the_first_day_and_hospice_beds_need_no_patient():
    frame, _ = b.read_csv_text("claim_no,institution_code,fund,month,patient_id,approved_amount\nT1,H1,employee,2025-07,P1,2300.00\n"
                               "T2,H1,employee,2025-13,P1,1\n", b.ITEMIZED_CLAIMS)
    typed, errors = b.parse_itemized_claims(frame, known_institutions={"H1"})
    assert typed.iloc[0]["month"] == "2025-07-01"
    assert where(errors) == [("itemized_claims.csv", 3, "month")]

    frame, _ = b.read_csv_text("institution_code,kind,patient_id,service_date,quantity\nH1,bed,,2025-03-01,4\n"
                               "H1,home,,2025-03-02,\n", b.HOSPICE_SERVICES)
    typed, errors = b.parse_hospice_services(frame, known_institutions={"H1"})
    assert where(errors) == [("hospice_services.csv", 3, "patient_id")]
    assert list(typed["quantity"]) == [4, 1]


def test_evaluation_scores_are_between_0_and_100():
    frame, _ = b.read_csv_text("institution_code,fund,score\nH1,employee,92.5\nH2,employee,100.01\n", b.EVALUATIONS)
    typed, errors = b.parse_evaluations(frame, known_institutions={"H1", "H2"})

    assert where(errors) == [("evaluations.csv", 3, "score")]
    assert typed.iloc[0]["score_c"] == 9250


def test_non_utf8_text_is_named_with_its_line(tmp_path):
    path = tmp_path / "cases.csv"
    path.write_bytes((CASES_HEADER + "\n" + GOOD_CASE + "\n").encode() + b"c02,\xc8\xcb\xc3\xf1\n")  # GBK bytes that are not UTF-8
    _, errors = b.read_csv_file(path, b.CASES)

    assert [(e.line, e.column) for e in errors] == [(3, "")]
    assert errors[0].reason.startswith("not UTF-8")


# --- params.json -------------------------------------------------------------------------------------


def test_the_worked_params_are_read_exactly(worked_bundle):
    params, errors = b.parse_params((worked_bundle / "params.json").read_text(encoding="utf-8"))

    assert errors == []
    assert (params.region_code, params.region_name, params.year) == ("331083", "玉环市", 2025)
    assert params.budgets["resident"].policy_adjustment == Decimal("-500.00")
    assert params.budgets["employee"].growth_cap == Decimal("0.10")
    assert params.scheme["all_case_avg_cost"] == Decimal("10000.00")
    assert params.scheme["surplus_tiers"] == [{"upto": 0.1, "hospital_share": 0.85}, {"upto": None, "hospital_share": 0}]
    assert params.scheme["high_outlier_tiers"][2] == {"upto": None, "multiple": 1.5}
    assert params.scheme["readmission_days"] == 15


def params_text(**changes) -> str:
    data = {
        "region": {"code": "331083", "name": "玉环市"}, "year": 2025,
        "budgets": {"employee": {"base_amount": "100.00", "growth_rate": "0.06", "growth_cap": "0.10"}},
        "scheme": {"all_case_avg_cost": "10000.00"},
    }
    for path, value in changes.items():
        target = data
        *parents, last = path.split("__")
        for name in parents:
            target = target[name]
        if value is None:
            target.pop(last)
        else:
            target[last] = value
    return json.dumps(data)


def test_a_growth_rate_above_its_cap_is_an_error_at_its_json_path():
    params, errors = b.parse_params(params_text(budgets__employee__growth_rate="0.12"))

    assert where(errors) == [("params.json", 0, "budgets.employee.growth_rate")]
    assert "exceeds the growth cap 0.10" in errors[0].reason
    assert params is not None and params.budgets == {}  # the region is still usable for checking the files


def test_missing_scheme_keys_are_left_to_the_defaults():
    params, errors = b.parse_params(params_text())

    assert errors == []
    assert params.scheme == {"all_case_avg_cost": Decimal("10000.00")}
    assert params.budgets["employee"].reserve_rate == Decimal("0.05")


def test_params_problems_are_named_by_json_path():
    text = params_text(
        budgets__resident={"base_amount": "1.001", "growth_rate": "x"},
        budgets__pension={"base_amount": "1", "growth_rate": "0"},
        scheme__prepay_ratio="0.80",
        scheme__surplus_tiers=[{"upto": 0.1, "hospital_share": 0.85}, {"upto": 0.2, "hospital_share": 0}],
        scheme__colour="red",
        scheme__all_case_avg_cost=None,
        extra=1,
    )
    params, errors = b.parse_params(text)

    assert where(errors) == [
        ("params.json", 0, "budgets.pension"),
        ("params.json", 0, "budgets.resident.base_amount"),
        ("params.json", 0, "budgets.resident.growth_rate"),
        ("params.json", 0, "extra"),
        ("params.json", 0, "scheme.all_case_avg_cost"),
        ("params.json", 0, "scheme.colour"),
        ("params.json", 0, "scheme.prepay_ratio"),
        ("params.json", 0, "scheme.surplus_tiers[1].upto"),
    ]


def test_invalid_json_names_its_line():
    params, errors = b.parse_params('{\n  "region": {"code": "1"},\n  "year": 2025,,\n}')

    assert params is None
    assert [(e.file, e.line) for e in errors] == [("params.json", 3)]


# --- cases against what is stored ---------------------------------------------------------------------


def stored_like(typed: pd.DataFrame, **changes) -> pd.DataFrame:
    stored = typed.drop(columns="_line").copy()
    stored["case_id"] = np.arange(1, len(stored) + 1)
    for column, value in changes.items():
        stored.loc[0, column] = value
    return stored


def test_cases_are_classified_against_the_stored_ones():
    typed, _ = cases(GOOD_CASE, GOOD_CASE.replace("c01", "c02"), GOOD_CASE.replace("c01", "c03"))
    stored = stored_like(typed.iloc[:2], total_fen=700000)

    classified = b.classify_cases(typed, stored)

    assert list(classified["state"]) == ["changed", "unchanged", "new"]
    assert classified.iloc[0]["changed"] == ("total_fen",)
    assert classified.iloc[0]["total_fen_stored"] == 700000
    assert list(classified["case_id"].astype(object).where(classified["case_id"].notna(), None)) == [1, 2, None]
    assert b.case_json_value("total_fen", 700000) == "7000.00"


def test_with_nothing_stored_every_case_is_new_with_the_columns_a_comparison_gives_new_rows():
    """A region's first load: nothing to compare, every row new, each classified column as the
    comparison with stored cases gives a new row (state, no id, nothing changed, no stored value)."""
    typed, _ = cases(GOOD_CASE, GOOD_CASE.replace("c01", "c02"), GOOD_CASE.replace("c01", "c03"))
    compared = b.classify_cases(typed, stored_like(typed.iloc[:1]))
    first = b.classify_cases(typed, stored_like(typed.iloc[:1]).iloc[:0])

    assert list(first.columns) == list(compared.columns)
    assert list(first["state"]) == ["new"] * 3 and str(first["state"].dtype) == str(compared["state"].dtype)
    assert first["case_id"].dtype == compared["case_id"].dtype and first["case_id"].isna().all()
    pd.testing.assert_frame_equal(first.iloc[1:], compared.iloc[1:], check_dtype=False)  # the two new rows alike
    assert all(first[f"{column}_stored"].dtype == object for column in b.CASE_VALUE_COLUMNS)
    pd.testing.assert_frame_equal(first[list(typed.columns)], typed.reset_index(drop=True))


def test_a_finalized_period_refuses_new_and_changed_cases_but_not_identical_ones():
    typed, _ = cases(
        GOOD_CASE,                                                                          # 2 January, changed
        GOOD_CASE.replace("c01", "c02"),                                                     # 3 January, unchanged
        GOOD_CASE.replace("c01", "c03"),                                                     # 4 January, new
        GOOD_CASE.replace("c01", "c04").replace("2025-01-03,2025-01-10", "2025-04-01,2025-04-03"),  # 5 April, new
    )
    stored = stored_like(typed.iloc[:2], self_fen=1)

    errors = b.frozen_case_errors(b.classify_cases(typed, stored), {("employee", 2025): 3})

    assert where(errors) == [("cases.csv", 2, "self_pay"), ("cases.csv", 4, "discharge_date")]
    assert "finalized through month 3" in errors[0].reason
    assert b.frozen_case_errors(b.classify_cases(typed, stored), {("resident", 2025): 12}) == []


def test_moving_a_case_out_of_a_finalized_month_is_refused():
    typed, _ = cases(GOOD_CASE.replace("2025-01-03,2025-01-10", "2025-05-03,2025-05-10"))
    stored = stored_like(typed, admission_date="2025-01-03", discharge_date="2025-01-10")

    errors = b.frozen_case_errors(b.classify_cases(typed, stored), {("employee", 2025): 1})

    assert where(errors) == [("cases.csv", 2, "admission_date")]


# --- exactness ---------------------------------------------------------------------------------------

amounts = st.builds(
    lambda whole, cents, dot: f"{whole}.{cents}" if dot else f"{whole}",
    st.integers(min_value=0, max_value=10**14 - 1),
    st.from_regex(r"\A[0-9]{1,2}\Z"),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(amounts, min_size=1, max_size=30))
def test_amount_parsing_equals_decimal_arithmetic(values):
    units, ok = rows._decimal_units(np.array(values, dtype=object), places=2, int_digits=14)

    assert ok.all()
    assert [int(u) for u in units] == [int(Decimal(v) * 100) for v in values]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="0123456789.-e ,", max_size=8), min_size=1, max_size=20))
def test_amount_parsing_accepts_exactly_the_format(values):
    import re

    units, ok = rows._decimal_units(np.array(values, dtype=object), places=2, int_digits=14)
    pattern = re.compile(r"\d{1,14}(?:\.\d{1,2})?")

    assert list(ok) == [bool(pattern.fullmatch(v)) for v in values]
    assert all(int(u) == int(Decimal(v) * 100) for u, v, good in zip(units, values, ok) if good)


def test_row_errors_print_as_file_line_column_reason():
    assert str(RowError("cases.csv", 7, "self_pay", "too much")) == "cases.csv:7 self_pay: too much"
    assert b.sort_errors([RowError("cases.csv", 2, "a", "x"), RowError("params.json", 0, "year", "y")])[0].file == "params.json"
