"""Reads of the drg app: regions, catalogs and stored cases, in the shapes the loader compares with."""
from __future__ import annotations

from typing import Callable, Iterable

import pandas as pd
from django.core.exceptions import ImproperlyConfigured

from common.bulk import is_postgres, read_frame
from drg.domain.cases import CASE_VALUE_COLUMNS
from drg.models import Case, DrgGroup, Institution, Region

STORED_CASE_COLUMNS = ("case_id", "institution_id", "case_no", *CASE_VALUE_COLUMNS)
_STORED_CASE_DTYPES = {
    "case_id": "int64", "institution_id": "int64", "case_no": str, "fund": str, "patient_id": str,
    "admission_date": str, "discharge_date": str, "drg_code": str, "total_fen": "int64", "self_fen": "int64",
    "discharge_status": str, "tcm_treatment": "int64", "tcm_fen": "int64", "surgery_grade": "int64",
    "malignant_tumor_surgery": "int64",
}
PG_KEYS_PER_QUERY = 100_000
# from this many keys on, cases_stored_frame reads the institutions' cases whole (one COPY)
PG_WHOLE_INSTITUTIONS_KEYS = 200_000
SQLITE_KEYS_PER_QUERY = 20_000  # below SQLite's 32766 bound variables


# --- finalized periods -----------------------------------------------------------------------------
# A case discharged in a finalized period may not change (SETTLEMENT.md; docs/ARCHITECTURE.md). Which
# periods are finalized is the record of the app above that finalizes clearing runs: settlement
# answers the question once the apps are loaded (settlement.apps.SettlementConfig.ready calls
# finalized_periods_answered_by), so every case write of this app enforces the rule without importing
# the layer above it.

FinalizedThrough = Callable[..., dict[tuple[str, int], int]]
_finalized_periods: FinalizedThrough | None = None


def finalized_periods_answered_by(source: FinalizedThrough) -> None:
    """Name the function that answers `finalized_through(region_id=)` (settlement's selector)."""
    global _finalized_periods
    _finalized_periods = source


def finalized_through(*, region_id: int) -> dict[tuple[str, int], int]:
    """(fund, year) -> the last month of the region's pools whose cases are frozen by a finalized run."""
    if _finalized_periods is None:
        raise ImproperlyConfigured("no installed app answers which periods are finalized (the settlement app is missing)")
    return _finalized_periods(region_id=region_id)


def region_get(*, code: str) -> Region | None:
    return Region.objects.filter(code=code).first()


def institution_ids(*, region_id: int | None) -> dict[str, int]:
    """Institution code -> id, for the region's stored institutions."""
    if region_id is None:
        return {}
    return dict(Institution.objects.filter(region_id=region_id).values_list("code", "id"))


def group_codes(*, region_id: int | None, year: int) -> set[str]:
    """The stored catalog codes of a region and year."""
    if region_id is None:
        return set()
    return set(DrgGroup.objects.filter(region_id=region_id, year=year).values_list("code", flat=True))


def _case_select() -> str:
    def fen(column: str) -> str:
        return f"CAST(ROUND(c.{column} * 100) AS BIGINT)"

    if is_postgres():
        date = "to_char(c.{0}, 'YYYY-MM-DD')"
    else:
        date = "CAST(c.{0} AS TEXT)"  # Django keeps SQLite dates as ISO text
    return (
        "SELECT c.id, c.institution_id, c.case_no, c.fund, c.patient_id, "
        f"{date.format('admission_date')}, {date.format('discharge_date')}, c.drg_code, "
        f"{fen('total_cost')}, {fen('self_pay')}, c.discharge_status, "
        "CASE WHEN c.tcm_treatment THEN 1 ELSE 0 END, "
        f"{fen('tcm_cost')}, c.surgery_grade, CASE WHEN c.malignant_tumor_surgery THEN 1 ELSE 0 END "
        f"FROM {Case._meta.db_table} c "
    )


def _empty_cases() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=_STORED_CASE_DTYPES[c]) for c in STORED_CASE_COLUMNS})


def cases_stored_frame(*, keys: pd.DataFrame) -> pd.DataFrame:
    """The stored cases of the given (institution_id, case_no) keys, in the loader's typed units:
    case_id, institution_id, case_no and CASE_VALUE_COLUMNS (amounts in fen, dates as ISO text,
    booleans as bool). One query per chunk of keys (PostgreSQL: joined to unnest(arrays), read
    with COPY; SQLite: per institution, case_no IN (…))."""
    keys = keys[["institution_id", "case_no"]].drop_duplicates()
    if keys.empty:
        return _empty_cases()
    select = _case_select()
    parts: list[pd.DataFrame] = []
    if is_postgres() and len(keys) >= PG_WHOLE_INSTITUTIONS_KEYS:
        # a bundle re-loading a region's cases: one COPY of every stored case of its institutions,
        # kept where the key is asked for, instead of a million index probes
        institutions = sorted({int(i) for i in keys["institution_id"]})
        whole = read_frame(select + "WHERE c.institution_id = ANY(%s::bigint[])", [institutions], STORED_CASE_COLUMNS, _STORED_CASE_DTYPES)
        wanted = keys.astype({"institution_id": "int64"}).assign(case_no=keys["case_no"].astype(str))
        whole["case_no"] = whole["case_no"].astype(str)
        parts = [whole.merge(wanted, on=["institution_id", "case_no"], how="inner")[list(STORED_CASE_COLUMNS)]]
    elif is_postgres():
        sql = select + "JOIN unnest(%s::bigint[], %s::text[]) AS k(institution_id, case_no) " \
                       "ON c.institution_id = k.institution_id AND c.case_no = k.case_no"
        for start in range(0, len(keys), PG_KEYS_PER_QUERY):
            chunk = keys.iloc[start:start + PG_KEYS_PER_QUERY]
            params = [[int(i) for i in chunk["institution_id"]], [str(n) for n in chunk["case_no"]]]
            parts.append(read_frame(sql, params, STORED_CASE_COLUMNS, _STORED_CASE_DTYPES))
    else:
        for institution_id, group in keys.groupby("institution_id", sort=True):
            numbers = group["case_no"].tolist()
            for start in range(0, len(numbers), SQLITE_KEYS_PER_QUERY):
                chunk = numbers[start:start + SQLITE_KEYS_PER_QUERY]
                sql = select + f"WHERE c.institution_id = %s AND c.case_no IN ({', '.join(['%s'] * len(chunk))})"
                parts.append(read_frame(sql, [int(institution_id), *chunk], STORED_CASE_COLUMNS, _STORED_CASE_DTYPES))
    parts = [p for p in parts if not p.empty]
    if not parts:
        return _empty_cases()
    frame = pd.concat(parts, ignore_index=True)
    for column in ("tcm_treatment", "malignant_tumor_surgery"):
        frame[column] = frame[column].astype(bool)
    for column in ("case_no", "fund", "patient_id", "admission_date", "discharge_date", "drg_code", "discharge_status"):
        frame[column] = frame[column].astype(str)
    return frame


def case_ids(*, institution_ids: dict[str, int], keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """(institution code, case_no) -> case id, for the given keys that are stored (per institution,
    so the (institution, case_no) index answers)."""
    by_institution: dict[str, set[str]] = {}
    for code, number in keys:
        if code in institution_ids:
            by_institution.setdefault(code, set()).add(number)
    found: dict[tuple[str, str], int] = {}
    for code, numbers in sorted(by_institution.items()):
        ordered = sorted(numbers)
        for start in range(0, len(ordered), SQLITE_KEYS_PER_QUERY):
            rows = Case.objects.filter(
                institution_id=institution_ids[code], case_no__in=ordered[start:start + SQLITE_KEYS_PER_QUERY]
            ).values_list("case_no", "id")
            found.update({(code, number): pk for number, pk in rows})
    return found
