"""Planning in the bureau workspace: rate-setting report and adoption under maker-checker,
scenarios started and compared in the admin, the forecast panel on the pool page."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from django.core.exceptions import PermissionDenied, ValidationError

from budget.choices import BudgetStatus
from budget.models import Budget
from budget.services import budget_approve
from drg.models import DrgGroup, ParameterRevision, PaymentScheme
from drg.revisions import parameter_revision_approve
from planning import services
from planning.choices import ScenarioStatus
from planning.models import RateSetting, Scenario
from tests.integration.admin_helpers import make_user


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_rate_setting_report_adopt_and_approve_by_another_person(employee_year):
    region, _monthly, _annual = employee_year
    maker, checker = make_user("maker", "operator"), make_user("checker", "approver")
    url = reverse("admin:planning_ratesetting_compute")
    query = {"region": region.pk, "year": 2026, "reference": "2025", "weights": "1", "sort": "change"}
    page = _client(maker).get(url, query)
    assert page.status_code == 200
    html = page.content.decode()
    assert "全部病例次均费用 A =" in html and "<svg" in html and "too_few_cases" in html  # 26 cases: every group too few

    bad = _client(maker).get(url, {**query, "weights": "1,x"})
    assert bad.status_code == 200 and "weights must be positive whole numbers" in bad.content.decode()
    assert _client(maker).get(url, {**query, "reference": "2019"}).status_code == 200  # error shown, not a 500

    response = _client(maker).post(url, {**query, "adopt": "1", "reason": "年度测算"})
    proposal = RateSetting.objects.get()
    assert response.status_code == 302 and proposal.created_by == maker
    catalog_rev = ParameterRevision.objects.get(pk=proposal.applied["catalog_revision"])
    scheme_rev = ParameterRevision.objects.get(pk=proposal.applied["scheme_revision"])
    assert (catalog_rev.kind, catalog_rev.year, catalog_rev.status) == ("catalog", 2026, "draft")
    assert (scheme_rev.kind, scheme_rev.year, scheme_rev.status) == ("scheme", 2026, "draft")
    assert scheme_rev.values["all_case_avg_cost"] == str(proposal.all_case_avg_cost) and catalog_rev.drafted_by == maker
    # year 2026 had no catalog: the revision starts from 2025's groups, coefficients and TCM equivalents
    assert len(catalog_rev.values["groups"]) == DrgGroup.objects.filter(region=region, year=2025).count()
    assert catalog_rev.values["tcm_equivalents"] and catalog_rev.values["coefficients"]
    page = _client(checker).get(reverse("admin:planning_ratesetting_change", args=[proposal.pk]) + "?sort=code").content.decode()
    assert "r1" in page and "<svg" in page

    with pytest.raises(PermissionDenied):
        parameter_revision_approve(revision=catalog_rev, user=maker)  # nobody approves what they drafted
    parameter_revision_approve(revision=catalog_rev, user=checker)
    parameter_revision_approve(revision=scheme_rev, user=checker)
    groups_2026 = {g.code: g for g in DrgGroup.objects.filter(region=region, year=2026)}
    assert groups_2026["GB25"].base_points == Decimal("80.0000")  # too few cases: current values kept
    assert PaymentScheme.objects.get(region=region, year=2026).all_case_avg_cost == proposal.all_case_avg_cost
    result = services.rate_setting_compute(region=region, year=2026, reference_years=(2025,), weights=(1,))
    services.rate_setting_adopt(region=region, year=2026, result=result, user=maker, reason="第二次测算")  # drafts r2
    with pytest.raises(ValidationError):  # one draft of a kind at a time: a third adoption waits for the decision
        services.rate_setting_adopt(region=region, year=2026, result=result, user=maker, reason="again")
    assert RateSetting.objects.count() == 2  # nothing recorded for the refused one


@pytest.mark.django_db
def test_a_scenario_is_started_compared_and_adopted_in_the_admin(employee_year, django_capture_on_commit_callbacks):
    region, _monthly, annual = employee_year
    operator = make_user("op", "operator")
    with django_capture_on_commit_callbacks(execute=True):  # the Celery task is queued on commit (eager here)
        response = _client(operator).post(reverse("admin:planning_scenario_add"), {
            "region": region.pk, "fund": "employee", "year": 2025, "month": "", "name": "增长 7%",
            "growth_rate": "0.07", "changes_json": '{"scheme": {"readmission_days": 30}, "special_reviews": {"exclude": ["H1/c16"]}}',
        })
    assert response.status_code == 302, response.content.decode()[:2000]
    scenario = Scenario.objects.get()
    assert scenario.status == ScenarioStatus.DONE and scenario.base_run == annual and scenario.created_by == operator
    assert scenario.changes == {"budget": {"growth_rate": "0.07"}, "scheme": {"readmission_days": 30},
                                "special_reviews": {"exclude": ["H1/c16"]}}
    page = _client(operator).get(reverse("admin:planning_scenario_change", args=[scenario.pk])).content.decode()
    assert "生效运行" in page and "115.6390" in page and "<svg" in page and "从不定稿" in page
    adopt = reverse("admin:planning_scenario_adopt", args=[scenario.pk])
    _client(operator).post(adopt, {"reason": ""})
    assert not Budget.objects.filter(status=BudgetStatus.DRAFT).exists()  # a reason is required
    _client(operator).post(adopt, {"reason": "按模拟调整增长率"})
    draft = Budget.objects.get(status=BudgetStatus.DRAFT)
    assert draft.growth_rate == Decimal("0.07") and draft.drafted_by == operator and "增长 7%" in draft.reason
    with pytest.raises(PermissionDenied):
        budget_approve(budget=draft, user=operator)  # the ordinary approval: never by its maker
    scheme_rev = ParameterRevision.objects.get(kind="scheme", year=2025, status="draft")
    assert scheme_rev.values["readmission_days"] == 30 and scheme_rev.drafted_by == operator and "增长 7%" in scheme_rev.reason

    refused = _client(operator).post(reverse("admin:planning_scenario_add"), {
        "region": region.pk, "fund": "employee", "year": 2025, "name": "x", "changes_json": '{"budget": {"growth_rate": "0.9"}}'})
    assert refused.status_code == 200 and "growth" in refused.content.decode() and Scenario.objects.count() == 1
    refused = _client(operator).post(reverse("admin:planning_scenario_add"), {
        "region": region.pk, "fund": "employee", "year": 2025, "name": "x", "changes_json": "{\x00"})
    assert refused.status_code == 200 and Scenario.objects.count() == 1


@pytest.mark.django_db
def test_the_pool_page_shows_the_forecast_panel(employee_year):
    region, monthly, _annual = employee_year
    for month in range(1, 12):
        services.forecast_after_run(run_id=monthly[month].pk)
    page = _client(make_user("auditor1", "auditor")).get(reverse("admin:settlement_pool", args=[region.pk, "employee", 2025]))
    html = page.content.decode()
    assert page.status_code == 200 and "年末点值预测（估算" in html and "预测年末点值 V̂" in html
