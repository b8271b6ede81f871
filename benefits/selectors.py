"""Reads of the benefits app: parameters in force, the catalog's caps, a patient's year, claims as
frames for the engine, payer statements."""
from __future__ import annotations

import datetime as dt
import json
from typing import Iterable
from decimal import Decimal

import pandas as pd
from django.db import connection
from django.db.models import BooleanField, Count, ExpressionWrapper, Q, Sum
from django.db.models.functions import TruncMonth

from benefits.domain.parameters import FUNDS, BenefitTerms, default_terms
from benefits.models import BenefitParameters, Patient, SettlementCorrection, SpecialDisease, SpecialOutpatientClaim
from common.bulk import is_postgres, read_frame
from common.precision import to_fen
from drg.models import Case, Institution, Region

ZERO = Decimal("0")


FEW_PATIENTS = 1_000  # up to this many keys, the claims are looked up by patient


def patient_years_with_claims(*, region_id: int, keys: Iterable[tuple[str, str, int]]) -> set[tuple[str, str, int]]:
    """The (patient_id, fund, year) among `keys` for which the region holds special-outpatient claims."""
    keys = set(keys)
    if not keys:
        return set()
    years = {year for _p, _f, year in keys}
    claims = SpecialOutpatientClaim.objects.filter(
        region_id=region_id, service_date__gte=dt.date(min(years), 1, 1), service_date__lte=dt.date(max(years), 12, 31))
    if len(keys) <= FEW_PATIENTS:
        claims = claims.filter(patient_id__in=sorted({p for p, _f, _y in keys}))
    return {key for key in claims.values_list("patient_id", "fund", "service_date__year").distinct() if key in keys}


def terms_from_row(row: BenefitParameters) -> BenefitTerms:
    return BenefitTerms(
        fund=row.fund,
        ratio_by_level={1: row.ratio_level_1, 2: row.ratio_level_2, 3: row.ratio_level_3},
        deductible=row.deductible, shared_annual_cap=row.shared_annual_cap,
        critical_deductible=row.critical_deductible, critical_ratio=row.critical_ratio,
        class_caps={"I": row.class_cap_i, "II": row.class_cap_ii},
        easy_deductible_factor=row.easy_deductible_factor, easy_critical_ratio=row.easy_critical_ratio,
        assistance_ratio=row.assistance_ratio, subsistence_uplift=row.subsistence_uplift,
    )


def benefit_terms(*, region_id: int, year: int) -> dict[str, BenefitTerms]:
    """The terms of both funds for a region-year: the stored parameters, else the spec's defaults."""
    terms = {fund: default_terms(fund) for fund in FUNDS}
    for row in BenefitParameters.objects.filter(region_id=region_id, year=year):
        terms[row.fund] = terms_from_row(row)
    return terms


def disease_catalog(*, region_id: int, year: int) -> dict[str, tuple[str, Decimal | None]]:
    """code → (class, annual_cap or None) of the region-year catalog."""
    return {
        code: (cls, cap)
        for code, cls, cap in SpecialDisease.objects.filter(region_id=region_id, year=year).values_list("code", "disease_class", "annual_cap")
    }


def disease_codes_by_year(*, region_id: int) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for year, code in SpecialDisease.objects.filter(region_id=region_id).values_list("year", "code"):
        out.setdefault(year, set()).add(code)
    return out


def disease_caps_fen(*, catalog: dict[str, tuple[str, Decimal | None]], terms: BenefitTerms) -> dict[str, int]:
    return {code: int(terms.disease_cap(cls, cap) * 100) for code, (cls, cap) in catalog.items()}


def patient_of(*, region_id: int, patient_id: str) -> Patient | None:
    return Patient.objects.filter(region_id=region_id, patient_id=patient_id).first()


def category_of(*, region_id: int, patient_id: str) -> str:
    return categories_of(region_id=region_id, patient_ids={patient_id})[patient_id]


def categories_of(*, region_id: int, patient_ids: set[str]) -> dict[str, str]:
    """patient_id → category for each of ``patient_ids``: a listed patient's, else ordinary."""
    if not patient_ids:
        return {}
    listed = dict(Patient.objects.filter(region_id=region_id, patient_id__in=sorted(patient_ids)).values_list("patient_id", "category"))
    return {patient_id: listed.get(patient_id, "ordinary") for patient_id in patient_ids}


def stays_of_patient(*, region_id: int, patient_id: str, fund: str, year: int) -> list[tuple[dt.date, Decimal]]:
    """(discharge_date, total_cost − self_pay) of the patient's cases of the fund discharged in the year."""
    rows = Case.objects.filter(
        region_id=region_id, patient_id=patient_id, fund=fund,
        discharge_date__gte=dt.date(year, 1, 1), discharge_date__lte=dt.date(year, 12, 31),
    ).values_list("discharge_date", "total_cost", "self_pay")
    return [(day, total - self_pay) for day, total, self_pay in rows]


# a stored claim as the settlement reads it: what it stores (CLAIM_ROW_FIELDS; "settled": settled_at
# is set) and what settles it (CLAIM_INPUT_FIELDS)
CLAIM_ROW_FIELDS = ("pk", "institution_id", "claim_no", "fund", "patient_id", "service_date", "basic", "critical", "assistance",
                    "patient_pay", "explanation", "settled")
CLAIM_INPUT_FIELDS = ("institution__code", "institution__level", "disease_code", "total_cost", "eligible_cost")
_SETTLED = ExpressionWrapper(Q(settled_at__isnull=False), output_field=BooleanField())


def claim_rows(queryset, fields: tuple[str, ...] = CLAIM_ROW_FIELDS) -> list[dict]:
    """The claims of ``queryset`` as dicts of ``fields`` (names of CLAIM_ROW_FIELDS and CLAIM_INPUT_FIELDS)."""
    return [dict(zip(fields, values)) for values in queryset.annotate(settled=_SETTLED).values_list(*fields)]


_PATIENT_YEAR_SQL = """
    SELECT c.id, c.institution_id, c.claim_no, c.fund, c.patient_id, c.service_date, c.basic, c.critical, c.assistance,
           c.patient_pay, c.settled_at IS NOT NULL, i.code, i.level, c.disease_code, c.total_cost, c.eligible_cost{explanation}
    FROM {claims} AS c JOIN {institutions} AS i ON i.id = c.institution_id
    WHERE c.region_id = %s AND c.patient_id = %s AND c.fund = %s AND c.service_date BETWEEN %s AND %s
"""


def claim_rows_of_patient_year(*, region_id: int, patient_id: str, fund: str, year: int, explanation: bool = True) -> list[dict]:
    """A patient-fund-year's claims as settlement rows (CLAIM_ROW_FIELDS + CLAIM_INPUT_FIELDS; without
    the explanation unless asked). On PostgreSQL one plain query: the counter reads a heavy
    patient's year on every claim, and the ORM's row building costs twice the query."""
    fields = tuple(f for f in CLAIM_ROW_FIELDS if f != "explanation") + CLAIM_INPUT_FIELDS + (("explanation",) if explanation else ())
    if not is_postgres():
        return claim_rows(claims_of_patient_year(region_id=region_id, patient_id=patient_id, fund=fund, year=year), fields)
    sql = _PATIENT_YEAR_SQL.format(explanation=", c.explanation" if explanation else "", claims=SpecialOutpatientClaim._meta.db_table,
                                   institutions=Institution._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql, [region_id, patient_id, fund, dt.date(year, 1, 1), dt.date(year, 12, 31)])
        rows = [dict(zip(fields, values)) for values in cursor.fetchall()]
    if explanation:  # Django reads jsonb as text and decodes it in the field: so does this read
        for row in rows:
            row["explanation"] = json.loads(row["explanation"])
    return rows


def claims_of_patient_year(*, region_id: int, patient_id: str, fund: str, year: int):
    return SpecialOutpatientClaim.objects.filter(
        region_id=region_id, patient_id=patient_id, fund=fund,
        service_date__gte=dt.date(year, 1, 1), service_date__lte=dt.date(year, 12, 31),
    ).select_related("institution")


CLAIMS_FRAME_TEXT = ("institution_code", "claim_no", "fund", "patient_id", "disease_code")
_PARTS_STORED = (("stored_basic", "basic"), ("stored_critical", "critical"), ("stored_assistance", "assistance"),
                 ("stored_patient", "patient_pay"))


def claims_frame(*, region_id: int, year: int) -> pd.DataFrame:
    """Every claim of a region-year with what the engine needs and what is stored: pk,
    institution_id, institution_code, level, claim_no, fund, patient_id, disease_code, service_date
    (ISO text on PostgreSQL, a date elsewhere), total and eligible (int fen), the stored parts
    stored_basic, stored_critical, stored_assistance, stored_patient (fen, <NA> before settlement)
    and settled. PostgreSQL reads them with one COPY, the fen computed by the database."""
    columns = ["pk", "institution_id", "institution_code", "level", "claim_no", "fund", "patient_id", "disease_code",
               "service_date", "total", "eligible", *(name for name, _c in _PARTS_STORED), "settled"]
    start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    if is_postgres():
        fen = "CAST(ROUND(c.{} * 100) AS BIGINT)".format
        sql = (
            "SELECT c.id, c.institution_id, i.code, i.level, c.claim_no, c.fund, c.patient_id, c.disease_code, "
            f"to_char(c.service_date, 'YYYY-MM-DD'), {fen('total_cost')}, {fen('eligible_cost')}, "
            f"{', '.join(fen(column) for _n, column in _PARTS_STORED)}, CASE WHEN c.settled_at IS NULL THEN 0 ELSE 1 END "
            f"FROM {SpecialOutpatientClaim._meta.db_table} AS c JOIN {Institution._meta.db_table} AS i ON i.id = c.institution_id "
            "WHERE c.region_id = %s AND c.service_date BETWEEN %s AND %s"
        )
        dtypes = {"pk": "int64", "institution_id": "int64", "level": "int64", "service_date": str, "total": "int64", "eligible": "int64",
                  "settled": "int64", **{name: str for name in CLAIMS_FRAME_TEXT}, **{name: "Int64" for name, _c in _PARTS_STORED}}
        frame = read_frame(sql, [region_id, start, end], columns, dtypes)
        frame["settled"] = frame["settled"].astype(bool)
        return frame
    rows = SpecialOutpatientClaim.objects.filter(region_id=region_id, service_date__gte=start, service_date__lte=end).values_list(
        "pk", "institution_id", "institution__code", "institution__level", "claim_no", "fund", "patient_id", "disease_code",
        "service_date", "total_cost", "eligible_cost", *(column for _n, column in _PARTS_STORED), "settled_at")
    frame = pd.DataFrame.from_records(list(rows), columns=columns)
    for name in ("total", "eligible", *(name for name, _c in _PARTS_STORED)):
        frame[name] = pd.array([None if value is None else to_fen(value) for value in frame[name]], dtype="Int64")
    frame[["total", "eligible"]] = frame[["total", "eligible"]].astype("int64")
    frame["level"] = frame["level"].astype("int64")
    frame["settled"] = frame["settled"].notna()
    return frame


def stays_frame(*, region_id: int, year: int, patient_ids) -> pd.DataFrame:
    """The region-year's stays of the given patients: patient_id, fund, discharge_date (ISO text on
    PostgreSQL, a date elsewhere) and share (total_cost - self_pay, in fen). PostgreSQL reads them
    with one COPY, the share computed by the database."""
    if is_postgres():
        patients = sorted({str(p) for p in patient_ids})
        columns = ["patient_id", "fund", "discharge_date", "share"]
        if not patients:
            return pd.DataFrame({c: pd.Series(dtype="int64" if c == "share" else object) for c in columns})
        sql = (
            "SELECT patient_id, fund, to_char(discharge_date, 'YYYY-MM-DD'), "
            "CAST(ROUND((total_cost - self_pay) * 100) AS BIGINT) "
            f"FROM {Case._meta.db_table} WHERE region_id = %s AND discharge_date BETWEEN %s AND %s "
            "AND patient_id = ANY(%s::text[])"
        )
        return read_frame(sql, [region_id, dt.date(year, 1, 1), dt.date(year, 12, 31), patients], columns,
                          {"patient_id": str, "fund": str, "discharge_date": str, "share": "int64"})
    rows = Case.objects.filter(
        region_id=region_id, discharge_date__gte=dt.date(year, 1, 1), discharge_date__lte=dt.date(year, 12, 31),
    ).values_list("patient_id", "fund", "discharge_date", "total_cost", "self_pay")
    frame = pd.DataFrame.from_records(list(rows), columns=["patient_id", "fund", "discharge_date", "total_cost", "self_pay"])
    frame = frame[frame["patient_id"].isin(set(patient_ids))]
    frame["share"] = [int((t - s) * 100) for t, s in zip(frame["total_cost"], frame["self_pay"])]
    return frame[["patient_id", "fund", "discharge_date", "share"]].reset_index(drop=True)


def categories(*, region_id: int) -> dict[str, tuple[str, str]]:
    """patient_id → (fund, category) of the listed patients."""
    return {pid: (fund, cat) for pid, fund, cat in Patient.objects.filter(region_id=region_id).values_list("patient_id", "fund", "category")}


# --- reading settled claims ------------------------------------------------------------------------


def settled_claims(*, region_id: int, year: int, settled: bool | None = True):
    """The region-year's claims: settled ones (default), unsettled ones (False) or all (None)."""
    claims = SpecialOutpatientClaim.objects.filter(
        region_id=region_id, service_date__gte=dt.date(year, 1, 1), service_date__lte=dt.date(year, 12, 31),
    )
    return claims if settled is None else claims.filter(settled_at__isnull=not settled)


def payer_statement(*, region_id: int, year: int, payer: str, month: int | None = None) -> list[dict]:
    """What a payer owes per institution (and month) for the settled claims of a year or month:
    basic (the DRG pool, as itemized payments), critical (大病保险) or assistance (医疗救助)."""
    field = {"basic": "basic", "critical": "critical", "assistance": "assistance"}[payer]
    claims = settled_claims(region_id=region_id, year=year)
    if month is not None:
        claims = claims.filter(service_date__month=month)
    rows = (
        claims.filter(**{f"{field}__gt": 0})
        .annotate(month=TruncMonth("service_date"))
        .values("month", "institution__code", "institution__name", "fund")
        .annotate(claims=Count("pk"), amount=Sum(field))
        .order_by("month", "institution__code", "fund")
    )
    return [
        {"month": r["month"].strftime("%Y-%m"), "institution_code": r["institution__code"], "institution_name": r["institution__name"],
         "fund": r["fund"], "claims": r["claims"], "amount": r["amount"] or ZERO}
        for r in rows
    ]


def layers_by_month(*, region_id: int, year: int, patient_id: str | None = None) -> list[dict]:
    claims = settled_claims(region_id=region_id, year=year)
    if patient_id is not None:
        claims = claims.filter(patient_id=patient_id)
    rows = (
        claims.annotate(month=TruncMonth("service_date")).values("month")
        .annotate(basic=Sum("basic"), critical=Sum("critical"), assistance=Sum("assistance"), patient=Sum("patient_pay"), claims=Count("pk"))
        .order_by("month")
    )
    return [{**r, "month": r["month"].strftime("%Y-%m")} for r in rows]


def corrections_of_institution(*, institution: Institution):
    return SettlementCorrection.objects.filter(claim__institution=institution).select_related("claim").order_by("-changed_at", "-id")


def patient_year(*, region_id: int, patient_id: str, year: int) -> dict:
    """A patient's year at a glance: claims and stays in settlement order, per fund."""
    patient = patient_of(region_id=region_id, patient_id=patient_id)
    terms = benefit_terms(region_id=region_id, year=year)
    funds = {}
    for fund in FUNDS:
        claims = sorted(claims_of_patient_year(region_id=region_id, patient_id=patient_id, fund=fund, year=year),
                        key=lambda c: (c.service_date, c.claim_no, c.institution.code))
        stays = sorted(stays_of_patient(region_id=region_id, patient_id=patient_id, fund=fund, year=year))
        if not claims and not stays:
            continue
        events = [("stay", day, share, None) for day, share in stays] + [("claim", c.service_date, None, c) for c in claims]
        events.sort(key=lambda e: (e[1], 0 if e[0] == "stay" else 1, e[3].claim_no if e[3] else ""))
        inpatient = sum((share for _, share in stays), ZERO)
        basic = sum((c.basic or ZERO for c in claims), ZERO)
        funds[fund] = {
            "terms": terms[fund], "events": events, "inpatient": inpatient, "basic": basic,
            "cap_used": inpatient + basic, "cap": terms[fund].shared_annual_cap,
            "critical": sum((c.critical or ZERO for c in claims), ZERO),
            "assistance": sum((c.assistance or ZERO for c in claims), ZERO),
            "patient": sum((c.patient_pay or ZERO for c in claims), ZERO),
            "burden": sum((c.eligible_cost - (c.basic or ZERO) for c in claims), ZERO),
        }
    return {"patient": patient, "category": patient.category if patient else "ordinary", "year": year, "funds": funds}


def regions_with_claims() -> list[Region]:
    return list(Region.objects.filter(special_outpatient_claims__isnull=False).distinct())


def claims_filtered(*, q: Q | None = None):
    qs = SpecialOutpatientClaim.objects.select_related("institution", "region")
    return qs.filter(q) if q is not None else qs
