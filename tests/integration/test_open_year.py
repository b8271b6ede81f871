"""Opening a new year (`open_year --region R --year Y`): Y's scheme and catalog drafted from Y−1, a
budget draft per fund whose base is Y−1's approved total; everything through approval."""
from __future__ import annotations

import io
from decimal import Decimal as D

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from budget.choices import BudgetStatus
from budget.models import Budget
from budget.services import budget_approve, budget_current
from drg import revisions
from drg.choices import ParameterKind, RevisionStatus
from drg.models import Case, Coefficient, DrgGroup, ParameterRevision, PaymentScheme, Region, TcmEquivalent
from settlement.services import clearing_run_start

pytestmark = pytest.mark.django_db


@pytest.fixture
def region(worked_bundle):
    call_command("load_bundle", str(worked_bundle), stdout=io.StringIO())
    return Region.objects.get(code="331083")


def open_year(*args) -> str:
    out = io.StringIO()
    call_command("open_year", *args, stdout=out)
    return out.getvalue()


def test_open_year_drafts_the_scheme_catalog_and_budgets_from_the_year_before(region):
    out = open_year("--region", "331083", "--year", "2026")
    assert "drafted scheme revision r1" in out and "drafted catalog revision r1" in out

    drafts = {r.kind: r for r in ParameterRevision.objects.filter(region=region, year=2026)}
    assert set(drafts) == {ParameterKind.SCHEME, ParameterKind.CATALOG}
    assert all(r.status == RevisionStatus.DRAFT and r.reason.startswith("开启 2026 年") for r in drafts.values())
    assert drafts["scheme"].values == revisions.parameter_values_in_force(region=region, kind="scheme", year=2025)
    catalog_2025 = revisions.parameter_values_in_force(region=region, kind="catalog", year=2025)
    assert drafts["catalog"].values == catalog_2025
    assert len(catalog_2025["groups"]) == DrgGroup.objects.filter(region=region, year=2025).count() > 0
    assert len(catalog_2025["coefficients"]) == Coefficient.objects.filter(institution__region=region, year=2025).count() > 0
    assert len(catalog_2025["tcm_equivalents"]) == TcmEquivalent.objects.filter(region=region, year=2025).count() > 0
    # nothing of 2026 is in force before approval
    assert not PaymentScheme.objects.filter(region=region, year=2026).exists()
    assert not DrgGroup.objects.filter(region=region, year=2026).exists()

    for fund in ("employee", "resident"):
        last = budget_current(region=region, fund=fund, year=2025)
        draft = Budget.objects.get(region=region, fund=fund, year=2026)
        assert draft.status == BudgetStatus.DRAFT and draft.base_amount == last.total
        assert (draft.growth_rate, draft.reserve_rate, draft.policy_adjustment) == (last.growth_rate, last.reserve_rate, D("0"))


def test_an_opened_year_is_in_force_only_after_another_person_approves_and_then_it_can_be_cleared(region):
    model = get_user_model()
    operator, approver = model.objects.create_user("op"), model.objects.create_user("ap")
    open_year("--region", "331083", "--year", "2026", "--user", "op")
    with pytest.raises(Exception, match="没有已批准的预算"):
        clearing_run_start(region=region, fund="employee", year=2026, user=operator)
    for draft in ParameterRevision.objects.filter(region=region, year=2026):
        assert draft.drafted_by == operator
        with pytest.raises(Exception):
            revisions.parameter_revision_approve(revision=draft, user=operator)
        revisions.parameter_revision_approve(revision=draft, user=approver)
    for budget in Budget.objects.filter(region=region, year=2026):
        budget_approve(budget=budget, user=approver)
    assert PaymentScheme.objects.get(region=region, year=2026).prepay_ratio == PaymentScheme.objects.get(region=region, year=2025).prepay_ratio
    assert DrgGroup.objects.filter(region=region, year=2026).count() == DrgGroup.objects.filter(region=region, year=2025).count()
    run = clearing_run_start(region=region, fund="employee", year=2026, user=operator)
    cases_2026 = Case.objects.filter(region=region, fund="employee", discharge_date__year=2026).count()
    assert run.status == "draft" and run.case_count == cases_2026
    assert {r.year for r in run.parameter_revisions.all()} == {2026, None}


def test_open_year_refuses_a_missing_previous_year_and_a_year_already_open(region):
    with pytest.raises(CommandError, match="没有 2023 年的支付方案、病组目录、已批准的预算"):
        open_year("--region", "331083", "--year", "2024")
    open_year("--region", "331083", "--year", "2026")
    with pytest.raises(CommandError, match="2026 年已经开启"):
        open_year("--region", "331083", "--year", "2026")
    with pytest.raises(CommandError, match="2025 年已经开启（已有支付方案、病组目录、参数修订、预算）"):
        open_year("--region", "331083", "--year", "2025")
    with pytest.raises(CommandError, match="unknown region"):
        open_year("--region", "nope\x00", "--year", "2026")
    assert ParameterRevision.objects.filter(region=region, year=2026).count() == 2
    assert Budget.objects.filter(region=region, year=2026).count() == 2
