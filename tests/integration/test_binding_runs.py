"""One binding run per pool and period, and re-runs that pay only the difference (SETTLEMENT.md §6):
a finalized re-run supersedes the run it replaces (linked both ways); a monthly prepayment is net of
every earlier finalized prepayment of the year, an annual balance net of the prepayments and of
every earlier finalized annual balance; monthly runs follow each other; a draft computed before
another run of its pool-year was finalized cannot be finalized."""
from __future__ import annotations

import io
from decimal import Decimal as D

import pytest
from django.utils import translation
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from common.reviews import review_approve
from common.users import system_user
from drg.models import Institution, Region
from drg.services import correction_request_submit
from settlement import selectors, services
from settlement.choices import RunStatus
from settlement.models import ClearingRun, InstitutionLine
from tests.integration.admin_helpers import make_user

pytestmark = pytest.mark.django_db

YEAR = 2025


@pytest.fixture
def people():
    return make_user("olga", "operator"), make_user("alan", "approver")


def lines_of(run: ClearingRun) -> dict[str, InstitutionLine]:
    return {line.institution.code: line for line in run.lines.select_related("institution")}


def correct_case(region: Region, code: str, case_no: str, approver, **proposed) -> None:
    """A hospital asks for a correction of a case of a finalized period; the bureau approves it."""
    institution = Institution.objects.get(region=region, code=code)
    request = correction_request_submit(institution=institution, case_no=case_no, proposed=proposed, reason="audit finding")
    review_approve(record=request, user=approver)


def rerun(region, fund, people, month=None) -> ClearingRun:
    operator, approver = people
    draft = services.clearing_run_start(region=region, fund=fund, year=YEAR, month=month, user=operator)
    assert draft.status == RunStatus.DRAFT, draft.error
    return services.clearing_run_finalize(run=draft, user=approver)


def all_prepayments(region, fund) -> dict[str, D]:
    """Σ prepay per institution over every finalized monthly run of the year, superseded ones included."""
    totals: dict[str, D] = {}
    for line in InstitutionLine.objects.filter(
        run__region=region, run__fund=fund, run__year=YEAR, run__kind="monthly", run__status__in=["finalized", "superseded"]
    ).select_related("institution"):
        totals[line.institution.code] = totals.get(line.institution.code, D("0")) + line.prepay
    return totals


def all_balances(region, fund) -> dict[str, D]:
    totals: dict[str, D] = {}
    for line in InstitutionLine.objects.filter(
        run__region=region, run__fund=fund, run__year=YEAR, run__kind="annual", run__status__in=["finalized", "superseded"]
    ).select_related("institution"):
        totals[line.institution.code] = totals.get(line.institution.code, D("0")) + line.balance
    return totals


# --- the annual re-run -----------------------------------------------------------------------------

def test_an_annual_rerun_after_a_correction_pays_exactly_the_difference(employee_year, people):
    region, monthly, first = employee_year
    before = lines_of(first)
    assert first.status == RunStatus.FINALIZED and {c: l.settled_before for c, l in before.items()} == dict.fromkeys(before, D("0.00"))

    # c02 (H1, January, high outlier) turns out to have cost 36000.00, not 30000.00
    correct_case(region, "H1", "c02", people[1], total_cost="36000.00")
    second = rerun(region, "employee", people)

    first.refresh_from_db()
    assert first.status == RunStatus.SUPERSEDED and first.successor == second and second.supersedes == first
    assert selectors.binding_run(region_id=region.pk, fund="employee", year=YEAR) == second
    after = lines_of(second)
    assert after["H1"].points != before["H1"].points  # the correction changed the clearing
    for code, line in after.items():
        old = before[code]
        assert line.settled_before == old.balance
        assert line.prepaid == old.prepaid  # no monthly run after the annual one
        # the new balance is exactly the difference of what is due
        assert line.balance == (line.fund_payment - line.quality_deduction) - (old.fund_payment - old.quality_deduction)
    assert any(line.balance != 0 for line in after.values())
    # Σ of everything paid to each hospital for the year = the binding run's pay − quality deduction
    prepaid, balances = all_prepayments(region, "employee"), all_balances(region, "employee")
    for code, line in after.items():
        assert prepaid[code] + balances[code] == line.fund_payment - line.quality_deduction
    assert sum(line.fund_payment for line in after.values()) == D(second.totals["distributed"])

    # re-running unchanged inputs settles nothing more
    third = rerun(region, "employee", people)
    assert [line.balance for line in lines_of(third).values()] == [D("0.00")] * 3
    assert {c: l.fund_payment for c, l in lines_of(third).items()} == {c: l.fund_payment for c, l in after.items()}
    second.refresh_from_db()
    assert second.status == RunStatus.SUPERSEDED and second.successor == third and third.supersedes == second
    assert ClearingRun.objects.filter(region=region, fund="employee", kind="annual", status=RunStatus.FINALIZED).get() == third


def test_the_spec_figures_of_the_first_annual_run_are_unchanged_by_settled_before(employee_year):
    _, _, annual = employee_year
    h1 = lines_of(annual)["H1"]
    assert (h1.fund_payment, h1.prepaid, h1.quality_deduction, h1.settled_before, h1.balance) == (
        D("196297.71"), D("185266.81"), D("780.07"), D("0.00"), D("10250.83"))
    assert annual.parameters["settled_before"] == {} and annual.parameters["settled_runs"] == sorted(
        ClearingRun.objects.filter(kind="monthly", fund="employee").values_list("pk", flat=True))


# --- the monthly re-run ----------------------------------------------------------------------------

@pytest.fixture
def region(worked_bundle):
    call_command("load_bundle", str(worked_bundle), stdout=open("/dev/null", "w"))
    return Region.objects.get(code="331083")


def test_a_monthly_rerun_prepays_exactly_the_difference_and_the_next_month_counts_what_was_paid(region, people):
    runs = {month: rerun(region, "employee", people, month) for month in (1, 2, 3)}
    march = lines_of(runs[3])

    correct_case(region, "H2", "c05", people[1], total_cost="66000.00")  # March, H2
    march_again = rerun(region, "employee", people, 3)

    runs[3].refresh_from_db()
    assert runs[3].status == RunStatus.SUPERSEDED and runs[3].successor == march_again
    again = lines_of(march_again)
    assert again["H2"].prepaid_to_date != march["H2"].prepaid_to_date
    for code, line in again.items():
        # net of every earlier prepayment of the year, the superseded March run's included
        assert line.settled_before == march[code].settled_before + march[code].prepay
        assert line.prepay == line.prepaid_to_date - march[code].prepaid_to_date
    paid = all_prepayments(region, "employee")
    assert paid == {code: line.prepaid_to_date for code, line in again.items()}

    unchanged = lines_of(rerun(region, "employee", people, 3))
    assert {code: line.prepay for code, line in unchanged.items()} == dict.fromkeys(again, D("0.00"))

    april = lines_of(rerun(region, "employee", people, 4))
    paid = all_prepayments(region, "employee")
    assert paid == {code: line.prepaid_to_date for code, line in april.items()}


def test_the_annual_clearing_deducts_every_prepayment_and_withholds_from_the_binding_latest_month(region, people):
    for month in range(1, 13):
        rerun(region, "employee", people, month)
    correct_case(region, "H1", "c19", people[1], total_cost="28000.00")  # December
    december = rerun(region, "employee", people, 12)
    annual = lines_of(rerun(region, "employee", people))

    paid = all_prepayments(region, "employee")
    for code, line in annual.items():
        assert line.prepaid == paid[code]
        assert line.withheld == lines_of(december)[code].withheld
        assert paid[code] + line.balance == line.fund_payment - line.quality_deduction


# --- which periods may run -------------------------------------------------------------------------

def test_monthly_runs_follow_the_latest_finalized_month(region, people):
    operator = people[0]
    start = lambda month: services.clearing_run_start(region=region, fund="employee", year=YEAR, month=month, user=operator)

    with pytest.raises(services.ClearingPeriodRefused, match="只能发起1 月"):
        start(2)
    with translation.override("en"), pytest.raises(services.ClearingPeriodRefused, match="only Month 1 may run"):
        start(2)
    rerun(region, "employee", people, 1)
    rerun(region, "employee", people, 2)
    with translation.override("en"), pytest.raises(services.ClearingPeriodRefused, match="the latest finalized month is 2; only Month 2 or Month 3 may run"):
        start(4)
    with pytest.raises(services.ClearingPeriodRefused, match="最新已定稿月份为 2 月，只能发起2 月 或 3 月（更早月份的变化由下一次累计清算补差）"):
        start(1)
    assert start(2).status == RunStatus.DRAFT and start(3).status == RunStatus.DRAFT
    assert not ClearingRun.objects.filter(month__in=[1, 4], status=RunStatus.DRAFT).exists()  # refused runs are not recorded
    # the other fund's months are its own
    assert services.clearing_run_start(region=region, fund="resident", year=YEAR, month=1, user=operator).status == RunStatus.DRAFT


def test_no_monthly_run_after_the_finalized_annual_clearing(employee_year, people):
    region, _, annual = employee_year
    with translation.override("en"), pytest.raises(services.ClearingPeriodRefused, match=f"annual clearing of 331083/employee/2025 is finalized \\(run #{annual.pk}\\)"):
        services.clearing_run_start(region=region, fund="employee", year=YEAR, month=12, user=people[0])
    with pytest.raises(CommandError, match="的年度清算已定稿"):
        call_command("clear", region="331083", fund="employee", year=YEAR, month=12, stdout=open("/dev/null", "w"))
    assert services.clearing_run_start(region=region, fund="employee", year=YEAR, user=people[0]).status == RunStatus.DRAFT


def test_the_clear_command_names_the_months_that_may_run(region):
    with translation.override("en"), pytest.raises(CommandError, match="No monthly run of 331083/employee/2025 for month 5: no month of the year is finalized yet"):
        call_command("clear", region="331083", fund="employee", year=YEAR, month=5, stdout=open("/dev/null", "w"))


# --- stale drafts --------------------------------------------------------------------------------

def test_a_draft_computed_before_another_run_of_the_pool_year_was_finalized_cannot_be_finalized(region, people):
    operator, approver = people
    rerun(region, "employee", people, 1)
    first = services.clearing_run_start(region=region, fund="employee", year=YEAR, month=2, user=operator)
    second = services.clearing_run_start(region=region, fund="employee", year=YEAR, month=2, user=operator)
    services.clearing_run_finalize(run=second, user=approver)

    with translation.override("en"), pytest.raises(services.ClearingRunStale, match=f"Run #{first.pk} was computed before run #{second.pk}"):
        services.clearing_run_finalize(run=first, user=approver)
    first.refresh_from_db()
    assert first.status == RunStatus.DRAFT

    annual = services.clearing_run_start(region=region, fund="employee", year=YEAR, user=operator)
    rerun(region, "employee", people, 3)  # a prepayment the annual draft does not deduct
    with pytest.raises(services.ClearingRunStale, match="请重新发起清算后再定稿"):
        services.clearing_run_finalize(run=annual, user=approver)
    assert rerun(region, "employee", people).status == RunStatus.FINALIZED  # the re-run is finalized


def test_one_binding_run_per_period_is_a_database_constraint(employee_year):
    region, monthly, annual = employee_year
    for run in (annual, monthly[5]):
        with pytest.raises(IntegrityError), transaction.atomic():
            ClearingRun.objects.create(region=region, fund="employee", year=YEAR, kind=run.kind, month=run.month, status=RunStatus.FINALIZED)
    # superseded runs of the period may be many
    ClearingRun.objects.create(region=region, fund="employee", year=YEAR, kind="annual", status=RunStatus.SUPERSEDED)
    ClearingRun.objects.create(region=region, fund="employee", year=YEAR, kind="annual", status=RunStatus.SUPERSEDED)


def test_a_superseded_run_cannot_be_finalized_again(employee_year, people):
    region, _, first = employee_year
    rerun(region, "employee", people)
    first.refresh_from_db()
    with pytest.raises(Exception, match="only a draft run can be finalized"):
        services.clearing_run_finalize(run=first, user=system_user(), system=True)


def test_export_clearing_writes_the_binding_run_not_a_newer_draft(employee_year, people, worked_expected, tmp_path):
    region, _, annual = employee_year
    correct_case(region, "H1", "c02", people[1], total_cost="36000.00")
    draft = services.clearing_run_start(region=region, fund="employee", year=YEAR, user=people[0])
    assert draft.status == RunStatus.DRAFT and draft.totals != annual.totals
    out = io.StringIO()

    call_command("export_clearing", region="331083", fund="employee", year=YEAR, out=tmp_path / "annual", stdout=out)

    assert f"run {annual.pk} (binding)" in out.getvalue()
    expected = worked_expected / "employee" / "annual"
    for name in ("clearing.csv", "case_points.csv", "pool.json"):
        assert (tmp_path / "annual" / name).read_bytes() == (expected / name).read_bytes()


def test_export_clearing_writes_the_latest_draft_while_no_run_of_the_period_is_finalized(region, people, tmp_path):
    first = services.clearing_run_start(region=region, fund="resident", year=YEAR, user=people[0])
    second = services.clearing_run_start(region=region, fund="resident", year=YEAR, user=people[0])
    out = io.StringIO()

    call_command("export_clearing", region="331083", fund="resident", year=YEAR, out=tmp_path, stdout=out)

    assert f"run {second.pk} (draft, not final" in out.getvalue() and first.pk != second.pk
