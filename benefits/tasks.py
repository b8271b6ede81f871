"""Thin Celery tasks for benefits: ids in, one service call. Harmless on retry: a settled year
settles to the same split and writes nothing."""
from __future__ import annotations

from celery import shared_task

from benefits.services import cases_changed_resettle, region_years_resettle


@shared_task(time_limit=1800, soft_time_limit=1700)
def resettle_patient_years(*, region_id: int, keys: list, source: str = "api") -> int:
    """Re-settle the patient-years a stored or changed stay touches; returns the corrections recorded."""
    report = cases_changed_resettle(region_id=region_id, keys={(str(p), str(f), int(y)) for p, f, y in keys}, source=source)
    return report.corrected


@shared_task(time_limit=3600, soft_time_limit=3500)
def resettle_region_years(*, region_id: int, years: list, source: str = "bundle") -> int:
    """Re-settle whole region-years in bulk (many stays changed at once); returns the corrections recorded."""
    return region_years_resettle(region_id=region_id, years=[int(y) for y in years], source=source).corrected
