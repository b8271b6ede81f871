"""Query-count guards: a list screen costs the same number of queries for 2 rows as for 20 (no N+1)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from drg.models import CaseCorrection, CorrectionRequest, SpecialReview
from settlement.models import ClearingRun, Evaluation, InstitutionLine, ItemizedClaim, PointAdjustment
from tests.integration.admin_helpers import make_case, make_institution, make_user, small_region

pytestmark = pytest.mark.django_db

SCREENS = [
    "admin:drg_case_changelist", "admin:drg_specialreview_changelist", "admin:drg_correctionrequest_changelist",
    "admin:drg_casecorrection_changelist", "admin:settlement_itemizedclaim_changelist", "admin:settlement_pointadjustment_changelist",
    "admin:settlement_evaluation_changelist", "admin:settlement_clearingrun_changelist", "admin:settlement_institutionline_changelist",
    "admin:drg_institution_changelist", "admin:drg_coefficient_changelist", "admin:budget_budget_changelist",
]


def add_rows(region, start: int, count: int, user) -> None:
    for i in range(start, start + count):
        institution = make_institution(region, f"H{i:03d}")
        case = make_case(institution, f"c{i:03d}", patient_id=f"P{i}")
        SpecialReview.objects.create(institution=institution, case=case, requested_cost=Decimal("1000"))
        CorrectionRequest.objects.create(institution=institution, case=case, proposed={"total_cost": "1"}, reason="x")
        CaseCorrection.objects.create(case=case, source="admin", changed_by=user, before={"a": 1}, after={"a": 2})
        ItemizedClaim.objects.create(region=region, institution=institution, claim_no=f"IC{i}", fund="employee", month=dt.date(2025, 1, 1), patient_id="P", claimed_amount=Decimal("1"))
        PointAdjustment.objects.create(institution=institution, fund="employee", year=2025, drg_code="GB25", multiple=1, reason="x", created_by=user)
        Evaluation.objects.create(institution=institution, fund="employee", year=2025, score=90, created_by=user)
        run = ClearingRun.objects.create(region=region, fund="employee", year=2025, month=(i % 12) + 1, kind="monthly", status="draft", started_by=user)
        InstitutionLine.objects.create(run=run, institution=institution, raw_points=1, points=1, point_value=1, self_pay=0, itemized_fund=0)


def count_queries(client, name: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse(name))
    assert response.status_code == 200, name
    return len(captured)


def test_list_screens_do_not_query_per_row(client):
    region = small_region()
    user = make_user("audrey", "auditor")
    client.force_login(user)
    add_rows(region, 0, 2, user)
    few = {name: count_queries(client, name) for name in SCREENS}

    add_rows(region, 2, 18, user)
    many = {name: count_queries(client, name) for name in SCREENS}

    assert many == few
