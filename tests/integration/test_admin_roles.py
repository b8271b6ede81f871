"""The bureau's roles (groups made by budget/migrations/0002_roles) and what each may do in the admin."""
from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from budget.models import Budget
from drg.models import SpecialReview
from tests.integration.admin_helpers import approved_budget, make_case, make_institution, make_user, small_region

pytestmark = pytest.mark.django_db
BUREAU_APPS = {"drg", "budget", "settlement", "incentives", "auth"}


def bureau_admins():
    return [(model, model_admin) for model, model_admin in admin.site._registry.items() if model._meta.app_label in BUREAU_APPS]


def perms_of(role: str) -> set[str]:
    group = Group.objects.get(name=role)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def test_the_three_roles_exist_with_least_permissions():
    operator, approver, auditor = perms_of("operator"), perms_of("approver"), perms_of("auditor")

    assert {"budget.add_budget", "budget.change_budget", "settlement.start_clearingrun", "settlement.add_itemizedclaim",
            "settlement.add_pointadjustment", "settlement.add_evaluation", "drg.add_parameterrevision", "drg.view_case",
            "settlement.acknowledge_clearingrun"} <= operator
    assert not {"budget.approve_budget", "settlement.finalize_clearingrun", "drg.review_specialreview", "drg.change_case",
                "drg.approve_parameterrevision", "drg.change_drggroup", "drg.change_paymentscheme", "drg.change_institution"} & operator

    assert {"budget.approve_budget", "drg.review_specialreview", "settlement.review_itemizedclaim", "settlement.approve_pointadjustment",
            "settlement.approve_evaluation", "drg.review_correctionrequest", "settlement.finalize_clearingrun",
            "drg.approve_parameterrevision", "settlement.acknowledge_clearingrun"} <= approver
    assert not {"budget.add_budget", "settlement.start_clearingrun", "budget.change_budget"} & approver

    assert all(p.split(".")[1].startswith("view_") for p in auditor)
    assert {"budget.view_historicalbudget", "drg.view_historicaldrggroup", "settlement.view_clearingrun", "drg.view_case"} <= auditor


def test_incentive_payout_approval_belongs_to_the_approver():
    approver = perms_of("approver")
    assert "incentives.approve_payout" in approver
    assert "incentives.approve_payout" not in perms_of("operator")


def test_every_admin_screen_opens_for_the_auditor(client):
    region = small_region()
    institution = make_institution(region)
    make_case(institution)
    approved_budget(region)
    client.force_login(make_user("audrey", "auditor"))

    for model, model_admin in bureau_admins():
        opts = model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        obj = model_admin.get_queryset(response.wsgi_request).first()
        if obj is not None:
            change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
            assert client.get(change).status_code == 200, change
            history = reverse(f"admin:{opts.app_label}_{opts.model_name}_history", args=[obj.pk])
            assert client.get(history).status_code == 200, history

    assert client.get(reverse("admin:index")).status_code == 200


def test_the_auditor_is_refused_every_change(client):
    region = small_region()
    institution = make_institution(region)
    case = make_case(institution)
    review = SpecialReview.objects.create(institution=institution, case=case, requested_cost="50000.00")
    budget = approved_budget(region)
    draft = Budget.objects.create(
        region=region, fund="resident", year=2025, base_amount="100.00", growth_rate="0.01",
        total="101.00", reserve="5.05", outpatient="0.00", inpatient="95.95", primary_care_earmark="0.00",
    )
    client.force_login(make_user("audrey", "auditor"))

    posts = [
        (reverse("admin:budget_budget_add"), {"region": region.pk, "fund": "resident", "year": 2026, "base_amount": "1", "growth_rate": "0"}),
        (reverse("admin:budget_budget_change", args=[draft.pk]), {"base_amount": "200.00", "growth_rate": "0.01"}),
        (reverse("admin:budget_budget_delete", args=[draft.pk]), {"post": "yes"}),
        (reverse("admin:budget_budget_approve", args=[draft.pk]), {}),
        (reverse("admin:budget_budget_revise", args=[budget.pk]), {"reason": "policy"}),
        (reverse("admin:budget_budget_changelist"), {"action": "approve_selected", "_selected_action": [draft.pk]}),
        (reverse("admin:budget_budget_changelist"), {"action": "delete_selected", "_selected_action": [draft.pk]}),
        (reverse("admin:drg_specialreview_decide", args=[review.pk, "approved"]), {"apply": "1", "amount": "1"}),
        (reverse("admin:drg_specialreview_changelist"), {"action": "approve_selected", "_selected_action": [review.pk], "apply": "1"}),
        (reverse("admin:drg_specialreview_change", args=[review.pk]), {"requested_cost": "1"}),
        (reverse("admin:drg_institution_change", args=[institution.pk]), {"code": "HX", "name": "x", "level": 1, "category": "general"}),
        (reverse("admin:drg_drggroup_add"), {"code": "ZZ"}),
        (reverse("admin:settlement_clearingrun_add"), {"region": region.pk, "fund": "employee", "year": 2025}),
        (reverse("admin:drg_case_change", args=[case.pk]), {"total_cost": "1"}),
        (reverse("admin:budget_budget_simple_history", args=[budget.pk, budget.history.earliest().history_id]), {"base_amount": "1"}),
    ]
    for url, data in posts:
        response = client.post(url, data)
        assert response.status_code == 403, (url, response.status_code)

    draft.refresh_from_db()
    review.refresh_from_db()
    assert draft.status == "draft" and str(draft.base_amount) == "100.00"
    assert review.status == "submitted"
    assert Budget.objects.count() == 2


def test_history_cannot_be_reverted_even_by_an_operator(client):
    region = small_region()
    institution = make_institution(region)
    client.force_login(make_user("olga", "operator"))
    record = institution.history.earliest()

    response = client.post(
        reverse("admin:drg_institution_simple_history", args=[institution.pk, record.history_id]),
        {"code": "H1", "name": "reverted", "level": 2, "category": "general", "region": region.pk},
    )

    assert response.status_code == 403


def test_every_add_and_change_screen_renders_for_a_superuser(client, admin_user):
    region = small_region()
    institution = make_institution(region)
    make_case(institution)
    approved_budget(region)
    client.force_login(admin_user)

    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        request_factory_response = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        assert request_factory_response.status_code == 200, opts.label
        if model_admin.has_add_permission(request_factory_response.wsgi_request):
            add = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
            assert add.status_code == 200, (opts.label, add.status_code)


def test_the_index_is_a_cockpit_of_what_waits_for_the_bureau(client):
    region = small_region()
    institution = make_institution(region)
    SpecialReview.objects.create(institution=institution, case=make_case(institution), requested_cost="50000.00")
    year = timezone.localdate().year
    approved_budget(region, year=year)
    client.force_login(make_user("alan", "approver"))

    html = client.get(reverse("admin:index")).content.decode()

    assert "待办" in html
    assert reverse("admin:drg_specialreview_changelist") + "?status__exact=submitted" in html
    assert reverse("admin:settlement_pool", args=[region.pk, "employee", year]) in html
