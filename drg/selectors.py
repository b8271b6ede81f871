"""Reads of the drg app: regions, catalogs and stored cases, in the shapes the loader compares with."""
from __future__ import annotations

import datetime as dt
import io
from typing import Callable, Iterable

import pandas as pd
import psycopg
from psycopg.rows import scalar_row
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

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


def _case_lines_select() -> str:
    """PostgreSQL: the stored cases of one institution as CSV lines joined into one text (the
    columns of STORED_CASE_COLUMNS, text quoted as COPY's CSV would quote it, NULL empty), so a
    million cases come back as a few large values instead of a million COPY messages."""
    def text(column: str) -> str:
        return f"'\"' || replace(c.{column}, '\"', '\"\"') || '\"'"

    def fen(column: str) -> str:
        return f"CAST(ROUND(c.{column} * 100) AS BIGINT)"

    def date(column: str) -> str:
        return f"to_char(c.{column}, 'YYYY-MM-DD')"

    parts = [
        "c.id", "c.institution_id", text("case_no"), text("fund"), text("patient_id"), date("admission_date"),
        date("discharge_date"), text("drg_code"), fen("total_cost"), fen("self_pay"), text("discharge_status"),
        "CASE WHEN c.tcm_treatment THEN 1 ELSE 0 END", fen("tcm_cost"), "c.surgery_grade",
        "CASE WHEN c.malignant_tumor_surgery THEN 1 ELSE 0 END",
    ]
    line = "concat(" + ", ',', ".join(parts) + ")"
    return f"SELECT string_agg({line}, E'\\n') FROM {Case._meta.db_table} c WHERE c.institution_id = %s"


def _typed_cases(frame: pd.DataFrame) -> pd.DataFrame:
    for column in ("tcm_treatment", "malignant_tumor_surgery"):
        frame[column] = frame[column].astype(bool)
    for column in ("case_no", "fund", "patient_id", "admission_date", "discharge_date", "drg_code", "discharge_status"):
        frame[column] = frame[column].astype(str)
    return frame


def cases_of_institutions(*, institution_ids: Iterable[int]) -> pd.DataFrame:
    """Every stored case of the given institutions, in the units of cases_stored_frame. PostgreSQL:
    one query per institution, each returning its cases as one CSV text (read by pandas in C)."""
    institutions = sorted({int(i) for i in institution_ids})
    if not is_postgres():
        select = _case_select()
        parts = [read_frame(select + "WHERE c.institution_id = %s", [pk], STORED_CASE_COLUMNS, _STORED_CASE_DTYPES)
                 for pk in institutions]
    else:
        texts = []
        sql = _case_lines_select()
        with connection.cursor() as cursor:
            for pk in institutions:
                cursor.execute(sql, [pk])
                (text,) = cursor.fetchone()
                if text:
                    texts.append(text)
        parts = []
        if texts:
            buffer = io.StringIO("\n".join(texts))
            parts.append(pd.read_csv(buffer, header=None, names=list(STORED_CASE_COLUMNS), dtype=_STORED_CASE_DTYPES,
                                     keep_default_na=False, na_values=[""]))
    parts = [p for p in parts if not p.empty]
    if not parts:
        return _empty_cases()
    return _typed_cases(pd.concat(parts, ignore_index=True))


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
        whole = cases_of_institutions(institution_ids=keys["institution_id"].unique())
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
    return _typed_cases(pd.concat(parts, ignore_index=True))


def case_ids(*, region_id: int, institution_ids: dict[str, int], keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """(institution code, case_no) -> case id, for the given keys that are stored in the region
    (`institution_ids`: its institutions' ids by code), per institution so that the (institution,
    case_no) index answers, in the region's own table alone where drg_case is partitioned."""
    by_institution: dict[str, set[str]] = {}
    for code, number in keys:
        if code in institution_ids:
            by_institution.setdefault(code, set()).add(number)
    found: dict[tuple[str, str], int] = {}
    for code, numbers in sorted(by_institution.items()):
        ordered = sorted(numbers)
        for start in range(0, len(ordered), SQLITE_KEYS_PER_QUERY):
            rows = Case.objects.filter(
                region_id=region_id, institution_id=institution_ids[code], case_no__in=ordered[start:start + SQLITE_KEYS_PER_QUERY]
            ).values_list("case_no", "id")
            found.update({(code, number): pk for number, pk in rows})
    return found


# --- a reload's unchanged rows, found by their text ----------------------------------------------
# Reloading a region's bundle sends back mostly the cases already stored. PostgreSQL prints every
# stored case of the region as a cases.csv line in the file's own column order; a line of the file
# that is byte-identical to one of them is that stored case, unchanged (the line holds the case's key
# and every value, and the typed value of a field is a function of its text). Only the other lines
# are parsed, checked and compared (drg.services.cases_read_changed). A stored case that the load's
# checks would refuse as it stands (a DRG group the year's catalog does not know, tcm_cost above
# total_cost, a comma in a text value, which an unquoted line would split) is not printed, so its
# line, if the file sends it, goes through every check.

# cases.csv column -> the text of the stored value as the file writes it (SQL over c = drg_case,
# i = drg_institution; dates in ISO, amounts with their two places, booleans as 0/1)
_LINE_TEXT = {
    "case_no": "c.case_no",
    "institution_code": "i.code",
    "fund": "c.fund",
    "patient_id": "c.patient_id",
    "admission_date": "c.admission_date::text",
    "discharge_date": "c.discharge_date::text",
    "drg_code": "c.drg_code",
    "total_cost": "c.total_cost::text",
    "self_pay": "c.self_pay::text",
    "discharge_status": "c.discharge_status",
    "tcm_treatment": "CASE WHEN c.tcm_treatment THEN '1' ELSE '0' END",
    "tcm_cost": "c.tcm_cost::text",
    "surgery_grade": "c.surgery_grade::text",
    "malignant_tumor_surgery": "CASE WHEN c.malignant_tumor_surgery THEN '1' ELSE '0' END",
}
_PRINTABLE = (  # NOT LIKE: estimated as letting nearly every row through, which it does (a hash join follows)
    "c.drg_code = ANY(%s) AND NOT c.tcm_cost > c.total_cost "
    "AND c.case_no NOT LIKE '%%,%%' AND c.patient_id NOT LIKE '%%,%%' AND c.drg_code NOT LIKE '%%,%%'"
)


def _stored_lines_sql(header: list[str], where: str) -> str:
    line = " || ',' || ".join(_LINE_TEXT[name] for name in header)
    return (f"SELECT convert_to({line}, 'UTF8') FROM {Case._meta.db_table} c "
            f"JOIN {Institution._meta.db_table} i ON i.id = c.institution_id WHERE {where} AND {_PRINTABLE}")


def _stored_lines(sql: str, params: list) -> list[bytes]:
    """The lines as bytes: one SELECT with binary results (PostgreSQL may scan in parallel; a COPY
    would not, and psycopg reads a COPY a row at a time)."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL datestyle TO 'ISO'")  # dates print as YYYY-MM-DD (the input order setting stays)
        with connection.wrap_database_errors, psycopg.Cursor(cursor.connection, row_factory=scalar_row) as binary:
            binary.execute(sql, params, binary=True)
            return binary.fetchall()


_DISCHARGED_IN = "c.discharge_date >= %s AND c.discharge_date < %s"


def _year_bounds(years: tuple[int, int]) -> tuple[dt.date, dt.date]:
    """The parameters of _DISCHARGED_IN for the years (first, last)."""
    return dt.date(years[0], 1, 1), dt.date(years[1] + 1, 1, 1)


def cases_stored_lines(
    *, region_id: int, header: list[str], groups: Iterable[str], years: tuple[int, int],
) -> dict[bytes, bool]:
    """The region's stored cases discharged in the years `years` (first, last) as cases.csv lines
    with the columns of `header` (every name a cases.csv column), those the checks would refuse left
    out (see above); `groups` are the DRG codes the load knows. PostgreSQL only (one query). A dict,
    so a caller can take each line once."""
    lines = _stored_lines(_stored_lines_sql(header, "c.region_id = %s AND " + _DISCHARGED_IN),
                          [region_id, *_year_bounds(years), sorted(set(groups))])
    return dict.fromkeys(lines, True)


_OF_KEYS = ("c.region_id = %s AND (i.code, c.case_no) IN "
            "(SELECT k.code, k.case_no FROM unnest(%s::text[], %s::text[]) AS k(code, case_no))")


def _key_arrays(keys: Iterable[tuple[str, str]]) -> tuple[list[str], list[str]]:
    keys = [key for key in keys if "\x00" not in key[0] + key[1]]  # a NUL is never stored (nor accepted by PostgreSQL)
    return [code for code, _n in keys], [number for _c, number in keys]


def case_lines_of_keys(
    *, region_id: int, keys: Iterable[tuple[str, str]], header: list[str], groups: Iterable[str], years: tuple[int, int],
) -> list[bytes]:
    """The lines of cases_stored_lines (same years) for the stored cases of some (institution_code, case_no)."""
    codes, numbers = _key_arrays(keys)
    if not codes:
        return []
    return _stored_lines(_stored_lines_sql(header, _OF_KEYS + " AND " + _DISCHARGED_IN),
                         [region_id, codes, numbers, *_year_bounds(years), sorted(set(groups))])


def stored_key_count(*, region_id: int, keys: Iterable[tuple[str, str]]) -> int:
    """How many of the (institution_code, case_no) are stored cases of the region."""
    codes, numbers = _key_arrays(keys)
    if not codes:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {Case._meta.db_table} c JOIN {Institution._meta.db_table} i "
                       f"ON i.id = c.institution_id WHERE {_OF_KEYS}", [region_id, codes, numbers])
        return int(cursor.fetchone()[0])
