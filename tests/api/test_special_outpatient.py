"""The special-outpatient counter: a claim posted gets its split at once; a late earlier claim
re-settles it and the hospital sees the correction; idempotency, scoping and hostile input."""
from __future__ import annotations

from decimal import Decimal

import pytest

from benefits.models import Patient, SettlementCorrection, SpecialDisease, SpecialOutpatientClaim
from tests.api.conftest import client_for

URL = "/api/v1/special-outpatient-claims/"


@pytest.fixture
def catalog(region):
    SpecialDisease.objects.create(region=region, year=2025, code="D1", name="慢阻肺", disease_class="I")
    SpecialDisease.objects.create(region=region, year=2025, code="D2", name="癫痫", disease_class="II")


def claim(no="A", **overrides) -> dict:
    body = {"claim_no": no, "fund": "resident", "patient_id": "P1", "disease_code": "D2", "service_date": "2025-03-01",
            "total_cost": "4000.00", "eligible_cost": "4000.00"}
    body.update(overrides)
    return body


def test_a_claim_posted_at_the_counter_answers_its_split_and_explanation(api_h2, catalog):
    response = api_h2.post(URL, claim(total_cost="4500.00"), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["created"] is True
    answer = body["claim"]
    assert (answer["basic"], answer["critical"], answer["assistance"], answer["patient"]) == ("3200.00", "0.00", "0.00", "1300.00")
    assert answer["explanation"] == {
        "ratio": "0.80", "deductible": "0.00", "base": "3200.00", "cap_left_before": "200000.00",
        "disease_cap_left_before": "5000.00", "burden_to_date": "800.00", "critical_threshold": "7500.00",
        "critical_ratio": "0.50", "assistance_ratio": "0",
    }


def test_a_late_earlier_claim_resettles_the_later_one_and_the_hospital_reads_the_correction(api_h2, api, catalog):
    assert api_h2.post(URL, claim("B", service_date="2025-03-01"), format="json").json()["claim"]["basic"] == "3200.00"
    late = api_h2.post(URL, claim("A", service_date="2025-02-01"), format="json").json()
    assert late["claim"]["basic"] == "3200.00"
    (correction,) = late["corrections"]
    assert (correction["claim_no"], correction["before"]["basic"], correction["after"]["basic"]) == ("B", "3200.00", "1800.00")
    listed = api_h2.get("/api/v1/special-outpatient-corrections/").json()["results"]
    assert [(c["claim_no"], c["after"]["patient"]) for c in listed] == [("B", "2200.00")]
    assert api_h2.get(URL + "B/").json()["basic"] == "1800.00"
    # another institution sees neither the claims nor the corrections
    assert api.get("/api/v1/special-outpatient-corrections/").json()["results"] == []
    assert api.get(URL + "B/").status_code == 404
    assert api.get(URL).json()["results"] == []


def test_a_late_claim_at_another_hospital_corrects_without_showing_it(api_h2, api, catalog):
    api_h2.post(URL, claim("B", service_date="2025-03-01"), format="json")
    late = api.post(URL, claim("A", service_date="2025-02-01"), format="json").json()
    assert (late["corrections"], late["resettled_elsewhere"]) == ([], 1)
    assert [c["claim_no"] for c in api_h2.get("/api/v1/special-outpatient-corrections/").json()["results"]] == ["B"]


def test_idempotency_key_replays_the_first_answer(api_h2, catalog):
    first = api_h2.post(URL, claim(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = api_h2.post(URL, claim(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert (first.status_code, again.status_code, again["Idempotent-Replayed"]) == (201, 201, "true")
    assert again.json() == first.json()
    other = api_h2.post(URL, claim(total_cost="4001.00"), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert other.status_code == 422
    plain = api_h2.post(URL, claim(), format="json")
    assert (plain.status_code, plain.json()["created"]) == (200, False)
    conflict = api_h2.post(URL, claim(total_cost="4001.00"), format="json")
    assert (conflict.status_code, conflict.json()["errors"][0]["code"]) == (409, "claim_exists")
    assert SpecialOutpatientClaim.objects.count() == 1


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"disease_code": "ZZ"}, "disease_code", "unknown_disease"),
        ({"fund": "employee"}, "fund", "fund_mismatch"),
        ({"total_cost": "10.00"}, "eligible_cost", "above_total_cost"),
        ({"claim_no": "A\x00B"}, "claim_no", "invalid_characters"),
        ({"patient_id": "P\x071"}, "patient_id", "invalid_characters"),
        ({"disease_code": "D2\u0085"}, "disease_code", "invalid_characters"),
        ({"claim_no": " A"}, "claim_no", "invalid_characters"),
        ({"claim_no": "x" * 41}, "claim_no", "max_length"),
        ({"service_date": "2025-02-30"}, "service_date", "invalid"),
        ({"total_cost": "1.001"}, "total_cost", "max_decimal_places"),
        ({"eligible_cost": "-1"}, "eligible_cost", "min_value"),
        ({"extra": "1"}, "extra", "unknown_field"),
    ],
)
def test_bad_or_refused_claims_answer_400_with_the_field_named_and_store_nothing(api_h2, catalog, region, overrides, field, code):
    Patient.objects.create(region=region, patient_id="P1", fund="resident", category="ordinary")
    response = api_h2.post(URL, claim(**overrides), format="json")
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert (errors[0]["field"], errors[0]["code"]) == (field, code)
    assert not SpecialOutpatientClaim.objects.exists()


@pytest.mark.parametrize("body", [b"[]", b"\x00", b'{"claim_no": "\\u0000"}', b"1e999999", b'"text"'])
def test_hostile_bodies_never_answer_500(api_h2, catalog, body):
    response = api_h2.generic("POST", URL, body, content_type="application/json")
    assert response.status_code == 400


def test_the_counter_is_in_the_openapi_schema(api):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert {"/api/v1/special-outpatient-claims/", "/api/v1/special-outpatient-corrections/"} <= set(schema["paths"])
    assert "Idempotency-Key" in {p["name"] for p in schema["paths"]["/api/v1/special-outpatient-claims/"]["post"]["parameters"]}


def test_the_same_claim_no_for_another_patient_arriving_in_parallel_is_a_conflict_not_a_500(api_h2, catalog, h2, monkeypatch):
    """A parallel request for another patient-year (another lock) stores the same claim_no just before
    our insert: the insert fails on the unique key and the claim is refused as a conflict."""
    from benefits import services
    from benefits.models import SpecialOutpatientClaim as Claim

    real_lock = services._lock_patient_year

    def lock_while_another_request_stores_r1(**kwargs):
        real_lock(**kwargs)
        Claim.objects.create(region=h2.region, institution=h2, claim_no="R1", fund="resident", patient_id="P9",
                             disease_code="D2", service_date="2025-01-01", total_cost="1.00", eligible_cost="1.00", source="api")

    monkeypatch.setattr(services, "_lock_patient_year", lock_while_another_request_stores_r1)
    response = api_h2.post(URL, claim("R1"), format="json")
    assert (response.status_code, response.json()["errors"][0]["code"]) == (409, "claim_exists")
