"""Thin Celery tasks for benefits: ids in, one service call."""
from __future__ import annotations

from celery import shared_task

from benefits.services import cases_changed_resettle


@shared_task(time_limit=1800, soft_time_limit=1700)
def resettle_patient_years(*, region_id: int, keys: list, source: str = "api") -> int:
    """Re-settle the patient-years a stored or changed stay touches; returns the corrections
    recorded. Harmless on retry: a settled year settles to the same split."""
    report = cases_changed_resettle(region_id=region_id, keys={(str(p), str(f), int(y)) for p, f, y in keys}, source=source)
    return report.corrected
