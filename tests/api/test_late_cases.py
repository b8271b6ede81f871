"""Late cases of a finalized period (SETTLEMENT.md §6): a new case discharged in a frozen month goes in
as a correction request of kind late_case, checked like a case submission; the bureau's approval
creates the case and records it as a correction; the next cumulative run values it."""
from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.urls import reverse

from common.reviews import review_approve, review_reject
from drg.models import Case, CaseCorrection, CorrectionRequest, Institution, Region
from settlement import services as settlement_services
from settlement.models import InstitutionLine
from tests.results_helpers import result_of
from tests.api.conftest import case_row, client_for, finalized_run, stored_case
from tests.integration.admin_helpers import make_user

REQUESTS = "/api/v1/correction-requests/"


def late_case(case_no: str = "c31", reason: str = "discharge record found in the March audit", **overrides) -> dict:
    row = case_row(case_no, **overrides)
    return {"kind": "late_case", "case_no": row.pop("case_no"), "reason": reason, "proposed": row}


def errors_of(response) -> list[dict]:
    return response.json()["errors"]


@pytest.fixture
def january_finalized(region):
    return finalized_run(region, month=1)


@pytest.fixture
def approver(db):
    return make_user("alan", "approver")


# --- submitting ----------------------------------------------------------------------------------------


def test_a_late_case_of_a_finalized_month_is_accepted_as_a_pending_request(api, h1, january_finalized):
    response = api.post(REQUESTS, late_case("c31", total_cost=8000, tcm_treatment=False), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["kind"], body["case_no"], body["status"], body["rejection_reason"]) == ("late_case", "c31", "submitted", "")
    assert body["proposed"] == {
        "fund": "employee", "patient_id": "P001", "admission_date": "2025-01-03", "discharge_date": "2025-01-10",
        "drg_code": "GB25", "total_cost": "8000.00", "self_pay": "1600.00", "discharge_status": "normal",
        "tcm_treatment": False, "tcm_cost": "0.00", "surgery_grade": 3, "malignant_tumor_surgery": True,
    }
    request = CorrectionRequest.objects.get()
    assert (request.kind, request.case, request.case_no, request.institution) == ("late_case", None, "c31", h1)
    assert not Case.objects.exists()


def test_the_hospital_follows_its_late_case_requests(api, h1, january_finalized):
    created = api.post(REQUESTS, late_case("c31"), format="json").json()
    stored_case(h1, "c01")
    api.post(REQUESTS, {"case_no": "c01", "reason": "r", "proposed": {"drg_code": "ES23"}}, format="json")

    late = api.get(f"{REQUESTS}?kind=late_case").json()
    by_case_no = api.get(f"{REQUESTS}?case_no=c31").json()
    detail = api.get(f"{REQUESTS}{created['id']}/").json()

    assert [r["case_no"] for r in late["results"]] == ["c31"]
    assert [r["id"] for r in by_case_no["results"]] == [created["id"]]
    assert (detail["kind"], detail["case_no"], detail["status"]) == ("late_case", "c31", "submitted")
    assert api.get(f"{REQUESTS}?kind=change").json()["results"][0]["case_no"] == "c01"


@pytest.mark.parametrize(
    "payload, field, code",
    [
        (late_case(self_pay="9000.00"), "proposed.self_pay", "above_total_cost"),
        (late_case(discharge_date="2025-01-01"), "proposed.discharge_date", "before_admission"),
        (late_case(drg_code="ZZ99"), "proposed.drg_code", "unknown_drg_code"),
        (late_case(total_cost="12abc"), "proposed.total_cost", "invalid_number"),
        (late_case(total_cost="1.234"), "proposed.total_cost", "too_many_decimals"),
        (late_case(patient_id=""), "proposed.patient_id", "required"),
        (late_case(fund="private"), "proposed.fund", "invalid_choice"),
        (late_case(total_cost=[1]), "proposed.total_cost", "invalid_type"),
        (late_case(colour="red"), "proposed.colour", "unknown_field"),
        ({**late_case(), "proposed": {**late_case()["proposed"], "case_no": "c31"}}, "proposed.case_no", "unknown_field"),
        ({**late_case(), "proposed": {}}, "proposed", "invalid_type"),
        ({**late_case(), "kind": "new"}, "kind", "invalid_choice"),
        ({k: v for k, v in late_case().items() if k != "reason"}, "reason", "required"),
    ],
)
def test_a_bad_late_case_is_refused_with_the_case_submissions_codes(api, h1, january_finalized, payload, field, code):
    response = api.post(REQUESTS, payload, format="json")

    assert response.status_code == 400
    errors = errors_of(response)
    assert {"field": field, "code": code} in [{"field": e.get("field"), "code": e["code"]} for e in errors], errors
    assert all(set(e) <= {"code", "message", "row", "field", "case_no"} and e["message"] for e in errors)
    assert not CorrectionRequest.objects.exists()


def test_a_late_case_without_required_fields_lists_every_missing_one(api, h1, january_finalized):
    response = api.post(REQUESTS, {"kind": "late_case", "case_no": "c31", "reason": "r", "proposed": {"fund": "employee"}}, format="json")

    assert response.status_code == 400
    required = {e["field"] for e in errors_of(response) if e["code"] == "required"}
    assert {"proposed.patient_id", "proposed.admission_date", "proposed.discharge_date", "proposed.drg_code",
            "proposed.total_cost", "proposed.self_pay", "proposed.discharge_status"} <= required


def test_a_late_case_whose_case_no_is_stored_is_refused(api, h1, january_finalized):
    stored_case(h1, "c01")

    response = api.post(REQUESTS, late_case("c01", total_cost="9000.00"), format="json")

    assert response.status_code == 409
    [error] = errors_of(response)
    assert (error["code"], error["field"], error["case_no"]) == ("case_exists", "case_no", "c01")
    assert "kind change" in error["message"]
    assert not CorrectionRequest.objects.exists()


def test_a_second_pending_late_case_of_the_same_case_no_is_refused_until_the_first_is_rejected(api, h1, january_finalized, approver):
    first = api.post(REQUESTS, late_case("c31"), format="json")

    again = api.post(REQUESTS, late_case("c31", total_cost="8100.00"), format="json")

    assert again.status_code == 409
    assert errors_of(again)[0]["code"] == "already_requested"
    review_reject(record=CorrectionRequest.objects.get(pk=first.json()["id"]), user=approver, reason="wrong patient")
    assert api.post(REQUESTS, late_case("c31", total_cost="8100.00"), format="json").status_code == 201


def test_a_late_case_of_an_open_month_is_refused_and_pointed_to_case_submission(api, h1, january_finalized):
    response = api.post(REQUESTS, late_case("c31", admission_date="2025-02-01", discharge_date="2025-02-05"), format="json")

    assert response.status_code == 409
    body = response.json()
    [error] = body["errors"]
    assert (error["code"], error["field"], error["case_no"]) == ("period_open", "proposed.discharge_date", "c31")
    assert "employee 2025-02, an open period (finalized through month 1)" in error["message"]
    assert "submit it as an ordinary case (POST /api/v1/cases/)" in error["message"]
    assert body["links"] == {"cases": "/api/v1/cases/"}
    assert not CorrectionRequest.objects.exists()


def test_the_finalized_months_are_those_of_the_late_cases_own_fund(api, h1, january_finalized):
    response = api.post(REQUESTS, late_case("r31", fund="resident"), format="json")

    assert response.status_code == 409
    assert "no month of it is finalized" in errors_of(response)[0]["message"]


def test_case_submission_points_a_new_case_of_a_finalized_month_to_the_late_case_procedure(api, h1, january_finalized):
    refused = api.post("/api/v1/cases/", [case_row("c31")], format="json")

    assert refused.status_code == 409
    body = refused.json()
    [error] = body["errors"]
    assert (error["code"], error["row"], error["field"], error["case_no"]) == ("period_finalized", 0, "discharge_date", "c31")
    assert "correction request of kind late_case (POST /api/v1/correction-requests/)" in error["message"]
    assert body["links"] == {"correction_requests": "/api/v1/correction-requests/"}

    row = case_row("c31")
    followed = api.post(
        body["links"]["correction_requests"],
        {"kind": "late_case", "case_no": row.pop("case_no"), "reason": "late discharge record", "proposed": row},
        format="json",
    )
    assert followed.status_code == 201, followed.json()


# --- another institution ------------------------------------------------------------------------------------


def test_another_institution_neither_sees_nor_collides_with_a_late_case(api, api_h2, h1, h2, january_finalized):
    theirs = api_h2.post(REQUESTS, late_case("c31"), format="json").json()

    assert api.get(f"{REQUESTS}{theirs['id']}/").status_code == 404
    assert errors_of(api.get(f"{REQUESTS}{theirs['id']}/"))[0]["code"] == "not_found"
    assert api.get(REQUESTS).json()["count"] == 0
    assert api.get(f"{REQUESTS}?case_no=c31").json()["count"] == 0
    # case numbers are the institution's own: H1 may have its own late c31
    assert api.post(REQUESTS, late_case("c31"), format="json").status_code == 201
    assert sorted(CorrectionRequest.objects.values_list("institution__code", flat=True)) == ["H1", "H2"]


def test_another_institutions_stored_case_no_does_not_block_a_late_case(api, h1, h2, january_finalized):
    stored_case(h2, "c31")

    assert api.post(REQUESTS, late_case("c31"), format="json").status_code == 201


# --- the bureau's decision -----------------------------------------------------------------------------------


def test_approving_a_late_case_creates_the_case_and_records_it_as_a_correction(api, h1, january_finalized, approver):
    created = api.post(REQUESTS, late_case("c31", total_cost="8200.50", tcm_cost="100"), format="json").json()
    request = CorrectionRequest.objects.get(pk=created["id"])

    review_approve(record=request, user=approver, note="audit confirmed")

    case = Case.objects.get(institution=h1, case_no="c31")
    assert (case.region, case.fund, case.discharge_date, case.total_cost, case.tcm_cost) == (
        h1.region, "employee", dt.date(2025, 1, 10), Decimal("8200.50"), Decimal("100.00"),
    )
    assert (case.surgery_grade, case.malignant_tumor_surgery, case.tcm_treatment) == (3, True, False)
    correction = CaseCorrection.objects.get(case=case)
    assert (correction.source, correction.changed_by, correction.before) == ("admin", approver, {})
    assert correction.after == {"case_no": "c31", **created["proposed"]}
    assert correction.after["total_cost"] == "8200.50"
    assert f"correction request #{request.pk}" in correction.reason and "audit confirmed" in correction.reason
    request.refresh_from_db()
    assert (request.status, request.case, request.decided_by) == ("approved", case, approver)
    # the hospital sees the decision, the case and its recorded origin
    assert api.get(f"{REQUESTS}{request.pk}/").json()["status"] == "approved"
    assert api.get("/api/v1/cases/c31/").json()["total_cost"] == "8200.50"
    assert api.get("/api/v1/cases/c31/corrections/").json()["results"][0]["before"] == {}


def test_approval_rechecks_the_case_no_and_leaves_the_request_pending_when_it_is_taken(api, h1, january_finalized, approver):
    created = api.post(REQUESTS, late_case("c31"), format="json").json()
    stored_case(h1, "c31", total_cost=Decimal("5000.00"), self_pay=Decimal("0"))  # e.g. a bureau correction got there first

    with pytest.raises(ValidationError, match="already stored"):
        review_approve(record=CorrectionRequest.objects.get(pk=created["id"]), user=approver)

    assert CorrectionRequest.objects.get(pk=created["id"]).status == "submitted"
    assert Case.objects.get(case_no="c31").total_cost == Decimal("5000.00")
    assert not CaseCorrection.objects.exists()


def test_nothing_is_half_written_when_recording_the_correction_fails(api, h1, january_finalized, approver, monkeypatch):
    created = api.post(REQUESTS, late_case("c31"), format="json").json()

    def broken(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(CaseCorrection.objects, "create", broken)
    with pytest.raises(RuntimeError):
        review_approve(record=CorrectionRequest.objects.get(pk=created["id"]), user=approver)

    assert not Case.objects.exists()
    request = CorrectionRequest.objects.get(pk=created["id"])
    assert (request.status, request.case_id, request.decided_by) == ("submitted", None, None)


def test_a_rejection_needs_a_reason_which_the_hospital_sees(api, h1, january_finalized, approver):
    created = api.post(REQUESTS, late_case("c31"), format="json").json()
    request = CorrectionRequest.objects.get(pk=created["id"])

    with pytest.raises(ValidationError):
        review_reject(record=request, user=approver, reason="  ")
    review_reject(record=request, user=approver, reason="no discharge record in the HIS")

    detail = api.get(f"{REQUESTS}{request.pk}/").json()
    assert (detail["status"], detail["rejection_reason"]) == ("rejected", "no discharge record in the HIS")
    assert detail["decided_at"] is not None
    assert not Case.objects.exists() and not CaseCorrection.objects.exists()


@pytest.mark.parametrize(
    "values",
    [
        {"kind": "change", "case_no": ""},  # a change without a case
        {"kind": "late_case", "case_no": ""},  # a late case without its case_no
    ],
)
def test_a_request_without_its_target_cannot_be_stored(h1, values):
    with pytest.raises(IntegrityError), transaction.atomic():
        CorrectionRequest.objects.create(institution=h1, proposed={"fund": "employee"}, reason="r", **values)


# --- the next run picks it up (the spec's worked example) -------------------------------------------------------


def test_a_late_case_approved_after_march_is_finalized_is_valued_by_the_april_run(db, client, worked_bundle):
    call_command("load_bundle", str(worked_bundle), stdout=io.StringIO())
    region = Region.objects.get(code="331083")
    h1 = Institution.objects.get(region=region, code="H1")
    operator, approver = make_user("olga", "operator"), make_user("alan", "approver")
    for month in (1, 2, 3):  # monthly runs follow each other (SETTLEMENT.md §6)
        march = settlement_services.clearing_run_start(region=region, fund="employee", year=2025, month=month, user=operator)
        settlement_services.clearing_run_finalize(run=march, user=approver)
    april_before = settlement_services.clearing_run_start(region=region, fund="employee", year=2025, month=4, user=operator)
    api = client_for(h1)

    refused = api.post("/api/v1/cases/", [case_row("c31", admission_date="2025-02-12", discharge_date="2025-02-20")], format="json")
    requested = api.post(REQUESTS, late_case("c31", admission_date="2025-02-12", discharge_date="2025-02-20"), format="json")
    request = CorrectionRequest.objects.get(pk=requested.json()["id"])
    client.force_login(approver)
    decided = client.post(reverse("admin:drg_correctionrequest_decide", args=[request.pk, "approved"]), {"apply": "1", "reason": "audit"})
    april_after = settlement_services.clearing_run_start(region=region, fund="employee", year=2025, month=4, user=operator)

    assert refused.status_code == 409 and requested.status_code == 201
    assert decided.status_code == 302
    request.refresh_from_db()
    assert request.status == "approved" and request.case.case_no == "c31"
    late = result_of(april_after, "c31")
    assert late["institution_id"] == h1.pk and late["points"] > 0
    assert result_of(march, "c31") is None and result_of(april_before, "c31") is None
    assert april_after.case_count == april_before.case_count + 1
    due = lambda run: InstitutionLine.objects.get(run=run, institution=h1).due
    assert due(april_after) != due(april_before)
    march.refresh_from_db()
    assert march.status == "finalized"
