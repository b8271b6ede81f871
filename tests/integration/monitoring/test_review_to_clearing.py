"""The findings queue end to end: parameters (maker-checker) → screening → confirm → point adjustment
and evaluation deduction (approved by another person) → evaluation score → the annual clearing's
penalty points and quality deduction."""
from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from common.reviews import review_approve
from common.users import system_user
from drg.models import Institution
from monitoring import selectors, services
from monitoring.choices import FindingStatus
from monitoring.models import Finding, IndicatorValue
from settlement.models import Evaluation
from settlement.services import clearing_run_finalize, clearing_run_start
from tests.integration.admin_helpers import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    return make_user("op1", "operator"), make_user("ap1", "approver"), make_user("au1", "auditor")


def test_a_confirmed_finding_reaches_the_annual_clearing(employee_year, people):
    operator, approver, auditor = people
    region, monthly, annual = employee_year
    h1 = Institution.objects.get(region=region, code="H1")
    before = annual.lines.get(institution=h1)
    assert before.quality_score == D("92")  # the bundle's evaluation, replaced below by the approved score

    # parameters: cost_shifting margin 0 → H1's self-pay share 0.1963 ≥ the pool's 0.1835
    draft = services.screening_parameters_draft(region=region, values={"cost_shifting_margin": "0"}, reason="试点", user=operator)
    with pytest.raises(PermissionDenied):
        services.screening_parameters_decide(record=draft, user=operator, approve=True)
    assert selectors.screening_parameters_in_force(region_id=region.pk)[0].cost_shifting_margin == D("0.05")
    services.screening_parameters_decide(record=draft, user=approver, approve=True)
    assert selectors.screening_parameters_in_force(region_id=region.pk)[0].cost_shifting_margin == D("0")

    screening = services.screening_run_record(region=region, fund="employee", year=2025, user=operator)
    finding = Finding.objects.get(screening=screening, rule="cost_shifting", institution=h1)
    assert (finding.value, finding.reference, finding.status) == (D("0.1963"), D("0.1835"), FindingStatus.OPEN)
    assert finding.case_count == finding.cases.count() > 0

    with pytest.raises(PermissionDenied):
        services.finding_review(finding=finding, user=auditor, confirm=True, reason="x")
    with pytest.raises(ValidationError):
        services.finding_review(finding=finding, user=operator, confirm=True, reason="  ")
    with pytest.raises(ValidationError):  # only a confirmed finding proposes
        services.finding_propose_deduction(finding=finding, user=operator)
    services.finding_review(finding=finding, user=operator, confirm=True, reason="病历抽查属实")

    proposal = services.finding_propose_adjustment(finding=finding, user=operator, drg_code="GB25", multiple=D("1"), reason="自费比例异常")
    with pytest.raises(PermissionDenied):
        review_approve(record=proposal.adjustment, user=operator)
    review_approve(record=proposal.adjustment, user=approver)
    deduction = services.finding_propose_deduction(finding=finding, user=operator)
    assert deduction.points == D("3")
    with pytest.raises(PermissionDenied):
        services.evaluation_deduction_decide(deduction=deduction, user=operator, approve=True)
    services.evaluation_deduction_decide(deduction=deduction, user=approver, approve=True)

    score = services.evaluation_score_draft(institution=h1, fund="employee", year=2025, user=operator)
    assert score.computed == D("97") and score.score == D("97")
    with pytest.raises(PermissionDenied):
        services.evaluation_score_decide(record=score, user=operator, approve=True)
    services.evaluation_score_decide(record=score, user=approver, approve=True)
    assert Evaluation.objects.get(institution=h1, fund="employee", year=2025).score == D("97")

    batch = system_user()
    rerun = clearing_run_start(region=region, fund="employee", year=2025, user=batch)
    line = rerun.lines.get(institution=h1)
    assert line.penalty_points == before.penalty_points + D("80")  # GB25 base 80 × 1
    assert line.quality_score == D("97")
    assert line.quality_deduction == (line.withheld * D("3") / D("100")).quantize(D("0.01"))
    assert line.withheld > 0 and line.quality_deduction > 0


def test_an_override_needs_a_reason_and_is_what_goes_in_force(employee_year, people):
    operator, approver, _ = people
    region, _, _ = employee_year
    h2 = Institution.objects.get(region=region, code="H2")
    with pytest.raises(ValidationError):
        services.evaluation_score_draft(institution=h2, fund="employee", year=2025, user=operator, override=D("90"))
    with pytest.raises(ValidationError):
        services.evaluation_score_draft(institution=h2, fund="employee", year=2025, user=operator, override=D("101"), override_reason="x")
    score = services.evaluation_score_draft(institution=h2, fund="employee", year=2025, user=operator, override=D("90"), override_reason="飞行检查")
    assert (score.computed, score.score) == (D("100"), D("90"))
    services.evaluation_score_decide(record=score, user=approver, approve=True)
    assert Evaluation.objects.get(institution=h2, fund="employee", year=2025).score == D("90")


def test_a_dismissed_finding_stays_dismissed_and_an_unflagged_open_one_is_withdrawn(employee_year, people):
    operator, approver, _ = people
    region, _, _ = employee_year
    draft = services.screening_parameters_draft(region=region, values={"cost_shifting_margin": "0"}, reason="试点", user=operator)
    services.screening_parameters_decide(record=draft, user=approver, approve=True)
    services.screening_run_record(region=region, fund="employee", year=2025, user=operator)
    finding = Finding.objects.get(rule="cost_shifting", institution__code="H1")
    services.finding_review(finding=finding, user=approver, confirm=False, reason="特殊药品自费")
    draft = services.screening_parameters_draft(region=region, values={}, reason="恢复默认", user=operator)
    services.screening_parameters_decide(record=draft, user=approver, approve=True)
    services.screening_run_record(region=region, fund="employee", year=2025, user=operator)
    finding.refresh_from_db()
    assert finding.status == FindingStatus.DISMISSED and finding.review_reason == "特殊药品自费"


def test_finalizing_a_run_stores_the_pools_indicators(worked_bundle, django_capture_on_commit_callbacks):
    from exchange.bundle import bundle_load
    from drg.models import Region

    bundle_load(path=worked_bundle)
    region = Region.objects.get(code="331083")
    batch = system_user()
    run = clearing_run_start(region=region, fund="resident", year=2025, month=1, user=batch)
    with django_capture_on_commit_callbacks(execute=True):
        clearing_run_finalize(run=run, user=batch, system=True)
    rows = IndicatorValue.objects.filter(region=region, fund="resident", year=2025)
    assert rows.filter(institution_code="*", period="2025").get().cases == run.case_count
    assert rows.filter(institution_code="*", period="2025").get().run_id == run.pk


def test_reasons_with_control_characters_are_refused_before_the_database(employee_year, people):
    operator, approver, _ = people
    region, _, _ = employee_year
    with pytest.raises(ValidationError):
        services.screening_parameters_draft(region=region, values={}, reason="a\x00b", user=operator)
    with pytest.raises(ValidationError):
        services.screening_parameters_draft(region=region, values={"split_stay_days\x00": 3}, reason="ok", user=operator)
    draft = services.screening_parameters_draft(region=region, values={"cost_shifting_margin": "0"}, reason="试点", user=operator)
    services.screening_parameters_decide(record=draft, user=approver, approve=True)
    services.screening_run_record(region=region, fund="employee", year=2025, user=operator)
    finding = Finding.objects.get(rule="cost_shifting")
    with pytest.raises(ValidationError):
        services.finding_review(finding=finding, user=operator, confirm=True, reason="\x00")
    services.finding_review(finding=finding, user=operator, confirm=True, reason="属实\n附件见卷宗")
    with pytest.raises(ValidationError):
        services.finding_propose_adjustment(finding=finding, user=operator, drg_code="GB25\x00", multiple=D("1"), reason="x")
    with pytest.raises(ValidationError):
        services.finding_propose_adjustment(finding=finding, user=operator, drg_code="ZZ99", multiple=D("1"), reason="x")
    with pytest.raises(ValidationError):
        services.finding_propose_adjustment(finding=finding, user=operator, drg_code="GB25", multiple=D("0"), reason="x")
