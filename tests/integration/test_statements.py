"""Statements of the worked example (SETTLEMENT.md §8): the Excel and CSV statements carry exactly the
numbers of expected/employee/*, and the year-end pack adds up (Σ fund_payment = distributed)."""
from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest
from openpyxl import load_workbook


pytestmark = pytest.mark.django_db

ANNUAL_FIELDS = ["points", "point_value", "gross_amount", "self_pay", "fund_payment", "itemized_fund", "surplus", "prepaid",
                 "withheld", "quality_deduction", "balance"]


def expected_rows(path) -> dict[str, dict[str, str]]:
    with open(path, encoding="utf-8") as handle:
        return {row["institution_code"]: row for row in csv.DictReader(handle)}


def sheet_table(ws, header_row: int = 3) -> tuple[list[str], list[list]]:
    rows = list(ws.iter_rows(min_row=header_row, values_only=True))
    return list(rows[0]), [list(r) for r in rows[1:]]


def test_the_annual_excel_statement_carries_the_expected_numbers(employee_year, worked_expected):
    from settlement.statements import ANNUAL_COLUMNS, statement_xlsx

    region, _, annual = employee_year
    expected = expected_rows(worked_expected / "employee" / "annual" / "clearing.csv")

    workbook = load_workbook(io.BytesIO(statement_xlsx(run=annual)))

    sheet = workbook["结算单"]
    header, rows = sheet_table(sheet)
    assert header == [c.header for c in ANNUAL_COLUMNS]
    fields = [c.field for c in ANNUAL_COLUMNS]
    body = {row[0]: dict(zip(fields, row)) for row in rows if row[0] in expected}
    assert sorted(body) == sorted(expected) == ["H1", "H2", "H3"]
    for code, want in expected.items():
        for name in ANNUAL_FIELDS:
            places = Decimal("0.0001") if name in ("points", "point_value") else Decimal("0.01")
            got = Decimal(str(body[code][name])).quantize(places)
            assert got == Decimal(want[name]), (code, name, got, want[name])
    total_row = rows[-1]
    assert total_row[0] == "合计"
    assert Decimal(str(total_row[fields.index("fund_payment")])).quantize(Decimal("0.01")) == Decimal("303459.57")
    # formatting: frozen header, number formats, widths
    assert sheet.freeze_panes == "C4"
    first = rows.index(next(r for r in rows if r[0] == "H1")) + 4
    assert sheet.cell(row=first, column=fields.index("fund_payment") + 1).number_format == "0.00"
    assert sheet.cell(row=first, column=fields.index("point_value") + 1).number_format == "0.0000"
    assert sheet.cell(row=3, column=1).font.bold
    assert sheet.column_dimensions["B"].width > 10


def test_the_inputs_sheet_shows_the_formulas_inputs(employee_year, worked_expected):
    from settlement.statements import statement_xlsx

    _, _, annual = employee_year
    pool = json.loads((worked_expected / "employee" / "annual" / "pool.json").read_text())

    inputs = load_workbook(io.BytesIO(statement_xlsx(run=annual)))["计算参数"]

    values = {row[0]: row[1] for row in inputs.iter_rows(min_row=3, values_only=True)}
    def amount(prefix):
        label = next(k for k in values if k.startswith(prefix))
        return Decimal(str(values[label]))
    assert amount("总额") == Decimal(pool["total"])
    assert amount("调剂金") == Decimal(pool["reserve"])
    assert amount("B ") == Decimal(pool["drg_budget"])
    assert amount("F ") == Decimal(pool["fund_claims"])
    assert amount("A ") == Decimal(pool["distributed"])
    assert amount("V  点值").quantize(Decimal("0.0001")) == Decimal(pool["point_value"])
    assert amount("预付比例") == Decimal("0.95")
    assert "85%" in values["结余分档"]
    assert any(k.startswith("S ") for k in values) and any(k.startswith("P ") for k in values)


def test_an_institution_statement_has_its_line_and_its_cases(employee_year, worked_expected):
    from settlement.statements import statement_csv, statement_xlsx

    region, _, annual = employee_year
    h2 = region.institutions.get(code="H2")
    expected = expected_rows(worked_expected / "employee" / "annual" / "clearing.csv")["H2"]

    workbook = load_workbook(io.BytesIO(statement_xlsx(run=annual, institution=h2)))
    text = statement_csv(run=annual, institution=h2).decode("utf-8-sig")

    _, rows = sheet_table(workbook["结算单"])
    assert [r[0] for r in rows] == ["H2"]
    row = dict(csv.DictReader(io.StringIO(text)).__next__())
    assert {k: row[k] for k in ANNUAL_FIELDS} == {k: expected[k] for k in ANNUAL_FIELDS}
    _, cases = sheet_table(workbook["病例"])
    assert cases[-1][0] == "合计"
    assert Decimal(str(cases[-1][-1])) == Decimal(row["raw_points"])


def test_the_pool_csv_of_a_monthly_run_matches_the_expected_monthly_file(employee_year, worked_expected):
    from settlement.statements import statement_csv

    _, monthly, _ = employee_year
    for month in (3, 12):
        expected = expected_rows(worked_expected / "employee" / f"month-{month:02d}" / "monthly.csv")
        got = {row["institution_code"]: row for row in csv.DictReader(io.StringIO(statement_csv(run=monthly[month]).decode("utf-8-sig")))}
        assert sorted(got) == sorted(expected)
        for code, want in expected.items():
            assert {k: got[code][k] for k in want if k != "institution_code"} == {k: v for k, v in want.items() if k != "institution_code"}, (month, code)


def test_the_year_end_pack_adds_up(employee_year, worked_expected):
    from settlement.statements import year_end_pack_xlsx

    region, monthly, annual = employee_year

    workbook = load_workbook(io.BytesIO(year_end_pack_xlsx(region=region, year=2025)))

    assert workbook.sheetnames == ["汇总", "职工医保清算", "职工医保月度预付", "职工医保参数"]
    _, lines = sheet_table(workbook["职工医保清算"])
    total = lines[-1]
    assert total[0] == "合计"
    payments = [Decimal(str(r[11])) for r in lines[:-1]]
    assert sum(payments) == Decimal(str(total[11])).quantize(Decimal("0.01")) == Decimal("303459.57")
    summary = workbook["汇总"]
    assert "未定稿，未纳入：城乡居民医保" in summary.cell(row=2, column=1).value
    _, prepay = sheet_table(workbook["职工医保月度预付"])
    prepaid_by_code = {r[0]: Decimal(str(r[-1])).quantize(Decimal("0.01")) for r in prepay[:-1]}
    expected = expected_rows(worked_expected / "employee" / "annual" / "clearing.csv")
    assert prepaid_by_code == {code: Decimal(row["prepaid"]) for code, row in expected.items()}


def test_no_statement_is_issued_when_the_payments_do_not_add_up(employee_year):
    from settlement.models import InstitutionLine
    from settlement.statements import StatementError, statement_xlsx, year_end_pack_xlsx

    region, _, annual = employee_year
    InstitutionLine.objects.filter(run=annual, institution__code="H1").update(fund_payment=Decimal("1.00"))

    with pytest.raises(StatementError, match="可分配"):
        statement_xlsx(run=annual)
    with pytest.raises(StatementError, match="可分配"):
        year_end_pack_xlsx(region=region, year=2025)
