"""No pool is ever stuck: a run that cannot be queued (broker unreachable) is failed in the same request
with a clear error; a running run whose worker fell silent is failed by the beat task or by the next
start; an approver fails a stuck run by hand with a recorded reason. (tests/services/ proves the same
with a real unreachable broker and a worker killed with SIGKILL.)"""
from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from drg.models import Case
from settlement import services
from settlement.choices import RunStatus
from settlement.models import ClearingRun
from tests.results_helpers import result_count, store_result
from settlement.tasks import clearing_run_task, fail_stalled_runs
from tests.integration.admin_helpers import approved_budget, make_case, make_institution, make_user, small_region


@pytest.fixture
def pool():
    region = small_region()
    h1, h2 = make_institution(region, "H1"), make_institution(region, "H2", coefficient=Decimal("1.0"))
    make_case(h1, "c01")
    make_case(h2, "c02", patient_id="P002", total_cost=Decimal("12000.00"), self_pay=Decimal("2400.00"))
    approved_budget(region)
    return region


class BrokerDown:
    """Celery as in production (not eager), every publish failing as kombu fails on a refused
    connection; the run's row counts as committed (the test's transaction never commits, so the
    on-commit publish runs at once). tests/services/ does the same against a real closed port."""

    def __init__(self, monkeypatch):
        from config.celery import app
        from settlement import dispatch

        self.app, self.saved = app, app.conf.task_always_eager
        app.conf.task_always_eager = False
        self.monkeypatch = monkeypatch

        def refuse(*args, **kwargs):
            raise KombuOperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

        monkeypatch.setattr(clearing_run_task, "apply_async", refuse)
        monkeypatch.setattr(dispatch.transaction, "on_commit", lambda callback, *args, **kwargs: callback())

    def back_up(self) -> None:
        self.monkeypatch.undo()
        self.app.conf.task_always_eager = self.saved


@pytest.fixture
def broker_down(monkeypatch):
    down = BrokerDown(monkeypatch)
    yield down
    down.back_up()


# --- broker unreachable ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_clear_async_with_the_broker_down_is_a_one_line_error_and_leaves_no_blocking_run(pool, broker_down):
    with pytest.raises(CommandError) as raised:
        call_command("clear", region=pool.code, fund="employee", year=2025, run_async=True, stdout=io.StringIO())

    message = str(raised.value)
    assert "\n" not in message and "消息代理不可达" in message and "Connection refused" in message
    run = ClearingRun.objects.get()
    assert run.status == RunStatus.FAILED and "cannot be reached" in run.error
    assert not ClearingRun.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).exists()


@pytest.mark.django_db
def test_the_admin_start_form_with_the_broker_down_shows_the_error_and_the_pool_stays_free(client, pool, broker_down):
    client.force_login(make_user("olga", "operator"))

    response = client.post(reverse("admin:settlement_clearingrun_add"), {"region": pool.pk, "fund": "employee", "year": 2025, "month": ""})

    assert response.status_code == 200  # the form again, with the error; not a 500
    assert "消息代理不可达" in response.content.decode()
    assert ClearingRun.objects.get().status == RunStatus.FAILED
    broker_down.back_up()  # the broker is back (eager again): the pool is free for a new run
    assert services.clearing_run_start(region=pool, fund="employee", year=2025, user=None).status == RunStatus.DRAFT


# --- a silent worker: heartbeat and stall deadline ------------------------------------------------------

def running(region, *, beat_seconds_ago: float | None, fund: str = "employee") -> ClearingRun:
    now = timezone.now()
    beat = now - dt.timedelta(seconds=beat_seconds_ago) if beat_seconds_ago is not None else None
    return ClearingRun.objects.create(
        region=region, fund=fund, year=2025, kind="annual", status=RunStatus.RUNNING,
        started_at=now - dt.timedelta(seconds=3600 if beat is None else beat_seconds_ago), heartbeat_at=beat,
    )


@pytest.mark.django_db
@override_settings(DRG_RUN_STALL_SECONDS=120)
def test_the_beat_task_fails_a_run_whose_worker_is_silent_and_spares_a_beating_one(pool):
    silent = running(pool, beat_seconds_ago=121)
    beating = running(pool, beat_seconds_ago=5, fund="resident")
    case = Case.objects.filter(region=pool).first()
    store_result(silent, case, valuation_group="GB25", coefficient="1", ratio=None, base_points=None, points="1")  # a chunk's stored results of the silent run

    assert fail_stalled_runs.apply().get() == [silent.pk]

    silent.refresh_from_db(), beating.refresh_from_db()
    assert silent.status == RunStatus.FAILED and silent.error.startswith("停滞 stalled")
    assert "DRG_RUN_STALL_SECONDS=120" in silent.error
    assert beating.status == RunStatus.RUNNING
    assert result_count(run=silent) == 0


@pytest.mark.django_db
@override_settings(DRG_RUN_STALL_SECONDS=120)
def test_the_next_start_of_the_pool_fails_its_stalled_run_first(pool):
    stalled = running(pool, beat_seconds_ago=None)  # claimed an hour ago, never beat

    run = services.clearing_run_start(region=pool, fund="employee", year=2025, user=None)

    stalled.refresh_from_db()
    assert stalled.status == RunStatus.FAILED and run.status == RunStatus.DRAFT and run.case_count == 2


@pytest.mark.django_db
def test_a_run_beats_while_it_runs(pool):
    run = services.clearing_run_start(region=pool, fund="employee", year=2025, user=None)
    assert run.heartbeat_at is not None and run.started_at <= run.heartbeat_at <= run.finished_at


# --- an approver fails a stuck run by hand ------------------------------------------------------------------


def fail_in_admin(client, run, reason):
    return client.post(
        reverse("admin:settlement_clearingrun_changelist"),
        {"action": "fail_stuck_selected", "_selected_action": [run.pk], "apply": "1", "reason": reason}, follow=True,
    )


@pytest.mark.django_db
def test_an_approver_fails_a_stuck_run_with_a_recorded_reason(client, pool):
    stuck = running(pool, beat_seconds_ago=30)
    approver = make_user("alan", "approver")
    client.force_login(approver)

    asked = client.post(reverse("admin:settlement_clearingrun_changelist"), {"action": "fail_stuck_selected", "_selected_action": [stuck.pk]})
    assert asked.status_code == 200 and "原因" in asked.content.decode()
    blank = fail_in_admin(client, stuck, "   ")
    stuck.refresh_from_db()
    assert stuck.status == RunStatus.RUNNING and blank.status_code == 200

    fail_in_admin(client, stuck, "worker 机器已断电")

    stuck.refresh_from_db()
    assert (stuck.status, stuck.failed_by) == (RunStatus.FAILED, approver)
    assert "alan" in stuck.error and "worker 机器已断电" in stuck.error
    assert services.clearing_run_start(region=pool, fund="employee", year=2025, user=None).status == RunStatus.DRAFT


@pytest.mark.django_db
def test_an_operator_cannot_fail_a_run_and_a_draft_cannot_be_failed_by_hand(client, pool):
    stuck = running(pool, beat_seconds_ago=30)
    client.force_login(make_user("olga", "operator"))
    fail_in_admin(client, stuck, "no")
    stuck.refresh_from_db()
    assert stuck.status == RunStatus.RUNNING

    stuck.status = RunStatus.DRAFT
    stuck.save()
    with pytest.raises(Exception, match="only a queued or running run"):
        services.clearing_run_fail_stuck(run=stuck, user=make_user("alan", "approver"), reason="x")
