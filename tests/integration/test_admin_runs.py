"""Clearing runs in the admin: an operator starts a run (queued on Celery), an approver other than the
starter finalizes it, finalized runs are read-only; the comparison, the pool page, statement downloads."""
from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from settlement.models import ClearingRun
from tests.integration.admin_helpers import approved_budget, make_case, make_institution, make_user, small_region

pytestmark = pytest.mark.django_db


@pytest.fixture
def pool():
    region = small_region()
    h1, h2 = make_institution(region, "H1"), make_institution(region, "H2", coefficient=Decimal("1.0"))
    make_case(h1, "c01")
    make_case(h2, "c02", patient_id="P002", total_cost=Decimal("12000.00"), self_pay=Decimal("2400.00"))
    approved_budget(region)
    return region


def messages_of(response) -> str:
    return " | ".join(str(m) for m in response.context["messages"])


def start_in_admin(client, django_capture_on_commit_callbacks, region, month=""):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:settlement_clearingrun_add"), {"region": region.pk, "fund": "employee", "year": 2025, "month": month})
    return response


def test_an_operator_starts_a_run_and_an_approver_finalizes_it(client, pool, django_capture_on_commit_callbacks):
    operator, approver = make_user("olga", "operator"), make_user("alan", "approver")
    client.force_login(operator)
    form = client.get(reverse("admin:settlement_clearingrun_add"))
    assert form.status_code == 200 and "发起清算" in form.content.decode()

    started = start_in_admin(client, django_capture_on_commit_callbacks, pool)

    run = ClearingRun.objects.get()
    assert started.status_code == 302 and started["Location"].endswith(f"/{run.pk}/change/")
    assert (run.kind, run.status, run.started_by, run.case_count) == ("annual", "draft", operator, 2)
    page = client.get(started["Location"]).content.decode()
    assert "对比" in page and 'id="finalize-run"' not in page  # an operator cannot finalize
    assert client.post(reverse("admin:settlement_clearingrun_finalize", args=[run.pk]), {"confirmed": "yes"}).status_code == 403

    client.force_login(approver)
    page = client.get(reverse("admin:settlement_clearingrun_change", args=[run.pk])).content.decode()
    assert f"定稿 #{run.pk}…" in page
    confirm = client.get(reverse("admin:settlement_clearingrun_finalize", args=[run.pk]))
    unconfirmed = client.post(reverse("admin:settlement_clearingrun_finalize", args=[run.pk]))
    run.refresh_from_db()
    assert run.status == "draft"  # neither the confirmation page nor a POST without the confirmation finalizes
    assert unconfirmed.status_code == 200 and "确认定稿" in unconfirmed.content.decode()
    html = confirm.content.decode()
    assert "确认定稿" in html and "olga" in html and run.fingerprint in html
    assert f"{Decimal(run.totals['distributed']):,.2f}" in html  # the amounts it will fix
    done = client.post(reverse("admin:settlement_clearingrun_finalize", args=[run.pk]), {"confirmed": "yes"}, follow=True)

    assert "已定稿" in messages_of(done)
    run.refresh_from_db()
    assert (run.status, run.finalized_by) == ("finalized", approver)


def test_an_approver_is_refused_finalizing_their_own_run(client, pool, django_capture_on_commit_callbacks):
    both = make_user("dora", "operator")
    both.groups.add(Group.objects.get(name="approver"))
    client.force_login(both)
    make_case(pool.institutions.get(code="H1"), "c00", admission_date=dt.date(2025, 1, 3), discharge_date=dt.date(2025, 1, 9))
    start_in_admin(client, django_capture_on_commit_callbacks, pool, month="1")
    run = ClearingRun.objects.get()

    page = client.get(reverse("admin:settlement_clearingrun_change", args=[run.pk])).content.decode()
    refused = client.post(reverse("admin:settlement_clearingrun_finalize", args=[run.pk]), {"confirmed": "yes"}, follow=True)
    asked = client.post(reverse("admin:settlement_clearingrun_changelist"), {"action": "finalize_selected", "_selected_action": [run.pk]})
    bulk = client.post(
        reverse("admin:settlement_clearingrun_changelist"), {"action": "finalize_selected", "_selected_action": [run.pk], "confirmed": "yes"}, follow=True,
    )

    assert "须由另一位审核人定稿" in page
    assert "你发起了此次清算" in asked.content.decode()  # the bulk confirmation page says so before anything happens
    assert "经办与审核须为不同人员" in messages_of(refused) and "经办与审核须为不同人员" in messages_of(bulk)
    run.refresh_from_db()
    assert run.status == "draft" and run.kind == "monthly" and run.month == 1


def test_a_finalized_run_and_its_lines_are_read_only(client, pool, django_capture_on_commit_callbacks, admin_user):
    client.force_login(make_user("olga", "operator"))
    start_in_admin(client, django_capture_on_commit_callbacks, pool)
    run = ClearingRun.objects.get()
    client.force_login(make_user("alan", "approver"))
    client.post(reverse("admin:settlement_clearingrun_finalize", args=[run.pk]), {"confirmed": "yes"})

    client.force_login(admin_user)
    assert client.post(reverse("admin:settlement_clearingrun_change", args=[run.pk]), {"status": "draft"}).status_code == 403
    assert client.post(reverse("admin:settlement_clearingrun_delete", args=[run.pk]), {"post": "yes"}).status_code == 403
    line = run.lines.first()
    assert client.post(reverse("admin:settlement_institutionline_change", args=[line.pk]), {"points": "1"}).status_code == 403
    run.refresh_from_db()
    assert run.status == "finalized"


def test_the_comparison_explains_what_changed_since_the_previous_run(client, pool, django_capture_on_commit_callbacks):
    client.force_login(make_user("olga", "operator"))
    start_in_admin(client, django_capture_on_commit_callbacks, pool)
    h1 = pool.institutions.get(code="H1")
    make_case(h1, "c03", patient_id="P003", admission_date=dt.date(2025, 6, 1), discharge_date=dt.date(2025, 6, 5))
    start_in_admin(client, django_capture_on_commit_callbacks, pool)
    first, second = ClearingRun.objects.order_by("id")

    page = client.get(reverse("admin:settlement_clearingrun_compare", args=[second.pk]))

    html = page.content.decode()
    assert page.status_code == 200
    assert f"#{first.pk} 职工医保 2025 年度清算" in html
    assert "病例数 1→2（+1）" in html  # the why column
    assert "unchanged" not in html.split("H2")[0]
    assert client.get(reverse("admin:settlement_clearingrun_compare", args=[first.pk])).status_code == 200


def test_the_pool_page_shows_budget_against_claims_as_svg_charts(client, pool, django_capture_on_commit_callbacks):
    client.force_login(make_user("olga", "operator"))
    make_case(pool.institutions.get(code="H1"), "c00", admission_date=dt.date(2025, 1, 3), discharge_date=dt.date(2025, 1, 9))
    start_in_admin(client, django_capture_on_commit_callbacks, pool, month="1")

    response = client.get(reverse("admin:settlement_pool", args=[pool.pk, "employee", 2025]))

    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('class="drg-chart"') == 3 and "<script" not in html.split('id="content-main"')[1]
    assert "预算与基金按项目费用（累计，元）" in html and "点值（月度预付，元/点）" in html
    assert "1,050,000.00" in html or "1050000" in html  # the approved total budget
    assert client.get(reverse("admin:settlement_pool", args=[pool.pk, "nofund", 2025])).status_code == 404


def test_statements_download_from_the_run_admin(client, pool, django_capture_on_commit_callbacks):
    from openpyxl import load_workbook

    client.force_login(make_user("olga", "operator"))
    start_in_admin(client, django_capture_on_commit_callbacks, pool)
    run = ClearingRun.objects.get()
    h1 = pool.institutions.get(code="H1")

    xlsx = client.post(reverse("admin:settlement_clearingrun_changelist"), {"action": "download_xlsx", "_selected_action": [run.pk]})
    csv_response = client.get(reverse("admin:settlement_clearingrun_statement", args=[run.pk, "csv"]))
    one = client.get(reverse("admin:settlement_clearingrun_institution_statement", args=[run.pk, h1.pk, "xlsx"]))

    assert xlsx["Content-Type"].startswith("application/vnd.openxmlformats")
    workbook = load_workbook(io.BytesIO(xlsx.content))
    assert workbook.sheetnames == ["结算单", "计算参数", "此前结算"]
    text = csv_response.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("institution_code,institution_name,case_count")
    assert [row.split(",")[0] for row in text.splitlines()[1:]] == ["H1", "H2"]
    assert load_workbook(io.BytesIO(one.content)).sheetnames == ["结算单", "计算参数", "此前结算", "病例"]
