"""Throughput of bulk case submission through the whole hospital API stack.

``measure_submission_rate(cases=N)`` submits N synthetic cases in batches of 5,000 with Django's test
client (URL routing, API-key authentication, throttling, JSON parsing, the loader's validation,
finalized-period check, bulk upsert) against the configured database, then submits them again
unchanged (the idempotent no-op path) and once more with every case changed (updates recorded as
corrections). It works in a throwaway region that it deletes afterwards. Used by ``make bench``.
"""
from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from decimal import Decimal

from django.db import connection, transaction
from django.test import Client

from drg.api.serializers import MAX_BATCH


def _rows(count: int, *, cost_shift: int = 0) -> list[dict]:
    start = dt.date(2025, 1, 1)
    rows = []
    for i in range(count):
        admission = start + dt.timedelta(days=i % 330)
        total = 5000 + (i * 37) % 20000 + cost_shift
        rows.append({
            "case_no": f"B{i:08d}", "fund": "employee" if i % 3 else "resident", "patient_id": f"P{i % 50000:06d}",
            "admission_date": admission.isoformat(), "discharge_date": (admission + dt.timedelta(days=1 + i % 20)).isoformat(),
            "drg_code": ("GB25", "ES23", "FM19", "MH01")[i % 4], "total_cost": f"{total}.00", "self_pay": f"{total // 5}.50",
            "discharge_status": "normal", "tcm_treatment": 0, "tcm_cost": "0", "surgery_grade": i % 5,
            "malignant_tumor_surgery": i % 7 == 0,
        })
    return rows


def _submit_all(client: Client, rows: list[dict], key: str) -> tuple[float, dict]:
    totals = {"created": 0, "updated": 0, "unchanged": 0}
    elapsed = 0.0
    for start in range(0, len(rows), MAX_BATCH):
        body = json.dumps(rows[start:start + MAX_BATCH])
        began = time.perf_counter()
        response = client.post("/api/v1/cases/", data=body, content_type="application/json", HTTP_AUTHORIZATION=f"Api-Key {key}")
        elapsed += time.perf_counter() - began
        if response.status_code != 200:
            raise RuntimeError(f"submission failed: {response.status_code} {response.content[:500]!r}")
        for name in totals:
            totals[name] += response.json()[name]
    return elapsed, totals


def measure_submission_rate(*, cases: int = 20_000) -> dict:
    """Submit `cases` cases three times (new, unchanged, changed); returns cases/s for each pass."""
    from drg.models import Case, CaseCorrection, DrgGroup, IdempotencyRecord, Institution, InstitutionCredential, Region
    from drg.services import credential_issue

    tag = secrets.token_hex(3)
    with transaction.atomic():
        region = Region.objects.create(code=f"BA{tag}", name="API benchmark (temporary)")
        for code, kind in (("GB25", "stable"), ("ES23", "stable"), ("FM19", "stable"), ("MH01", "per_diem")):
            DrgGroup.objects.create(region=region, year=2025, code=code, name=code, kind=kind,
                                    base_points=Decimal("80"), avg_cost=Decimal("8000"), daily_points=Decimal("4"))
        institution = Institution.objects.create(region=region, code="BENCH", name="benchmark hospital", level=3, category="general")
        credential, key = credential_issue(institution=institution, name="benchmark", user=None)
    client = Client()
    try:
        rows = _rows(cases)
        created_s, created = _submit_all(client, rows, key)
        unchanged_s, unchanged = _submit_all(client, rows, key)
        updated_s, updated = _submit_all(client, _rows(cases, cost_shift=100), key)
        if (created["created"], unchanged["unchanged"], updated["updated"]) != (cases, cases, cases):
            raise RuntimeError(f"unexpected counts: {created} {unchanged} {updated}")
        return {
            "cases": cases,
            "batch": MAX_BATCH,
            "database": connection.vendor,
            "new_cases_per_s": round(cases / created_s),
            "unchanged_cases_per_s": round(cases / unchanged_s),
            "changed_cases_per_s": round(cases / updated_s),
            "seconds": {"new": round(created_s, 3), "unchanged": round(unchanged_s, 3), "changed": round(updated_s, 3)},
        }
    finally:
        with transaction.atomic():
            CaseCorrection.objects.filter(case__institution=institution).delete()
            Case.objects.filter(institution=institution).delete()
            IdempotencyRecord.objects.filter(institution=institution).delete()
            InstitutionCredential.history.filter(institution_id=institution.pk).delete()
            InstitutionCredential.objects.filter(institution=institution).delete()
            Institution.history.filter(id=institution.pk).delete()
            institution.delete()
            DrgGroup.history.filter(region_id=region.pk).delete()
            DrgGroup.objects.filter(region=region).delete()
            Region.history.filter(id=region.pk).delete()
            region.delete()
