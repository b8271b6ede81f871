"""Celery tasks of drg/: thin wrappers around drg.services."""
from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings

from drg.services import idempotency_records_purge


@shared_task
def purge_idempotency_records() -> int:
    """Daily (beat): forget Idempotency-Key answers older than API_IDEMPOTENCY_DAYS."""
    return idempotency_records_purge(older_than=dt.timedelta(days=settings.API_IDEMPOTENCY_DAYS))
