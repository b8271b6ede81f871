"""Bulk case submission (JSON and CSV): all or nothing, every error class with a stable code,
idempotency, corrections of open periods, 409 for finalized periods then a correction request."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from drg.choices import ChangeSource
from drg.models import Case, CaseCorrection, CorrectionRequest, IdempotencyRecord
from tests.api.conftest import case_row, finalized_run, stored_case

CASES = "/api/v1/cases/"
CSV = "/api/v1/cases/csv/"
HEADER = "case_no,fund,patient_id,admission_date,discharge_date,drg_code,total_cost,self_pay,discharge_status,tcm_treatment,tcm_cost,surgery_grade,malignant_tumor_surgery"


def errors_of(response) -> list[dict]:
    return response.json()["errors"]


# --- success ------------------------------------------------------------------------------------------


def test_submitting_new_cases_creates_them_for_the_callers_institution(api, h1):
    response = api.post(CASES, [case_row("c01"), case_row("c02", drg_code="ES23", total_cost=60000, self_pay="9000.5")], format="json")

    assert response.status_code == 200
    assert response.json() == {"received": 2, "created": 2, "updated": 0, "unchanged": 0}
    c02 = Case.objects.get(case_no="c02")
    assert (c02.institution, c02.total_cost, c02.self_pay) == (h1, Decimal("60000.00"), Decimal("9000.50"))


def test_resubmitting_identical_cases_changes_nothing(api, h1):
    rows = [case_row("c01"), case_row("c02")]
    api.post(CASES, rows, format="json")
    before = list(Case.objects.values_list("id", "updated_at"))

    response = api.post(CASES, rows, format="json")

    assert response.json() == {"received": 2, "created": 0, "updated": 0, "unchanged": 2}
    assert list(Case.objects.values_list("id", "updated_at")) == before
    assert not CaseCorrection.objects.exists()


def test_a_changed_case_of_an_open_period_is_updated_and_recorded_as_an_api_correction(api, h1):
    api.post(CASES, [case_row("c01")], format="json")

    response = api.post(CASES, [case_row("c01", total_cost="9000.00")], format="json")

    assert response.json()["updated"] == 1
    assert Case.objects.get(case_no="c01").total_cost == Decimal("9000.00")
    correction = CaseCorrection.objects.get()
    assert correction.source == ChangeSource.API
    assert (correction.before, correction.after) == ({"total_cost": "8000.00"}, {"total_cost": "9000.00"})


def test_booleans_and_numbers_may_be_sent_as_json_types(api, h1):
    row = case_row("c01", tcm_treatment=True, malignant_tumor_surgery=False, surgery_grade=4, total_cost=8000, self_pay=1600.25, tcm_cost=0)

    response = api.post(CASES, [row], format="json")

    assert response.status_code == 200, response.json()
    case = Case.objects.get()
    assert (case.tcm_treatment, case.malignant_tumor_surgery, case.surgery_grade, case.self_pay) == (True, False, 4, Decimal("1600.25"))


def test_csv_upload_as_a_text_body(api, h1):
    body = f"{HEADER}\nc01,employee,P001,2025-01-03,2025-01-10,GB25,8000.00,1600.00,normal,0,0,3,1\n"

    response = api.post(CSV, body, content_type="text/csv")

    assert response.status_code == 200, response.json()
    assert response.json()["created"] == 1


def test_csv_upload_as_a_multipart_file_with_the_callers_institution_code(api, h1):
    body = f"\ufeff{HEADER},institution_code\nc01,employee,P001,2025-01-03,2025-01-10,GB25,8000.00,1600.00,normal,0,0,3,1,H1\n"
    upload = SimpleUploadedFile("cases.csv", body.encode("utf-8"), content_type="text/csv")

    response = api.post(CSV, {"file": upload}, format="multipart")

    assert response.status_code == 200, response.json()
    assert Case.objects.get().institution == h1


# --- validation errors: one test per class, each with its code ------------------------------------------


@pytest.mark.parametrize(
    "overrides, field, code",
    [
        ({"self_pay": "9000.00"}, "self_pay", "above_total_cost"),
        ({"tcm_cost": "9000.00"}, "tcm_cost", "above_total_cost"),
        ({"discharge_date": "2025-01-01"}, "discharge_date", "before_admission"),
        ({"total_cost": "-1.00"}, "total_cost", "negative"),
        ({"total_cost": "1.234"}, "total_cost", "too_many_decimals"),
        ({"total_cost": "12abc"}, "total_cost", "invalid_number"),
        ({"total_cost": "1" * 20}, "total_cost", "out_of_range"),
        ({"admission_date": "2025/01/03"}, "admission_date", "invalid_date"),
        ({"admission_date": "2025-02-30"}, "admission_date", "invalid_date"),
        ({"fund": "private"}, "fund", "invalid_choice"),
        ({"discharge_status": "escaped"}, "discharge_status", "invalid_choice"),
        ({"drg_code": "ZZ99"}, "drg_code", "unknown_drg_code"),
        ({"tcm_treatment": "yes"}, "tcm_treatment", "invalid_boolean"),
        ({"surgery_grade": 7}, "surgery_grade", "out_of_range"),
        ({"surgery_grade": "two"}, "surgery_grade", "invalid_number"),
        ({"patient_id": ""}, "patient_id", "required"),
        ({"case_no": "x" * 41}, "case_no", "too_long"),
        ({"total_cost": [1]}, "total_cost", "invalid_type"),
        ({"case_no": 12}, "case_no", "invalid_type"),
        ({"total_cost": True}, "total_cost", "invalid_type"),
        ({"surgery_grade": 1.5}, "surgery_grade", "invalid_type"),
        ({"colour": "red"}, "colour", "unknown_field"),
        ({"institution_code": "H1"}, "institution_code", "unknown_field"),
    ],
)
def test_a_bad_row_is_refused_with_its_row_field_and_code(api, h1, overrides, field, code):
    rows = [case_row("c01"), {**case_row("c02"), **overrides}]

    response = api.post(CASES, rows, format="json")

    assert response.status_code == 400
    assert {"row": 1, "field": field, "code": code} in [{k: e.get(k) for k in ("row", "field", "code")} for e in errors_of(response)]
    assert all(e["message"] for e in errors_of(response))
    assert not Case.objects.exists()  # all or nothing


def test_a_missing_required_field_is_reported(api, h1):
    row = case_row("c01")
    del row["drg_code"]

    response = api.post(CASES, [row], format="json")

    assert response.status_code == 400
    assert errors_of(response)[0] == {"row": 0, "field": "drg_code", "code": "required", "message": "required value is empty"}


def test_duplicate_case_numbers_in_one_request_are_refused(api, h1):
    response = api.post(CASES, [case_row("c01"), case_row("c01")], format="json")

    assert response.status_code == 400
    assert [(e["row"], e["code"]) for e in errors_of(response)] == [(1, "duplicate")]


def test_every_bad_row_is_listed_and_nothing_is_stored(api, h1):
    rows = [case_row("c01"), case_row("c02", self_pay="9999"), case_row("c03"), case_row("c04", fund="x", colour=1)]

    response = api.post(CASES, rows, format="json")

    assert response.status_code == 400
    assert sorted({(e["row"], e["code"]) for e in errors_of(response)}) == [(1, "above_total_cost"), (3, "unknown_field")]
    assert not Case.objects.exists()


def test_type_errors_and_rule_errors_of_other_rows_are_reported_together(api, h1):
    response = api.post(CASES, [case_row("c01", total_cost={}), case_row("c02", self_pay="9999")], format="json")

    assert sorted((e["row"], e["code"]) for e in errors_of(response)) == [(0, "invalid_type"), (1, "above_total_cost")]


@pytest.mark.parametrize(
    "body, code",
    [
        ('{"case_no": "c01"}', "invalid_type"),
        ("[1, 2]", "invalid_type"),
        ("[]", "empty"),
        ("[{\"case_no\": ", "malformed_json"),
        ("[NaN]", "malformed_json"),
        ("", "invalid_type"),
    ],
)
def test_malformed_bodies_answer_400(api, h1, body, code):
    response = api.post(CASES, body, content_type="application/json")

    assert response.status_code == 400
    assert errors_of(response)[0]["code"] == code


def test_an_unsupported_media_type_answers_415(api, h1):
    response = api.post(CASES, "case_no\nc01", content_type="text/plain")

    assert response.status_code == 415
    assert errors_of(response)[0]["code"] == "unsupported_media_type"


def test_more_than_5000_cases_answer_413(api, h1):
    rows = [case_row(f"c{i}") for i in range(5001)]

    response = api.post(CASES, rows, format="json")

    assert response.status_code == 413
    assert errors_of(response)[0]["code"] == "too_many_cases"
    assert not Case.objects.exists()


def test_a_body_above_the_upload_limit_answers_413(api, h1, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = api.post(CASES, [case_row(f"c{i}") for i in range(20)], format="json")

    assert response.status_code == 413
    assert errors_of(response)[0]["code"] == "payload_too_large"


# --- CSV specifics ----------------------------------------------------------------------------------------


def test_csv_errors_point_at_the_line_number_with_the_header_as_line_1(api, h1):
    body = (
        f"{HEADER}\n"
        "c01,employee,P001,2025-01-03,2025-01-10,GB25,8000.00,1600.00,normal,0,0,3,1\n"
        "c02,employee,P002,2025-01-03,2025-01-10,GB25,8000.00,9600.00,normal,0,0,3,1\n"
    )

    response = api.post(CSV, body, content_type="text/csv")

    assert response.status_code == 400
    assert [(e["row"], e["field"], e["code"]) for e in errors_of(response)] == [(3, "self_pay", "above_total_cost")]


def test_csv_rows_of_another_institution_are_refused(api, h1, h2):
    body = f"{HEADER},institution_code\nc01,employee,P001,2025-01-03,2025-01-10,GB25,8000.00,1600.00,normal,0,0,3,1,H2\n"

    response = api.post(CSV, body, content_type="text/csv")

    assert response.status_code == 400
    assert [(e["row"], e["field"], e["code"]) for e in errors_of(response)] == [(2, "institution_code", "wrong_institution")]
    assert not Case.objects.exists()


@pytest.mark.parametrize(
    "body, code",
    [
        (HEADER + ",colour\n", "unknown_field"),
        (HEADER.replace(",drg_code", "") + "\n", "missing_column"),
        (HEADER + ",fund\n", "duplicate_column"),
        (HEADER + "\nc01,employee\n", "wrong_field_count"),
        ("", "empty"),
    ],
)
def test_csv_shape_errors(api, h1, body, code):
    response = api.post(CSV, body, content_type="text/csv")

    assert response.status_code == 400
    assert code in [e["code"] for e in errors_of(response)]


def test_a_csv_file_that_is_not_utf8_is_refused(api, h1):
    response = api.post(CSV, HEADER.encode("utf-8") + b"\n\xff\xfe", content_type="text/csv")

    assert response.status_code == 400
    assert errors_of(response)[0]["code"] == "malformed_csv"


def test_a_multipart_upload_without_a_file_is_refused(api, h1):
    response = api.post(CSV, {"other": "x"}, format="multipart")

    assert response.status_code == 400
    assert errors_of(response)[0] == {"code": "required", "message": errors_of(response)[0]["message"], "field": "file"}


def test_a_csv_of_more_than_5000_records_answers_413(api, h1):
    line = "c{},employee,P001,2025-01-03,2025-01-10,GB25,8000.00,1600.00,normal,0,0,3,1"
    body = HEADER + "\n" + "\n".join(line.format(i) for i in range(5001)) + "\n"

    response = api.post(CSV, body, content_type="text/csv")

    assert response.status_code == 413


# --- idempotency --------------------------------------------------------------------------------------------


def test_a_retry_with_the_same_idempotency_key_returns_the_first_answer(api, h1):
    rows = [case_row("c01")]
    first = api.post(CASES, rows, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")

    retry = api.post(CASES, rows, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")

    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.json() == first.json() == {"received": 1, "created": 1, "updated": 0, "unchanged": 0}
    assert retry["Idempotent-Replayed"] == "true"
    assert Case.objects.count() == 1


def test_the_same_idempotency_key_with_another_body_answers_422(api, h1):
    api.post(CASES, [case_row("c01")], format="json", HTTP_IDEMPOTENCY_KEY="batch-1")

    response = api.post(CASES, [case_row("c02")], format="json", HTTP_IDEMPOTENCY_KEY="batch-1")

    assert response.status_code == 422
    assert errors_of(response)[0]["code"] == "idempotency_key_reused"
    assert not Case.objects.filter(case_no="c02").exists()


def test_a_refused_request_is_replayed_as_refused(api, h1):
    bad = [case_row("c01", self_pay="9999")]
    first = api.post(CASES, bad, format="json", HTTP_IDEMPOTENCY_KEY="k")

    retry = api.post(CASES, bad, format="json", HTTP_IDEMPOTENCY_KEY="k")

    assert first.status_code == retry.status_code == 400
    assert retry.json() == first.json()


def test_idempotency_keys_are_per_institution(api, api_h2, h1, h2):
    api.post(CASES, [case_row("c01")], format="json", HTTP_IDEMPOTENCY_KEY="same")

    response = api_h2.post(CASES, [case_row("c09")], format="json", HTTP_IDEMPOTENCY_KEY="same")

    assert response.status_code == 200
    assert response.json()["created"] == 1
    assert IdempotencyRecord.objects.count() == 2


def test_an_invalid_idempotency_key_is_refused(api, h1):
    response = api.post(CASES, [case_row("c01")], format="json", HTTP_IDEMPOTENCY_KEY="x" * 200)

    assert response.status_code == 400
    assert errors_of(response)[0]["code"] == "invalid_idempotency_key"


# --- finalized periods -----------------------------------------------------------------------------------------


def test_changing_a_case_of_a_finalized_period_answers_409_then_a_correction_request_is_accepted(api, h1, region):
    stored_case(h1, "c01")
    finalized_run(region, month=1)

    refused = api.post(CASES, [case_row("c01", total_cost="9000.00")], format="json")

    assert refused.status_code == 409
    body = refused.json()
    assert body["errors"][0]["code"] == "period_finalized"
    assert body["errors"][0]["row"] == 0 and body["errors"][0]["case_no"] == "c01"
    assert body["links"]["correction_requests"] == "/api/v1/correction-requests/"
    assert Case.objects.get().total_cost == Decimal("8000.00")

    requested = api.post(
        body["links"]["correction_requests"],
        {"case_no": "c01", "reason": "billing error", "proposed": {"total_cost": "9000.00"}},
        format="json",
    )

    assert requested.status_code == 201, requested.json()
    assert requested.json()["status"] == "submitted"
    assert requested.json()["proposed"] == {"total_cost": "9000.00"}
    assert CorrectionRequest.objects.get().proposed == {"total_cost": "9000.00"}
    assert Case.objects.get().total_cost == Decimal("8000.00")


def test_an_identical_case_of_a_finalized_period_is_an_accepted_no_op(api, h1, region):
    stored_case(h1, "c01", surgery_grade=3, malignant_tumor_surgery=True)
    finalized_run(region, month=1)

    response = api.post(CASES, [case_row("c01")], format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["unchanged"] == 1


def test_a_new_case_in_a_finalized_period_answers_409(api, h1, region):
    finalized_run(region, month=2)

    response = api.post(CASES, [case_row("c05"), case_row("c06", admission_date="2025-03-01", discharge_date="2025-03-05")], format="json")

    assert response.status_code == 409
    assert [(e["row"], e["code"]) for e in errors_of(response)] == [(0, "period_finalized")]
    assert not Case.objects.exists()


def test_a_case_of_the_open_month_after_a_finalized_one_is_accepted(api, h1, region):
    finalized_run(region, month=1)

    response = api.post(CASES, [case_row("c06", admission_date="2025-02-01", discharge_date="2025-02-05")], format="json")

    assert response.status_code == 200


@pytest.mark.parametrize(
    "payload, status, code",
    [
        ({"case_no": "c01", "reason": "r", "proposed": {}}, 400, "invalid_type"),
        ({"case_no": "c01", "reason": "r", "proposed": {"total_cost": "8000.00"}}, 400, "no_change"),
        ({"case_no": "c01", "reason": "r", "proposed": {"self_pay": "9999.00"}}, 400, "above_total_cost"),
        ({"case_no": "c01", "reason": "r", "proposed": {"colour": "red"}}, 400, "unknown_field"),
        ({"case_no": "c01", "reason": "r", "proposed": {"case_no": "c99"}}, 400, "not_correctable"),
        ({"case_no": "c01", "reason": "r", "proposed": {"drg_code": "ES23"}, "extra": 1}, 400, "unknown_field"),
        ({"case_no": "nope", "reason": "r", "proposed": {"drg_code": "ES23"}}, 404, "case_not_found"),
    ],
)
def test_correction_request_errors(api, h1, payload, status, code):
    stored_case(h1, "c01")

    response = api.post("/api/v1/correction-requests/", payload, format="json")

    assert response.status_code == status
    assert code in [e["code"] for e in errors_of(response)], response.json()
    assert not CorrectionRequest.objects.exists()


def test_correction_requests_can_be_listed_and_followed(api, h1):
    stored_case(h1, "c01")
    created = api.post("/api/v1/correction-requests/", {"case_no": "c01", "reason": "r", "proposed": {"drg_code": "ES23"}}, format="json").json()

    listed = api.get("/api/v1/correction-requests/?status=submitted").json()
    detail = api.get(f"/api/v1/correction-requests/{created['id']}/").json()

    assert [r["id"] for r in listed["results"]] == [created["id"]]
    assert detail["case_no"] == "c01" and detail["status"] == "submitted"


def test_submission_body_is_parsed_with_exact_decimals(api, h1):
    body = json.dumps([case_row("c01", total_cost=None)]).replace('"total_cost": null', '"total_cost": 8000.10')

    response = api.post(CASES, body, content_type="application/json")

    assert response.status_code == 200, response.json()
    assert Case.objects.get().total_cost == Decimal("8000.10")
