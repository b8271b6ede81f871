"""The bureau's main workflows in a real browser: drafting and approving a budget after a
confirmation, starting and finalizing a monthly run after a confirmation, maker-checker, the
auditor's read-only view and the PDF statement download."""
from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from budget.models import Budget
from settlement.models import ClearingRun
from tests.integration.admin_helpers import approved_budget, make_case, make_institution, make_user, small_region

# serialized_rollback: the role groups made by the data migration are back for each test
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def log_in(browser, username: str) -> None:
    browser.delete_all_cookies()
    browser.get(browser.base_url + "/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys("pw-" + username)
    click(browser, browser.find_element(By.CSS_SELECTOR, "input[type=submit]"))
    assert "/admin/login/" not in browser.current_url, browser.page_source[:500]


def go(browser, path: str) -> None:
    browser.get(browser.base_url + path)


def wait_for_text(browser, element_id: str, expected: str, seconds: float = 8) -> bool:
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if browser.find_element(By.ID, element_id).text == expected:
                return True
        except StaleElementReferenceException:
            pass
        time.sleep(0.2)
    return False


def click(browser, element) -> None:
    """Click and wait for the next page."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    element.click()
    WebDriverWait(browser, 15).until(expected_conditions.staleness_of(element))


def text(browser) -> str:
    return browser.find_element(By.TAG_NAME, "body").text


def test_an_operator_drafts_a_budget_and_an_approver_approves_it_after_a_confirmation(browser):
    region = small_region()
    make_user("olga", "operator")
    make_user("alan", "approver")

    log_in(browser, "olga")
    go(browser, "/admin/budget/budget/add/")
    Select(browser.find_element(By.NAME, "region")).select_by_value(str(region.pk))
    Select(browser.find_element(By.NAME, "fund")).select_by_value("employee")
    browser.find_element(By.NAME, "year").send_keys("2025")
    browser.find_element(By.NAME, "base_amount").send_keys("306650.00")
    browser.find_element(By.NAME, "growth_rate").send_keys("6")  # a percentage
    assert wait_for_text(browser, "budget-line-total", "325,049.00")  # the live lines follow the typing
    click(browser, browser.find_element(By.NAME, "_save"))
    budget = Budget.objects.get()
    assert (budget.status, budget.growth_rate, budget.total) == ("draft", Decimal("0.060000"), Decimal("325049.00"))

    log_in(browser, "alan")
    go(browser, f"/admin/budget/budget/{budget.pk}/change/")
    click(browser, browser.find_element(By.ID, "approve-budget"))
    page = text(browser)
    assert "确认批准预算" in page and "olga" in page and "325,049.00" in page
    budget.refresh_from_db()
    assert budget.status == "draft"  # nothing happens before the confirmation
    click(browser, browser.find_element(By.ID, "confirm-approve"))
    assert "已批准" in text(browser)
    budget.refresh_from_db()
    assert (budget.status, budget.approved_by.username) == ("approved", "alan")


def test_an_operator_starts_a_monthly_run_and_an_approver_finalizes_it_after_a_confirmation(browser, downloads):
    region = small_region()
    institution = make_institution(region)
    make_case(institution, "c01")
    make_case(institution, "c02", discharge_date=dt.date(2025, 3, 20), admission_date=dt.date(2025, 3, 12))
    approved_budget(region)
    make_user("olga", "operator")
    make_user("alan", "approver")

    log_in(browser, "olga")
    go(browser, f"/admin/settlement/clearingrun/add/?region={region.pk}&fund=employee&year=2025")
    Select(browser.find_element(By.NAME, "month")).select_by_value("3")
    click(browser, browser.find_element(By.ID, "start-run"))
    run = ClearingRun.objects.get()
    for _ in range(50):  # queued on Celery (eager here): the page follows the run
        run.refresh_from_db()
        if run.status == "draft":
            break
        time.sleep(0.2)
    assert (run.kind, run.month, run.status, run.case_count) == ("monthly", 3, "draft", 2)
    go(browser, f"/admin/settlement/clearingrun/{run.pk}/change/")
    assert not browser.find_elements(By.ID, "finalize-run")  # the operator cannot finalize

    log_in(browser, "alan")
    go(browser, f"/admin/settlement/clearingrun/{run.pk}/change/")
    click(browser, browser.find_element(By.ID, "finalize-run"))
    page = text(browser)
    assert "确认定稿" in page and "olga" in page and run.fingerprint in page
    run.refresh_from_db()
    assert run.status == "draft"
    click(browser, browser.find_element(By.ID, "confirm-finalize"))
    assert "已定稿" in text(browser)
    run.refresh_from_db()
    assert (run.status, run.finalized_by.username) == ("finalized", "alan")

    # the institution's printable statement downloads as a PDF
    go(browser, f"/admin/settlement/clearingrun/{run.pk}/change/")
    browser.find_element(By.LINK_TEXT, "PDF").click()
    pdf = None
    for _ in range(50):
        found = [p for p in downloads.glob("*.pdf") if p.stat().st_size > 0]
        if found:
            pdf = found[0]
            break
        time.sleep(0.2)
    assert pdf is not None and pdf.read_bytes()[:5] == b"%PDF-"
    assert pdf.name == f"statement_{region.code}_employee_2025-03_run{run.pk}_{institution.code}.pdf"


def test_an_operator_cannot_approve_its_own_draft(browser):
    region = small_region()
    both = make_user("dora", "operator")
    both.groups.add(Group.objects.get(name="approver"))
    budget = Budget.objects.create(
        region=region, fund="employee", year=2025, base_amount=Decimal("1000.00"), growth_rate=Decimal("0.05"),
        total=Decimal("1050.00"), reserve=Decimal("52.50"), outpatient=Decimal("0"), inpatient=Decimal("997.50"),
        primary_care_earmark=Decimal("0"), drafted_by=both,
    )

    log_in(browser, "dora")
    go(browser, f"/admin/budget/budget/{budget.pk}/change/")

    assert "须由另一位审核人批准" in text(browser)
    assert not browser.find_elements(By.ID, "approve-budget")
    go(browser, f"/admin/budget/budget/{budget.pk}/approve/")
    assert "你起草了此预算" in text(browser)  # the confirmation page says so, and approving is refused:
    click(browser, browser.find_element(By.ID, "confirm-approve"))
    assert "经办与审核须为不同人员" in text(browser)
    budget.refresh_from_db()
    assert budget.status == "draft"


def test_an_auditor_sees_everything_and_changes_nothing(browser):
    region = small_region()
    approved_budget(region)
    make_user("audrey", "auditor")

    log_in(browser, "audrey")
    go(browser, "/admin/budget/budget/")
    assert "区域总额预算" in text(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, "a.addlink")  # no "add"
    assert not browser.find_elements(By.NAME, "action")  # no actions to run
    budget = Budget.objects.get()
    go(browser, f"/admin/budget/budget/{budget.pk}/change/")
    assert not browser.find_elements(By.NAME, "_save")
    assert not browser.find_elements(By.ID, "approve-budget")
    go(browser, "/admin/budget/budget/add/")
    assert "403" in browser.title or "禁止" in text(browser) or "Forbidden" in browser.page_source
    go(browser, "/admin/settlement/clearingrun/add/")
    assert not browser.find_elements(By.ID, "start-run")
