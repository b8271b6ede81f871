"""The parameters in force in the admin: read-only records with "draft a revision"; the scheme
revision form (tiers as rows, rates in %); maker-checker approval; the run page's revisions; the
start form's errors; failed runs acknowledged; opening a year."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from budget.choices import BudgetStatus
from budget.models import Budget
from drg.choices import ParameterKind, RevisionStatus
from drg.models import ParameterRevision, PaymentScheme
from settlement.models import ClearingRun
from tests.integration.admin_helpers import approved_budget, make_case, make_institution, make_user, small_region

pytestmark = pytest.mark.django_db

DRAFT_SCHEME = "admin:drg_parameterrevision_draft_scheme"


@pytest.fixture
def pool():
    region = small_region()
    make_case(make_institution(region))
    approved_budget(region)
    return region


def scheme_post(region, **changes) -> dict:
    """The scheme revision form as a bureau user fills it: the defaults, rates in per cent."""
    data = {
        "region": region.pk, "year": 2025, "all_case_avg_cost": "10000.00", "low_outlier_multiple": "0.4",
        "readmission_days": "15", "readmission_factor": "50", "prepay_ratio": "95", "reason": "年度方案调整",
    }
    rows = {
        "high_outlier_tiers": [("100", "3"), ("200", "2"), ("", "1.5")],
        "surplus_tiers": [("10", "85"), ("", "0")],
        "overrun_tiers": [("5", "50"), ("10", "30"), ("", "0")],
        "tcm_rate_tiers": [],
    }
    rows.update({k: v for k, v in changes.items() if k.endswith("_tiers")})
    data.update({k: v for k, v in changes.items() if not k.endswith("_tiers")})
    for key, tiers in rows.items():
        data[f"{key}-TOTAL_FORMS"] = str(len(tiers))
        data[f"{key}-INITIAL_FORMS"] = "0"
        for i, (bound, share) in enumerate(tiers):
            data[f"{key}-{i}-bound"], data[f"{key}-{i}-share"] = bound, share
    return data


def test_catalog_records_are_read_only_with_a_draft_a_revision_link(client, pool):
    client.force_login(make_user("olga", "operator"))
    scheme = PaymentScheme.objects.get(region=pool)
    url = reverse("admin:drg_paymentscheme_change", args=[scheme.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert reverse(DRAFT_SCHEME) + f"?region={pool.pk}&amp;year=2025" in page.content.decode()
    assert client.post(url, {"prepay_ratio": "0.90"}).status_code == 403
    assert client.get(reverse("admin:drg_drggroup_add")).status_code == 403
    scheme.refresh_from_db()
    assert scheme.prepay_ratio == Decimal("0.95")
    group_page = client.get(reverse("admin:drg_drggroup_changelist")).content.decode()
    assert reverse("admin:drg_parameterrevision_draft_row", args=["groups"]) in group_page


def test_the_scheme_form_shows_tier_rows_in_chinese_with_percent_hints_and_no_errors_when_empty(client, pool):
    client.force_login(make_user("olga", "operator"))
    for url in (reverse(DRAFT_SCHEME), reverse(DRAFT_SCHEME) + f"?region={pool.pk}&year=2025"):
        page = client.get(url)
        html = page.content.decode()
        assert page.status_code == 200
        assert "errorlist" not in html and "errornote" not in html
        assert "月度预付比例（%）" in html and "按百分数填写" in html and "结余留用分档" in html and "增加一行" in html
        assert 'name="high_outlier_tiers"' not in html and "<textarea name=\"surplus_tiers\"" not in html  # no raw JSON box
        assert 'name="high_outlier_tiers-0-bound"' in html
    filled = client.get(reverse(DRAFT_SCHEME) + f"?region={pool.pk}&year=2025").context["form"]
    assert filled.initial["prepay_ratio"] == Decimal("95")


def test_adding_a_tier_row_keeps_what_was_entered_and_shows_no_errors(client, pool):
    client.force_login(make_user("olga", "operator"))
    data = scheme_post(pool, tcm_rate_tiers=[("30", "2")])
    data["_add_tcm_rate_tiers"] = "1"
    page = client.post(reverse(DRAFT_SCHEME), data)
    assert page.status_code == 200 and "errorlist" not in page.content.decode()
    tiers = [b for b in page.context["tier_blocks"] if b["key"] == "tcm_rate_tiers"][0]["formset"]
    assert tiers.total_form_count() == 2
    assert not ParameterRevision.objects.exists()


def test_bad_tiers_are_refused_in_order_by_the_bundle_rules(client, pool):
    client.force_login(make_user("olga", "operator"))
    page = client.post(reverse(DRAFT_SCHEME), scheme_post(
        pool, high_outlier_tiers=[("200", "2"), ("100", "3")], surplus_tiers=[("10", "150"), ("", "0")]))
    assert page.status_code == 200
    errors = {b["key"]: b["errors"] for b in page.context["tier_blocks"]}
    assert any("bounds must increase" in e for e in errors["high_outlier_tiers"])
    assert any("the last tier must be open" in e for e in errors["high_outlier_tiers"])
    assert any("hospital_share" in e and "between 0 and 1" in e for e in errors["surplus_tiers"])
    assert not ParameterRevision.objects.exists()
    # a removed row is left out; the prepay ratio is bounded as a percentage
    page = client.post(reverse(DRAFT_SCHEME), scheme_post(pool, prepay_ratio="80"))
    assert "prepay_ratio" in page.context["form"].errors


def test_an_operator_drafts_the_scheme_and_another_person_approves_it(client, pool):
    operator, approver = make_user("olga", "operator"), make_user("anna", "approver")
    client.force_login(operator)
    data = scheme_post(pool, prepay_ratio="90", surplus_tiers=[("10", "85"), ("15", "60"), ("", "0")],
                       tcm_rate_tiers=[("30", "2"), ("40", "4")])
    data["surplus_tiers-1-DELETE"] = "on"  # removed again before saving
    response = client.post(reverse(DRAFT_SCHEME), data)
    draft = ParameterRevision.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("admin:drg_parameterrevision_change", args=[draft.pk])
    assert draft.values["prepay_ratio"] == "0.900000" and draft.drafted_by == operator
    assert draft.values["surplus_tiers"] == [{"upto": 0.1, "hospital_share": 0.85}, {"upto": None, "hospital_share": 0}]
    assert draft.values["tcm_rate_tiers"] == [{"min_rate": 0.3, "uplift": 0.02}, {"min_rate": 0.4, "uplift": 0.04}]
    assert PaymentScheme.objects.get(region=pool).prepay_ratio == Decimal("0.95")

    page = client.get(reverse("admin:drg_parameterrevision_change", args=[draft.pk])).content.decode()
    assert "批准并生效" not in page and "须由另一位审核人批准" in page
    assert client.post(reverse("admin:drg_parameterrevision_approve", args=[draft.pk])).status_code == 403

    client.force_login(approver)
    page = client.get(reverse("admin:drg_parameterrevision_change", args=[draft.pk])).content.decode()
    assert "批准并生效" in page and "0.950000" in page and "0.900000" in page  # what changes, before and after
    client.post(reverse("admin:drg_parameterrevision_approve", args=[draft.pk]))
    draft.refresh_from_db()
    assert draft.status == RevisionStatus.APPROVED and draft.decided_by == approver
    assert PaymentScheme.objects.get(region=pool).prepay_ratio == Decimal("0.90")


def test_a_person_with_both_roles_cannot_approve_their_own_revision(client, pool):
    boss = get_user_model().objects.create_superuser("root", "root@example.org", "pw")
    client.force_login(boss)
    client.post(reverse(DRAFT_SCHEME), scheme_post(pool, prepay_ratio="90"))
    draft = ParameterRevision.objects.get()
    response = client.post(reverse("admin:drg_parameterrevision_approve", args=[draft.pk]), follow=True)
    assert "经办与审核须为不同人员" in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == RevisionStatus.DRAFT and PaymentScheme.objects.get(region=pool).prepay_ratio == Decimal("0.95")


def test_a_group_row_is_drafted_from_its_read_only_page(client, pool):
    from drg.models import DrgGroup

    group = DrgGroup.objects.get(region=pool, code="GB25")
    client.force_login(make_user("olga", "operator"))
    url = reverse("admin:drg_parameterrevision_draft_row", args=["groups"]) + f"?pk={group.pk}"
    form = client.get(url).context["form"]
    data = {name: ("" if form[name].value() is None else form[name].value()) for name in form.fields if not form.fields[name].disabled}
    data.update(base_points="82.5", reason="新年度测算", pk=group.pk)
    data = {k: v for k, v in data.items() if v is not False}
    response = client.post(reverse("admin:drg_parameterrevision_draft_row", args=["groups"]), data)
    assert response.status_code == 302, response.context["form"].errors if response.context else ""
    draft = ParameterRevision.objects.get(kind=ParameterKind.CATALOG)
    assert [g["base_points"] for g in draft.values["groups"] if g["code"] == "GB25"] == ["82.5000"]
    group.refresh_from_db()
    assert group.base_points == Decimal("80.0000")


def test_the_run_page_lists_the_revisions_the_run_used_and_each_shows_its_snapshot(client, pool):
    from settlement.services import clearing_run_start

    operator = make_user("olga", "operator")
    run = clearing_run_start(region=pool, fund="employee", year=2025, user=operator)
    client.force_login(make_user("audrey", "auditor"))
    page = client.get(reverse("admin:settlement_clearingrun_change", args=[run.pk])).content.decode()
    scheme = run.parameter_revisions.get(kind=ParameterKind.SCHEME)
    assert reverse("admin:drg_parameterrevision_change", args=[scheme.pk]) in page
    revision_page = client.get(reverse("admin:drg_parameterrevision_change", args=[scheme.pk])).content.decode()
    assert "生效参数全量快照" in revision_page and "0.950000" in revision_page
    assert reverse("admin:settlement_clearingrun_change", args=[run.pk]) in revision_page


def test_starting_a_run_for_a_year_without_scheme_or_budget_is_a_form_error(client, pool):
    client.force_login(make_user("olga", "operator"))
    response = client.post(reverse("admin:settlement_clearingrun_add"), {"region": pool.pk, "fund": "employee", "year": 2026, "month": ""})
    assert response.status_code == 200
    errors = " ".join(response.context["form"].non_field_errors())
    assert "没有已批准的预算" in errors and "没有 2026 年的支付方案" in errors and "没有 2026 年的病组目录" in errors
    assert not ClearingRun.objects.exists()


def test_a_failed_run_acknowledged_with_a_note_leaves_the_cockpit_count(client, pool):
    run = ClearingRun.objects.create(region=pool, fund="employee", year=2025, kind="annual", status="failed", error="boom")
    operator = make_user("olga", "operator")

    def failed_count():
        queues = client.get(reverse("admin:index")).context["cockpit_queues"]
        return next(q["count"] for q in queues if str(q["label"]) == "失败清算")

    client.force_login(make_user("audrey", "auditor"))
    assert failed_count() == 1
    assert client.post(reverse("admin:settlement_clearingrun_acknowledge", args=[run.pk]), {"note": "x"}).status_code == 403
    client.force_login(operator)
    page = client.get(reverse("admin:settlement_clearingrun_change", args=[run.pk])).content.decode()
    assert reverse("admin:settlement_clearingrun_acknowledge", args=[run.pk]) in page
    assert client.post(reverse("admin:settlement_clearingrun_acknowledge", args=[run.pk]), {"note": ""}).status_code == 200
    client.post(reverse("admin:settlement_clearingrun_acknowledge", args=[run.pk]), {"note": "预算补录后已重跑"})
    run.refresh_from_db()
    assert run.acknowledged_by == operator and run.acknowledgement_note == "预算补录后已重跑"
    assert failed_count() == 0


def test_opening_the_next_year_from_the_budget_list(client, pool):
    client.force_login(make_user("olga", "operator"))
    budget = Budget.objects.get(region=pool, year=2025)
    changelist = reverse("admin:budget_budget_changelist")
    response = client.post(changelist, {"action": "open_next_year", "_selected_action": [budget.pk]}, follow=True)
    assert "已开启" in response.content.decode()
    drafts = {r.kind: r for r in ParameterRevision.objects.filter(region=pool, year=2026)}
    assert set(drafts) == {"scheme", "catalog"} and all(r.status == RevisionStatus.DRAFT for r in drafts.values())
    new_budget = Budget.objects.get(region=pool, year=2026)
    assert new_budget.status == BudgetStatus.DRAFT and new_budget.base_amount == budget.total
    response = client.post(changelist, {"action": "open_next_year", "_selected_action": [budget.pk]}, follow=True)
    assert "已经开启" in response.content.decode()


def test_hostile_text_in_a_revision_reason_is_a_form_error(client, pool):
    client.force_login(make_user("olga", "operator"))
    page = client.post(reverse(DRAFT_SCHEME), scheme_post(pool, reason="bad\x00reason"))
    assert page.status_code == 200 and "reason" in page.context["form"].errors
    data = scheme_post(pool, all_case_avg_cost="=1+1")
    data["region"] = "x\x00"
    page = client.post(reverse(DRAFT_SCHEME), data)
    assert page.status_code == 200 and {"region", "all_case_avg_cost"} <= set(page.context["form"].errors)
    assert not ParameterRevision.objects.exists()
    assert client.get(reverse(DRAFT_SCHEME) + "?region=%00&year=99999999999999").status_code == 200
    assert client.get(reverse("admin:drg_parameterrevision_draft_row", args=["nope"])).status_code == 403
