"""Derived data hung on settlement's signals: the forecast after each finalized monthly run, the
season basis of each finalized annual run. Never changes money records."""
from __future__ import annotations

import logging

from django.conf import settings
from django.dispatch import receiver

from settlement.models import ClearingRun
from settlement.signals import run_finalized

logger = logging.getLogger(__name__)


@receiver(run_finalized, sender=ClearingRun, dispatch_uid="planning.forecast_after_run")
def forecast_on_finalized(sender, run, **kwargs) -> None:
    if not getattr(settings, "PLANNING_FORECAST_ON_FINALIZE", True):
        return
    from planning import dispatch

    try:
        if run.month:
            dispatch.forecast_enqueue(run_id=run.pk)
        else:
            dispatch.season_enqueue(run_id=run.pk)
    except Exception:  # a forecast is an estimate: its failure must never disturb a finalization
        logger.exception("forecast or season after run %s could not be queued", run.pk)
