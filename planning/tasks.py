"""Thin Celery tasks: ids in, one service call; guarded by status, so a retry is harmless."""
from __future__ import annotations

import logging

from celery import shared_task

from planning import services

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, soft_time_limit=1800, time_limit=1900)
def scenario_run_task(*, scenario_id: int) -> str:
    return services.scenario_execute(scenario_id=scenario_id).status


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def forecast_task(*, run_id: int) -> int | None:
    try:
        forecast = services.forecast_after_run(run_id=run_id)
    except Exception:  # an estimate: logged, never raised into a finalization
        logger.exception("forecast after run %s failed", run_id)
        return None
    return forecast.pk if forecast else None


@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def season_task(*, run_id: int) -> int | None:
    season = services.season_record(run_id=run_id)
    return season.pk if season else None
