"""PLANNING.md §2: scenarios on the worked example — the unchanged scenario equals the binding run to
the cent and the fourth decimal; changes are validated, recorded and adoptable; never binding."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from budget.choices import BudgetStatus
from budget.models import Budget
from drg.models import Region
from planning import services
from planning.choices import ScenarioStatus
from planning.models import Scenario
from settlement.choices import RunStatus
from settlement.models import ClearingRun, InstitutionLine

REGION, YEAR = "331083", 2025
DEVNULL = open("/dev/null", "w")


@pytest.fixture
def worked_year(worked_bundle, django_db_blocker):
    call_command("load_bundle", str(worked_bundle), stdout=DEVNULL)
    for month in range(1, 13):
        call_command("clear", region=REGION, fund="employee", year=YEAR, month=month, finalize=True, stdout=DEVNULL)
    call_command("clear", region=REGION, fund="employee", year=YEAR, finalize=True, stdout=DEVNULL)
    return Region.objects.get(code=REGION)


def _run_lines(run):
    return {line.institution.code: line for line in InstitutionLine.objects.filter(run=run).select_related("institution")}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # data migrations (rules, roles) restored
@pytest.mark.parametrize("month", [None, 6])
def test_an_unchanged_scenario_equals_the_binding_run_to_the_cent(worked_year, month):
    scenario = services.scenario_create(region=worked_year, fund="employee", year=YEAR, month=month, name="不变",
                                        changes={}, run_async=False)
    assert scenario.status == ScenarioStatus.DONE, scenario.error
    base = scenario.base_run
    assert base.status == RunStatus.FINALIZED and base.month == month
    assert scenario.fingerprint == base.fingerprint and scenario.same_inputs_as_base
    assert scenario.totals["point_value"] == base.totals["point_value"]
    assert scenario.totals["point_value_exact"] == base.totals["point_value_exact"]
    binding = _run_lines(base)
    lines = {line.institution.code: line for line in scenario.lines.select_related("institution")}
    assert set(lines) == set(binding) == ({"H1", "H2"} if month else {"H1", "H2", "H3"})
    for code, line in lines.items():
        run_line = binding[code]
        assert (line.points, line.point_value) == (run_line.points, run_line.point_value)
        if month:
            assert (line.fund_payment, line.balance) == (run_line.due, run_line.prepay)
        else:
            assert (line.fund_payment, line.surplus, line.balance) == (run_line.fund_payment, run_line.surplus, run_line.balance)
    if month is None:
        assert str(scenario.totals["point_value"]) == "115.6390"
        assert sum(line.fund_payment for line in lines.values()) == Decimal(scenario.totals["distributed"])


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # data migrations (rules, roles) restored
def test_a_changed_budget_changes_the_point_value_and_is_never_binding(worked_year):
    runs_before = ClearingRun.objects.count()
    scenario = services.scenario_create(region=worked_year, fund="employee", year=YEAR, month=None, name="增长 8%",
                                        changes={"budget": {"growth_rate": "0.08"}}, run_async=False)
    assert scenario.status == ScenarioStatus.DONE, scenario.error
    assert not scenario.same_inputs_as_base
    # a larger budget: B > F already, the surplus band grows, so V rises; Σ pay = distributed
    assert Decimal(scenario.totals["point_value"]) > Decimal("115.6390")
    assert sum(line.fund_payment for line in scenario.lines.all()) == Decimal(scenario.totals["distributed"])
    assert ClearingRun.objects.count() == runs_before  # no run was created, nothing finalizable

    user = get_user_model().objects.create_user("maker")
    drafted = services.scenario_adopt(scenario=scenario, user=user, reason="年度预算调整")
    budget = Budget.objects.get(pk=drafted["budget"])
    assert budget.status == BudgetStatus.DRAFT and budget.growth_rate == Decimal("0.08") and budget.revision == 2


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # data migrations (rules, roles) restored
def test_scheme_catalog_and_coefficient_changes_are_applied(worked_year):
    base = services.scenario_create(region=worked_year, fund="employee", year=YEAR, month=None, name="基准", changes={}, run_async=False)
    changed = services.scenario_create(
        region=worked_year, fund="employee", year=YEAR, month=None, name="GB25 90 点",
        changes={"catalog": {"groups": [{"code": "GB25", "base_points": "90.0000"}]},
                 "coefficients": {"institutions": {"H1": "1.0000"}},
                 "scheme": {"surplus_tiers": [{"upto": "0.10", "hospital_share": "0.5"}, {"upto": None, "hospital_share": "0"}]}},
        run_async=False)
    assert changed.status == ScenarioStatus.DONE, changed.error
    assert changed.totals["points"] != base.totals["points"]
    assert Decimal(changed.totals["distributed"]) < Decimal(base.totals["distributed"])  # half the surplus retained
    detail = services.scenario_case_detail(scenario=changed, institution=worked_year.institutions.get(code="H1"))
    assert len(detail) > 0 and set(detail.columns) == {"case_no", "valuation_group", "category", "points"}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # data migrations (rules, roles) restored
@pytest.mark.parametrize("changes, message", [
    ({"budget": {"growth_rate": "0.50"}}, "growth"),
    ({"budget": {"base_amount": "abc"}}, "base_amount"),
    ({"scheme": {"prepay_ratio": "0.5"}}, "prepay_ratio"),
    ({"scheme": {"surplus_tiers": "x"}}, "surplus_tiers"),
    ({"catalog": {"groups": [{"code": "GB25", "base_points": "NaN"}]}}, "base_points"),
    ({"coefficients": {"institutions": {"=HYPERLINK()": "1"}}}, "未知机构"),
    ({"unknown": 1}, "未知的变更项"),
    ([1, 2], "JSON"),
])
def test_bad_changes_are_refused_with_a_reason(worked_year, changes, message):
    with pytest.raises(ValidationError) as raised:
        services.scenario_create(region=worked_year, fund="employee", year=YEAR, month=None, name="x", changes=changes, run_async=False)
    assert message in " ".join(raised.value.messages)
    assert not Scenario.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # data migrations (rules, roles) restored
def test_the_scenario_command_writes_json_and_csv(worked_year, tmp_path):
    out = tmp_path / "s.json"
    call_command("scenario", region=REGION, fund="employee", year=YEAR, name="批量", changes='{"budget": {"reserve_rate": "0.04"}}',
                 out=str(out), stdout=DEVNULL)
    record = json.loads(out.read_text())
    assert record["status"] == "done" and record["changes"] == {"budget": {"reserve_rate": "0.04"}}
    assert [line["institution_code"] for line in record["lines"]] == ["H1", "H2", "H3"]
    assert record["lines"][0]["binding_point_value"] == "115.6390"
    csv_out = tmp_path / "s.csv"
    call_command("scenario", show=record["scenario"], format="csv", out=str(csv_out), stdout=DEVNULL)
    assert csv_out.read_text().splitlines()[0].startswith("institution_code,case_count,points")
    with pytest.raises(CommandError, match="空字符"):
        call_command("scenario", region=REGION, fund="employee", year=YEAR, name="x\x00", changes="{}", stdout=DEVNULL)
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("scenario", region=REGION, fund="employee", year=YEAR, changes="{", stdout=DEVNULL)
    with pytest.raises(CommandError, match="binding|已定稿"):
        call_command("scenario", region=REGION, fund="resident", year=YEAR, changes="{}", stdout=DEVNULL)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # data migrations (rules, roles) restored
def test_a_rate_setting_used_as_the_catalog_brings_its_groups_and_a(worked_year):
    result = services.rate_setting_compute(region=worked_year, year=2026, reference_years=(2025,), weights=(1,))
    proposal = services.rate_setting_adopt(region=worked_year, year=2026, result=result, user=None, reason="测算")
    scenario = services.scenario_create(region=worked_year, fund="employee", year=YEAR, month=None, name="新目录",
                                        changes={"catalog": {"rate_setting": proposal.pk}}, run_async=False)
    assert scenario.status == ScenarioStatus.DONE, scenario.error
    assert scenario.totals and scenario.base_run.parameters["scheme"]["all_case_avg_cost"] == "10000.00"
    # A of the worked example's cases differs from the catalog's 10000.00, so unstable and special-review
    # points (cost / A × 100) and the total points change
    assert result.all_case_avg_cost != Decimal("10000.00")
    assert scenario.totals["points"] != scenario.base_run.totals["points"]
    with pytest.raises(ValidationError, match="测算结果"):
        services.scenario_create(region=worked_year, fund="employee", year=YEAR, month=None, name="x",
                                 changes={"catalog": {"rate_setting": proposal.pk + 999}}, run_async=False)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # data migrations (rules, roles) restored
def test_a_scenario_the_rules_cannot_clear_is_recorded_as_failed(worked_year):
    scenario = services.scenario_create(region=worked_year, fund="employee", year=YEAR, month=None, name="零预算",
                                        changes={"budget": {"base_amount": "0.00"}}, run_async=False)
    assert scenario.status == ScenarioStatus.FAILED and "no DRG budget" in scenario.error  # itemized 3800 > inpatient 0
    assert not scenario.lines.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # data migrations (rules, roles) restored
def test_adopting_catalog_and_coefficient_changes_drafts_parameter_revisions(worked_year):
    from drg.models import ParameterRevision

    scenario = services.scenario_create(
        region=worked_year, fund="employee", year=YEAR, month=None, name="GB25 90 点",
        changes={"catalog": {"groups": [{"code": "GB25", "base_points": "90.0000"}]},
                 "coefficients": {"institutions": {"H1": "1.0500"},
                                  "groups": [{"institution": "H2", "drg_code": "GB25", "coefficient": "0.9500"}]}},
        run_async=False)
    user = get_user_model().objects.create_user("planner")
    drafted = services.scenario_adopt(scenario=scenario, user=user, reason="试行")
    assert set(drafted) == {"catalog_revision", "institutions_revision"}
    catalog = ParameterRevision.objects.get(pk=drafted["catalog_revision"])
    assert catalog.status == "draft" and catalog.year == YEAR and catalog.drafted_by == user
    gb25 = next(g for g in catalog.values["groups"] if g["code"] == "GB25")
    assert gb25["base_points"] == "90.0000" and gb25["avg_cost"] == "8000.00"
    assert {"institution": "H2", "drg_code": "GB25", "coefficient": "0.9500"} in catalog.values["coefficients"]
    institutions = ParameterRevision.objects.get(pk=drafted["institutions_revision"])
    assert next(i for i in institutions.values["institutions"] if i["code"] == "H1")["coefficient"] == "1.0500"
    with pytest.raises(ValidationError, match="理由"):
        services.scenario_adopt(scenario=scenario, user=user, reason="  ")
