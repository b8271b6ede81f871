"""The exchange bundle (EXCHANGE.md): read and validate its files. Pure: stdlib, decimal, numpy, pandas.

A bundle is a directory: ``params.json`` (region, year, budgets, payment scheme) and the CSV files of
``FILE_SPECS``, in load order. Every CSV is read as strings and checked column by column with the
vectorised checks of drg/domain/rows.py; a problem becomes a ``RowError(file, line, column,
reason)``. ``params.json`` problems use line 0 (the JSON line for a syntax error) and the JSON path as
the column, e.g. ``budgets.employee.growth_rate``.

The case rules are drg's (drg/domain/cases.py: ``parse_cases``, ``classify_cases``,
``frozen_case_errors``) so that the hospital API validates a submission with the same rules as this
batch door; the payment scheme's are drg/domain/scheme.py's. Both are re-exported here, so a reader
of the bundle finds every file's rules through this module.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

import numpy as np
import pandas as pd

from benefits.domain.parameters import CATEGORIES as PATIENT_CATEGORIES, DISEASE_CLASSES, BenefitTerms, parse_benefits
from budget.domain.lines import BudgetInputs, BudgetRuleError, budget_lines
from drg.domain.cases import (  # noqa: F401  (re-exported: the case file's rules)
    CASE_FIELD_OF, CASE_TYPED_COLUMNS, CASE_VALUE_COLUMNS, CASES, CHANGED, NEW, UNCHANGED, case_json_value,
    case_key_errors, classify_cases, fen_text, frozen_case_errors, parse_cases,
)
from drg.domain.rows import (  # noqa: F401  (re-exported: the reading machinery)
    DISCHARGE_STATUSES, FACTOR_INT_DIGITS, FUNDS, GROUP_KINDS, HOSPICE_KINDS, INSTITUTION_CATEGORIES, LINE,
    MONEY_INT_DIGITS, POINTS_INT_DIGITS, RATE_INT_DIGITS, RATE_PLACES, FileSpec, RowError, _Rows, check_header,
    read_csv_bytes, read_csv_file, read_csv_text,
)
from drg.domain.scheme import (  # noqa: F401  (re-exported: the payment scheme's rules)
    PARAMS_FILE, SCHEME_DECIMALS, SCHEME_KEYS, SCHEME_TIERS, _object, _Params, _parse_scheme, scheme_tiers_validate,
)

INSTITUTIONS = FileSpec(
    "institutions.csv",
    ("code", "name", "level", "category", "is_public", "group_code", "coefficient"),
    key=("code",), required=True, optional_columns=frozenset({"group_code", "coefficient"}),
)
DRG_GROUPS = FileSpec(
    "drg_groups.csv",
    ("code", "name", "kind", "base_points", "avg_cost", "daily_points", "same_price", "readmission_exempt"),
    key=("code",), required=True,
    optional_columns=frozenset({"base_points", "avg_cost", "daily_points", "same_price", "readmission_exempt"}),
)
COEFFICIENTS = FileSpec("coefficients.csv", ("institution_code", "drg_code", "coefficient"), key=("institution_code", "drg_code"))
TCM_EQUIVALENTS = FileSpec("tcm_equivalents.csv", ("drg_code", "equivalent_code"), key=("drg_code",))
SPECIAL_REVIEWS = FileSpec("special_reviews.csv", ("institution_code", "case_no", "approved_cost"), key=("institution_code", "case_no"))
ITEMIZED_CLAIMS = FileSpec(
    "itemized_claims.csv", ("claim_no", "institution_code", "fund", "month", "patient_id", "approved_amount"),
    key=("institution_code", "claim_no"),
)
POINT_ADJUSTMENTS = FileSpec(
    "point_adjustments.csv", ("institution_code", "fund", "drg_code", "multiple", "reason"),
    key=("institution_code", "fund", "drg_code", "reason"),
)
EVALUATIONS = FileSpec("evaluations.csv", ("institution_code", "fund", "score"), key=("institution_code", "fund"))
CHRONIC_ENROLLMENTS = FileSpec(
    "chronic_enrollments.csv", ("institution_code", "patient_id", "disease", "enrolled_on"),
    key=("institution_code", "patient_id", "disease"),
)
TCM_WORKLOAD = FileSpec("tcm_workload.csv", ("institution_code", "month", "prescriptions"), key=("institution_code", "month"))
HOSPICE_SERVICES = FileSpec(
    "hospice_services.csv", ("institution_code", "kind", "patient_id", "service_date", "quantity"),
    key=("institution_code", "kind", "patient_id", "service_date"), optional_columns=frozenset({"patient_id", "quantity"}),
)
SCREENINGS = FileSpec(
    "screenings.csv", ("institution_code", "patient_id", "screening_date", "fee", "high_risk"),
    key=("institution_code", "patient_id", "screening_date"), optional_columns=frozenset({"high_risk"}),
)
# BENEFITS.md: special-outpatient diseases settled at inpatient level
PATIENTS = FileSpec("patients.csv", ("patient_id", "fund", "category"), key=("patient_id",))
SPECIAL_DISEASES = FileSpec("special_diseases.csv", ("code", "name", "class", "annual_cap"), key=("code",),
                            optional_columns=frozenset({"annual_cap"}))
SPECIAL_OUTPATIENT_CLAIMS = FileSpec(
    "special_outpatient_claims.csv",
    ("claim_no", "institution_code", "fund", "patient_id", "disease_code", "service_date", "total_cost", "eligible_cost"),
    key=("institution_code", "claim_no"),
)

# In load order: catalogs before the records that refer to them.
FILE_SPECS: tuple[FileSpec, ...] = (
    INSTITUTIONS, DRG_GROUPS, COEFFICIENTS, TCM_EQUIVALENTS, CASES, SPECIAL_REVIEWS, ITEMIZED_CLAIMS,
    POINT_ADJUSTMENTS, EVALUATIONS, CHRONIC_ENROLLMENTS, TCM_WORKLOAD, HOSPICE_SERVICES, SCREENINGS,
    PATIENTS, SPECIAL_DISEASES, SPECIAL_OUTPATIENT_CLAIMS,
)
SPECS_BY_NAME = {spec.name: spec for spec in FILE_SPECS}
FILE_ORDER = {PARAMS_FILE: 0, **{spec.name: i + 1 for i, spec in enumerate(FILE_SPECS)}}


def sort_errors(errors: Iterable[RowError]) -> list[RowError]:
    """Bundle order: params.json, then the files in load order, each by line and column."""
    return sorted(errors, key=lambda e: (FILE_ORDER.get(e.file, len(FILE_ORDER)), e.file, e.line, e.column, e.reason))


# --- reading -----------------------------------------------------------------------------------------


# --- the files -------------------------------------------------------------------------------------

def parse_institutions(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[RowError]]:
    """code, name, level (int), category, is_public (bool), group_code, coef_u (Int64, <NA>: none)."""
    rows = _Rows(frame, INSTITUTIONS)
    rows.identifier("code", max_length=32)
    rows.text("name", max_length=200)
    rows.integer("level", low=1, high=3)
    rows.enum("category", INSTITUTION_CATEGORIES)
    rows.boolean("is_public")
    rows.text("group_code", max_length=32, required=False)
    rows.decimal("coefficient", places=4, int_digits=FACTOR_INT_DIGITS, out="coef_u", what="coefficient", required=False, positive=True)
    rows.duplicates()
    return rows.result()


def parse_groups(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[RowError]]:
    """code, name, kind, base_u, avg_fen, daily_u (Int64), same_price, readmission_exempt (bool).
    A stable group needs base points and an average cost, a per-diem group daily points."""
    rows = _Rows(frame, DRG_GROUPS)
    rows.text("code", max_length=16)
    rows.text("name", max_length=200)
    kind_ok = rows.enum("kind", GROUP_KINDS)
    rows.decimal("base_points", places=4, int_digits=POINTS_INT_DIGITS, out="base_u", what="points value", required=False)
    rows.decimal("avg_cost", places=2, int_digits=MONEY_INT_DIGITS, out="avg_fen", what="amount", required=False, positive=True)
    rows.decimal("daily_points", places=4, int_digits=POINTS_INT_DIGITS, out="daily_u", what="points value", required=False)
    rows.boolean("same_price")
    rows.boolean("readmission_exempt")
    kind = rows.raw("kind").to_numpy(dtype=object)
    for column, needed_by in (("base_points", "stable"), ("avg_cost", "stable"), ("daily_points", "per_diem")):
        missing = kind_ok & (kind == needed_by) & (rows.raw(column) == "").to_numpy()
        rows.flag(missing, column, f"a {needed_by} group needs {column}")
    rows.duplicates()
    return rows.result()


def parse_coefficients(frame: pd.DataFrame, *, known_institutions, known_groups) -> tuple[pd.DataFrame, list[RowError]]:
    """institution_code, drg_code, coef_u."""
    rows = _Rows(frame, COEFFICIENTS)
    rows.known("institution_code", rows.text("institution_code", max_length=32), known_institutions, "institution")
    rows.known("drg_code", rows.text("drg_code", max_length=16), known_groups, "DRG group (not in the year's catalog)")
    rows.decimal("coefficient", places=4, int_digits=FACTOR_INT_DIGITS, out="coef_u", what="coefficient", positive=True)
    rows.duplicates()
    return rows.result()


def parse_tcm_equivalents(frame: pd.DataFrame, *, known_groups) -> tuple[pd.DataFrame, list[RowError]]:
    """drg_code, equivalent_code (both in the year's catalog)."""
    rows = _Rows(frame, TCM_EQUIVALENTS)
    what = "DRG group (not in the year's catalog)"
    rows.known("drg_code", rows.text("drg_code", max_length=16), known_groups, what)
    rows.known("equivalent_code", rows.text("equivalent_code", max_length=16), known_groups, what)
    rows.duplicates()
    return rows.result()


def parse_special_reviews(frame: pd.DataFrame, *, known_cases: set[tuple[str, str]]) -> tuple[pd.DataFrame, list[RowError]]:
    """institution_code, case_no, approved_fen. The case must be in the bundle or stored."""
    rows = _Rows(frame, SPECIAL_REVIEWS)
    inst_ok = rows.text("institution_code", max_length=32)
    case_ok = rows.identifier("case_no", max_length=40)
    rows.decimal("approved_cost", places=2, int_digits=MONEY_INT_DIGITS, out="approved_fen", what="amount")
    keys = pd.MultiIndex.from_arrays([rows.raw("institution_code"), rows.raw("case_no")])
    found = keys.isin(list(known_cases)) if known_cases else np.zeros(len(rows), dtype=bool)
    rows.flag(inst_ok & case_ok & ~np.asarray(found, dtype=bool), "case_no",
              lambda p: f"unknown case {rows.value('case_no', p)!r} of institution {rows.value('institution_code', p)!r}")
    rows.duplicates()
    return rows.result()


def parse_itemized_claims(frame: pd.DataFrame, *, known_institutions) -> tuple[pd.DataFrame, list[RowError]]:
    """claim_no, institution_code, fund, month (ISO first day), patient_id, approved_fen."""
    rows = _Rows(frame, ITEMIZED_CLAIMS)
    rows.identifier("claim_no", max_length=40)
    rows.known("institution_code", rows.text("institution_code", max_length=32), known_institutions, "institution")
    rows.enum("fund", FUNDS)
    rows.month("month")
    rows.identifier("patient_id", max_length=64)
    rows.decimal("approved_amount", places=2, int_digits=MONEY_INT_DIGITS, out="approved_fen", what="amount")
    rows.duplicates()
    return rows.result()


def parse_point_adjustments(frame: pd.DataFrame, *, known_institutions, known_groups) -> tuple[pd.DataFrame, list[RowError]]:
    """institution_code, fund, drg_code, multiple_u, reason."""
    rows = _Rows(frame, POINT_ADJUSTMENTS)
    rows.known("institution_code", rows.text("institution_code", max_length=32), known_institutions, "institution")
    rows.enum("fund", FUNDS)
    rows.known("drg_code", rows.text("drg_code", max_length=16), known_groups, "DRG group (not in the year's catalog)")
    rows.decimal("multiple", places=4, int_digits=FACTOR_INT_DIGITS, out="multiple_u", what="multiple", positive=True)
    rows.text("reason", max_length=500)
    rows.duplicates()
    return rows.result()


def parse_evaluations(frame: pd.DataFrame, *, known_institutions) -> tuple[pd.DataFrame, list[RowError]]:
    """institution_code, fund, score_c (hundredths, 0–100)."""
    rows = _Rows(frame, EVALUATIONS)
    rows.known("institution_code", rows.text("institution_code", max_length=32), known_institutions, "institution")
    rows.enum("fund", FUNDS)
    rows.decimal("score", places=2, int_digits=3, out="score_c", what="score", maximum=100_00)
    rows.duplicates()
    return rows.result()


def parse_chronic_enrollments(frame: pd.DataFrame, *, known_institutions) -> tuple[pd.DataFrame, list[RowError]]:
    rows = _Rows(frame, CHRONIC_ENROLLMENTS)
    rows.known("institution_code", rows.text("institution_code", max_length=32), known_institutions, "institution")
    rows.identifier("patient_id", max_length=64)
    rows.text("disease", max_length=64)
    rows.date("enrolled_on")
    rows.duplicates()
    return rows.result()


def parse_tcm_workload(frame: pd.DataFrame, *, known_institutions) -> tuple[pd.DataFrame, list[RowError]]:
    """institution_code, month (ISO first day), prescriptions."""
    rows = _Rows(frame, TCM_WORKLOAD)
    rows.known("institution_code", rows.text("institution_code", max_length=32), known_institutions, "institution")
    rows.month("month")
    rows.integer("prescriptions", low=0, high=2_147_483_647)
    rows.duplicates()
    return rows.result()


def parse_hospice_services(frame: pd.DataFrame, *, known_institutions) -> tuple[pd.DataFrame, list[RowError]]:
    """institution_code, kind, patient_id (required except for bed), service_date, quantity (empty = 1)."""
    rows = _Rows(frame, HOSPICE_SERVICES)
    rows.known("institution_code", rows.text("institution_code", max_length=32), known_institutions, "institution")
    kind_ok = rows.enum("kind", HOSPICE_KINDS)
    rows.identifier("patient_id", max_length=64, required=False)
    missing_patient = kind_ok & (rows.raw("kind") != "bed").to_numpy() & (rows.raw("patient_id") == "").to_numpy()
    rows.flag(missing_patient, "patient_id", lambda p: f"a {rows.value('kind', p)} service needs a patient_id")
    rows.date("service_date")
    rows.integer("quantity", low=1, high=2_147_483_647, default=1)
    rows.duplicates()
    return rows.result()


def parse_screenings(frame: pd.DataFrame, *, known_institutions) -> tuple[pd.DataFrame, list[RowError]]:
    """institution_code, patient_id, screening_date, fee_fen, high_risk."""
    rows = _Rows(frame, SCREENINGS)
    rows.known("institution_code", rows.text("institution_code", max_length=32), known_institutions, "institution")
    rows.identifier("patient_id", max_length=64)
    rows.date("screening_date")
    rows.decimal("fee", places=2, int_digits=MONEY_INT_DIGITS, out="fee_fen", what="amount")
    rows.boolean("high_risk")
    rows.duplicates()
    return rows.result()


def parse_patients(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[RowError]]:
    """patient_id, fund, category (BENEFITS.md; a patient not listed is ordinary, with any fund)."""
    rows = _Rows(frame, PATIENTS)
    rows.text("patient_id", max_length=64)
    rows.enum("fund", FUNDS)
    rows.enum("category", PATIENT_CATEGORIES)
    rows.duplicates()
    return rows.result()


def parse_special_diseases(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[RowError]]:
    """code, name, class (I/II), cap_fen (<NA>: the class default) — the catalog of the bundle's year."""
    rows = _Rows(frame, SPECIAL_DISEASES)
    rows.text("code", max_length=32)
    rows.text("name", max_length=200)
    rows.enum("class", DISEASE_CLASSES)
    rows.decimal("annual_cap", places=2, int_digits=MONEY_INT_DIGITS, out="cap_fen", what="amount", required=False)
    rows.duplicates()
    return rows.result()


def parse_special_outpatient_claims(
    frame: pd.DataFrame, *, known_institutions, diseases_by_year: dict[int, set[str]], patient_funds: dict[str, str],
) -> tuple[pd.DataFrame, list[RowError]]:
    """claim_no, institution_code, fund, patient_id, disease_code, service_date, total_fen,
    eligible_fen. Refused (BENEFITS.md): an unknown institution or disease (of the catalog of the
    service year), a fund differing from the listed patient's, eligible_cost above total_cost."""
    rows = _Rows(frame, SPECIAL_OUTPATIENT_CLAIMS)
    rows.text("claim_no", max_length=40)
    rows.known("institution_code", rows.text("institution_code", max_length=32), known_institutions, "institution")
    fund_ok = rows.enum("fund", FUNDS)
    patient_ok = rows.text("patient_id", max_length=64)
    disease_ok = rows.text("disease_code", max_length=32)
    date_ok = rows.date("service_date")
    total_ok = rows.decimal("total_cost", places=2, int_digits=MONEY_INT_DIGITS, out="total_fen", what="amount")
    eligible_ok = rows.decimal("eligible_cost", places=2, int_digits=MONEY_INT_DIGITS, out="eligible_fen", what="amount")
    both = total_ok & eligible_ok
    total = rows.out["total_fen"].to_numpy(dtype="int64", na_value=0)
    eligible = rows.out["eligible_fen"].to_numpy(dtype="int64", na_value=0)
    rows.flag(both & (eligible > total), "eligible_cost", "eligible_cost exceeds total_cost")
    listed = rows.raw("patient_id").map(patient_funds)
    mismatch = fund_ok & patient_ok & listed.notna().to_numpy() & (listed != rows.raw("fund")).to_numpy()
    rows.flag(mismatch, "fund", lambda p: f"fund differs from the listed patient's fund {patient_funds[rows.value('patient_id', p)]!r}")
    years = rows.raw("service_date").str.slice(0, 4)
    listed_keys = [f"{year:04d}|{code}" for year, codes in diseases_by_year.items() for code in codes]
    known_disease = (years + "|" + rows.raw("disease_code")).isin(listed_keys).to_numpy(dtype=bool)
    rows.flag(disease_ok & date_ok & ~known_disease, "disease_code",
              lambda p: f"unknown special disease {rows.value('disease_code', p)!r} in the catalog of {years.iat[p]}")
    rows.duplicates()
    return rows.result()


# --- params.json -------------------------------------------------------------------------------------
BUDGET_MONEY = ("base_amount", "policy_adjustment")
BUDGET_RATES = ("growth_rate", "growth_cap", "reserve_rate", "outpatient_share", "primary_care_share")
BUDGET_REQUIRED = ("base_amount", "growth_rate")
PARAMS_KEYS = ("region", "year", "budgets", "scheme", "benefits")


@dataclass(frozen=True)
class BundleParams:
    """params.json, validated. `scheme` holds only the keys the file gives (the service fills the
    others with the PaymentScheme defaults of SETTLEMENT.md): Decimals for the scalar parameters,
    an int for readmission_days, tier lists in the JSON shape of the model defaults (numbers)."""

    region_code: str
    region_name: str
    year: int
    budgets: dict[str, BudgetInputs] = field(default_factory=dict)
    scheme: dict[str, Any] = field(default_factory=dict)
    benefits: dict[str, BenefitTerms] | None = None  # BENEFITS.md parameters per fund, when given


def parse_params(text: str) -> tuple[BundleParams | None, list[RowError]]:
    """params.json: region, year, budgets per fund (growth above its cap is an error, via
    budget.domain.lines), payment scheme (only the keys given; unknown keys are errors).

    Returns (None, errors) when the region or year is unusable; otherwise the params (with only
    the valid budgets and scheme keys) and the errors, which the caller must check."""
    check = _Params()
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        return None, [RowError(PARAMS_FILE, exc.lineno, "", f"not valid JSON: {exc.msg} (column {exc.colno})")]
    if not _object(data):
        return None, [RowError(PARAMS_FILE, 0, "", "expected a JSON object")]
    for key in data:
        if key not in PARAMS_KEYS:
            check.error(key, f"unknown key (expected: {', '.join(PARAMS_KEYS)})")

    region_code = region_name = ""
    region = data.get("region")
    if not _object(region):
        check.error("region", 'required: {"code": …, "name": …}')
    else:
        for key in region:
            if key not in ("code", "name"):
                check.error(f"region.{key}", "unknown key (expected: code, name)")
        for key, limit in (("code", 12), ("name", 100)):
            value = region.get(key)
            if not isinstance(value, str) or not value.strip():
                check.error(f"region.{key}", "required text")
            elif len(value) > limit:
                check.error(f"region.{key}", f"longer than {limit} characters")
        region_code, region_name = str(region.get("code") or ""), str(region.get("name") or "")

    year = data.get("year")
    if isinstance(year, bool) or not isinstance(year, int) or not 1000 <= year <= 9999:
        check.error("year", f"expected a four-digit year, got {json.dumps(year, default=str)}")
        year = None

    budgets: dict[str, BudgetInputs] = {}
    raw_budgets = data.get("budgets", {})
    if not _object(raw_budgets):
        check.error("budgets", "expected an object of funds")
        raw_budgets = {}
    for fund, raw in raw_budgets.items():
        path = f"budgets.{fund}"
        if fund not in FUNDS:
            check.error(path, f"unknown fund (expected: {', '.join(FUNDS)})")
            continue
        if not _object(raw):
            check.error(path, "expected an object")
            continue
        values: dict[str, Decimal] = {}
        ok = True
        for key, value in raw.items():
            if key in BUDGET_MONEY:
                number = check.decimal(value, f"{path}.{key}", places=2, int_digits=MONEY_INT_DIGITS, signed=key == "policy_adjustment")
            elif key in BUDGET_RATES:
                number = check.decimal(value, f"{path}.{key}", places=RATE_PLACES, int_digits=RATE_INT_DIGITS, signed=key == "growth_rate")
            else:
                check.error(f"{path}.{key}", f"unknown key (expected: {', '.join(BUDGET_MONEY + BUDGET_RATES)})")
                ok = False
                continue
            if number is None:
                ok = False
            else:
                values[key] = number
        for key in BUDGET_REQUIRED:
            if key not in raw:
                check.error(f"{path}.{key}", "required")
                ok = False
        if not ok:
            continue
        inputs = BudgetInputs(**values)
        try:
            budget_lines(inputs)  # validate_budget_inputs + the earmark and total rules
        except BudgetRuleError as exc:
            check.error(f"{path}.{exc.field}", exc.message)
            continue
        budgets[fund] = inputs

    scheme = _parse_scheme(data.get("scheme"), check)
    benefits = None
    if "benefits" in data:
        benefits, benefit_errors = parse_benefits(data["benefits"])
        for where, reason in benefit_errors:
            check.error(where, reason)
    region_ok = not any(e.column.startswith("region") for e in check.errors) and bool(region_code)
    if year is None or not region_ok:
        return None, check.errors
    # With errors elsewhere the params are still returned (only the valid budgets and scheme keys) so
    # that the CSV files can be checked against the region's stored records.
    return BundleParams(region_code=region_code, region_name=region_name, year=year, budgets=budgets, scheme=scheme,
                        benefits=benefits), check.errors
