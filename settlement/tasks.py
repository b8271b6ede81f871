"""Thin Celery tasks: take ids, make one service call; guarded by the run's status, so a retry is harmless."""
from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from settlement import services


@shared_task(bind=True, acks_late=True, max_retries=3, default_retry_delay=30)
def clearing_run_task(self, *, run_id: int) -> str:
    run = services.clearing_run_execute(run_id=run_id)
    return run.status


@shared_task
def schedule_monthly_clearings(*, today: str | None = None) -> list[int]:
    """Beat, the 5th of each month: the previous month's provisional clearing of every pool."""
    day = dt.date.fromisoformat(today) if today else timezone.localdate()
    return [run.pk for run in services.clearing_runs_schedule_monthly(today=day)]


@shared_task
def offer_annual_clearings(*, today: str | None = None) -> list[int]:
    """Beat, after year end (Jan–Jun): the annual clearing of last year, as a draft for staff to review."""
    day = dt.date.fromisoformat(today) if today else timezone.localdate()
    return [run.pk for run in services.clearing_runs_offer_annual(today=day)]
