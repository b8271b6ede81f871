"""Hostile input never gives a 500: NUL bytes and lone surrogates anywhere in a request, CSV files
without the required header, identifiers a spreadsheet would read as a formula. Run on PostgreSQL
too (DATABASE_URL=postgres://…): NUL and JSONB failures only show there."""
from __future__ import annotations

import json

import pytest

from drg.models import Case, CorrectionRequest, IdempotencyRecord, SpecialReview
from settlement.models import ItemizedClaim
from tests.api.conftest import case_row, stored_case

pytestmark = pytest.mark.django_db

CSV_HEADER = (
    "case_no,fund,patient_id,admission_date,discharge_date,drg_code,total_cost,self_pay,discharge_status,"
    "tcm_treatment,tcm_cost,surgery_grade,malignant_tumor_surgery"
)
CSV_ROW = "{case_no},employee,{patient_id},2025-01-03,2025-01-10,GB25,8000.00,1600.00,normal,0,0,3,1"


def post_json_text(client, url: str, text: str, **headers):
    """POST a JSON document given as text, so that escapes such as \\ud800 reach the server as sent."""
    return client.generic("POST", url, text.encode("ascii"), content_type="application/json", **headers)


def errors_of(response) -> list[dict]:
    return response.json()["errors"]


@pytest.mark.parametrize(
    "url, field",
    [
        ("/api/v1/cases/c01%00/", "case_no"),
        ("/api/v1/cases/c01%00/valuation/", "case_no"),
        ("/api/v1/cases/c01%00/corrections/", "case_no"),
        ("/api/v1/special-reviews/c01%00/", "case_no"),
        ("/api/v1/itemized-claims/T%00001/", "claim_no"),
    ],
)
def test_a_nul_byte_in_a_path_parameter_is_a_404_naming_the_parameter(api, h1, url, field):
    stored_case(h1, "c01")
    response = api.get(url)
    assert response.status_code == 404
    assert errors_of(response) == [
        {"code": "not_found", "message": errors_of(response)[0]["message"], "field": field}
    ]
    assert "\\x00" in errors_of(response)[0]["message"]


def test_a_nul_byte_in_a_query_parameter_is_a_400_naming_it(api, h1):
    response = api.get("/api/v1/correction-requests/?case_no=c01%00")
    assert response.status_code == 400
    assert errors_of(response)[0]["field"] == "case_no" and errors_of(response)[0]["code"] == "invalid_characters"
    assert api.get("/api/v1/cases/?drg_code=GB%0025").status_code == 400


@pytest.mark.parametrize("field", ["case_no", "patient_id", "drg_code", "fund"])
@pytest.mark.parametrize("bad", ["c\\u0000", "x\\ud800", "\\udfffx"])
def test_nul_and_lone_surrogates_in_submitted_cases_are_a_400_with_row_and_field(api, field, bad):
    rows = [case_row("c01"), {**case_row("c02"), field: "BAD"}]
    text = json.dumps(rows).replace('"BAD"', f'"{bad}"')
    response = post_json_text(api, "/api/v1/cases/", text)
    assert response.status_code == 400
    (error,) = errors_of(response)
    assert (error["code"], error.get("row"), error["field"]) == ("invalid_characters", 1, field)
    assert Case.objects.count() == 0


def test_a_nul_byte_in_a_correction_requests_proposed_value_is_a_400_naming_the_field(api, h1):
    stored_case(h1, "c01")
    text = json.dumps({"case_no": "c01", "reason": "r", "proposed": {"patient_id": "P\u0000"}})
    response = post_json_text(api, "/api/v1/correction-requests/", text)
    assert response.status_code == 400
    assert errors_of(response)[0]["field"] == "proposed.patient_id"
    assert CorrectionRequest.objects.count() == 0


def test_a_nul_byte_in_an_unknown_key_with_an_idempotency_key_is_answered_and_replayed(api, h1):
    stored_case(h1, "c01")
    text = '{"case_no": "c01", "reason": "r", "requested_cost": "10.00", "bad\\u0000key": 1}'
    first = post_json_text(api, "/api/v1/special-reviews/", text, HTTP_IDEMPOTENCY_KEY="k-nul-1")
    again = post_json_text(api, "/api/v1/special-reviews/", text, HTTP_IDEMPOTENCY_KEY="k-nul-1")
    assert first.status_code == again.status_code == 400
    assert errors_of(first)[0]["field"] == "bad\\x00key"
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    record = IdempotencyRecord.objects.get(key="k-nul-1")
    assert record.status_code == 400 and "\x00" not in json.dumps(record.response_body, ensure_ascii=False)
    assert SpecialReview.objects.count() == 0


def test_a_lone_surrogate_in_an_itemized_claim_is_a_400(api):
    text = '{"claim_no": "T1", "fund": "employee", "month": "2025-01", "patient_id": "P\\ud800", "claimed_amount": "1.00"}'
    response = post_json_text(api, "/api/v1/itemized-claims/", text, HTTP_IDEMPOTENCY_KEY="k-sur-1")
    assert response.status_code == 400 and errors_of(response)[0]["field"] == "patient_id"
    assert ItemizedClaim.objects.count() == 0


def test_a_nul_byte_in_a_csv_field_is_a_400_with_line_and_column(api):
    body = "\n".join([CSV_HEADER, CSV_ROW.format(case_no="c01", patient_id="P001"), CSV_ROW.format(case_no="c\x0002", patient_id="P\x00")])
    response = api.generic("POST", "/api/v1/cases/csv/", body.encode("utf-8"), content_type="text/csv")
    assert response.status_code == 400
    located = {(e.get("row"), e.get("field")) for e in errors_of(response)}
    assert {(3, "case_no"), (3, "patient_id")} <= located
    assert Case.objects.count() == 0


def test_a_csv_without_case_no_in_its_header_is_a_400_listing_the_missing_columns(api):
    header = CSV_HEADER.replace("case_no,", "").replace(",drg_code", "")
    body = header + "\nemployee,P1,2025-01-03,2025-01-10,8000.00,1600.00,normal,0,0,3,1\n"
    response = api.generic("POST", "/api/v1/cases/csv/", body.encode(), content_type="text/csv")
    assert response.status_code == 400
    assert response.json()["missing_columns"] == ["case_no", "drg_code"]
    assert {e["code"] for e in errors_of(response)} == {"missing_column"}
    assert {e["field"] for e in errors_of(response)} == {"case_no", "drg_code"}


@pytest.mark.parametrize("pdf", [
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",  # text-only PDF
    b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\nstream\n\x00\x01\x02\xff\nendstream\n",  # binary PDF
])
def test_a_pdf_uploaded_as_csv_is_a_400(api, pdf):
    from django.core.files.uploadedfile import SimpleUploadedFile

    as_file = api.post("/api/v1/cases/csv/", {"file": SimpleUploadedFile("cases.csv", pdf, content_type="text/csv")}, format="multipart")
    as_body = api.generic("POST", "/api/v1/cases/csv/", pdf, content_type="text/csv")
    assert as_file.status_code == as_body.status_code == 400
    assert Case.objects.count() == 0


@pytest.mark.parametrize("bad", ["   ", "=cmd|' /C calc'!A0", "+1", "-2", "@SUM(A1)", "c\t01", "c 01", "c\u200b01"])
def test_identifiers_that_his_systems_do_not_issue_are_refused_in_every_submission(api, h1, bad):
    stored_case(h1, "c01")
    special = api.post("/api/v1/special-reviews/", {"case_no": bad, "reason": "r", "requested_cost": "1.00"}, format="json")
    claim = api.post(
        "/api/v1/itemized-claims/",
        {"claim_no": bad, "fund": "employee", "month": "2025-01", "patient_id": "P1", "claimed_amount": "1.00"}, format="json",
    )
    screening = api.post(
        "/api/v1/incentives/screenings/", {"patient_id": bad, "screening_date": "2025-03-01", "fee": "1.00"}, format="json"
    )
    correction = api.post("/api/v1/correction-requests/", {"case_no": bad, "reason": "r", "proposed": {"total_cost": "1"}}, format="json")
    for response, field in ((special, "case_no"), (claim, "claim_no"), (screening, "patient_id"), (correction, "case_no")):
        assert response.status_code == 400, (field, response.json())
        assert errors_of(response)[0]["field"] == field
    assert SpecialReview.objects.count() == ItemizedClaim.objects.count() == 0


def test_an_api_key_with_a_nul_byte_is_refused_as_malformed(client, h1):
    response = client.get("/api/v1/me/", HTTP_AUTHORIZATION="Api-Key ab\x00cd.secret")
    assert response.status_code == 401


@pytest.mark.parametrize("field", ["case_no", "patient_id"])
@pytest.mark.parametrize("bad", ["=cmd|' /C calc'!A0", "+1", "-1", "@x", "  ", "c\t1"])
def test_formula_like_or_blank_identifiers_in_submitted_cases_are_refused_with_row_and_field(api, field, bad):
    as_json = api.post("/api/v1/cases/", [case_row("c01"), {**case_row("c02"), field: bad}], format="json")
    values = {"case_no": "c02", "patient_id": "P002", field: bad}
    line = CSV_ROW.format(**values) if "," not in bad else None
    as_csv = api.generic(
        "POST", "/api/v1/cases/csv/", "\n".join([CSV_HEADER, CSV_ROW.format(case_no="c01", patient_id="P1"), line]).encode(),
        content_type="text/csv",
    ) if line else None

    assert as_json.status_code == 400
    assert [(e["row"], e["field"], e["code"]) for e in errors_of(as_json)] == [(1, field, "invalid_identifier")]
    if as_csv is not None:
        assert as_csv.status_code == 400
        assert [(e["row"], e["field"], e["code"]) for e in errors_of(as_csv)] == [(3, field, "invalid_identifier")]
    assert Case.objects.count() == 0
