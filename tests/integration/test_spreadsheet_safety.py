"""No text that a spreadsheet would read as a formula reaches a statement, an export or an incentive
file as one (OWASP CSV injection): such a cell is written with a leading quote, as text. The texts
are stored behind the validators' back here (as a record kept from before they existed would be);
every door that writes a spreadsheet must still escape them."""
from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command
from openpyxl import load_workbook

from common.spreadsheet import formula_safe, formula_safe_series
from common.users import system_user
from drg.models import Case, Institution, Region
from exchange.exports import clearing_export
from settlement.services import clearing_run_finalize, clearing_run_start

pytestmark = pytest.mark.django_db

EVIL_CASE = "=cmd|' /C calc'!A0"
EVIL_NAME = "@SUM(1+1)*cmd|' /C calc'!A0"
EVIL_CODE = "+H1"


def test_the_shared_helper_quotes_formula_leads_and_keeps_numbers():
    assert [formula_safe(v) for v in (EVIL_CASE, "+1+1", "-A1", "@x", "\t=1", "\r=1", "＝1", "-3", "c01", "", None, 5)] == [
        "'" + EVIL_CASE, "'+1+1", "'-A1", "'@x", "'\t=1", "'\r=1", "'＝1", "'-3", "c01", "", None, 5,
    ]
    import pandas as pd

    assert formula_safe_series(pd.Series(["c01", "=1", "-0.5", "x-"])).tolist() == ["c01", "'=1", "'-0.5", "x-"]


@pytest.fixture
def hostile_year(worked_bundle):
    """The worked example's employee annual run, with a case_no, an institution name and code that
    spreadsheets read as formulas."""
    call_command("load_bundle", str(worked_bundle), stdout=io.StringIO())
    region = Region.objects.get(code="331083")
    h1 = Institution.objects.get(region=region, code="H1")
    Case.objects.filter(institution=h1, case_no="c01").update(case_no=EVIL_CASE)
    Institution.objects.filter(pk=h1.pk).update(name=EVIL_NAME)
    batch = system_user()
    run = clearing_run_finalize(run=clearing_run_start(region=region, fund="employee", year=2025, user=batch), user=batch, system=True)
    return region, Institution.objects.get(pk=h1.pk), run


def all_cells(workbook):
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            yield from row


def test_the_institution_statement_xlsx_writes_a_formula_like_case_no_as_text(hostile_year):
    from settlement.statements import statement_xlsx

    _region, h1, run = hostile_year
    workbook = load_workbook(io.BytesIO(statement_xlsx(run=run, institution=h1)))

    cells = list(all_cells(workbook))
    assert not [c.coordinate for c in cells if c.data_type == "f"]  # no formula anywhere
    texts = {c.value for c in cells if isinstance(c.value, str)}
    assert "'" + EVIL_CASE in texts and "'" + EVIL_NAME in texts
    assert EVIL_CASE not in texts and EVIL_NAME not in texts


def test_the_pool_statement_csv_and_the_year_end_pack_escape_the_name(hostile_year):
    from settlement.statements import statement_csv, statement_xlsx, year_end_pack_xlsx

    region, _h1, run = hostile_year
    rows = list(csv.reader(io.StringIO(statement_csv(run=run).decode("utf-8-sig"))))
    names = [row[1] for row in rows[1:]]
    assert "'" + EVIL_NAME in names and EVIL_NAME not in names
    for content in (statement_xlsx(run=run), year_end_pack_xlsx(region=region, year=2025)):
        cells = list(all_cells(load_workbook(io.BytesIO(content))))
        assert not [c.coordinate for c in cells if c.data_type == "f"]
        assert "'" + EVIL_NAME in {c.value for c in cells}


def test_the_exchange_export_escapes_a_formula_like_case_no_and_code(hostile_year, tmp_path):
    _region, h1, run = hostile_year
    Institution.objects.filter(pk=h1.pk).update(code=EVIL_CODE)

    clearing_export(run=run, out_dir=tmp_path)

    clearing = list(csv.DictReader(open(tmp_path / "clearing.csv", encoding="utf-8")))
    points = list(csv.DictReader(open(tmp_path / "case_points.csv", encoding="utf-8")))
    assert "'" + EVIL_CODE in {r["institution_code"] for r in clearing}
    assert "'" + EVIL_CASE in {r["case_no"] for r in points}
    assert {r["institution_code"] for r in points if r["case_no"] == "'" + EVIL_CASE} == {"'" + EVIL_CODE}
    # amounts stay numbers (a negative one too: numbers are not formulas)
    assert not [v for r in clearing for k, v in r.items() if k != "institution_code" and v.startswith("'")]


def test_incentive_exports_escape_payee_codes_and_names(worked_bundle, tmp_path):
    from incentives.exports import payout_csv_text, payout_xlsx_bytes
    from incentives.models import Payout, PayoutLine

    call_command("load_bundle", str(worked_bundle), stdout=io.StringIO())
    call_command("pay_incentives", "--region", "331083", "--year", "2025", "--out", str(tmp_path), stdout=io.StringIO())
    payout = Payout.objects.get(year=2025)
    line = payout.lines.filter(institution__isnull=False).first()
    PayoutLine.objects.filter(pk=line.pk).update(payee_code="-1+cmd|' /C calc'!A0")
    Institution.objects.filter(pk=line.institution_id).update(name=EVIL_NAME)

    text = payout_csv_text(payout=payout)
    cells = list(all_cells(load_workbook(io.BytesIO(payout_xlsx_bytes(payout=payout)))))

    assert "'-1+cmd|' /C calc'!A0" in [row[0] for row in csv.reader(io.StringIO(text))]
    values = {c.value for c in cells}
    assert "'-1+cmd|' /C calc'!A0" in values and "'" + EVIL_NAME in values
    assert {c.value[:5] for c in cells if c.data_type == "f"} == {"=SUM("}  # only the workbook's own totals
