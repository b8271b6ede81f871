"""Derived data kept up to date: a claim's split is a function of the stored claims and cases
(BENEFITS.md), so a stay stored or changed re-settles the patient-years it touches."""
from __future__ import annotations

from django.dispatch import receiver

from drg.signals import cases_stored

MANY_KEYS = 200  # more touched patient-years than this (a bundle load): the region-years in bulk


@receiver(cases_stored, dispatch_uid="benefits-resettle-on-cases")
def resettle_on_cases(sender, *, region_id: int, keys, source: str = "api", **kwargs) -> None:
    from benefits.selectors import patient_years_with_claims
    from benefits.tasks import resettle_patient_years, resettle_region_years

    keys = patient_years_with_claims(region_id=region_id, keys=keys)  # a stay without claims settles nothing
    if not keys:
        return
    if len(keys) > MANY_KEYS:
        resettle_region_years.delay(region_id=region_id, years=sorted({int(k[2]) for k in keys}), source=source)
    else:
        resettle_patient_years.delay(region_id=region_id, keys=[list(k) for k in keys], source=source)
