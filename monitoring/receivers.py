"""Derived data on settlement's signals: a finalized run refreshes the pool's stored indicators."""
from __future__ import annotations

import logging

from django.dispatch import receiver

from settlement.signals import run_finalized

logger = logging.getLogger(__name__)


@receiver(run_finalized, dispatch_uid="monitoring.indicators_on_run_finalized")
def indicators_on_run_finalized(sender, run, **kwargs) -> None:
    from monitoring.tasks import indicators_refresh_task

    try:
        indicators_refresh_task.delay(region_id=run.region_id, fund=run.fund, year=run.year)
    except Exception:  # derived data: a failure here must never touch the finalized run
        logger.exception("indicators refresh for run #%s could not be queued or failed", run.pk)
