"""Thin Celery tasks for incentives: ids in, one service call."""
from __future__ import annotations

from celery import shared_task
from django.contrib.auth import get_user_model

from drg.models import Region
from incentives.services import payouts_compute


@shared_task(time_limit=1800, soft_time_limit=1700)
def payouts_compute_task(*, region_id: int, year: int, user_id: int | None = None) -> int:
    """Compute (or recompute) the draft payout of a region and year; returns the payout id.
    Harmless on retry: a draft is replaced, an approved payout refuses (ValidationError)."""
    user = get_user_model().objects.get(pk=user_id) if user_id is not None else None
    payout = payouts_compute(region=Region.objects.get(pk=region_id), year=year, user=user)
    return payout.pk
