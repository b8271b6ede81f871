"""Monitoring in the admin: the dashboard (pool and previous-year columns, CMI chart, sorting), the
Excel export with formula-like text escaped, parameter drafts, the findings queue actions, scores."""
from __future__ import annotations

import io
from decimal import Decimal as D

import openpyxl
import pytest
from django.urls import reverse

from drg.models import Institution
from monitoring import services
from monitoring.choices import FindingStatus
from monitoring.models import EvaluationScore, Finding, ScreeningParameterSet
from settlement.models import Evaluation, PointAdjustment
from tests.integration.admin_helpers import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def pool(employee_year):
    region, _, _ = employee_year
    services.indicators_refresh(region_id=region.pk, fund="employee", year=2025)
    return region


def test_the_dashboard_shows_each_institution_beside_the_pool_sorted_with_a_cmi_chart(client, pool):
    client.force_login(make_user("aud", "auditor"))
    url = reverse("admin:monitoring_indicatorvalue_dashboard")
    page = client.get(url, {"region": pool.pk, "fund": "employee", "year": 2025, "sort": "cmi", "dir": "desc"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html and "polyline" in html
    codes = [row["code"] for row in page.context["rows"]]
    assert codes == ["H2", "H1", "H3"]  # CMI 1.6500, 1.2083, 0.8000
    h1 = next(r for r in page.context["rows"] if r["code"] == "H1")
    assert h1["cells"][2][:2] == (D("1.2083"), D("1.2611"))  # cmi: own, pool
    assert client.get(url, {"region": pool.pk, "fund": "employee", "year": 2025, "sort": "<script>"}).status_code == 200


def test_the_excel_export_escapes_formula_like_text(client, pool):
    Institution.objects.filter(region=pool, code="H1").update(name="=HYPERLINK(\"http://x\")")
    client.force_login(make_user("aud", "auditor"))
    response = client.get(reverse("admin:monitoring_indicatorvalue_export"), {"region": pool.pk, "fund": "employee", "year": 2025})
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    names = [row[0].value for row in sheet.iter_rows(min_row=3)]
    assert "'=HYPERLINK(\"http://x\")" in names
    first = [c.value for c in next(sheet.iter_rows(min_row=3, max_row=3))]
    assert first[1:4] == ["*", "2025", 20]


def test_parameters_are_drafted_in_the_admin_and_invalid_values_refused(client, pool):
    operator = make_user("op", "operator")
    client.force_login(operator)
    add = reverse("admin:monitoring_screeningparameterset_add")
    bad = client.post(add, {"region": pool.pk, "values": '{"split_stay_days": "x"}', "reason": "r"})
    assert bad.status_code == 200 and not ScreeningParameterSet.objects.exists()
    nul = client.post(add, {"region": pool.pk, "values": '{"a\u0000": 1}', "reason": "r"})
    assert nul.status_code == 200 and not ScreeningParameterSet.objects.exists()
    ok = client.post(add, {"region": pool.pk, "values": '{"split_stay_days": 10}', "reason": "按本地规程"})
    assert ok.status_code == 302
    record = ScreeningParameterSet.objects.get()
    assert record.status == "draft" and record.values["split_stay_days"] == 10 and record.created_by == operator


def test_the_findings_queue_confirms_proposes_and_scores_with_two_people(client, pool):
    operator, approver = make_user("op", "operator"), make_user("ap", "approver")
    draft = services.screening_parameters_draft(region=pool, values={"cost_shifting_margin": "0"}, reason="试点", user=operator)
    services.screening_parameters_decide(record=draft, user=approver, approve=True)
    client.force_login(operator)
    screened = client.post(reverse("admin:monitoring_screeningrun_screen"), {"region": pool.pk, "fund": "employee", "year": 2025})
    assert screened.status_code == 302
    finding = Finding.objects.get(rule="cost_shifting")
    changelist = reverse("admin:monitoring_finding_changelist")
    assert client.get(changelist, {"status": "open"}).status_code == 200
    no_reason = client.post(changelist, {"action": "confirm_selected", "_selected_action": [finding.pk], "apply": "1", "reason": ""})
    assert no_reason.status_code == 200
    finding.refresh_from_db()
    assert finding.status == FindingStatus.OPEN
    client.post(changelist, {"action": "confirm_selected", "_selected_action": [finding.pk], "apply": "1", "reason": "抽查属实"})
    finding.refresh_from_db()
    assert finding.status == FindingStatus.CONFIRMED and finding.review_reason == "抽查属实"
    page = client.get(reverse("admin:monitoring_finding_change", args=[finding.pk]))
    assert page.status_code == 200
    proposed = client.post(reverse("admin:monitoring_finding_propose_adjustment", args=[finding.pk]), {"drg_code": "GB25", "multiple": "2", "reason": "=1+1"})
    assert proposed.status_code == 302
    assert PointAdjustment.objects.filter(status="draft", multiple=D("2")).count() == 1
    client.post(changelist, {"action": "propose_deduction_selected", "_selected_action": [finding.pk]})
    client.force_login(approver)
    deduction = finding.deduction
    client.post(reverse("admin:monitoring_evaluationdeduction_changelist"), {"action": "approve_selected", "_selected_action": [deduction.pk], "apply": "1"})
    deduction.refresh_from_db()
    assert deduction.status == "approved"
    client.force_login(operator)
    h1 = finding.institution
    client.post(reverse("admin:monitoring_evaluationscore_compute"), {"institution": h1.pk, "fund": "employee", "year": 2025})
    score = EvaluationScore.objects.get()
    assert score.score == D("97")
    client.post(reverse("admin:monitoring_evaluationscore_changelist"), {"action": "approve_selected", "_selected_action": [score.pk], "apply": "1"})
    score.refresh_from_db()
    assert score.status == "draft"  # an operator approves nothing, least of all their own draft
    client.force_login(approver)
    client.post(reverse("admin:monitoring_evaluationscore_changelist"), {"action": "approve_selected", "_selected_action": [score.pk], "apply": "1", "reason": ""})
    score.refresh_from_db()
    assert score.status == "approved"
    assert Evaluation.objects.get(institution=h1, fund="employee", year=2025).score == D("97")
