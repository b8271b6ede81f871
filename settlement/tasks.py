"""Thin Celery tasks: take ids, make one service call; guarded by the run's status, so a retry is harmless."""
from __future__ import annotations

import datetime as dt
import socket

from celery import shared_task
from django.utils import timezone

from settlement import services


@shared_task(bind=True, acks_late=True, max_retries=3, default_retry_delay=30)
def clearing_run_task(self, *, run_id: int, chunks: int | None = None) -> str:
    run = services.clearing_run_execute(run_id=run_id, chunks=chunks)
    return run.status


# --- scale-out: a chord of chunk tasks and one reduce (docs/scaleout.md) ---------------------------

@shared_task(bind=True, acks_late=True)
def clearing_run_value_chunk(self, *, run_id: int, chunk_no: int, institution_ids: list[int]) -> dict:
    """Value one chunk of institutions of a running run; returns its per-institution aggregates."""
    worker = self.request.hostname or socket.gethostname()
    return services.clearing_run_value_chunk(run_id=run_id, chunk_no=chunk_no, institution_ids=institution_ids, worker=worker)


@shared_task(bind=True, acks_late=True)
def clearing_run_reduce(self, results: list, *, run_id: int) -> str:
    """The chord's body: `results` are the chunks' return values (Celery passes them first)."""
    return services.clearing_run_reduce(run_id=run_id, results=results).status


@shared_task
def clearing_run_chunks_failed(request, exc, traceback, *, run_id: int) -> None:
    """The chord's error callback (a chunk or the reduce failed): the run is marked failed."""
    services.clearing_run_fail(run_id=run_id, error=f"{type(exc).__name__}: {exc}")


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


@shared_task
def fail_stalled_runs() -> list[int]:
    """Beat, every minute: fail the runs whose worker gave no sign of life for DRG_RUN_STALL_SECONDS."""
    return services.clearing_runs_fail_stalled()
