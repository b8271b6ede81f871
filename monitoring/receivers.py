"""Derived data on settlement's signals: a finalized run refreshes the pool's stored indicators."""
from __future__ import annotations

import logging
from contextlib import contextmanager

from settlement.signals import run_finalized

logger = logging.getLogger(__name__)
DISPATCH_UID = "monitoring.indicators_on_run_finalized"


def indicators_on_run_finalized(sender, run, **kwargs) -> None:
    """Queue the refresh (eager Celery: refresh here, without a task's round trip)."""
    from monitoring import services
    from monitoring.tasks import indicators_refresh_task

    try:
        if indicators_refresh_task.app.conf.task_always_eager:
            services.indicators_refresh(region_id=run.region_id, fund=run.fund, year=run.year)
        else:
            indicators_refresh_task.delay(region_id=run.region_id, fund=run.fund, year=run.year)
    except Exception:  # derived data: a failure here must never touch the finalized run
        logger.exception("indicators refresh for run #%s could not be queued or failed", run.pk)


def connect() -> None:
    run_finalized.connect(indicators_on_run_finalized, dispatch_uid=DISPATCH_UID)


@contextmanager
def refresh_on_finalize_paused():
    """No refresh per finalized run inside the block (a batch that finalizes many runs of a pool,
    e.g. the demo, refreshes once afterwards)."""
    run_finalized.disconnect(dispatch_uid=DISPATCH_UID)
    try:
        yield
    finally:
        connect()
