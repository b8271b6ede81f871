"""The benefits admin: the claims queue and its filters, a patient's year at a glance, the layers by
month with the payers' statements, and a category change re-settling through the service."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from benefits.models import Patient, SettlementCorrection, SpecialDisease, SpecialOutpatientClaim
from benefits.services import special_outpatient_claim_submit
from drg.models import Case
from tests.integration.admin_helpers import make_institution, make_user, small_region

pytestmark = pytest.mark.django_db


@pytest.fixture
def year(client):
    region = small_region()
    h = make_institution(region, "H1", level=2)
    SpecialDisease.objects.create(region=region, year=2025, code="D1", name="慢阻肺", disease_class="I")
    Patient.objects.create(region=region, patient_id="P1", fund="resident", category="poor")
    Case.objects.create(region=region, institution=h, case_no="c1", fund="resident", patient_id="P1", admission_date=dt.date(2025, 1, 20),
                        discharge_date=dt.date(2025, 2, 1), drg_code="GB25", total_cost=Decimal("9000.00"), self_pay=Decimal("1800.00"))
    for no, day, amount in (("A", dt.date(2025, 1, 10), "20000"), ("B", dt.date(2025, 2, 1), "5000"), ("C", dt.date(2025, 3, 3), "100")):
        special_outpatient_claim_submit(institution=h, claim_no=no, fund="resident", patient_id="P1", disease_code="D1",
                                        service_date=day, total_cost=Decimal(amount), eligible_cost=Decimal(amount))
    client.force_login(make_user("aud", "auditor"))
    return region


def test_the_queue_filters_by_layer_and_month(client, year):
    url = reverse("admin:benefits_specialoutpatientclaim_changelist")
    page = client.get(url, {"layer": "critical"})
    assert page.status_code == 200
    shown = [c.claim_no for c in page.context["cl"].result_list]
    # burden 4000 after A (threshold 3750 for poor): A reaches the critical layer; so do B and C
    assert shown == ["C", "B", "A"]
    assert [c.claim_no for c in client.get(url, {"month": "02"}).context["cl"].result_list] == ["B"]
    assert [c.claim_no for c in client.get(url, {"q": "P1", "disease": "D1", "year": "2025"}).context["cl"].result_list] == ["C", "B", "A"]


def test_a_patients_year_at_a_glance_orders_the_stay_before_the_claim_of_its_day(client, year):
    page = client.get(reverse("admin:benefits_patient_year", args=[year.pk, "P1", 2025]))
    assert page.status_code == 200
    resident = page.context["glance"]["funds"]["resident"]
    assert [(kind, claim.claim_no if claim else share) for kind, _d, share, claim in resident["events"]] == [
        ("claim", "A"), ("stay", Decimal("7200.00")), ("claim", "B"), ("claim", "C"),
    ]
    assert resident["cap_used"] == Decimal("7200.00") + Decimal("16000.00") + Decimal("4000.00") + Decimal("80.00")
    assert "<svg" in page.content.decode()


def test_the_layers_page_charts_the_months_and_links_the_statements(client, year):
    page = client.get(reverse("admin:benefits_layers", args=[year.pk, 2025]))
    assert page.status_code == 200
    assert [m["month"] for m in page.context["months"]] == ["2025-01", "2025-02", "2025-03"]
    body = page.content.decode()
    assert "<svg" in body and "大病保险" in body
    csv_response = client.get(reverse("admin:benefits_statement", args=[year.pk, 2025, "critical", "csv"]), {"month": "1"})
    assert csv_response.status_code == 200
    # A: burden 4000 − 3750 = 250 × 90 % = 225.00
    assert csv_response.content.decode().splitlines()[1] == "2025-01,H1,医院H1,resident,1,225.00"
    assert client.get(reverse("admin:benefits_statement", args=[year.pk, 2025, "bogus", "csv"])).status_code == 404


def test_an_operator_changing_a_category_resettles_and_keeps_history(client, year):
    client.force_login(make_user("op", "operator"))
    patient = Patient.objects.get(patient_id="P1")
    response = client.post(reverse("admin:benefits_patient_change", args=[patient.pk]), {"category": "destitute"})
    assert response.status_code == 302
    a = SpecialOutpatientClaim.objects.get(claim_no="A")
    # destitute: ordinary critical terms (burden 4000 < 7500), the whole remainder as assistance
    assert (a.basic, a.critical, a.assistance, a.patient_pay) == (Decimal("16000.00"), Decimal("0.00"), Decimal("4000.00"), Decimal("0.00"))
    assert SettlementCorrection.objects.filter(claim=a, cause__contains="类别").exists()
    assert patient.history.count() == 2


def test_an_auditor_cannot_change_a_category(client, year):
    patient = Patient.objects.get(patient_id="P1")
    response = client.post(reverse("admin:benefits_patient_change", args=[patient.pk]), {"category": "destitute"})
    assert response.status_code == 403
