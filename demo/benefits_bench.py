"""Speed of the special-outpatient settlement (docs/benefits.md): the bulk engine on a million claims
of a hundred thousand patients with their stays, and one claim at the counter through the whole
API stack with a patient's year of 200 earlier claims. Used by ``make bench``."""
from __future__ import annotations

import datetime as dt
import secrets
import statistics
import time
from decimal import Decimal

import numpy as np
import pandas as pd

TARGETS = {"settle_seconds": 30.0, "counter_p95_ms": 50.0}


def measure_settlement(*, claims: int = 1_000_000, patients: int = 100_000, seed: int = 2025, year: int = 2025) -> dict:
    """Settle ``claims`` synthetic claims of ``patients`` patients (about half with inpatient stays)
    with the bulk engine; best of the measured run, exact int64 fen throughout."""
    from benefits.domain.engine import settle_frame
    from benefits.domain.parameters import default_terms
    from benefits.synthetic import disease_caps_fen, special_outpatient_frames

    rng = np.random.default_rng(seed)
    patient_ids = np.array([f"P{i:08d}" for i in range(patients)])
    employee = rng.random(patients) < 0.6
    inst_codes = np.array([f"H{i:03d}" for i in range(40)])
    inst_levels = rng.integers(1, 4, 40)
    _patients, _diseases, frame = special_outpatient_frames(
        rng, year=year, inst_codes=inst_codes, inst_levels=inst_levels, patient_ids=patient_ids, patient_employee=employee, claims=claims,
    )
    stays_n = patients
    stay_patient = rng.integers(0, patients, stays_n)
    stays = pd.DataFrame({
        "patient_id": patient_ids[stay_patient], "fund": np.where(employee[stay_patient], "employee", "resident"),
        "discharge_date": np.datetime64(f"{year}-01-01") + rng.integers(0, 365, stays_n),
        "share": np.round(rng.lognormal(np.log(9000), 0.8, stays_n) * 100).astype("int64"),
    })
    engine = pd.DataFrame({
        "patient_id": frame["patient_id"], "fund": frame["fund"], "category": frame["_category"], "claim_no": frame["claim_no"],
        "institution_code": frame["institution_code"], "service_date": pd.to_datetime(frame["service_date"]),
        "disease_code": frame["disease_code"], "level": frame["_level"].astype("int64"),
        "total": frame["_total"], "eligible": frame["_eligible"],
    })
    results, seconds = {}, []
    for fund in ("employee", "resident"):
        terms = default_terms(fund)
        caps = disease_caps_fen({k: int(v * 100) for k, v in terms.class_caps.items()})
        part = engine[engine["fund"] == fund]
        started = time.perf_counter()
        results[fund] = settle_frame(part, stays[stays["fund"] == fund], terms={fund: terms}, disease_caps=caps)
        seconds.append(time.perf_counter() - started)
    result = pd.concat(results.values())
    total = sum(seconds)
    conserved = bool((result["basic"] + result["critical"] + result["assistance"] + result["patient"] == engine.loc[result.index, "total"]).all())
    return {
        "claims": len(engine), "patients": int(engine["patient_id"].nunique()), "stays": stays_n, "seconds": round(total, 2),
        "claims_per_s": round(len(engine) / total), "conserved": conserved,
        "critical_claims": int((result["critical"] > 0).sum()), "capped_claims": int((result["basic"] < result["base"]).sum()),
    }


def measure_counter(*, earlier: int = 200, requests: int = 200, year: int = 2025) -> dict:
    """POST one claim at a time to /api/v1/special-outpatient-claims/ (auth, throttle, JSON, the
    service, the patient's whole year re-settled) for a patient with ``earlier`` claims already
    settled; the first half append to the year, the second half arrive out of order (each re-settles
    the later claims). A throwaway region, deleted afterwards."""
    from django.conf import settings
    from django.core.cache import cache
    from django.test import Client
    from django.test.utils import override_settings

    from benefits.models import SettlementCorrection, SpecialDisease, SpecialOutpatientClaim
    from benefits.services import special_outpatient_settle
    from drg.models import IdempotencyRecord, Institution, InstitutionCredential, Region
    from drg.services import credential_issue
    from settlement.models import ItemizedClaim

    code = "BB" + secrets.token_hex(3)
    region = Region.objects.create(code=code, name="bench")
    inst = Institution.objects.create(region=region, code="H1", name="bench", level=2, category="general")
    SpecialDisease.objects.create(region=region, year=year, code="D1", name="透析", disease_class="I", annual_cap=Decimal("300000"))
    start = dt.date(year, 1, 1)
    SpecialOutpatientClaim.objects.bulk_create([
        SpecialOutpatientClaim(region=region, institution=inst, claim_no=f"E{i:05d}", fund="resident", patient_id="P1", disease_code="D1",
                               service_date=start + dt.timedelta(days=i % 180), total_cost=Decimal("1200.00"), eligible_cost=Decimal("1000.00"), source="bundle")
        for i in range(earlier)
    ])
    special_outpatient_settle(region=region, year=year)
    _credential, raw = credential_issue(institution=inst, name="bench", user=None)
    client = Client(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    timings = {"append": [], "late": [], "me": []}
    rates = dict(settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}))
    rates = {k: "1000000/minute" for k in rates} or {"institution": "1000000/minute"}
    try:
        with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
            cache.clear()
            for _ in range(50):  # the stack's floor on this machine now: an authenticated GET of /api/v1/me/
                began = time.perf_counter()
                client.get("/api/v1/me/")
                timings["me"].append((time.perf_counter() - began) * 1000)
            for i in range(requests):
                late = i >= requests // 2
                day = start + dt.timedelta(days=(i % 150) if late else 200 + i % 150)
                body = {"claim_no": f"N{i:05d}", "fund": "resident", "patient_id": "P1", "disease_code": "D1",
                        "service_date": day.isoformat(), "total_cost": "800.00", "eligible_cost": "700.00"}
                began = time.perf_counter()
                response = client.post("/api/v1/special-outpatient-claims/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=f"k{i}")
                timings["late" if late else "append"].append((time.perf_counter() - began) * 1000)
                if response.status_code != 201:
                    raise RuntimeError(f"counter answered {response.status_code}: {response.content[:200]!r}")
    finally:
        corrections = SettlementCorrection.objects.filter(claim__region=region).count()
        SettlementCorrection.objects.filter(claim__region=region).delete()
        SpecialOutpatientClaim.objects.filter(region=region).delete()
        ItemizedClaim.objects.filter(region=region).delete()
        SpecialDisease.objects.filter(region=region).delete()
        IdempotencyRecord.objects.filter(institution=inst).delete()
        InstitutionCredential.objects.filter(institution=inst).delete()
        inst.delete()
        region.delete()

    def p95(values):
        return round(statistics.quantiles(values, n=20)[18], 1) if len(values) >= 2 else round(values[0], 1)

    every = timings["append"] + timings["late"]
    import os

    return {
        "baseline_me_p95_ms": p95(timings["me"]), "load_average_1m": round(os.getloadavg()[0], 2),
        "earlier_claims": earlier, "requests": requests, "p50_ms": round(statistics.median(every), 1), "p95_ms": p95(every),
        "append_p95_ms": p95(timings["append"]), "late_p95_ms": p95(timings["late"]), "corrections": corrections,
    }


def verdicts(results: dict) -> list[str]:
    lines = []
    settle = results.get("benefits_settle", {})
    if settle.get("seconds") is not None:
        met = settle["seconds"] <= TARGETS["settle_seconds"]
        lines.append(f"special-outpatient settlement ({settle['claims']:,} claims): {settle['seconds']:.1f} s "
                     f"(target ≤ {TARGETS['settle_seconds']:.0f} s) {'MET' if met else 'MISSED'}")
    counter = results.get("benefits_counter", {})
    if counter.get("p95_ms") is not None:
        met = counter["p95_ms"] <= TARGETS["counter_p95_ms"]
        lines.append(f"special-outpatient counter p95 ({counter['earlier_claims']} earlier claims): {counter['p95_ms']:.1f} ms "
                     f"(target ≤ {TARGETS['counter_p95_ms']:.0f} ms) {'MET' if met else 'MISSED'}")
    return lines
