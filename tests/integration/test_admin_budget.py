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
    "base_amount": "306650.00", "growth_rate": "6", "growth_cap": "10", "policy_adjustment": "0",  # rates typed as percentages
    "reserve_rate": "5", "outpatient_share": "0", "primary_care_share": "0",
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
    assert "须由另一位审核人批准" in page.content.decode()
    refused = client.post(reverse("admin:budget_budget_approve", args=[budget.pk]), {"confirmed": "yes"}, follow=True)
    assert "经办与审核须为不同人员" in messages_of(refused)
    budget.refresh_from_db()
    assert budget.status == "draft"

    client.force_login(approver)
    confirm = client.get(reverse("admin:budget_budget_approve", args=[budget.pk])).content.decode()
    assert "确认批准" in confirm and "dora" in confirm and "325,049.00" in confirm and "6.00%" in confirm
    budget.refresh_from_db()
    assert budget.status == "draft"  # the confirmation page changes nothing
    approved = client.post(reverse("admin:budget_budget_approve", args=[budget.pk]), {"confirmed": "yes"}, follow=True)
    assert "已批准" in messages_of(approved)
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

    asked = client.post(reverse("admin:budget_budget_changelist"), {"action": "approve_selected", "_selected_action": [budget.pk]})
    assert "你起草了此预算" in asked.content.decode()
    response = client.post(
        reverse("admin:budget_budget_changelist"), {"action": "approve_selected", "_selected_action": [budget.pk], "confirmed": "yes"}, follow=True,
    )

    assert "经办与审核须为不同人员" in messages_of(response)
    budget.refresh_from_db()
    assert budget.status == "draft"


def test_a_growth_rate_above_the_cap_is_refused_with_a_clear_message(client):
    region = small_region()
    client.force_login(make_user("olga", "operator"))

    response = draft_in_admin(client, region, growth_rate="12")

    assert response.status_code == 200
    assert "增长率 12% 超过增长率上限 10%" in response.content.decode()
    assert not Budget.objects.exists()


def test_the_live_lines_view_computes_what_will_be_stored(client):
    client.force_login(make_user("olga", "operator"))
    url = reverse("admin:budget_budget_lines")

    ok = client.get(url, INPUTS).json()
    capped = client.get(url, {**INPUTS, "growth_rate": "20"}).json()
    bad = client.get(url, {**INPUTS, "base_amount": "abc"}).json()

    assert ok == {"ok": True, "lines": {"total": "325,049.00", "reserve": "16,252.45", "outpatient": "0.00", "inpatient": "308,796.55", "primary_care_earmark": "0.00"}}
    assert capped["ok"] is False and "超过增长率上限 10%" in capped["errors"]["growth_rate"]
    assert bad == {"ok": False, "errors": {"base_amount": "不是数字：abc"}}


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
    client.post(reverse("admin:budget_budget_approve", args=[first.pk]), {"confirmed": "yes"})

    client.force_login(operator)
    assert client.post(reverse("admin:budget_budget_change", args=[first.pk]), {**INPUTS, "base_amount": "1.00"}).status_code == 403
    page = client.get(reverse("admin:budget_budget_change", args=[first.pk])).content.decode()
    assert "已批准预算不可修改" in page and "新修订" in page

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
    assert "此基金池已有预算草稿" in response.content.decode()


def test_an_approver_sends_a_draft_back_to_its_maker_with_a_reason(client):
    region = small_region()
    operator, approver = make_user("olga", "operator"), make_user("alan", "approver")
    client.force_login(operator)
    draft_in_admin(client, region)
    budget = Budget.objects.get()

    client.force_login(approver)
    empty = client.post(reverse("admin:budget_budget_send_back", args=[budget.pk]), {"reason": ""})
    sent = client.post(reverse("admin:budget_budget_send_back", args=[budget.pk]), {"reason": "增长率依据不足，请附测算说明"}, follow=True)
    client.force_login(operator)
    page = client.get(reverse("admin:budget_budget_change", args=[budget.pk])).content.decode()
    refused = client.post(reverse("admin:budget_budget_send_back", args=[budget.pk]), {"reason": "x"})

    assert empty.status_code == 200 and "errorlist" in empty.content.decode()
    assert "退回给经办人 olga" in messages_of(sent)
    budget.refresh_from_db()
    assert (budget.status, budget.returned_by, budget.returned_reason) == ("draft", approver, "增长率依据不足，请附测算说明")
    assert "增长率依据不足，请附测算说明" in page and 'value="6"' in page  # the maker sees why; rates shown as percentages
    assert refused.status_code == 403  # sending back is the approver's
