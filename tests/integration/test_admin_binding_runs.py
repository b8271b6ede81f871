"""The bureau's screens and files show the binding run (SETTLEMENT.md §6): a superseded run says so and
links its successor, the binding run its predecessor; statements show the earlier settlements; the
start form refuses a month that may not run with a form error."""
from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from common.reviews import review_approve
from drg.models import Institution
from drg.services import correction_request_submit
from settlement import services
from settlement.choices import RunStatus
from settlement.models import ClearingRun
from tests.integration.admin_helpers import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def rerun_year(employee_year):
    """The worked example's employee year, then a correction of c02 and a finalized annual re-run."""
    region, monthly, first = employee_year
    operator, approver = make_user("olga", "operator"), make_user("alan", "approver")
    h1 = Institution.objects.get(region=region, code="H1")
    review_approve(record=correction_request_submit(institution=h1, case_no="c02", proposed={"total_cost": "36000.00"}, reason="audit"),
                   user=approver)
    second = services.clearing_run_finalize(
        run=services.clearing_run_start(region=region, fund="employee", year=2025, user=operator), user=approver)
    first.refresh_from_db()
    return region, monthly, first, second, operator, approver


def test_a_superseded_run_page_says_so_and_links_its_successor(client, rerun_year):
    region, _, first, second, operator, _ = rerun_year
    client.force_login(operator)

    old = client.get(reverse("admin:settlement_clearingrun_change", args=[first.pk])).content.decode()
    new = client.get(reverse("admin:settlement_clearingrun_change", args=[second.pk])).content.decode()
    listing = client.get(reverse("admin:settlement_clearingrun_changelist")).content.decode()

    successor_link = reverse("admin:settlement_clearingrun_change", args=[second.pk])
    assert 'id="run-superseded"' in old and f'href="{successor_link}">清算 #{second.pk}</a>' in old
    assert "已被取代，非有效结算" in old
    assert f"它取代了 <a href=\"{reverse('admin:settlement_clearingrun_change', args=[first.pk])}\">清算 #{first.pk}</a>" in new
    assert 'id="earlier-settlements"' in new and f"#{first.pk}</a>" in new.split('id="earlier-settlements"')[1]
    assert f'→ <a href="{successor_link}">#{second.pk}</a>' in listing


def test_the_pool_page_shows_the_binding_annual_run(client, rerun_year):
    region, _, first, second, operator, _ = rerun_year
    client.force_login(operator)

    html = client.get(reverse("admin:settlement_pool", args=[region.pk, "employee", 2025])).content.decode()

    annual_block = html.split("<h2>年度清算 <a")[1].split("</h2>")[0]
    assert f"#{second.pk}</a>" in annual_block and "(有效)" in annual_block
    assert f"#{first.pk}</a>" not in annual_block
    assert f"→ <a href=\"{reverse('admin:settlement_clearingrun_change', args=[second.pk])}\">#{second.pk}</a>" in html  # recent runs


def test_a_superseded_run_cannot_be_deleted(client, rerun_year, admin_user):
    _, _, first, _, _, _ = rerun_year
    client.force_login(admin_user)

    assert client.post(reverse("admin:settlement_clearingrun_delete", args=[first.pk]), {"post": "yes"}).status_code == 403
    assert ClearingRun.objects.filter(pk=first.pk, status=RunStatus.SUPERSEDED).exists()


def test_statements_show_the_earlier_settlements_and_mark_a_superseded_run(client, rerun_year):
    region, _, first, second, operator, _ = rerun_year
    client.force_login(operator)
    h1 = Institution.objects.get(region=region, code="H1")

    new_book = load_workbook(io.BytesIO(client.get(reverse("admin:settlement_clearingrun_institution_statement", args=[second.pk, h1.pk, "xlsx"])).content))
    old_book = load_workbook(io.BytesIO(client.get(reverse("admin:settlement_clearingrun_statement", args=[first.pk, "xlsx"])).content))
    csv_text = client.get(reverse("admin:settlement_clearingrun_statement", args=[second.pk, "csv"])).content.decode("utf-8-sig")

    sheet = new_book["结算单"]
    header = [c.value for c in sheet[3]]
    values = dict(zip(header, [c.value for c in sheet[4]]))
    first_h1 = first.lines.get(institution=h1)
    assert Decimal(str(values["此前年度清算已结算"])) == first_h1.balance == Decimal("10250.83")
    earlier = new_book["此前结算"]
    rows = [[c.value for c in row] for row in earlier.iter_rows(min_row=4)]
    assert rows[0][:3] == ["H1", h1.name, f"#{first.pk}"] and Decimal(str(rows[0][-1])) == Decimal("10250.83")
    assert rows[0][5] == f"已被清算 #{second.pk} 取代，非有效结算"
    assert "有效结算" in sheet["A2"].value
    assert f"已被清算 #{second.pk} 取代，非有效结算" in old_book["结算单"]["A2"].value
    header_csv, *lines = csv_text.splitlines()
    assert "settled_before" in header_csv.split(",")
    h1_csv = dict(zip(header_csv.split(","), next(line for line in lines if line.startswith("H1,")).split(",")))
    assert h1_csv["settled_before"] == "10250.83"
    assert Decimal(h1_csv["balance"]) == second.lines.get(institution=h1).balance


def test_the_start_form_refuses_a_month_that_may_not_run_with_a_form_error(client, worked_bundle, django_capture_on_commit_callbacks):
    from django.core.management import call_command

    call_command("load_bundle", str(worked_bundle), stdout=io.StringIO())
    region = ClearingRun._meta.get_field("region").related_model.objects.get(code="331083")
    client.force_login(make_user("olga", "operator"))

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:settlement_clearingrun_add"), {"region": region.pk, "fund": "employee", "year": 2025, "month": "4"})

    assert response.status_code == 200
    errors = " ".join(str(e) for e in response.context["form"].non_field_errors())
    assert "331083/employee/2025 不能发起 4 月的月度预付" in errors and "只能发起1 月" in errors
    assert not ClearingRun.objects.exists()
