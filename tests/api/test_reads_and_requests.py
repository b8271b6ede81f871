"""Reads (cases, valuations, statements, payout lines) and the other submissions (special reviews,
itemized claims, incentive events), and cross-institution access: always 404."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from common.models import ReviewStatus
from drg.models import SpecialReview
from incentives.models import ChronicEnrollment, HospiceService, Screening, TcmWorkload
from settlement.choices import RunKind, RunStatus
from settlement.models import ClearingRun, InstitutionLine, ItemizedClaim
from tests.results_helpers import store_result
from tests.api.conftest import stored_case


def make_run(region, *, status=RunStatus.DRAFT, month=None, fund="employee") -> ClearingRun:
    return ClearingRun.objects.create(
        region=region, fund=fund, year=2025, month=month, kind=RunKind.MONTHLY if month else RunKind.ANNUAL, status=status
    )


def make_result(run, case, *, category="normal", points="88.0000") -> None:
    store_result(run, case, category=category, points=points)


def make_line(run, institution, **values) -> InstitutionLine:
    defaults = dict(raw_points=Decimal("100"), points=Decimal("100"), point_value=Decimal("115.6390"), self_pay=Decimal("1600"),
                    itemized_fund=Decimal("6400"), due=Decimal("9963.90"), prepay=Decimal("9465.71"), withheld=Decimal("498.20"))
    defaults.update(values)
    return InstitutionLine.objects.create(run=run, institution=institution, **defaults)


# --- cases and valuations ---------------------------------------------------------------------------


def test_case_list_filters_by_month_drg_code_and_latest_category(api, h1, region):
    jan = stored_case(h1, "c01")
    feb = stored_case(h1, "c02", admission_date=dt.date(2025, 2, 1), discharge_date=dt.date(2025, 2, 3), drg_code="ES23")
    older, newer = make_run(region, month=1), make_run(region, month=2)
    make_result(older, jan, category="normal")
    make_result(newer, jan, category="high", points="148.0000")
    make_result(newer, feb, category="low")

    assert [c["case_no"] for c in api.get("/api/v1/cases/?month=2025-02").json()["results"]] == ["c02"]
    assert [c["case_no"] for c in api.get("/api/v1/cases/?drg_code=GB25").json()["results"]] == ["c01"]
    high = api.get("/api/v1/cases/?category=high").json()["results"]
    assert [(c["case_no"], c["latest_category"], c["latest_points"]) for c in high] == [("c01", "high", "148.0000")]
    assert api.get("/api/v1/cases/?category=normal").json()["count"] == 0


@pytest.mark.parametrize("query", ["month=2025-13", "month=202501", "month=abc", "category=weird", "fund=private"])
def test_bad_filters_answer_400(api, h1, query):
    response = api.get(f"/api/v1/cases/?{query}")

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"]


def test_case_lists_are_paginated(api, h1):
    for i in range(5):
        stored_case(h1, f"c{i:02d}")

    page = api.get("/api/v1/cases/?page_size=2&page=2").json()

    assert page["count"] == 5
    assert [c["case_no"] for c in page["results"]] == ["c02", "c03"]
    assert page["next"] and page["previous"]


def test_case_list_query_count_does_not_grow_with_the_page(api, h1, django_assert_max_num_queries):
    for i in range(30):
        stored_case(h1, f"c{i:02d}")

    with django_assert_max_num_queries(6):
        assert api.get("/api/v1/cases/").status_code == 200


def test_valuation_explains_the_latest_run(api, h1, region):
    case = stored_case(h1, "c01")
    make_result(make_run(region, month=1, status=RunStatus.FINALIZED), case, category="normal")
    latest = make_run(region, month=None)
    make_result(latest, case, category="high", points="148.0000")
    make_result(make_run(region, month=2, status=RunStatus.FAILED), case, category="low")

    body = api.get("/api/v1/cases/c01/valuation/").json()

    assert body["category"] == "high" and body["points"] == "148.0000"
    assert body["run"]["id"] == latest.pk and body["run"]["kind"] == "annual" and body["run"]["status"] == "draft"
    assert {"valuation_group", "coefficient", "ratio", "base_points", "readmission_halved", "points_before_readmission"} <= set(body)


def test_a_case_not_valued_yet_answers_404_not_valued(api, h1):
    stored_case(h1, "c01")

    response = api.get("/api/v1/cases/c01/valuation/")

    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_valued"


def test_case_detail(api, h1):
    stored_case(h1, "c01")

    assert api.get("/api/v1/cases/c01/").json()["drg_code"] == "GB25"


# --- statements and payouts -------------------------------------------------------------------------------


def test_statements_show_only_the_callers_lines_with_run_period_and_status(api, h1, h2, region):
    monthly = make_run(region, month=3, status=RunStatus.FINALIZED)
    annual = make_run(region)
    failed = make_run(region, month=4, status=RunStatus.FAILED)
    for run in (monthly, annual, failed):
        make_line(run, h1)
        make_line(run, h2, points=Decimal("5"))

    body = api.get("/api/v1/statements/?include=draft").json()
    monthly_only = api.get("/api/v1/statements/?kind=monthly&month=3").json()

    assert body["count"] == 2
    assert {(r["run"]["kind"], r["run"]["status"]) for r in body["results"]} == {("monthly", "finalized"), ("annual", "draft")}
    assert all(r["points"] == "100.0000" for r in body["results"])
    assert [r["run"]["id"] for r in monthly_only["results"]] == [monthly.pk]
    assert api.get(f"/api/v1/statements/{monthly.pk}/").json()["prepay"] == "9465.71"


def test_statements_list_binding_runs_by_default_and_say_which_run_superseded_which(api, h1, region):
    replaced = make_run(region, month=3, status=RunStatus.SUPERSEDED)
    binding = make_run(region, month=3, status=RunStatus.FINALIZED)
    binding.supersedes = replaced
    binding.save()
    draft = make_run(region)
    make_line(replaced, h1, prepaid_to_date=Decimal("9465.71"), prepay=Decimal("9465.71"), settled_before=Decimal("0"))
    make_line(binding, h1, prepaid_to_date=Decimal("9500.00"), prepay=Decimal("34.29"), settled_before=Decimal("9465.71"))
    make_line(draft, h1)

    default = api.get("/api/v1/statements/").json()["results"]
    everything = api.get("/api/v1/statements/?include=superseded,draft").json()["results"]
    superseded_only = api.get("/api/v1/statements/?include=superseded").json()["results"]
    drafts = api.get("/api/v1/statements/?status=draft").json()["results"]
    detail = api.get(f"/api/v1/statements/{replaced.pk}/").json()

    assert [(r["run"]["id"], r["standing"], r["supersedes"], r["superseded_by"]) for r in default] == [(binding.pk, "binding", replaced.pk, None)]
    assert default[0]["prepay"] == "34.29" and default[0]["settled_before"] == "9465.71"
    assert {r["run"]["id"]: r["standing"] for r in everything} == {binding.pk: "binding", replaced.pk: "superseded", draft.pk: "draft"}
    assert {r["run"]["id"] for r in superseded_only} == {binding.pk, replaced.pk}
    assert [r["run"]["id"] for r in drafts] == [draft.pk]
    assert (detail["standing"], detail["superseded_by"], detail["run"]["status"]) == ("superseded", binding.pk, "superseded")


@pytest.mark.parametrize("include", ["bogus", "draft,final", "%00", "superseded%00", "x" * 5000])
def test_an_unknown_include_is_refused_with_400_naming_the_parameter(api, include):
    response = api.get(f"/api/v1/statements/?include={include}")

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "include"


def test_payout_lines_of_the_caller_and_its_group(api, h1, region):
    from incentives.models import IncentiveRule, Payout, PayoutLine

    h1.group_code = "YH-G1"
    h1.save()
    user = get_user_model().objects.create(username="maker")
    payout = Payout.objects.create(
        region=region, year=2025, status="approved", computed_by=user, computed_at=timezone.now(),
        approved_by=get_user_model().objects.create(username="checker"), approved_at=timezone.now(),
        gross_total=Decimal("3050"), capped_total=Decimal("3050"), total=Decimal("3050"),
    )
    rule = IncentiveRule.objects.filter(code="tumor_surgery").first() or IncentiveRule.objects.create(
        code="tumor_surgery", name="t", basis="tumor_surgery", grade_amounts={"3": "1000", "4": "2000"}, valid_from=dt.date(2024, 1, 1)
    )
    group_rule = IncentiveRule.objects.filter(code="chronic_enrollment").first() or IncentiveRule.objects.create(
        code="chronic_enrollment", name="c", basis="chronic_enrollment", amount=Decimal("50"), payee="group", valid_from=dt.date(2024, 1, 1)
    )
    common = dict(gross_amount=Decimal("3000"), capped_amount=Decimal("3000"), amount=Decimal("3000"), source_model="case")
    PayoutLine.objects.create(payout=payout, payee_code="H1", institution=h1, rule=rule, rule_code=rule.code, count=2, **common)
    PayoutLine.objects.create(payout=payout, payee_code="YH-G1", institution=None, rule=group_rule, rule_code=group_rule.code, count=1,
                              gross_amount=Decimal("50"), capped_amount=Decimal("50"), amount=Decimal("50"), source_model="chronic_enrollment")

    body = api.get("/api/v1/incentives/payout-lines/?year=2025").json()

    assert sorted((r["payee_code"], r["rule_code"], r["amount"], r["paid_to_group"]) for r in body["results"]) == [
        ("H1", "tumor_surgery", "3000.00", False), ("YH-G1", "chronic_enrollment", "50.00", True),
    ]
    assert api.get("/api/v1/incentives/payout-lines/?year=20x5").status_code == 400


# --- special reviews ----------------------------------------------------------------------------------------


def test_special_review_request_lifecycle(api, h1):
    stored_case(h1, "c16")
    payload = {"case_no": "c16", "reason": "罕见并发症", "requested_cost": "80000.00", "documents": ["DOC-1", "DOC-2"]}

    created = api.post("/api/v1/special-reviews/", payload, format="json")
    again = api.post("/api/v1/special-reviews/", payload, format="json")
    review = SpecialReview.objects.get()
    review.status, review.rejection_reason = ReviewStatus.REJECTED, "documents missing"
    review.save()
    followed = api.get("/api/v1/special-reviews/c16/").json()
    resubmitted = api.post("/api/v1/special-reviews/", {**payload, "documents": ["DOC-1", "DOC-2", "DOC-3"]}, format="json")

    assert created.status_code == 201 and created.json()["status"] == "submitted"
    assert again.status_code == 200
    assert (followed["status"], followed["rejection_reason"]) == ("rejected", "documents missing")
    assert resubmitted.json()["status"] == "submitted" and resubmitted.json()["rejection_reason"] == ""
    assert [r["case_no"] for r in api.get("/api/v1/special-reviews/?status=submitted").json()["results"]] == ["c16"]


def test_an_approved_special_review_cannot_be_resubmitted(api, h1):
    case = stored_case(h1, "c16")
    SpecialReview.objects.create(institution=h1, case=case, status=ReviewStatus.APPROVED, approved_cost=Decimal("1"))

    response = api.post("/api/v1/special-reviews/", {"case_no": "c16", "reason": "r", "requested_cost": "1.00"}, format="json")

    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "already_decided"


@pytest.mark.parametrize(
    "payload, field, code",
    [
        ({"case_no": "c16", "reason": "r", "requested_cost": "-1"}, "requested_cost", "min_value"),
        ({"case_no": "c16", "reason": "r", "requested_cost": "1.234"}, "requested_cost", "max_decimal_places"),
        ({"case_no": "c16", "requested_cost": "1"}, "reason", "required"),
        ({"case_no": "c16", "reason": "r", "requested_cost": "1", "colour": 1}, "colour", "unknown_field"),
        ({"case_no": "c16", "reason": "r", "requested_cost": "1", "documents": "DOC"}, "documents", "not_a_list"),
    ],
)
def test_special_review_validation(api, h1, payload, field, code):
    stored_case(h1, "c16")

    response = api.post("/api/v1/special-reviews/", payload, format="json")

    assert response.status_code == 400
    assert {"field": field, "code": code} in [{"field": e.get("field"), "code": e["code"]} for e in response.json()["errors"]]


# --- itemized claims and incentive events -------------------------------------------------------------------


def test_itemized_claim_submission_and_listing(api, h1):
    payload = {"claim_no": "T001", "fund": "employee", "month": "2025-02", "patient_id": "P201", "claimed_amount": "1500.00"}

    created = api.post("/api/v1/itemized-claims/", payload, format="json")
    bad_month = api.post("/api/v1/itemized-claims/", {**payload, "month": "2025-13"}, format="json")

    assert created.status_code == 201
    assert created.json()["month"] == "2025-02" and created.json()["status"] == "submitted"
    assert ItemizedClaim.objects.get().month == dt.date(2025, 2, 1)
    assert bad_month.status_code == 400 and bad_month.json()["errors"][0]["code"] == "invalid_month"
    assert api.get("/api/v1/itemized-claims/T001/").json()["claimed_amount"] == "1500.00"
    assert api.get("/api/v1/itemized-claims/").json()["count"] == 1


@pytest.mark.parametrize(
    "path, payload, model",
    [
        ("chronic-enrollments", {"patient_id": "P1", "disease": "diabetes", "enrolled_on": "2025-03-01"}, ChronicEnrollment),
        ("tcm-workloads", {"month": "2025-03", "prescriptions": 120}, TcmWorkload),
        ("hospice-services", {"kind": "bed", "service_date": "2025-03-01", "quantity": 2}, HospiceService),
        ("hospice-services", {"kind": "home", "patient_id": "P9", "service_date": "2025-03-01"}, HospiceService),
        ("screenings", {"patient_id": "P1", "screening_date": "2025-03-01", "fee": "200.00", "high_risk": True}, Screening),
    ],
)
def test_incentive_events_are_submitted_listed_and_followed(api, h1, path, payload, model):
    created = api.post(f"/api/v1/incentives/{path}/", payload, format="json")
    again = api.post(f"/api/v1/incentives/{path}/", payload, format="json")
    record = model.objects.get()
    record.status = ReviewStatus.APPROVED
    record.save()
    changed = {**payload, **({"quantity": 3} if path == "hospice-services" else {})}
    if path == "tcm-workloads":
        changed["prescriptions"] = 121
    refused = api.post(f"/api/v1/incentives/{path}/", changed, format="json") if changed != payload else None

    assert created.status_code == 201, created.json()
    assert again.status_code == 200
    assert api.get(f"/api/v1/incentives/{path}/?status=approved").json()["count"] == 1
    assert api.get(f"/api/v1/incentives/{path}/{record.pk}/").json()["status"] == "approved"
    if refused is not None:
        assert refused.status_code == 409


@pytest.mark.parametrize(
    "path, payload, field, code",
    [
        ("hospice-services", {"kind": "home", "service_date": "2025-03-01"}, "patient_id", "required"),
        ("tcm-workloads", {"month": "2025-03", "prescriptions": -1}, "prescriptions", "min_value"),
        ("screenings", {"patient_id": "P1", "screening_date": "2025/03/01", "fee": "1"}, "screening_date", "invalid"),
        ("chronic-enrollments", {"patient_id": "P1", "disease": "d", "enrolled_on": "2025-03-01", "x": 1}, "x", "unknown_field"),
    ],
)
def test_incentive_event_validation(api, h1, path, payload, field, code):
    response = api.post(f"/api/v1/incentives/{path}/", payload, format="json")

    assert response.status_code == 400
    assert {"field": field, "code": code} in [{"field": e.get("field"), "code": e["code"]} for e in response.json()["errors"]]


# --- cross-institution access: always 404 --------------------------------------------------------------------


def test_other_institutions_records_answer_404_everywhere(api, api_h2, h1, h2, region):
    case = stored_case(h2, "secret")
    run = make_run(region, month=1)
    make_result(run, case)
    make_line(run, h2)
    SpecialReview.objects.create(institution=h2, case=case, reason="r", requested_cost=Decimal("1"))
    claim = api_h2.post("/api/v1/itemized-claims/", {"claim_no": "T9", "fund": "employee", "month": "2025-02", "patient_id": "P", "claimed_amount": "1"}, format="json")
    correction = api_h2.post("/api/v1/correction-requests/", {"case_no": "secret", "reason": "r", "proposed": {"drg_code": "ES23"}}, format="json").json()
    events = {
        "chronic-enrollments": api_h2.post("/api/v1/incentives/chronic-enrollments/", {"patient_id": "P", "disease": "d", "enrolled_on": "2025-01-01"}, format="json").json()["id"],
        "screenings": api_h2.post("/api/v1/incentives/screenings/", {"patient_id": "P", "screening_date": "2025-01-01", "fee": "1"}, format="json").json()["id"],
    }
    assert claim.status_code == 201

    reads = [
        "/api/v1/cases/secret/", "/api/v1/cases/secret/valuation/", "/api/v1/cases/secret/corrections/",
        "/api/v1/special-reviews/secret/", f"/api/v1/correction-requests/{correction['id']}/",
        "/api/v1/itemized-claims/T9/", f"/api/v1/statements/{run.pk}/",
        *[f"/api/v1/incentives/{path}/{pk}/" for path, pk in events.items()],
    ]
    for path in reads:
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["errors"][0]["code"] in {"not_found", "case_not_found"}
    assert api.get("/api/v1/cases/").json()["count"] == 0
    assert api.get("/api/v1/statements/").json()["count"] == 0
    assert api.get("/api/v1/special-reviews/").json()["count"] == 0
    assert api.get("/api/v1/correction-requests/").json()["count"] == 0
    assert api.get("/api/v1/itemized-claims/").json()["count"] == 0

    writes = [
        ("/api/v1/special-reviews/", {"case_no": "secret", "reason": "r", "requested_cost": "1.00"}),
        ("/api/v1/correction-requests/", {"case_no": "secret", "reason": "r", "proposed": {"drg_code": "GB25"}}),
    ]
    for path, payload in writes:
        response = api.post(path, payload, format="json")
        assert response.status_code == 404, path
    # The same case_no submitted by H1 is H1's own case; H2's stays untouched.
    assert api.post("/api/v1/cases/", [{**_row("secret")}], format="json").json()["created"] == 1
    case.refresh_from_db()
    assert case.institution == h2 and case.total_cost == Decimal("8000.00")


def _row(case_no):
    from tests.api.conftest import case_row

    return case_row(case_no, total_cost="7000.00")


def test_old_idempotency_answers_are_purged_by_the_daily_task(h1, settings):
    import datetime as dt

    from django.utils import timezone

    from drg.models import IdempotencyRecord
    from drg.tasks import purge_idempotency_records

    settings.API_IDEMPOTENCY_DAYS = 7
    fields = {"institution": h1, "method": "POST", "path": "/api/v1/cases/", "request_hash": "0" * 64, "status_code": 200, "response_body": {}}
    old = IdempotencyRecord.objects.create(key="old", **fields)
    recent = IdempotencyRecord.objects.create(key="recent", **fields)
    IdempotencyRecord.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=8))

    assert purge_idempotency_records() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == [recent.key]
