"""Clearing runs through real Celery workers and Redis (CI starts two workers)."""
from __future__ import annotations

import time

import pytest
from django.core.management import call_command

from drg.models import Region
from settlement import services
from settlement.choices import RunStatus
from settlement.models import ClearingRun
from tests.results_helpers import result_count
from settlement.tasks import clearing_run_task

pytestmark = [pytest.mark.services]


def wait_for(run_id: int, statuses=(RunStatus.DRAFT, RunStatus.FINALIZED, RunStatus.FAILED), seconds: float = 60) -> ClearingRun:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = ClearingRun.objects.get(pk=run_id)
        if run.status in statuses:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {ClearingRun.objects.get(pk=run_id).status} after {seconds}s")


def test_clear_async_is_executed_by_a_worker_with_the_spec_numbers(celery_workers, worked_bundle):
    call_command("load_bundle", str(worked_bundle), stdout=open("/dev/null", "w"))
    call_command("clear", region="331083", fund="employee", year=2025, run_async=True, stdout=open("/dev/null", "w"))
    run = wait_for(ClearingRun.objects.get().pk)
    assert run.status == RunStatus.DRAFT, run.error
    assert run.totals["distributed"] == "303459.57" and run.totals["point_value"] == "115.6390"
    assert result_count(run=run) == 20


def test_a_task_delivered_twice_to_two_workers_writes_once(celery_workers, worked_bundle):
    app, replies = celery_workers
    call_command("load_bundle", str(worked_bundle), stdout=open("/dev/null", "w"))
    region = Region.objects.get(code="331083")
    run = ClearingRun.objects.create(region=region, fund="employee", year=2025, kind="annual", status=RunStatus.QUEUED)
    first = clearing_run_task.apply_async(kwargs={"run_id": run.pk})
    second = clearing_run_task.apply_async(kwargs={"run_id": run.pk})  # a duplicate delivery / retry
    assert {first.get(timeout=60), second.get(timeout=60)} <= {RunStatus.DRAFT}
    run = wait_for(run.pk)
    assert run.status == RunStatus.DRAFT
    assert result_count(run=run) == 20 and run.lines.count() == 3


def test_a_run_left_running_by_a_killed_worker_is_finished_by_the_retry_without_doubling(celery_workers, worked_bundle):
    call_command("load_bundle", str(worked_bundle), stdout=open("/dev/null", "w"))
    region = Region.objects.get(code="331083")
    # the state a worker killed mid-run leaves: claimed ('running'), nothing stored (writes are atomic)
    run = ClearingRun.objects.create(region=region, fund="resident", year=2025, kind="annual", status=RunStatus.RUNNING)
    assert clearing_run_task.apply_async(kwargs={"run_id": run.pk}).get(timeout=60) == RunStatus.DRAFT
    run = wait_for(run.pk)
    assert result_count(run=run) == 5 and run.totals["distributed"] == "40051.54"
    # and a new run of the same pool is allowed again
    assert services.clearing_run_start(region=region, fund="resident", year=2025, user=None).status == RunStatus.DRAFT
