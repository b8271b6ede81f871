"""Fiscal incentives end to end (SETTLEMENT.md §7): the worked example's incentives.csv, the default
rules, maker-checker, draft replacement, caps and the fiscal budget, selectors, exports, admin."""
from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from openpyxl import load_workbook

from common.models import ReviewStatus
from common.users import system_user
from drg.models import Case, Institution, Region
from incentives.choices import PayoutStatus
from incentives.domain.defaults import YUHUAN_2024
from incentives.exports import payout_csv_text, payout_xlsx_bytes
from incentives.models import (
    ChronicEnrollment,
    HospiceService,
    IncentiveBudget,
    IncentiveRule,
    Payout,
    PayoutLine,
    Screening,
    TcmWorkload,
)
from incentives.selectors import payout_line_sources, payout_lines_for_institution
from incentives.services import payout_approve, payout_mark_paid, payouts_compute

pytestmark = pytest.mark.django_db
D = Decimal


# --- arranging data ---------------------------------------------------------------------------

@pytest.fixture
def worked_region(worked_bundle) -> Region:
    call_command("load_bundle", str(worked_bundle), stdout=io.StringIO())
    return Region.objects.get(code="331083")


def make_user(username: str, *perms: str):
    user = get_user_model().objects.create_user(username=username, password="x" * 12)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return get_user_model().objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def approver():
    return make_user("approver", "incentives.approve_payout", "incentives.pay_payout")


@pytest.fixture
def small_region() -> Region:
    region = Region.objects.create(code="999001", name="test")
    for code, group, public in (("A1", "GA", True), ("A2", "GA", True), ("B1", "", True), ("Z9", "", False)):
        Institution.objects.create(region=region, code=code, name=code, level=2, category="general", is_public=public, group_code=group)
    return region


def inst(region: Region, code: str) -> Institution:
    return Institution.objects.get(region=region, code=code)


def workload(region, code, month, prescriptions, status=ReviewStatus.APPROVED):
    return TcmWorkload.objects.create(institution=inst(region, code), month=month, prescriptions=prescriptions, status=status)


# --- the worked example (SETTLEMENT.md §8) ------------------------------------------------------

def test_the_worked_example_gives_the_expected_incentives_csv_byte_for_byte(worked_region, worked_expected, tmp_path):
    out = io.StringIO()
    call_command("pay_incentives", "--region", "331083", "--year", "2025", "--out", str(tmp_path), stdout=out)

    assert (tmp_path / "incentives.csv").read_bytes() == (worked_expected / "incentives.csv").read_bytes()
    payout = Payout.objects.get(region=worked_region, year=2025)
    assert (payout.status, payout.computed_by, payout.total) == (PayoutStatus.DRAFT, system_user(), D("145545.00"))
    assert "payout" in out.getvalue()


def test_every_worked_example_line_keeps_its_source_records(worked_region):
    payout = payouts_compute(region=worked_region, year=2025)
    tumour = payout.lines.get(payee_code="H1", rule_code="tumor_surgery")
    assert sorted(payout_line_sources(line=tumour).values_list("case_no", flat=True)) == ["c01", "c02", "c09", "c10", "c16"]
    assert tumour.detail == {"grades": {"3": 3, "4": 2}}
    group = payout.lines.get(payee_code="YH-G1", rule_code="chronic_enrollment")
    assert group.institution is None
    assert sorted(payout_line_sources(line=group).values_list("patient_id", flat=True)) == ["P302", "P303"]
    h1 = Institution.objects.get(region=worked_region, code="H1")
    assert list(payout_line_sources(line=group, institution=h1).values_list("patient_id", flat=True)) == ["P303"]
    bed_days = payout.lines.get(payee_code="H2", rule_code="tcm_bed_day")
    assert sorted(payout_line_sources(line=bed_days).values_list("case_no", flat=True)) == ["c06", "c14", "c17", "r02"]


def test_running_pay_incentives_again_replaces_the_draft_with_the_same_numbers(worked_region, tmp_path):
    call_command("pay_incentives", "--region", "331083", "--year", "2025", "--out", str(tmp_path / "a"), stdout=io.StringIO())
    first = Payout.objects.get()
    call_command("pay_incentives", "--region", "331083", "--year", "2025", "--out", str(tmp_path / "b"), stdout=io.StringIO())
    second = Payout.objects.get()
    assert second.pk != first.pk and Payout.objects.count() == 1
    assert (tmp_path / "a" / "incentives.csv").read_bytes() == (tmp_path / "b" / "incentives.csv").read_bytes()
    assert Payout.history.filter(id=first.pk, history_type="-").exists()  # the replaced draft is on record


def test_pay_incentives_refuses_an_unknown_region(tmp_path):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="unknown region"):
        call_command("pay_incentives", "--region", "000000", "--year", "2025", "--out", str(tmp_path))


# --- rules as data -----------------------------------------------------------------------------

def test_the_migration_installs_the_default_yuhuan_2024_rules():
    stored = {rule.code: rule.to_spec() for rule in IncentiveRule.objects.all()}
    assert stored == {rule.code: rule for rule in YUHUAN_2024}


def test_an_edited_rule_keeps_its_history_and_a_new_amount_applies(small_region):
    workload(small_region, "A1", date(2025, 1, 1), 10)
    rule = IncentiveRule.objects.get(code="tcm_prescription")
    rule.amount = D("6")
    rule.save()
    assert list(rule.history.order_by("history_date").values_list("amount", flat=True))[-1] == D("6.00")
    payout = payouts_compute(region=small_region, year=2025)
    assert payout.lines.get().amount == D("60.00")
    assert [r["amount"] for r in payout.rules_snapshot if r["code"] == "tcm_prescription"] == ["6.00"]


def test_a_rule_overlapping_another_of_the_same_basis_is_refused():
    rule = IncentiveRule(code="tcm_prescription_2026", name="x", basis="tcm_prescription", amount=D("6"), valid_from=date(2026, 1, 1))
    with pytest.raises(ValidationError) as error:
        rule.full_clean()
    assert "valid_from" in error.value.message_dict
    IncentiveRule.objects.filter(code="tcm_prescription").update(valid_to=date(2026, 1, 1))
    rule.full_clean()  # the old rule is closed: the successor is fine


def test_a_malformed_grade_table_is_refused():
    rule = IncentiveRule.objects.get(code="tumor_surgery")
    rule.grade_amounts = {"3": 1000.5}
    with pytest.raises(ValidationError) as error:
        rule.full_clean()
    assert "grade_amounts" in error.value.message_dict


# --- what counts -------------------------------------------------------------------------------

def test_only_approved_input_records_count(small_region):
    workload(small_region, "A1", date(2025, 1, 1), 10)
    workload(small_region, "A1", date(2025, 2, 1), 20, status=ReviewStatus.SUBMITTED)
    workload(small_region, "A1", date(2025, 3, 1), 30, status=ReviewStatus.REJECTED)
    a1 = inst(small_region, "A1")
    Screening.objects.create(institution=a1, patient_id="P1", screening_date=date(2025, 1, 1), fee=D("100"), high_risk=True, status=ReviewStatus.SUBMITTED)
    ChronicEnrollment.objects.create(institution=a1, patient_id="P1", disease="copd", enrolled_on=date(2024, 6, 1), status=ReviewStatus.REJECTED)
    ChronicEnrollment.objects.create(institution=a1, patient_id="P1", disease="diabetes", enrolled_on=date(2025, 6, 1), status=ReviewStatus.APPROVED)
    payout = payouts_compute(region=small_region, year=2025)
    assert sorted(payout.lines.values_list("payee_code", "rule_code", "count")) == [("A1", "tcm_prescription", 10), ("GA", "chronic_enrollment", 1)]


def test_records_of_another_region_do_not_count(small_region):
    other = Region.objects.create(code="999002", name="other")
    x = Institution.objects.create(region=other, code="A1", name="A1", level=2, category="general")
    TcmWorkload.objects.create(institution=x, month=date(2025, 1, 1), prescriptions=99, status=ReviewStatus.APPROVED)
    ChronicEnrollment.objects.create(institution=x, patient_id="P1", disease="copd", enrolled_on=date(2024, 1, 1), status=ReviewStatus.APPROVED)
    ChronicEnrollment.objects.create(institution=inst(small_region, "A1"), patient_id="P1", disease="copd", enrolled_on=date(2025, 1, 1), status=ReviewStatus.APPROVED)
    payout = payouts_compute(region=small_region, year=2025)
    assert list(payout.lines.values_list("payee_code", "rule_code", "count")) == [("GA", "chronic_enrollment", 1)]


# --- caps and the fiscal budget ----------------------------------------------------------------

def test_a_cap_and_a_fiscal_budget_are_applied_in_that_order_and_conserve_cents(small_region):
    IncentiveRule.objects.filter(code="tcm_prescription").update(yearly_cap=D("1000.00"))
    workload(small_region, "A1", date(2025, 1, 1), 1000)  # 5000.00 -> capped 1000.00
    workload(small_region, "A2", date(2025, 1, 1), 100)  # 500.00
    workload(small_region, "B1", date(2025, 1, 1), 100)  # 500.00
    workload(small_region, "Z9", date(2025, 1, 1), 100)  # private: public-only rule
    IncentiveBudget.objects.create(region=small_region, year=2025, amount=D("1000.01"))

    payout = payouts_compute(region=small_region, year=2025)

    lines = {line.payee_code: line for line in payout.lines.all()}
    assert set(lines) == {"A1", "A2", "B1"}
    assert (lines["A1"].gross_amount, lines["A1"].capped_amount) == (D("5000.00"), D("1000.00"))
    # 1000.01 × (1000, 500, 500) / 2000 = 500.005, 250.0025, 250.0025 -> 500.00, 250.00, 250.00 + 1 cent to A1
    assert [lines[c].amount for c in ("A1", "A2", "B1")] == [D("500.01"), D("250.00"), D("250.00")]
    assert (payout.gross_total, payout.capped_total, payout.total, payout.budget_amount, payout.prorated) == (
        D("6000.00"), D("2000.00"), D("1000.01"), D("1000.01"), True,
    )
    assert sum(line.amount for line in lines.values()) == payout.total


# --- maker-checker and the payout's life ----------------------------------------------------------

def test_a_payout_is_approved_by_another_user_then_paid(small_region, approver):
    workload(small_region, "A1", date(2025, 1, 1), 10)
    payout = payouts_compute(region=small_region, year=2025)

    payout = payout_approve(payout=payout, user=approver)
    payout = payout_mark_paid(payout=payout, user=approver)

    assert (payout.status, payout.approved_by, payout.paid_by) == (PayoutStatus.PAID, approver, approver)
    assert payout.paid_at is not None
    assert [h.history_user for h in payout.history.order_by("history_date")] == [system_user(), approver, approver]


def test_the_user_who_computed_a_payout_cannot_approve_it(small_region, approver):
    payout = payouts_compute(region=small_region, year=2025, user=approver)
    with pytest.raises(PermissionDenied, match="maker-checker"):
        payout_approve(payout=payout, user=approver)


def test_approving_needs_the_permission_and_paying_needs_approval(small_region, approver):
    payout = payouts_compute(region=small_region, year=2025)
    with pytest.raises(PermissionDenied):
        payout_approve(payout=payout, user=make_user("clerk"))
    with pytest.raises(ValidationError, match="approved before"):
        payout_mark_paid(payout=payout, user=approver)
    payout_approve(payout=payout, user=approver)
    with pytest.raises(ValidationError, match="not a draft"):
        payout_approve(payout=payout, user=make_user("other", "incentives.approve_payout"))


def test_an_approved_payout_cannot_be_recomputed(small_region, approver):
    payout_approve(payout=payouts_compute(region=small_region, year=2025), user=approver)
    with pytest.raises(ValidationError, match="already approved"):
        payouts_compute(region=small_region, year=2025)


# --- selectors -----------------------------------------------------------------------------------

def test_an_institution_sees_its_own_and_its_groups_lines_of_approved_payouts(small_region, approver):
    a1, a2 = inst(small_region, "A1"), inst(small_region, "A2")
    workload(small_region, "A1", date(2025, 1, 1), 10)
    workload(small_region, "A2", date(2025, 1, 1), 20)
    ChronicEnrollment.objects.create(institution=a2, patient_id="P1", disease="copd", enrolled_on=date(2025, 1, 1), status=ReviewStatus.APPROVED)
    payout = payouts_compute(region=small_region, year=2025)

    assert list(payout_lines_for_institution(institution=a1)) == []  # a draft is not shown
    assert len(payout_lines_for_institution(institution=a1, include_drafts=True)) == 2
    payout_approve(payout=payout, user=approver)

    seen = [(line.payee_code, line.rule_code) for line in payout_lines_for_institution(institution=a1, year=2025)]
    assert seen == [("A1", "tcm_prescription"), ("GA", "chronic_enrollment")]
    assert [(l.payee_code, l.rule_code) for l in payout_lines_for_institution(institution=a1, include_group=False)] == [("A1", "tcm_prescription")]
    assert list(payout_lines_for_institution(institution=a1, year=2024)) == []


def test_computing_takes_the_same_number_of_queries_for_ten_or_a_thousand_records(small_region):
    a1 = inst(small_region, "A1")

    def queries_for(n: int) -> int:
        Screening.objects.all().delete()
        Screening.objects.bulk_create(
            Screening(institution=a1, patient_id=f"P{i}", screening_date=date(2025, 1, 1 + i % 28), fee=D("10.00"), high_risk=True, status=ReviewStatus.APPROVED)
            for i in range(n)
        )
        with CaptureQueriesContext(connection) as ctx:
            payouts_compute(region=small_region, year=2025)
        return len(ctx.captured_queries)

    payouts_compute(region=small_region, year=2025)  # the system user and a draft exist from here on
    assert queries_for(10) == queries_for(1000)
    line = PayoutLine.objects.get(rule_code="screening_waiver")
    assert (line.count, line.amount, len(line.source_ids)) == (1000, D("3000.00"), 1000)


# --- exports -------------------------------------------------------------------------------------

def test_the_excel_export_has_the_lines_totals_and_a_summary(worked_region):
    payout = payouts_compute(region=worked_region, year=2025)
    workbook = load_workbook(io.BytesIO(payout_xlsx_bytes(payout=payout)))
    lines = workbook["lines 明细"]
    rows = list(lines.iter_rows(min_row=2, values_only=True))
    assert len(rows) == 12  # 11 lines and the totals row
    assert rows[0][:5] == ("H1", "玉环市人民医院", "hospice_bed", "新增安宁疗护床位", 4)
    assert rows[0][10] == 120000
    assert rows[-1][0] == "合计 total" and rows[-1][10] == "=SUM(K2:K12)"
    assert lines["K2"].number_format == "#,##0.00" and lines.freeze_panes == "A2"
    summary = dict(workbook["summary 汇总"].iter_rows(values_only=True))
    assert summary["total payable 实付合计"] == 145545


def test_the_csv_export_writes_two_decimals_and_crlf(small_region):
    workload(small_region, "A1", date(2025, 1, 1), 3)
    text = payout_csv_text(payout=payouts_compute(region=small_region, year=2025))
    assert text == "payee_code,rule,count,amount\r\nA1,tcm_prescription,3,15.00\r\n"


# --- admin ---------------------------------------------------------------------------------------

def test_the_admin_approves_downloads_and_refuses_the_maker(client, small_region):
    User = get_user_model()
    maker = User.objects.create_superuser("maker", password="x" * 12)
    checker = User.objects.create_superuser("checker", password="x" * 12)
    workload(small_region, "A1", date(2025, 1, 1), 3)
    client.force_login(maker)
    response = client.post("/admin/incentives/payout/compute/", {"region": small_region.pk, "year": 2025})
    assert response.status_code == 302
    payout = Payout.objects.get()
    assert client.get(f"/admin/incentives/payout/{payout.pk}/change/").status_code == 200
    assert client.get("/admin/incentives/payout/").status_code == 200

    client.post("/admin/incentives/payout/", {"action": "approve_selected", "_selected_action": [payout.pk], "confirmed": "yes"})
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.DRAFT  # the maker may not approve

    client.force_login(checker)
    page = client.get(f"/admin/incentives/payout/{payout.pk}/change/").content.decode()
    asked = client.post("/admin/incentives/payout/", {"action": "approve_selected", "_selected_action": [payout.pk]})
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.DRAFT  # the confirmation page changes nothing
    html = asked.content.decode()
    assert "确认审核通过奖补发放" in html and str(payout.computed_by) in html and f"{payout.total:,.2f}" in html
    assert 'class="rules-snapshot"' in page and "tcm_prescription" in page and '"rate":' not in page  # the rules as a table, not JSON
    client.post("/admin/incentives/payout/", {"action": "approve_selected", "_selected_action": [payout.pk], "confirmed": "yes"})
    payout.refresh_from_db()
    assert (payout.status, payout.approved_by) == (PayoutStatus.APPROVED, checker)

    response = client.post("/admin/incentives/payout/", {"action": "download_csv", "_selected_action": [payout.pk]})
    assert response.content == b"payee_code,rule,count,amount\r\nA1,tcm_prescription,3,15.00\r\n"
    response = client.get(f"/admin/incentives/payout/{payout.pk}/download/xlsx/")
    assert response.status_code == 200 and response.content[:2] == b"PK"


@pytest.mark.parametrize("url", [
    "/admin/incentives/incentiverule/", "/admin/incentives/incentiverule/1/change/", "/admin/incentives/incentivebudget/",
    "/admin/incentives/chronicenrollment/?enrolled_on__year=2025&q=P1", "/admin/incentives/tcmworkload/",
    "/admin/incentives/hospiceservice/", "/admin/incentives/screening/?high_risk__exact=1", "/admin/incentives/payout/compute/",
])
def test_the_incentive_admin_screens_open(client, small_region, url):
    client.force_login(get_user_model().objects.create_superuser("admin", password="x" * 12))
    workload(small_region, "A1", date(2025, 1, 1), 3)
    assert client.get(url).status_code == 200
