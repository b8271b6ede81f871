"""Clearing runs as records (SETTLEMENT.md §6): maker-checker, one active run per pool, idempotent
execution, nothing half written, reproducible numbers and fingerprint."""
from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.db import IntegrityError, transaction

from drg.models import Case, Region
from settlement import services
from settlement.choices import RunStatus
from settlement.models import CaseResultBlock, ClearingRun, InstitutionLine
from tests.results_helpers import result_count, result_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def region(worked_bundle):
    call_command("load_bundle", str(worked_bundle), stdout=open("/dev/null", "w"))
    return Region.objects.get(code="331083")


@pytest.fixture
def users():
    model = get_user_model()
    return model.objects.create_user("operator1"), model.objects.create_user("approver1")


def test_a_run_records_its_inputs_results_and_timings(region, users):
    run = services.clearing_run_start(region=region, fund="employee", year=2025, user=users[0])
    assert run.status == RunStatus.DRAFT and run.started_by == users[0]
    assert run.case_count == 20 and result_count(run=run) == 20
    assert InstitutionLine.objects.filter(run=run).count() == 3
    assert run.totals["distributed"] == "303459.57" and run.totals["point_value"] == "115.6390"
    assert len(run.fingerprint) == 64
    assert {"load", "value", "clear", "store", "total"} <= set(run.timings)
    assert {k: D(v) for k, v in run.parameters["penalties"].items()} == {"H1": D("80")}
    c09 = result_of(run, "c09")
    assert (c09["category"], c09["readmission_halved"], c09["points_before_readmission"], c09["points"]) == ("normal", True, D("88.0000"), D("44.0000"))
    lines = {line.institution.code: line for line in run.lines.select_related("institution")}
    assert sum(line.fund_payment for line in lines.values()) == D("303459.57")


def test_rerunning_unchanged_inputs_gives_identical_numbers_and_fingerprint(region, users):
    first = services.clearing_run_start(region=region, fund="resident", year=2025, user=users[0])
    second = services.clearing_run_start(region=region, fund="resident", year=2025, user=users[0])
    assert first.pk != second.pk and first.fingerprint == second.fingerprint and first.totals == second.totals
    as_rows = lambda run: list(run.lines.order_by("institution__code").values_list("institution__code", "points", "fund_payment", "balance"))
    assert as_rows(first) == as_rows(second)


def test_a_changed_case_changes_the_fingerprint(region, users):
    first = services.clearing_run_start(region=region, fund="resident", year=2025, user=users[0])
    Case.objects.filter(case_no="r01").update(total_cost=D("7100.00"))
    second = services.clearing_run_start(region=region, fund="resident", year=2025, user=users[0])
    assert first.fingerprint != second.fingerprint


def test_finalize_needs_an_approver_other_than_the_starter(region, users):
    operator, approver = users
    run = services.clearing_run_start(region=region, fund="employee", year=2025, month=1, user=operator)
    with pytest.raises(PermissionDenied):
        services.clearing_run_finalize(run=run, user=operator)
    run = services.clearing_run_finalize(run=run, user=approver)
    assert run.status == RunStatus.FINALIZED and run.finalized_by == approver
    with pytest.raises(ValidationError):
        services.clearing_run_finalize(run=run, user=approver)


def test_only_one_queued_or_running_run_per_pool_is_allowed_by_the_database(region, users):
    ClearingRun.objects.create(region=region, fund="employee", year=2025, kind="annual", status=RunStatus.RUNNING)
    with pytest.raises(IntegrityError), transaction.atomic():
        ClearingRun.objects.create(region=region, fund="employee", year=2025, kind="monthly", month=1, status=RunStatus.QUEUED)
    with pytest.raises(services.ClearingRunConflict):
        services.clearing_run_start(region=region, fund="employee", year=2025, user=users[0])
    # another pool is not blocked
    assert services.clearing_run_start(region=region, fund="resident", year=2025, user=users[0]).status == RunStatus.DRAFT


def test_a_queued_run_whose_message_was_lost_does_not_block_its_pool_for_ever(region, users, settings):
    import datetime as dt

    from django.utils import timezone

    lost = ClearingRun.objects.create(region=region, fund="employee", year=2025, kind="annual", status=RunStatus.QUEUED)
    with pytest.raises(services.ClearingRunConflict):  # recently queued: it may still be waiting for a worker
        services.clearing_run_start(region=region, fund="employee", year=2025, user=users[0])
    ClearingRun.objects.filter(pk=lost.pk).update(created_at=timezone.now() - dt.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 120))

    again = services.clearing_run_start(region=region, fund="employee", year=2025, user=users[0])

    lost.refresh_from_db()
    assert lost.status == RunStatus.FAILED and lost.error.startswith("abandoned")
    assert again.status == RunStatus.DRAFT
    services.clearing_run_execute(run_id=lost.pk)  # the lost message turning up after all changes nothing
    lost.refresh_from_db()
    assert lost.status == RunStatus.FAILED


def test_executing_a_run_twice_writes_its_results_once(region, users, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = services.clearing_run_start(region=region, fund="employee", year=2025, user=users[0], run_async=True)
    assert run.status == RunStatus.QUEUED
    services.clearing_run_execute(run_id=run.pk)
    services.clearing_run_execute(run_id=run.pk)  # a retried / duplicated task
    run.refresh_from_db()
    assert run.status == RunStatus.DRAFT
    assert result_count(run=run) == 20 and run.lines.count() == 3


def test_a_run_whose_worker_died_mid_run_is_completed_by_the_redelivered_task(region, users, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = services.clearing_run_start(region=region, fund="employee", year=2025, user=users[0], run_async=True)
    ClearingRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, progress="valuing 20 cases")  # the state a killed worker leaves
    services.clearing_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.DRAFT and result_count(run=run) == 20


def test_a_failure_while_storing_leaves_nothing_half_written(region, users, monkeypatch):
    original = services._results_write

    def write_then_fail(*args, **kwargs):
        original(*args, **kwargs)
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "_results_write", write_then_fail)
    with pytest.raises(RuntimeError):
        services.clearing_run_start(region=region, fund="employee", year=2025, user=users[0])
    run = ClearingRun.objects.get()
    assert run.status == RunStatus.FAILED and "disk full" in run.error
    assert CaseResultBlock.objects.count() == 0 and InstitutionLine.objects.count() == 0


def test_a_pool_year_without_budget_scheme_or_catalog_is_refused_before_any_run_is_recorded(region, users):
    with pytest.raises(ValidationError) as refused:
        services.clearing_run_start(region=region, fund="employee", year=2024, user=users[0])
    messages = refused.value.messages
    assert len(messages) == 3
    assert "没有已批准的预算" in messages[0] and "没有 2024 年的支付方案" in messages[1] and "没有 2024 年的病组目录" in messages[2]
    assert not ClearingRun.objects.exists()


def test_beat_queues_last_months_run_for_every_pool_once(region, django_capture_on_commit_callbacks):
    import datetime as dt

    from common.users import system_user

    batch = system_user()
    for fund in ("employee", "resident"):
        for month in (1, 2):
            services.clearing_run_finalize(run=services.clearing_run_start(region=region, fund=fund, year=2025, month=month, user=batch), user=batch, system=True)
    with django_capture_on_commit_callbacks(execute=True):
        started = services.clearing_runs_schedule_monthly(today=dt.date(2025, 4, 5))
    assert sorted((r.fund, r.month) for r in started) == [("employee", 3), ("resident", 3)]
    assert set(ClearingRun.objects.filter(month=3).values_list("status", flat=True)) == {RunStatus.DRAFT}  # executed (eager Celery)
    assert services.clearing_runs_schedule_monthly(today=dt.date(2025, 4, 5)) == []
    with django_capture_on_commit_callbacks(execute=True):
        annual = services.clearing_runs_offer_annual(today=dt.date(2026, 1, 15))
    assert sorted(r.fund for r in annual) == ["employee", "resident"]
