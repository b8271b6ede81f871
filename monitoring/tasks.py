"""Thin Celery tasks of monitoring."""
from __future__ import annotations

from celery import shared_task

from monitoring import services


@shared_task(name="monitoring.indicators_refresh", soft_time_limit=600, time_limit=660)
def indicators_refresh_task(*, region_id: int, fund: str, year: int) -> int:
    """Recompute the pool's stored indicators from its binding run (idempotent: replaces them)."""
    return services.indicators_refresh(region_id=region_id, fund=fund, year=year)
