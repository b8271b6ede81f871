"""/api/v1/indicators/ and /api/v1/findings/: each hospital reads its own, paginated, in the schema."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from common.users import system_user
from exchange.bundle import bundle_load
from drg.models import Institution, Region
from monitoring import services
from monitoring.models import Finding
from settlement.services import clearing_run_finalize, clearing_run_start
from tests.api.conftest import client_for
from tests.integration.admin_helpers import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def screened(worked_bundle):
    bundle_load(path=worked_bundle)
    region = Region.objects.get(code="331083")
    batch = system_user()
    clearing_run_finalize(run=clearing_run_start(region=region, fund="employee", year=2025, user=batch), user=batch, system=True)
    services.indicators_refresh(region_id=region.pk, fund="employee", year=2025)
    operator, approver = make_user("op1", "operator"), make_user("ap1", "approver")
    draft = services.screening_parameters_draft(
        region=region, values={"cost_shifting_margin": "0", "cost_shifting_previous_margin": "0"}, reason="试点", user=operator
    )
    services.screening_parameters_decide(record=draft, user=approver, approve=True)
    services.screening_run_record(region=region, fund="employee", year=2025, user=operator)
    return region, operator


def test_a_hospital_reads_only_its_own_indicators(screened):
    region, _ = screened
    h1, h3 = (Institution.objects.get(region=region, code=c) for c in ("H1", "H3"))
    body = client_for(h1).get("/api/v1/indicators/?period=2025").json()
    assert body["count"] == 1
    row = body["results"][0]
    assert (row["period"], row["cases"], row["cmi"], row["self_pay_share"]) == ("2025", 13, "1.2083", "0.1963")
    all_rows = client_for(h3).get("/api/v1/indicators/?page_size=1000").json()
    assert all_rows["count"] == 3 and {r["period"] for r in all_rows["results"]} == {"2025", "2025-08", "2025-11"}


def test_only_confirmed_findings_about_the_caller_are_shown(screened):
    region, operator = screened
    h1, h2 = (Institution.objects.get(region=region, code=c) for c in ("H1", "H2"))
    finding = Finding.objects.get(rule="cost_shifting", institution=h1)
    assert client_for(h1).get("/api/v1/findings/").json()["count"] == 0  # still open
    services.finding_review(finding=finding, user=operator, confirm=True, reason="属实")
    body = client_for(h1).get("/api/v1/findings/?rule=cost_shifting").json()
    assert body["count"] == 1
    shown = body["results"][0]
    assert (shown["value"], shown["reference"], shown["case_count"]) == ("0.1963", "0.1835", finding.case_count)
    assert len(shown["cases"]) == finding.case_count and shown["review_reason"] == "属实"
    assert client_for(h2).get("/api/v1/findings/").json()["count"] == 0


def test_bad_filters_and_no_key_are_refused_without_a_server_error(screened):
    region, _ = screened
    h1 = Institution.objects.get(region=region, code="H1")
    assert APIClient().get("/api/v1/findings/").status_code == 401
    api = client_for(h1)
    assert api.get("/api/v1/findings/?rule=nope").status_code == 400
    assert api.get("/api/v1/indicators/?year=abc").status_code == 400
    assert api.get("/api/v1/indicators/?period=%00%01").status_code == 400  # NUL bytes refused, never a 500


def test_the_schema_lists_the_monitoring_endpoints(db):
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert {"/api/v1/indicators/", "/api/v1/findings/"} <= set(schema["paths"])
