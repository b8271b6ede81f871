"""Writes of the benefits app: settle a claim at the counter, settle a region-year in bulk,
re-settle a patient's year when a claim, a stay or a category arrives out of order (recording each
change as a SettlementCorrection), and keep the basic parts in the pool as itemized payments (§5).

A patient-fund-year is always settled as a whole, in the spec's order, so the stored split of every
claim is the function BENEFITS.md defines of all stored claims and cases."""
from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone

from benefits import selectors
from benefits.choices import ClaimSource
from benefits.domain.engine import ClaimIn, StayIn, explanation_of, settle_frame, settle_patient_year
from benefits.domain.parameters import FUNDS
from benefits.models import Patient, SettlementCorrection, SpecialOutpatientClaim
from common.precision import from_fen, to_fen
from drg.models import Institution, Region
from settlement.choices import ItemizedSource
from settlement.services import ItemizedPayment, itemized_payments_sync

PARTS = ("basic", "critical", "assistance", "patient_pay")


class ClaimRefused(Exception):
    """BENEFITS.md: the claim is refused with its reason and not stored."""

    def __init__(self, field: str, code: str, message: str):
        super().__init__(message)
        self.field, self.code, self.message = field, code, message


class ClaimConflict(Exception):
    """A claim with this claim_no and different values is already stored for the institution."""

    def __init__(self, claim: SpecialOutpatientClaim):
        super().__init__(f"claim {claim.claim_no} is already stored with other values")
        self.claim = claim


@dataclass
class SettleReport:
    claims: int = 0
    newly_settled: int = 0
    corrected: int = 0
    corrections: list[SettlementCorrection] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class ClaimOutcome:
    claim: SpecialOutpatientClaim
    created: bool
    corrections: list[SettlementCorrection]


def claim_snapshot(claim: SpecialOutpatientClaim) -> dict:
    """The settled split of a claim as stored (before/after of a correction)."""
    return {
        "basic": _text(claim.basic), "critical": _text(claim.critical), "assistance": _text(claim.assistance),
        "patient": _text(claim.patient_pay), "explanation": claim.explanation,
    }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def _lock_patient_year(*, region_id: int, patient_id: str, fund: str, year: int) -> None:
    """Serialize settlements of one patient-fund-year (PostgreSQL advisory lock for the transaction;
    SQLite serializes writers anyway)."""
    if connection.vendor != "postgresql":
        return
    digest = hashlib.blake2b(f"benefits|{region_id}|{patient_id}|{fund}|{year}".encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def _apply(
    *, region: Region, pairs: Iterable[tuple[SpecialOutpatientClaim, dict]], cause: str, source: str, user=None,
) -> SettleReport:
    """Store new splits; record a correction for every settled claim whose split changed; keep the
    pool's itemized payments (basic parts) in sync. ``pairs``: (claim, {basic, critical, assistance,
    patient_pay: Decimal, explanation: dict})."""
    report = SettleReport()
    now = timezone.now()
    changed: list[SpecialOutpatientClaim] = []
    corrections: list[SettlementCorrection] = []
    for claim, values in pairs:
        report.claims += 1
        same = claim.settled_at is not None and all(getattr(claim, p) == values[p] for p in PARTS) and claim.explanation == values["explanation"]
        if same:
            continue
        before = claim_snapshot(claim) if claim.settled_at is not None else None
        for name, value in values.items():
            setattr(claim, name, value)
        if before is None:
            report.newly_settled += 1
        elif any(before[k] != _text(values[p]) for k, p in zip(("basic", "critical", "assistance", "patient"), PARTS)):
            corrections.append(SettlementCorrection(claim=claim, before=before, after=claim_snapshot(claim), cause=cause[:300], source=source, changed_by=user))
        claim.settled_at = now
        changed.append(claim)
    if changed:
        SpecialOutpatientClaim.objects.bulk_update(changed, [*PARTS, "explanation", "settled_at"], batch_size=2000)
        itemized_payments_sync(
            region=region, source=ItemizedSource.SPECIAL_OUTPATIENT, user=user,
            payments=[
                ItemizedPayment(institution_id=c.institution_id, claim_no=c.claim_no, fund=c.fund, month=c.service_date.replace(day=1),
                                patient_id=c.patient_id, amount=c.basic)
                for c in changed
            ],
        )
    if corrections:
        SettlementCorrection.objects.bulk_create(corrections, batch_size=2000)
    report.corrected = len(corrections)
    report.corrections = corrections
    return report


def patient_year_settle(*, region: Region, patient_id: str, fund: str, year: int, cause: str, source: str, user=None) -> SettleReport:
    """Settle one patient-fund-year as a whole (the reference engine) and store what changed."""
    started = time.perf_counter()
    with transaction.atomic():
        _lock_patient_year(region_id=region.pk, patient_id=patient_id, fund=fund, year=year)
        claims = selectors.claims_of_patient_year(region_id=region.pk, patient_id=patient_id, fund=fund, year=year)
        if not claims:
            return SettleReport()
        terms = selectors.benefit_terms(region_id=region.pk, year=year)[fund]
        catalog = selectors.disease_catalog(region_id=region.pk, year=year)
        caps = selectors.disease_caps_fen(catalog=catalog, terms=terms)
        claims = [c for c in claims if c.disease_code in caps]
        stays = [StayIn(day, to_fen(share)) for day, share in selectors.stays_of_patient(region_id=region.pk, patient_id=patient_id, fund=fund, year=year)]
        category = selectors.category_of(region_id=region.pk, patient_id=patient_id)
        splits = settle_patient_year(
            claims=[ClaimIn(c.claim_no, c.institution.code, c.service_date, c.disease_code, c.institution.level,
                            to_fen(c.total_cost), to_fen(c.eligible_cost), key=c) for c in claims],
            stays=stays, category=category, terms=terms, disease_caps=caps,
        )
        pairs = [
            (s.key, {"basic": from_fen(s.basic), "critical": from_fen(s.critical), "assistance": from_fen(s.assistance),
                     "patient_pay": from_fen(s.patient), "explanation": s.explanation()})
            for s in splits
        ]
        report = _apply(region=region, pairs=pairs, cause=cause, source=source, user=user)
    report.seconds = time.perf_counter() - started
    return report


def patient_years_resettle(*, region: Region, keys: Iterable[tuple[str, str, int]], cause: str, source: str, user=None) -> SettleReport:
    """Re-settle the listed (patient_id, fund, year) of a region that hold claims (a stay or a
    category changed)."""
    total = SettleReport()
    for patient_id, fund, year in sorted(set(keys)):
        report = patient_year_settle(region=region, patient_id=patient_id, fund=fund, year=year, cause=cause, source=source, user=user)
        total.claims += report.claims
        total.newly_settled += report.newly_settled
        total.corrected += report.corrected
        total.corrections.extend(report.corrections)
    return total


def cases_changed_resettle(*, region_id: int, keys: Iterable[tuple[str, str, int]], source: str) -> SettleReport:
    """A stay was stored or changed: re-settle the patient-years it touches that hold claims."""
    keys = set(keys)
    if not keys:
        return SettleReport()
    region = Region.objects.get(pk=region_id)
    with_claims = set(
        SpecialOutpatientClaim.objects.filter(region_id=region_id, patient_id__in={k[0] for k in keys})
        .values_list("patient_id", "fund", "service_date__year")
    )
    return patient_years_resettle(
        region=region, keys=keys & with_claims, cause="住院病例到达，重新结算", source=source,
    )


# --- the counter ----------------------------------------------------------------------------------

def special_outpatient_claim_submit(
    *, institution: Institution, claim_no: str, fund: str, patient_id: str, disease_code: str, service_date: dt.date,
    total_cost: Decimal, eligible_cost: Decimal, source: str = ClaimSource.API, user=None,
) -> ClaimOutcome:
    """Settle one claim at the counter (一站式结算): refuse it with the reason, or store it and settle
    the patient's fund-year at once; a claim that belongs before settled ones re-settles them and
    records the corrections. Resubmitting an identical claim returns the stored one."""
    region = institution.region
    year = service_date.year
    if eligible_cost > total_cost:
        raise ClaimRefused("eligible_cost", "above_total_cost", "政策范围内费用不得超过医疗总费用")
    if disease_code not in selectors.disease_catalog(region_id=region.pk, year=year):
        raise ClaimRefused("disease_code", "unknown_disease", f"{year} 年门诊特殊病种目录中无此病种")
    listed = selectors.patient_of(region_id=region.pk, patient_id=patient_id)
    if listed is not None and listed.fund != fund:
        raise ClaimRefused("fund", "fund_mismatch", "险种与参保人登记险种不符")
    values = dict(fund=fund, patient_id=patient_id, disease_code=disease_code, service_date=service_date,
                  total_cost=total_cost, eligible_cost=eligible_cost)
    with transaction.atomic():
        _lock_patient_year(region_id=region.pk, patient_id=patient_id, fund=fund, year=year)
        existing = SpecialOutpatientClaim.objects.filter(institution=institution, claim_no=claim_no).first()
        if existing is not None:
            if all(getattr(existing, k) == v for k, v in values.items()):
                return ClaimOutcome(claim=existing, created=False, corrections=[])
            raise ClaimConflict(existing)
        claim = SpecialOutpatientClaim.objects.create(region=region, institution=institution, claim_no=claim_no, source=source, **values)
        report = patient_year_settle(
            region=region, patient_id=patient_id, fund=fund, year=year, source=source, user=user,
            cause=f"{service_date:%Y-%m-%d} 的结算单 {claim_no} 晚到，重新结算",
        )
        claim.refresh_from_db()
    return ClaimOutcome(claim=claim, created=True, corrections=report.corrections)


def patient_category_set(*, patient: Patient, category: str, user=None) -> SettleReport:
    """Change a listed patient's category (kept in history) and re-settle the years it touches."""
    with transaction.atomic():
        patient.category = category
        patient.save(update_fields=["category"])
        keys = set(
            SpecialOutpatientClaim.objects.filter(region_id=patient.region_id, patient_id=patient.patient_id)
            .values_list("patient_id", "fund", "service_date__year")
        )
        return patient_years_resettle(region=patient.region, keys=keys, cause="人员类别变更，重新结算", source=ClaimSource.ADMIN, user=user)


# --- a region-year in bulk -------------------------------------------------------------------------

def special_outpatient_settle(
    *, region: Region, year: int, cause: str = "批量结算", source: str = ClaimSource.BUNDLE, user=None, full: bool = False,
) -> SettleReport:
    """Settle every claim of a region-year with the bulk engine: what is not settled is settled, and
    a settled claim whose split the year's order now changes is corrected (recorded). ``full``
    re-examines every claim's explanation too (after a parameter or catalog change)."""
    started = time.perf_counter()
    with transaction.atomic():
        Region.objects.select_for_update().filter(pk=region.pk).first()
        frame = selectors.claims_frame(region_id=region.pk, year=year)
        if frame.empty:
            return SettleReport(seconds=time.perf_counter() - started)
        listed = selectors.categories(region_id=region.pk)
        frame["category"] = frame["patient_id"].map({pid: cat for pid, (_, cat) in listed.items()}).fillna("ordinary")
        frame["total"] = _fen(frame["total_cost"])
        frame["eligible"] = _fen(frame["eligible_cost"])
        frame["level"] = frame["level"].astype("int64")
        stays = selectors.stays_frame(region_id=region.pk, year=year, patient_ids=frame["patient_id"].unique())
        terms = selectors.benefit_terms(region_id=region.pk, year=year)
        catalog = selectors.disease_catalog(region_id=region.pk, year=year)
        results = []
        for fund in FUNDS:
            part = frame[(frame["fund"] == fund) & frame["disease_code"].isin(set(catalog))]
            if part.empty:
                continue
            caps = selectors.disease_caps_fen(catalog=catalog, terms=terms[fund])
            settled = settle_frame(part, stays[stays["fund"] == fund],
                                   terms={fund: terms[fund]}, disease_caps=caps)
            results.append(settled)
        if not results:
            return SettleReport(seconds=time.perf_counter() - started)
        stored = frame.rename(columns={"basic": "stored_basic", "critical": "stored_critical", "assistance": "stored_assistance",
                                       "patient_pay": "stored_patient"})
        frame = stored.join(pd.concat(results), how="inner")
        differs = frame["settled_at"].isna().to_numpy().copy()
        for name in ("basic", "critical", "assistance", "patient"):
            differs |= (frame[f"stored_{name}"].map(_fen_or_none) != frame[name]).to_numpy()
        if full:
            examine = frame
        else:  # every claim of a patient-year where something changed: its explanation may have moved
            touched = set(zip(frame["patient_id"][differs], frame["fund"][differs]))
            examine = frame[[key in touched for key in zip(frame["patient_id"], frame["fund"])]]
        claims = SpecialOutpatientClaim.objects.in_bulk(examine["pk"].tolist()) if len(examine) else {}
        pairs = []
        for row in examine.itertuples(index=False):
            explanation = explanation_of(
                {"basic": row.basic, "critical": row.critical, "assistance": row.assistance, "patient": row.patient,
                 "deductible": row.deductible, "base": row.base, "cap_left": row.cap_left, "disease_cap_left": row.disease_cap_left,
                 "burden": row.burden},
                terms=terms[row.fund], level=row.level, category=row.category,
            )
            pairs.append((claims[row.pk], {
                "basic": from_fen(row.basic), "critical": from_fen(row.critical), "assistance": from_fen(row.assistance),
                "patient_pay": from_fen(row.patient), "explanation": explanation,
            }))
        report = _apply(region=region, pairs=pairs, cause=cause, source=source, user=user)
        report.claims = len(frame)
    report.seconds = time.perf_counter() - started
    return report


def _fen(values: pd.Series) -> pd.Series:
    return pd.Series([to_fen(v) for v in values], index=values.index, dtype="int64")


def _fen_or_none(value) -> int | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return to_fen(value)


def special_outpatient_settle_export(*, region: Region, year: int, out_dir) -> tuple[SettleReport, "Path"]:
    """The command: settle what is not settled, then write special_outpatient.csv."""
    from benefits.exports import special_outpatient_write

    report = special_outpatient_settle(region=region, year=year, cause="批量结算", source=ClaimSource.BUNDLE)
    return report, special_outpatient_write(region=region, year=year, out_dir=out_dir)
