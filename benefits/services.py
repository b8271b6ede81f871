"""Writes of the benefits app: settle a claim at the counter, settle a region-year in bulk,
re-settle a patient's year when a claim, a stay or a category arrives out of order (recording each
change as a SettlementCorrection), and keep the basic parts in the pool as itemized payments (§5).

A patient-fund-year is always settled as a whole, in the spec's order, so the stored split of every
claim is the function BENEFITS.md defines of all stored claims and cases."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from benefits import selectors
from benefits.choices import ClaimSource
from benefits.domain.engine import ClaimIn, StayIn, explanation_of, explanation_texts, settle_frame, settle_patient_year
from benefits.domain.parameters import FUNDS
from benefits.models import BenefitParameters, Patient, SettlementCorrection, SpecialDisease, SpecialOutpatientClaim
from common.bulk import copy_columns, copy_create_columns, ids_of, is_postgres, next_ids
from common.precision import from_fen, to_fen
from common.units_text import units_text_array
from drg.models import Institution, Region
from settlement.choices import ItemizedSource
from settlement.services import ItemizedPayment, itemized_payments_sync, itemized_payments_upsert_columns

PARTS = ("basic", "critical", "assistance", "patient_pay")
PART_COLUMNS = ("basic", "critical", "assistance", "patient")  # the same parts, as settle_frame names its columns


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
    rows: dict = field(default_factory=dict)  # pk -> the claim's row as stored now (patient_year_settle)


@dataclass
class ClaimOutcome:
    claim: SpecialOutpatientClaim
    created: bool
    corrections: list[SettlementCorrection]


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


def _snapshot(row: dict) -> dict:
    return {"basic": _text(row["basic"]), "critical": _text(row["critical"]), "assistance": _text(row["assistance"]),
            "patient": _text(row["patient_pay"]), "explanation": row["explanation"]}


def _apply(*, region: Region, pairs: Iterable[tuple[dict, dict]], cause: str, source: str, user=None) -> SettleReport:
    """Store new splits; record a correction for every settled claim whose split changed; keep the
    pool's itemized payments (basic parts) in sync. ``pairs``: (stored row of CLAIM_ROW_FIELDS, {basic,
    critical, assistance, patient_pay: Decimal, explanation: dict}). Claims whose parts changed are
    written with their parts; claims whose explanation alone moved (cap left, burden) only that."""
    report = SettleReport()
    now = timezone.now()
    pairs = list(pairs)
    _read_explanations_corrected(pairs)
    parts_changed: list[dict] = []
    explained: list[tuple[dict, dict]] = []
    corrections: list[SettlementCorrection] = []
    for row, values in pairs:
        report.claims += 1
        settled = row["settled"]
        same_parts = settled and all(row[p] == values[p] for p in PARTS)
        if same_parts:
            if "explanation" not in row or row["explanation"] != values["explanation"]:
                explained.append((row, values))
            continue
        if settled:
            after = {**row, **values}
            claim = SpecialOutpatientClaim(pk=row["pk"], institution_id=row["institution_id"], claim_no=row["claim_no"])
            corrections.append(SettlementCorrection(claim=claim, before=_snapshot(row), after=_snapshot(after), cause=cause[:300],
                                                    source=source, changed_by=user))
        else:
            report.newly_settled += 1
        row.update(values)
        parts_changed.append(row)
    table = connection.ops.quote_name(SpecialOutpatientClaim._meta.db_table)
    ops = connection.ops
    money = ops.adapt_decimalfield_value
    moment = ops.adapt_datetimefield_value(now)
    in_bulk = len(parts_changed) >= BULK_UPDATE_ROWS and connection.vendor == "postgresql"
    if in_bulk:
        _parts_update(table, {
            "id": [r["pk"] for r in parts_changed],
            **{name: [_text(r[name]) for r in parts_changed] for name in ("basic", "critical", "assistance", "patient_pay")},
            "explanation": [json.dumps(r["explanation"]) for r in parts_changed],
        }, len(parts_changed), now)
    with connection.cursor() as cursor:  # executemany: one prepared statement, no per-row ORM work
        if parts_changed and not in_bulk:
            cursor.executemany(
                f"UPDATE {table} SET basic = %s, critical = %s, assistance = %s, patient_pay = %s, explanation = %s, settled_at = %s WHERE id = %s",
                [(money(r["basic"], 16, 2), money(r["critical"], 16, 2), money(r["assistance"], 16, 2), money(r["patient_pay"], 16, 2),
                  _json(r["explanation"]), moment, r["pk"]) for r in parts_changed],
            )
        if explained and connection.vendor == "postgresql":
            # one statement and one JSON text (a late claim re-explains every later one); an
            # explanation not read back is written only where it differs from the stored one
            cursor.execute(f"UPDATE {table} AS c SET explanation = v.explanation "
                           "FROM jsonb_to_recordset(%s::jsonb) AS v(id bigint, explanation jsonb) "
                           "WHERE c.id = v.id AND c.explanation IS DISTINCT FROM v.explanation",
                           [json.dumps([{"id": r["pk"], "explanation": v["explanation"]} for r, v in explained], ensure_ascii=False)])
        elif explained:
            cursor.executemany(f"UPDATE {table} SET explanation = %s WHERE id = %s", [(_json(v["explanation"]), r["pk"]) for r, v in explained])
    if parts_changed:
        itemized_payments_sync(
            region=region, source=ItemizedSource.SPECIAL_OUTPATIENT, user=user,
            payments=[
                ItemizedPayment(institution_id=r["institution_id"], claim_no=r["claim_no"], fund=r["fund"], month=r["service_date"].replace(day=1),
                                patient_id=r["patient_id"], amount=r["basic"])
                for r in parts_changed
            ],
        )
    if corrections:
        SettlementCorrection.objects.bulk_create(corrections, batch_size=2000)
    report.corrected = len(corrections)
    report.corrections = corrections
    return report


def _read_explanations_corrected(pairs: list[tuple[dict, dict]]) -> None:
    """Read the stored explanation of the settled claims whose parts change and whose explanation
    was not read back: their correction records it as it was."""
    missing = {row["pk"]: row for row, values in pairs
               if "explanation" not in row and row["settled"] and any(row[p] != values[p] for p in PARTS)}
    if missing:
        for pk, explanation in SpecialOutpatientClaim.objects.filter(pk__in=list(missing)).values_list("pk", "explanation"):
            missing[pk]["explanation"] = explanation


BULK_UPDATE_ROWS = 1_000  # from this many settled claims on, PostgreSQL updates them through one COPY


def _parts_update(table: str, columns: dict[str, Any], count: int, now) -> None:
    """UPDATE the parts, explanation and settled_at of many claims by id (PostgreSQL): the new
    values (columns id, basic, critical, assistance, patient_pay as amounts' text, explanation as JSON
    text) go into a temporary table by COPY (common.bulk.copy_columns), then one UPDATE … FROM."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS benefits_claim_parts")
        cursor.execute("CREATE TEMPORARY TABLE benefits_claim_parts ON COMMIT DROP AS "
                       f"SELECT id, basic, critical, assistance, patient_pay, explanation FROM {table} WITH NO DATA")
        copy_columns("benefits_claim_parts", columns, count)
        cursor.execute(
            f"UPDATE {table} AS c SET basic = t.basic, critical = t.critical, assistance = t.assistance, "
            "patient_pay = t.patient_pay, explanation = t.explanation, settled_at = %s "
            "FROM benefits_claim_parts AS t WHERE c.id = t.id", [now])
        cursor.execute("DROP TABLE benefits_claim_parts")


def _json(value: dict):
    return connection.ops.adapt_json_value(value, None)


def patient_year_settle(
    *, region: Region, patient_id: str, fund: str, year: int, cause: str, source: str, user=None,
    catalog: dict | None = None, category: str | None = None, locked: bool = False, from_date: dt.date | None = None,
    terms: dict | None = None,
) -> SettleReport:
    """Settle one patient-fund-year as a whole (the reference engine) and store what changed.
    ``catalog`` and ``category`` may be passed by a caller that has just read them. ``from_date``:
    only a claim of that date or later has arrived (the counter), so a settled claim of an earlier
    date keeps its split and explanation (the year is settled in date order): those are neither read
    back nor compared, the year's claims still all count for the running totals."""
    started = time.perf_counter()
    with transaction.atomic(savepoint=False):
        if not locked:
            _lock_patient_year(region_id=region.pk, patient_id=patient_id, fund=fund, year=year)
        # from_date: the explanations are not read back; the database keeps the ones that are equal
        rows = selectors.claim_rows_of_patient_year(region_id=region.pk, patient_id=patient_id, fund=fund, year=year,
                                                    explanation=from_date is None)
        if not rows:
            return SettleReport()
        fund_terms = (terms if terms is not None else selectors.benefit_terms(region_id=region.pk, year=year))[fund]
        catalog = catalog if catalog is not None else selectors.disease_catalog(region_id=region.pk, year=year)
        caps = selectors.disease_caps_fen(catalog=catalog, terms=fund_terms)
        stays = [StayIn(day, to_fen(share)) for day, share in selectors.stays_of_patient(region_id=region.pk, patient_id=patient_id, fund=fund, year=year)]
        if category is None:
            category = selectors.category_of(region_id=region.pk, patient_id=patient_id)
        splits = settle_patient_year(
            claims=[ClaimIn(r["claim_no"], r["institution__code"], r["service_date"], r["disease_code"], r["institution__level"],
                            to_fen(r["total_cost"]), to_fen(r["eligible_cost"]), key=i)
                    for i, r in enumerate(rows) if r["disease_code"] in caps],
            stays=stays, category=category, terms=fund_terms, disease_caps=caps,
        )
        if from_date is not None:  # the earlier settled claims are as they were
            splits = [s for s in splits if rows[s.key]["service_date"] >= from_date or not rows[s.key]["settled"]]
        pairs = [
            (rows[s.key], {"basic": from_fen(s.basic), "critical": from_fen(s.critical), "assistance": from_fen(s.assistance),
                           "patient_pay": from_fen(s.patient), "explanation": s.explanation()})
            for s in splits
        ]
        report = _apply(region=region, pairs=pairs, cause=cause, source=source, user=user)
        report.rows = {r["pk"]: r for r in rows}
    report.seconds = time.perf_counter() - started
    return report


def patient_years_resettle(*, region: Region, keys: Iterable[tuple[str, str, int]], cause: str, source: str, user=None) -> SettleReport:
    """Re-settle the listed (patient_id, fund, year) of a region that hold claims (a stay or a
    category changed)."""
    total = SettleReport()
    keys = sorted(set(keys))
    # what every patient-year of a region-year shares, read once: terms, catalog, the patients' categories
    years = {year: (selectors.benefit_terms(region_id=region.pk, year=year), selectors.disease_catalog(region_id=region.pk, year=year))
             for year in {year for _p, _f, year in keys}}
    categories = selectors.categories_of(region_id=region.pk, patient_ids={patient_id for patient_id, _f, _y in keys})
    for patient_id, fund, year in keys:
        terms, catalog = years[year]
        report = patient_year_settle(region=region, patient_id=patient_id, fund=fund, year=year, cause=cause, source=source, user=user,
                                     terms=terms, catalog=catalog, category=categories[patient_id])
        total.claims += report.claims
        total.newly_settled += report.newly_settled
        total.corrected += report.corrected
        total.corrections.extend(report.corrections)
    return total


MANY_PATIENT_YEARS = 200  # above this, a region-year is settled in bulk (it writes only what changed)


def cases_changed_resettle(*, region_id: int, keys: Iterable[tuple[str, str, int]], source: str) -> SettleReport:
    """A stay was stored or changed: re-settle the patient-years it touches that hold claims (one
    by one for a few, the whole region-year in bulk for many, e.g. after a bundle load)."""
    keys = set(keys)
    if not keys:
        return SettleReport()
    region = Region.objects.get(pk=region_id)
    cause = "住院病例到达，重新结算"
    with_claims = selectors.patient_years_with_claims(region_id=region_id, keys=keys)
    if len(with_claims) <= MANY_PATIENT_YEARS:
        return patient_years_resettle(region=region, keys=with_claims, cause=cause, source=source)
    return region_years_resettle(region_id=region_id, years=sorted({year for _p, _f, year in with_claims}), source=source)


def region_years_resettle(*, region_id: int, years: Iterable[int], source: str) -> SettleReport:
    """Many stays changed at once (a bundle load): settle the region-years in bulk; only what moved
    is written and recorded."""
    region = Region.objects.get(pk=region_id)
    cause = "住院病例到达，重新结算"
    total = SettleReport()
    for year in sorted(set(years)):
        report = special_outpatient_settle(region=region, year=year, cause=cause, source=source)
        total.claims += report.claims
        total.newly_settled += report.newly_settled
        total.corrected += report.corrected
        total.corrections.extend(report.corrections)
    return total


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
        raise ClaimRefused("eligible_cost", "above_total_cost", _("政策范围内费用不得超过医疗总费用"))
    catalog = selectors.disease_catalog(region_id=region.pk, year=year)
    if disease_code not in catalog:
        raise ClaimRefused("disease_code", "unknown_disease", _("%(year)s 年门诊特殊病种目录中无此病种") % {"year": year})
    listed = selectors.patient_of(region_id=region.pk, patient_id=patient_id)
    if listed is not None and listed.fund != fund:
        raise ClaimRefused("fund", "fund_mismatch", _("险种与参保人登记险种不符"))
    values = dict(fund=fund, patient_id=patient_id, disease_code=disease_code, service_date=service_date,
                  total_cost=total_cost, eligible_cost=eligible_cost)
    with transaction.atomic():
        _lock_patient_year(region_id=region.pk, patient_id=patient_id, fund=fund, year=year)
        try:  # stored first (one round trip less for a new claim); a claim_no already stored is read back
            with transaction.atomic():
                claim = SpecialOutpatientClaim.objects.create(region=region, institution=institution, claim_no=claim_no, source=source, **values)
        except IntegrityError:
            existing = SpecialOutpatientClaim.objects.get(institution=institution, claim_no=claim_no)
            if all(getattr(existing, k) == v for k, v in values.items()):
                return ClaimOutcome(claim=existing, created=False, corrections=[])
            raise ClaimConflict(existing) from None
        report = patient_year_settle(
            region=region, patient_id=patient_id, fund=fund, year=year, source=source, user=user,
            cause=f"{service_date:%Y-%m-%d} 的结算单 {claim_no} 晚到，重新结算",
            catalog=catalog, category=listed.category if listed is not None else "ordinary", locked=True, from_date=service_date,
        )
        stored = report.rows[claim.pk]
        for name in PARTS:
            setattr(claim, name, stored[name])
        claim.explanation, claim.settled_at = stored["explanation"], timezone.now()
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
    pending: pd.DataFrame | None = None, region_stays: pd.DataFrame | None = None,
) -> SettleReport:
    """Settle every claim of a region-year with the bulk engine: what is not settled is settled, and
    a settled claim whose split the year's order now changes is corrected (recorded). ``full``
    re-examines every claim's explanation too (after a parameter or catalog change).

    ``pending`` (PostgreSQL): the claims of a year that has none stored yet, not stored either, in
    the form of selectors.claims_frame with their ids drawn (_pending_frame). They are settled as
    the stored claims would be, then stored with their split by one COPY, where storing them first
    would write every claim twice (an insert, then an update of its parts). Should a claim of the
    year have been stored meanwhile (at the counter), they are stored first and the year settled
    as usual.

    ``region_stays``: every stay of the region, held by a caller that has just stored them all and
    not yet made them readable (a load creating its region, drg.partitions.PartitionFill), in the
    form of selectors.stays_frame; the year's stays of the claims' patients are taken from it."""
    started = time.perf_counter()
    with transaction.atomic():
        Region.objects.select_for_update().filter(pk=region.pk).first()
        frame = selectors.claims_frame(region_id=region.pk, year=year)
        if pending is not None and not frame.empty:
            # a claim of the year was stored meanwhile (at the counter): the pending ones are stored
            # as any new claim, then the year is settled as a whole
            _pending_store(region=region, pending=pending, settled=pending.iloc[:0], terms={}, user=user)
            frame, pending = selectors.claims_frame(region_id=region.pk, year=year), None
        elif pending is not None:
            frame = pending
        if frame.empty:
            return SettleReport(seconds=time.perf_counter() - started)
        listed = selectors.categories(region_id=region.pk)
        category = frame["patient_id"].map({pid: cat for pid, (_, cat) in listed.items()}).astype(object)
        frame["category"] = category.where(category.notna(), "ordinary")
        if region_stays is None:
            stays = selectors.stays_frame(region_id=region.pk, year=year, patient_ids=frame["patient_id"].unique())
        else:
            stays = _stays_of_year(region_stays, year=year, patient_ids=frame["patient_id"].unique())
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
        if pending is not None:  # every claim is new: none to compare, correct or record
            settled = frame.join(pd.concat(results), how="inner") if results else frame.iloc[:0]
            _pending_store(region=region, pending=pending, settled=settled, terms=terms, user=user)
            return SettleReport(claims=len(settled), newly_settled=len(settled), seconds=time.perf_counter() - started)
        if not results:
            return SettleReport(seconds=time.perf_counter() - started)
        frame = frame.join(pd.concat(results), how="inner")
        differs = ~frame["settled"].to_numpy()
        for name in PART_COLUMNS:
            differs |= (frame[f"stored_{name}"] != frame[name]).fillna(True).to_numpy(dtype=bool)
        if full:
            examine = frame
        else:  # every claim of a patient-year where something changed: its explanation may have moved
            patient_years = pd.MultiIndex.from_arrays([frame["patient_id"], frame["fund"]])
            examine = frame[patient_years.isin(patient_years[differs].unique())]
        fresh = ~examine["settled"].to_numpy()
        fresh_count = 0
        if fresh.any() and connection.vendor == "postgresql":  # never settled: nothing to compare, correct or record
            _settle_fresh(region=region, rows=examine[fresh], terms=terms, user=user)
            examine, fresh_count = examine[~fresh], int(fresh.sum())
        wanted = set(examine["pk"].tolist())
        claims = ({r["pk"]: r for r in selectors.claim_rows(selectors.settled_claims(region_id=region.pk, year=year, settled=None)) if r["pk"] in wanted}
                  if wanted else {})
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
        report.newly_settled += fresh_count
        report.claims = len(frame)
    report.seconds = time.perf_counter() - started
    return report


def _settle_fresh(*, region: Region, rows: pd.DataFrame, terms: dict, user=None) -> None:
    """Store the split of claims never settled, in bulk (PostgreSQL): parts and explanations built
    column by column (explanation_texts), written by one COPY and one UPDATE … FROM, their pool
    rows by one upsert. What ``_apply`` does for such claims, without a Python object per claim."""
    parts = _parts_text(rows)
    table = connection.ops.quote_name(SpecialOutpatientClaim._meta.db_table)
    _parts_update(table, {"id": rows["pk"].to_numpy(dtype="int64"), "basic": parts["basic"], "critical": parts["critical"],
                          "assistance": parts["assistance"], "patient_pay": parts["patient"],
                          "explanation": explanation_texts(rows, terms)}, len(rows), timezone.now())
    _pool_upsert(region=region, rows=rows, basic=parts["basic"], user=user)


def _parts_text(rows: pd.DataFrame) -> dict[str, Any]:
    """The settled parts (fen) of settle_frame's rows as exact amounts' text, an Arrow array each."""
    return {name: units_text_array(rows[name].to_numpy(), 2) for name in PART_COLUMNS}


def _pool_upsert(*, region: Region, rows: pd.DataFrame, basic, user=None) -> None:
    """The pool's itemized payments of newly settled claims: their basic parts, by one upsert."""
    itemized_payments_upsert_columns(region=region, source=ItemizedSource.SPECIAL_OUTPATIENT, user=user, columns={
        "institution_id": rows["institution_id"].to_numpy(dtype="int64"), "claim_no": rows["claim_no"], "fund": rows["fund"],
        "month": pd.to_datetime(rows["service_date"]).dt.strftime("%Y-%m-01"), "patient_id": rows["patient_id"],
        "amount": basic,
    })


def _pending_frame(*, region: Region, rows: pd.DataFrame, institutions: dict[str, int]) -> pd.DataFrame:
    """New bundle claims (typed rows as benefits_bundle_store takes them) in the form of
    selectors.claims_frame on PostgreSQL, their ids drawn from the table's sequence: nothing stored,
    nothing settled."""
    levels = dict(Institution.objects.filter(region=region).values_list("pk", "level"))
    institution_ids = ids_of(rows["institution_code"], institutions)
    count = len(rows)
    frame = pd.DataFrame({
        "pk": next_ids(SpecialOutpatientClaim, count), "institution_id": institution_ids,
        "institution_code": rows["institution_code"].to_numpy(dtype=object), "level": ids_of(pd.Series(institution_ids), levels),
        **{name: rows[name].to_numpy(dtype=object) for name in ("claim_no", "fund", "patient_id", "disease_code")},
        "service_date": [day.isoformat() for day in rows["service_date"]],
        "total": np.array([to_fen(value) for value in rows["total_cost"]], dtype="int64"),
        "eligible": np.array([to_fen(value) for value in rows["eligible_cost"]], dtype="int64"),
        **{name: pd.array([pd.NA] * count, dtype="Int64") for name in ("stored_basic", "stored_critical", "stored_assistance", "stored_patient")},
        "settled": np.zeros(count, dtype=bool),
    })
    return frame


def _pending_store(*, region: Region, pending: pd.DataFrame, settled: pd.DataFrame, terms: dict, user=None) -> None:
    """Store the pending claims by one COPY, those the engine settled (``settled``: the rows of
    settle_frame, indexed as ``pending``) with their parts, explanation and settled_at, the others
    (a disease outside the year's catalog) unsettled as any new claim; then the pool rows of the
    settled ones."""
    count = len(pending)
    at = pending.index.get_indexer(settled.index)  # each settled claim's row among the pending
    if (at < 0).any():
        raise ValueError("settled claims that are not among the pending ones")
    where = np.full(count, -1, dtype="int64")
    where[at] = np.arange(len(settled), dtype="int64")
    take = pa.array(where, mask=where < 0)  # null where the claim is not settled

    def spread(values: pa.Array) -> pa.Array:
        return values.take(take)

    if len(settled):
        parts, texts = _parts_text(settled), explanation_texts(settled, terms)
    else:  # none settled: every claim stored as any new one
        parts = {name: pa.array([], type=pa.string()) for name in PART_COLUMNS}
        texts = pa.array([], type=pa.string())
    explanation = pc.fill_null(spread(texts), "{}")
    stamp = timezone.now().isoformat()
    columns = {
        "region_id": region.pk, "institution_id": pending["institution_id"].to_numpy(dtype="int64"),
        **{name: pending[name] for name in ("claim_no", "fund", "patient_id", "disease_code", "service_date")},
        "total_cost": units_text_array(pending["total"].to_numpy(), 2), "eligible_cost": units_text_array(pending["eligible"].to_numpy(), 2),
        "source": ClaimSource.BUNDLE,
        "basic": spread(parts["basic"]), "critical": spread(parts["critical"]), "assistance": spread(parts["assistance"]),
        "patient_pay": spread(parts["patient"]), "explanation": explanation,
        "settled_at": pc.if_else(pa.array(where >= 0), stamp, pa.scalar(None, pa.string())),
    }
    copy_create_columns(SpecialOutpatientClaim, columns, count, ids=pending["pk"].to_numpy(dtype="int64"))
    if len(settled):
        _pool_upsert(region=region, rows=settled, basic=parts["basic"], user=user)


def _stays_of_year(stays: pd.DataFrame, *, year: int, patient_ids) -> pd.DataFrame:
    """The rows selectors.stays_frame would read, from stays held in memory: discharged in `year`,
    of one of `patient_ids` (discharge dates as ISO text, which sorts as the dates do)."""
    # the claims' patients first (one hash lookup a stay), then the dates of their few stays
    theirs = stays.loc[stays["patient_id"].isin(list(patient_ids)).to_numpy(dtype=bool), ["patient_id", "fund", "discharge_date", "share"]]
    day = theirs["discharge_date"].astype(str)
    keep = (day >= f"{year:04d}-01-01") & (day <= f"{year:04d}-12-31")
    return theirs.loc[keep.to_numpy(dtype=bool)].reset_index(drop=True)


def special_outpatient_settle_export(*, region: Region, year: int, out_dir) -> tuple[SettleReport, "Path"]:
    """The command: settle what is not settled, then write special_outpatient.csv."""
    from benefits.exports import special_outpatient_write

    report = special_outpatient_settle(region=region, year=year, cause="批量结算", source=ClaimSource.BUNDLE)
    return report, special_outpatient_write(region=region, year=year, out_dir=out_dir)


# --- the bundle's benefits files (the loader validates; this stores and settles) --------------------

@dataclass
class BundleBenefitsReport:
    files: dict = field(default_factory=dict)  # file -> {"created": n, "updated": n, "unchanged": n}
    settled: list[SettleReport] = field(default_factory=list)
    settled_years: set[int] = field(default_factory=set)  # the region-years settled as a whole, after every stored stay


def _counts(created: int = 0, updated: int = 0, unchanged: int = 0) -> dict:
    return {"created": created, "updated": updated, "unchanged": unchanged}


_CLAIM_COLUMNS = ("claim_no", "fund", "patient_id", "disease_code", "service_date", "total_cost", "eligible_cost")


def _claims_create(*, region: Region, rows: pd.DataFrame, institutions: dict[str, int]) -> None:
    """Store new bundle claims (typed rows as benefits_bundle_store takes them): by columns through
    COPY on PostgreSQL, as objects elsewhere."""
    institution_ids = rows["institution_code"].map(institutions)
    if is_postgres():
        copy_create_columns(SpecialOutpatientClaim, {
            "region_id": region.pk, "institution_id": institution_ids.to_numpy(dtype="int64"),
            **{name: rows[name] for name in _CLAIM_COLUMNS}, "source": ClaimSource.BUNDLE,
        }, len(rows))
        return
    SpecialOutpatientClaim.objects.bulk_create([
        SpecialOutpatientClaim(region=region, institution_id=inst_id, source=ClaimSource.BUNDLE, **dict(zip(_CLAIM_COLUMNS, values)))
        for inst_id, *values in zip(institution_ids, *(rows[name] for name in _CLAIM_COLUMNS))
    ], batch_size=2000)


def benefits_bundle_store(
    *, region: Region, year: int, terms: dict | None, patients: pd.DataFrame | None, diseases: pd.DataFrame | None,
    claims: pd.DataFrame | None, user=None, region_stays: pd.DataFrame | None = None,
) -> BundleBenefitsReport:
    """Store a validated bundle's benefits data and settle on load (BENEFITS.md), idempotently:
    identical records are left alone; changed patients, catalog entries, parameters or claims are
    updated (history kept) and the touched years re-settled, every changed split recorded as a
    correction.

    ``terms``: fund -> BenefitTerms of params.json (None: not given). Frames hold typed rows:
    patients (patient_id, fund, category); diseases (code, name, class, annual_cap Decimal|None);
    claims (claim_no, institution_code, fund, patient_id, disease_code, service_date date,
    total_cost Decimal, eligible_cost Decimal).

    ``region_stays``: the region's every stay when the caller holds them all and they are not
    readable yet (special_outpatient_settle); the region then has no other claims than these."""
    from simple_history.utils import bulk_create_with_history, bulk_update_with_history

    report = BundleBenefitsReport()
    years: set[int] = set()
    full_years: set[int] = set()
    resettle: set[tuple[str, str, int]] = set()
    pending: dict[int, pd.DataFrame] = {}  # year -> new claims settled before they are stored (_pending_frame)
    with transaction.atomic():
        if terms is not None:
            created = updated = unchanged = 0
            for fund, t in terms.items():
                values = {
                    "ratio_level_1": t.ratio(1), "ratio_level_2": t.ratio(2), "ratio_level_3": t.ratio(3), "deductible": t.deductible,
                    "shared_annual_cap": t.shared_annual_cap, "critical_deductible": t.critical_deductible, "critical_ratio": t.critical_ratio,
                    "class_cap_i": t.class_caps["I"], "class_cap_ii": t.class_caps["II"], "easy_deductible_factor": t.easy_deductible_factor,
                    "easy_critical_ratio": t.easy_critical_ratio, "assistance_ratio": t.assistance_ratio, "subsistence_uplift": t.subsistence_uplift,
                }
                row = BenefitParameters.objects.filter(region=region, fund=fund, year=year).first()
                if row is None:
                    BenefitParameters.objects.create(region=region, fund=fund, year=year, **values)
                    created += 1
                elif any(getattr(row, k) != v for k, v in values.items()):
                    for k, v in values.items():
                        setattr(row, k, v)
                    row.save()
                    updated += 1
                else:
                    unchanged += 1
            if created or updated:
                full_years.add(year)
            report.files["params.json benefits"] = _counts(created, updated, unchanged)
        if diseases is not None:
            stored = {d.code: d for d in SpecialDisease.objects.filter(region=region, year=year)}
            new, changed = [], []
            for code, name, cls, cap in diseases[["code", "name", "class", "annual_cap"]].itertuples(index=False, name=None):
                cap = None if cap is None or (isinstance(cap, float) and np.isnan(cap)) else cap
                row = stored.get(code)
                if row is None:
                    new.append(SpecialDisease(region=region, year=year, code=code, name=name, disease_class=cls, annual_cap=cap))
                elif (row.name, row.disease_class, row.annual_cap) != (name, cls, cap):
                    row.name, row.disease_class, row.annual_cap = name, cls, cap
                    changed.append(row)
            if new:
                bulk_create_with_history(new, SpecialDisease, batch_size=2000, default_user=user)
            if changed:
                bulk_update_with_history(changed, SpecialDisease, ["name", "disease_class", "annual_cap"], batch_size=2000, default_user=user)
                full_years.add(year)
            report.files["special_diseases.csv"] = _counts(len(new), len(changed), len(diseases) - len(new) - len(changed))
        if patients is not None:
            stored = {p.patient_id: p for p in Patient.objects.filter(region=region)}
            new, changed = [], []
            for pid, fund, category in patients[["patient_id", "fund", "category"]].itertuples(index=False, name=None):
                row = stored.get(pid)
                if row is None:
                    new.append((pid, fund, category))
                    resettle.add((pid, fund, -1))
                elif (row.fund, row.category) != (fund, category):
                    row.fund, row.category = fund, category
                    changed.append(row)
                    resettle.add((pid, fund, -1))
            if new and is_postgres():  # by COPY from their columns, with their '+' history rows
                copy_create_columns(Patient, {"region_id": region.pk, **dict(zip(("patient_id", "fund", "category"), map(list, zip(*new))))},
                                    len(new), history={"user": user, "reason": None, "date": timezone.now()})
            elif new:
                bulk_create_with_history([Patient(region=region, patient_id=pid, fund=fund, category=category) for pid, fund, category in new],
                                         Patient, batch_size=2000, default_user=user)
            if changed:
                bulk_update_with_history(changed, Patient, ["fund", "category"], batch_size=2000, default_user=user)
            report.files["patients.csv"] = _counts(len(new), len(changed), len(patients) - len(new) - len(changed))
        if claims is not None:
            institutions = dict(Institution.objects.filter(region=region).values_list("code", "pk"))
            stored = {(r[0], r[1]): r for r in SpecialOutpatientClaim.objects.filter(region=region).values_list(
                "institution_id", "claim_no", "pk", "fund", "patient_id", "disease_code", "service_date", "total_cost", "eligible_cost")}
            new, changed = [], []  # new: positions in `claims`
            if not stored:  # the region's first claims: every one is new, nothing to compare
                new = list(range(len(claims)))
            else:
                for position, (no, inst, fund, pid, disease, day, total, eligible) in enumerate(claims[[
                    "claim_no", "institution_code", "fund", "patient_id", "disease_code", "service_date", "total_cost", "eligible_cost",
                ]].itertuples(index=False, name=None)):
                    inst_id = institutions[inst]
                    row = stored.get((inst_id, no))
                    if row is None:
                        new.append(position)
                    elif row[3:] != (fund, pid, disease, day, total, eligible):
                        changed.append(SpecialOutpatientClaim(pk=row[2], fund=fund, patient_id=pid, disease_code=disease, service_date=day,
                                                              total_cost=total, eligible_cost=eligible))
                        years.update((day.year, row[6].year))  # the year it joins and the year it leaves
                        resettle.add((row[4], row[3], row[6].year))  # the year it leaves
            if new:
                fresh = claims.iloc[new]
                year_of = np.array([day.year for day in fresh["service_date"]], dtype="int64")
                years.update(year_of.tolist())
                if is_postgres():  # a year with no stored claim: its new claims are settled before they are stored
                    stored_years = {d.year for d in SpecialOutpatientClaim.objects.filter(region=region).dates("service_date", "year")}
                    for pending_year in sorted(set(year_of.tolist()) - stored_years):
                        pending[pending_year] = _pending_frame(region=region, rows=fresh[year_of == pending_year], institutions=institutions)
                    fresh = fresh[~np.isin(year_of, list(pending))]
                if len(fresh):
                    _claims_create(region=region, rows=fresh, institutions=institutions)
            if changed:
                SpecialOutpatientClaim.objects.bulk_update(
                    changed, ["fund", "patient_id", "disease_code", "service_date", "total_cost", "eligible_cost"], batch_size=2000)
                # the pool row follows the claim's month, patient and fund even when its split stays the same
                for start in range(0, len(changed), 5000):
                    chunk = [c.pk for c in changed[start:start + 5000]]
                    itemized_payments_sync(
                        region=region, source=ItemizedSource.SPECIAL_OUTPATIENT, user=user,
                        payments=[
                            ItemizedPayment(institution_id=i, claim_no=no, fund=f, month=d.replace(day=1), patient_id=p, amount=b)
                            for i, no, f, d, p, b in SpecialOutpatientClaim.objects.filter(pk__in=chunk, basic__isnull=False)
                            .values_list("institution_id", "claim_no", "fund", "service_date", "patient_id", "basic")
                        ],
                    )
            report.files["special_outpatient_claims.csv"] = _counts(len(new), len(changed), len(claims) - len(new) - len(changed))
            # a year whose claims the file leaves as they are is settled again only if some claim of it
            # is not settled; stays the load changes are announced and re-settle their patients' years
            years.update(d.year for d in SpecialOutpatientClaim.objects.filter(region=region, settled_at__isnull=True)
                         .dates("service_date", "year"))
        for settle_year in sorted(years | full_years | ({year} if resettle else set())):
            report.settled_years.add(settle_year)
            report.settled.append(special_outpatient_settle(
                region=region, year=settle_year, cause="批量文件载入，重新结算", source=ClaimSource.BUNDLE, user=user,
                full=settle_year in full_years, pending=pending.pop(settle_year, None), region_stays=region_stays,
            ))
        if pending:  # every pending year is among the new claims' years, settled above
            raise RuntimeError(f"new claims of {sorted(pending)} were neither settled nor stored")
        settled_years = years | full_years | {year}
        moved = {p for p, _f, _y in resettle}
        other_years = {
            key for key in SpecialOutpatientClaim.objects.filter(region=region).exclude(service_date__year__in=settled_years)
            .values_list("patient_id", "fund", "service_date__year").distinct()
            if key[0] in moved
        } if resettle else set()
        if other_years:
            if region_stays is not None:  # a new region's claims are all of this file, their years all settled above
                raise RuntimeError(f"stored claims of {sorted({y for _p, _f, y in other_years})} in a region this load creates")
            report.settled.append(patient_years_resettle(region=region, keys=other_years, cause="人员类别变更，重新结算", source=ClaimSource.BUNDLE, user=user))
    return report
