"""Budgets in the admin: drafted by one user, approved by another (the drafter refused), live lines,
growth above the cap refused, approved budgets immutable, revisions with a reason."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from budget.models import Budget
from tests.integration.admin_helpers import make_user, small_region

pytestmark = pytest.mark.django_db

INPUTS = {
    "base_amount": "306650.00", "growth_rate": "0.06", "growth_cap": "0.10", "policy_adjustment": "0",
    "reserve_rate": "0.05", "outpatient_share": "0", "primary_care_share": "0",
}


def draft_in_admin(client, region, **overrides):
    data = {"region": region.pk, "fund": "employee", "year": 2025, "reason": "", **INPUTS, **overrides}
    return client.post(reverse("admin:budget_budget_add"), data)


def messages_of(response) -> str:
    return " | ".join(str(m) for m in response.context["messages"]) if response.context else ""


def test_a_budget_is_drafted_by_one_user_and_approved_by_another_and_the_drafter_is_refused(client):
    region = small_region()
    drafter = make_user("dora", "operator")
    drafter.groups.add(Group.objects.get(name="approver"))  # a small bureau: one person holds both roles
    approver = make_user("alan", "approver")

    client.force_login(drafter)
    response = draft_in_admin(client, region)
    assert response.status_code == 302, response.content.decode()[:2000]
    budget = Budget.objects.get()
    assert (budget.status, budget.drafted_by, budget.revision) == ("draft", drafter, 1)
    assert (budget.total, budget.reserve, budget.inpatient) == (Decimal("325049.00"), Decimal("16252.45"), Decimal("308796.55"))

    page = client.get(reverse("admin:budget_budget_change", args=[budget.pk]))
    assert "another approver must approve it" in page.content.decode()
    refused = client.post(reverse("admin:budget_budget_approve", args=[budget.pk]), follow=True)
    assert "maker-checker" in messages_of(refused)
    budget.refresh_from_db()
    assert budget.status == "draft"

    client.force_login(approver)
    approved = client.post(reverse("admin:budget_budget_approve", args=[budget.pk]), follow=True)
    assert "Approved" in messages_of(approved)
    budget.refresh_from_db()
    assert (budget.status, budget.approved_by) == ("approved", approver)
    history = list(budget.history.order_by("history_date"))
    assert [h.history_user for h in history] == [drafter, approver]
    assert [h.status for h in history] == ["draft", "approved"]


def test_the_bulk_approve_action_applies_maker_checker_too(client):
    region = small_region()
    both = make_user("dora", "operator")
    both.groups.add(Group.objects.get(name="approver"))
    client.force_login(both)
    draft_in_admin(client, region)
    budget = Budget.objects.get()

    response = client.post(reverse("admin:budget_budget_changelist"), {"action": "approve_selected", "_selected_action": [budget.pk]}, follow=True)

    assert "maker-checker" in messages_of(response)
    budget.refresh_from_db()
    assert budget.status == "draft"


def test_a_growth_rate_above_the_cap_is_refused_with_a_clear_message(client):
    region = small_region()
    client.force_login(make_user("olga", "operator"))

    response = draft_in_admin(client, region, growth_rate="0.12")

    assert response.status_code == 200
    assert "exceeds the growth cap" in response.content.decode()
    assert not Budget.objects.exists()


def test_the_live_lines_view_computes_what_will_be_stored(client):
    client.force_login(make_user("olga", "operator"))
    url = reverse("admin:budget_budget_lines")

    ok = client.get(url, INPUTS).json()
    capped = client.get(url, {**INPUTS, "growth_rate": "0.2"}).json()
    bad = client.get(url, {**INPUTS, "base_amount": "abc"}).json()

    assert ok == {"ok": True, "lines": {"total": "325,049.00", "reserve": "16,252.45", "outpatient": "0.00", "inpatient": "308,796.55", "primary_care_earmark": "0.00"}}
    assert capped["ok"] is False and "growth cap" in capped["errors"]["growth_rate"]
    assert bad == {"ok": False, "errors": {"base_amount": "not a number: abc"}}


def test_the_draft_form_carries_the_live_lines_script_and_no_cdn(client):
    client.force_login(make_user("olga", "operator"))

    html = client.get(reverse("admin:budget_budget_add")).content.decode()

    assert 'id="budget-line-inpatient"' in html
    assert reverse("admin:budget_budget_lines") in html
    assert "cdn" not in html.lower() and "https://" not in html


def test_an_approved_budget_is_read_only_and_revised_through_a_new_revision(client):
    region = small_region()
    operator, approver = make_user("olga", "operator"), make_user("alan", "approver")
    client.force_login(operator)
    draft_in_admin(client, region)
    first = Budget.objects.get()
    client.force_login(approver)
    client.post(reverse("admin:budget_budget_approve", args=[first.pk]))

    client.force_login(operator)
    assert client.post(reverse("admin:budget_budget_change", args=[first.pk]), {**INPUTS, "base_amount": "1.00"}).status_code == 403
    page = client.get(reverse("admin:budget_budget_change", args=[first.pk])).content.decode()
    assert "immutable" in page and "New revision" in page

    no_reason = client.post(reverse("admin:budget_budget_revise", args=[first.pk]), {"reason": ""})
    assert no_reason.status_code == 200 and Budget.objects.count() == 1
    revised = client.post(reverse("admin:budget_budget_revise", args=[first.pk]), {"reason": "重大政策调整: new hospital opened"})
    second = Budget.objects.get(revision=2)
    assert revised.status_code == 302 and revised["Location"].endswith(f"/{second.pk}/change/")
    assert (second.status, second.drafted_by, second.reason) == ("draft", operator, "重大政策调整: new hospital opened")

    changed = client.post(reverse("admin:budget_budget_change", args=[second.pk]), {**INPUTS, "policy_adjustment": "1000.00"})
    assert changed.status_code == 302
    second.refresh_from_db()
    assert second.total == Decimal("326049.00")
    first.refresh_from_db()
    assert first.total == Decimal("325049.00") and first.status == "approved"


def test_a_second_draft_for_the_same_pool_is_refused(client):
    region = small_region()
    client.force_login(make_user("olga", "operator"))
    draft_in_admin(client, region)

    response = draft_in_admin(client, region, reason="again")

    assert response.status_code == 200
    assert "already has a draft budget" in response.content.decode()
