"""The monitoring figure of `make bench` (docs/monitoring.md): indicators and all five screening
rules over a pool's latest annual run, read from the database and computed, timed per phase."""
from __future__ import annotations

import time

TARGET_SECONDS = 20.0


def measure_monitoring(*, region: str, fund: str, year: int) -> dict:
    from drg.models import Region
    from monitoring import selectors
    from monitoring.services import run_screen
    from settlement.choices import RunKind
    from settlement.models import ClearingRun

    region_obj = Region.objects.get(code=region)
    run = ClearingRun.objects.filter(region=region_obj, fund=fund, year=year, kind=RunKind.ANNUAL).order_by("-created_at", "-id").first()
    if run is None:
        raise ValueError(f"no annual run of {region} {fund} {year} to screen")
    params, _ = selectors.screening_parameters_in_force(region_id=region_obj.pk)
    started = time.perf_counter()
    result = run_screen(run=run, previous_run=None, params=params)
    seconds = time.perf_counter() - started
    return {
        "cases": result.timings["cases"], "seconds": round(seconds, 3), "phases": {k: v for k, v in result.timings.items() if k != "cases"},
        "indicator_rows": len(result.indicators), "findings": len(result.findings), "target_seconds": TARGET_SECONDS,
    }
