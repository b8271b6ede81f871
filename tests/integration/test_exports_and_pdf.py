"""Excel export of any admin list (filters kept, formulas escaped) and the printable PDF statements
(admin and hospital API), read back with pypdf against the worked example's annual run."""
from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
from django.urls import reverse
from openpyxl import load_workbook
from pypdf import PdfReader
from rest_framework.test import APIClient

from common.spreadsheet import safe_cell_text
from drg.models import Institution
from drg.services import credential_issue
from tests.integration.admin_helpers import make_institution, make_user, small_region

pytestmark = pytest.mark.django_db


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


@pytest.mark.parametrize("text, expected", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1", "'+1"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("玉环市人民医院", "玉环市人民医院"), ("a=b", "a=b"), ("", ""),
])
def test_text_a_spreadsheet_would_read_as_a_formula_is_escaped(text, expected):
    assert safe_cell_text(text) == expected


def test_the_institution_list_exports_what_is_shown_with_its_filter_and_formulas_escaped(client):
    region = small_region()
    make_institution(region, "H1", name="=HYPERLINK(\"http://evil\",\"点我\")")
    make_institution(region, "H2", name="普通医院", level=3)
    client.force_login(make_user("audrey", "auditor"))

    everything = client.get(reverse("admin:drg_institution_export"))
    filtered = client.get(reverse("admin:drg_institution_export") + "?level__exact=3")

    assert everything["Content-Type"].startswith("application/vnd.openxmlformats")
    rows = list(load_workbook(io.BytesIO(everything.content)).active.iter_rows(values_only=True))
    assert rows[0][:2] == ("机构编码", "机构名称")
    assert [r[:2] for r in rows[1:]] == [("H1", "'=HYPERLINK(\"http://evil\",\"点我\")"), ("H2", "普通医院")]
    filtered_rows = list(load_workbook(io.BytesIO(filtered.content)).active.iter_rows(values_only=True))
    assert [r[0] for r in filtered_rows[1:]] == ["H2"]
    page = client.get(reverse("admin:drg_institution_changelist") + "?level__exact=3").content.decode()
    assert "导出 Excel" in page and "export.xlsx?level__exact=3" in page


def test_the_pdf_statement_names_the_institution_its_totals_and_the_run_fingerprint(client, employee_year, worked_expected):
    region, _, annual = employee_year
    h1 = Institution.objects.get(region=region, code="H1")
    line = annual.lines.get(institution=h1)
    client.force_login(make_user("audrey", "auditor"))

    response = client.get(reverse("admin:settlement_clearingrun_institution_statement", args=[annual.pk, h1.pk, "pdf"]))

    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    text = pdf_text(response.content)
    pool = json.loads((worked_expected / "employee" / "annual" / "pool.json").read_text())
    assert f"H1 {h1.name}" in text
    assert f"{line.fund_payment:,.2f}" in text and f"{line.balance:,.2f}" in text
    assert f"{Decimal(pool['distributed']):,.2f}" in text and pool["point_value"] in text
    assert annual.fingerprint in text.replace("\n", "")
    assert "审核人（签字）" in text and "盖章" in text


def test_a_hospital_downloads_only_its_own_statement_as_pdf_and_excel(employee_year):
    region, _, annual = employee_year
    h1, h2 = Institution.objects.get(region=region, code="H1"), Institution.objects.get(region=region, code="H2")
    _, key = credential_issue(institution=h1, name="HIS", user=None)
    api = APIClient(HTTP_AUTHORIZATION=f"Api-Key {key}")

    pdf = api.get(f"/api/v1/statements/{annual.pk}/statement.pdf")
    xlsx = api.get(f"/api/v1/statements/{annual.pk}/statement.xlsx", HTTP_ACCEPT="application/json")
    unknown = api.get(f"/api/v1/statements/{annual.pk}/statement.exe")
    missing = api.get("/api/v1/statements/999999/statement.pdf")
    huge = api.get("/api/v1/statements/2836112627336632336384/statement.pdf")

    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    text = pdf_text(pdf.content)
    assert h1.name in text and h2.name not in text
    assert xlsx.status_code == 200
    codes = [row[0] for row in load_workbook(io.BytesIO(xlsx.content))["结算单"].iter_rows(min_row=4, values_only=True)]
    assert "H1" in codes and "H2" not in codes
    assert unknown.status_code == 404 and missing.status_code == 404 and huge.status_code == 404
    assert missing.json()["errors"][0]["code"] == "not_found"


def test_the_statement_files_are_in_the_openapi_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert "/api/v1/statements/{run_id}/statement.{fmt}" in schema and "application/pdf" in schema
