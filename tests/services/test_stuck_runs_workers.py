"""No pool is ever stuck, with the real services (PostgreSQL, Redis, Celery workers):

- `clear --async` against an unreachable broker (a closed port; a port that accepts and never
  answers) fails within seconds with one line, and the run it recorded is failed, not queued;
- a worker killed with SIGKILL (master and child) mid-run: the run is failed within seconds of its
  stall deadline (small here: DRG_RUN_HEARTBEAT_SECONDS=1 in the worker, DRG_RUN_STALL_SECONDS=4
  in the checker), and the pool takes a new run; or, with a short visibility timeout, another
  worker receives the unacknowledged task again and finishes the run exactly once.

These tests start their own worker on a queue of their own, so killing it leaves CI's workers alone.
"""
from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from drg.models import Case, Region
from settlement import services
from settlement.choices import RunStatus
from settlement.models import ClearingRun
from tests.results_helpers import result_count
from settlement.tasks import clearing_run_task
from tests.conftest import require_service
from tests.services.conftest import _redis_up

pytestmark = [pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).parent / "celery"


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def services_up(transactional_db):
    require_service(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL)")
    broker = settings.CELERY_BROKER_URL
    require_service(bool(broker) and _redis_up(broker), "a Redis broker (CELERY_BROKER_URL)")
    return broker


# --- broker unreachable ------------------------------------------------------------------------------


def clear_async(broker_url: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_BROKER_URL": broker_url, "CELERY_RESULT_BACKEND": broker_url,
           "DJANGO_SETTINGS_MODULE": "config.settings"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "manage.py", "clear", "--region", "331083", "--fund", "employee", "--year", "2025", "--async"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    return result, time.monotonic() - started


def test_clear_async_against_an_unreachable_broker_fails_fast_and_frees_the_pool(services_up, worked_bundle):
    call_command("load_bundle", str(worked_bundle), stdout=io.StringIO())
    silent = socket.socket()  # accepts connections (the kernel's backlog), never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        closed, silent_url = "redis://127.0.0.1:1/7", f"redis://127.0.0.1:{silent.getsockname()[1]}/7"
        for url, limit in ((closed, 5), (silent_url, 12)):
            result, seconds = clear_async(url)

            assert result.returncode == 1, result.stdout + result.stderr
            lines = result.stderr.strip().splitlines()  # Celery's own log line may come first
            assert "Traceback" not in result.stderr, result.stderr
            assert lines[-1].startswith("CommandError: 消息代理不可达") and "cannot be reached" in lines[-1]
            run = ClearingRun.objects.order_by("-pk").first()
            assert run.status == RunStatus.FAILED and "cannot be reached" in run.error
            # from recording the run to failing it: the publish attempts (the process start is extra)
            attempt = (run.finished_at - run.created_at).total_seconds()
            assert attempt < limit and seconds < 60, f"{url}: publish {attempt:.1f} s, command {seconds:.1f} s"
    finally:
        silent.close()
    assert services.clearing_run_start(region=Region.objects.get(code="331083"), fund="employee", year=2025, user=None).status == RunStatus.DRAFT


# --- a worker killed mid-run ---------------------------------------------------------------------------


class Worker:
    """A Celery worker of this test, on a queue of its own, in its own process group."""

    def __init__(self, broker: str, queue: str, **env: str):
        self.name = f"{queue}-{uuid.uuid4().hex[:6]}@%h"
        self.process = subprocess.Popen(
            [str(CELERY), "-A", "config", "worker", "-Q", queue, "-n", self.name, "--concurrency=1", "--loglevel=WARNING",
             "--without-gossip", "--without-mingle"],
            cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "DATABASE_URL": database_url(), "CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": broker,
                 "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        )

    def kill(self) -> None:
        """SIGKILL to the whole group: the master and its pool child, as `kill -9` of both."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_until(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds}s: {what}")


@pytest.fixture
def big_pool(services_up, tmp_path):
    """A generated region-year large enough that a run takes several seconds even on a quiet machine
    (to be killed in the middle)."""
    from exchange.synthetic import generate_bundle

    bundle = tmp_path / "bundle"
    generate_bundle(out=bundle, cases=200_000, seed=11, year=2025, employee_share=1.0)  # one pool of them all
    call_command("load_bundle", str(bundle), stdout=io.StringIO())
    region = Region.objects.get()
    fund = Case.objects.values_list("fund", flat=True).first()
    return services_up, region, fund


def kill_mid_run(broker: str, region: Region, fund: str, queue: str) -> ClearingRun:
    """Queue a run on a fresh worker and SIGKILL the worker while the run is running."""
    worker = Worker(broker, queue, DRG_RUN_HEARTBEAT_SECONDS="1")
    try:
        run = ClearingRun.objects.create(region=region, fund=fund, year=2025, kind="annual", status=RunStatus.QUEUED)
        clearing_run_task.apply_async(kwargs={"run_id": run.pk}, queue=queue)
        claimed = wait_until(lambda: ClearingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).values_list("heartbeat_at", flat=True).first(),
                             60, "the worker claims the run")
        # mid-run (loading, valuing or storing): killed right after the first heartbeat from the thread
        wait_until(lambda: ClearingRun.objects.filter(pk=run.pk, heartbeat_at__gt=claimed).exists(), 30, "a heartbeat from the thread")
    finally:
        worker.kill()
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING, "the run finished before the kill; make the pool larger"
    return run


def test_a_killed_workers_run_is_failed_within_seconds_of_its_stall_deadline(big_pool):
    broker, region, fund = big_pool
    queue = f"stuck-{uuid.uuid4().hex[:8]}"
    run = kill_mid_run(broker, region, fund, queue)
    killed_at = time.monotonic()

    with override_settings(DRG_RUN_STALL_SECONDS=4):
        assert services.clearing_runs_fail_stalled() == []  # still within its deadline
        failed = wait_until(lambda: services.clearing_runs_fail_stalled(), 30, "the stall check fails the run")

    assert failed == [run.pk] and time.monotonic() - killed_at < 30
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.error.startswith("停滞 stalled")
    assert result_count(run=run) == 0
    assert services.clearing_run_start(region=region, fund=fund, year=2025, user=None).status == RunStatus.DRAFT

    # the killed worker's task, delivered again (short visibility timeout), finds the run failed: no-op
    worker = Worker(broker, queue, CELERY_VISIBILITY_TIMEOUT="1")
    try:
        time.sleep(15)
    finally:
        worker.stop()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and result_count(run=run) == 0


def test_a_killed_workers_run_is_resumed_by_another_worker_exactly_once(big_pool):
    broker, region, fund = big_pool
    queue = f"resume-{uuid.uuid4().hex[:8]}"
    run = kill_mid_run(broker, region, fund, queue)

    # acks_late + reject_on_worker_lost: the task was never acknowledged; a worker whose visibility
    # timeout is short hands it out again, and the run (still 'running', nothing stored: its writes
    # are one transaction) is executed again by the status guard.
    worker = Worker(broker, queue, CELERY_VISIBILITY_TIMEOUT="2", DRG_RUN_HEARTBEAT_SECONDS="1")
    try:
        wait_until(lambda: ClearingRun.objects.filter(pk=run.pk, status=RunStatus.DRAFT).exists(), 60, "another worker finishes the run")
    finally:
        worker.stop()

    run.refresh_from_db()
    reference = services.clearing_run_start(region=region, fund=fund, year=2025, user=None)  # the same pool, inline
    cases = Case.objects.filter(region=region, fund=fund, discharge_date__year=2025).count()
    assert run.case_count == reference.case_count == cases == result_count(run=run)
    assert run.totals == reference.totals and run.fingerprint == reference.fingerprint
