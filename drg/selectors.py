"""Reads of the drg app: regions, catalogs and stored cases, in the shapes the loader compares with."""
from __future__ import annotations

import io
from typing import Callable, Iterable

import pandas as pd
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection, transaction

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


# --- a reload's identical rows, found by the database --------------------------------------------
# Reloading a region's bundle sends back mostly the cases already stored. Instead of reading every
# stored case into pandas to compare, the cases.csv text goes to a temporary table by COPY and one
# join names the rows that are NOT textually identical to the canonical text of their stored case
# (new, or some value written otherwise). The typed value of a field is a function of its text, so
# a row whose every field reads exactly as the stored value prints is unchanged; every other row is
# compared exactly as before. Only files that any CSV reader splits the same way qualify: no quote
# and no carriage return (then a record is a line and a field is what lies between commas).

# cases.csv column -> the canonical text of the stored value, and the text an empty field stands for
_CANONICAL = {
    "fund": ("c.fund", None),
    "patient_id": ("c.patient_id", None),
    "admission_date": ("to_char(c.admission_date, 'YYYY-MM-DD')", None),
    "discharge_date": ("to_char(c.discharge_date, 'YYYY-MM-DD')", None),
    "drg_code": ("c.drg_code", None),
    "total_cost": ("CAST(c.total_cost AS TEXT)", None),
    "self_pay": ("CAST(c.self_pay AS TEXT)", None),
    "discharge_status": ("c.discharge_status", None),
    "tcm_treatment": ("CASE WHEN c.tcm_treatment THEN '1' ELSE '0' END", "0"),
    "tcm_cost": ("CAST(c.tcm_cost AS TEXT)", "0.00"),
    "surgery_grade": ("CAST(c.surgery_grade AS TEXT)", "0"),
    "malignant_tumor_surgery": ("CASE WHEN c.malignant_tumor_surgery THEN '1' ELSE '0' END", "0"),
}


def cases_differing_keys(*, region_id: int, data: bytes, limit: int) -> set[tuple[str, str]] | None:
    """The (institution_code, case_no) of the rows of a cases.csv (its bytes, header included) that
    are not textually identical to a stored case of the region (see above). None when the database
    cannot answer: not PostgreSQL, a file any CSV reader might split otherwise, a header that is not
    all known columns, a COPY the file does not fit, or more than `limit` such rows (then comparing
    every row costs no more)."""
    if not is_postgres() or b'"' in data or b"\r" in data:
        return None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    head, _, body = data.partition(b"\n")
    header = head.decode("utf-8").split(",")
    known = {"case_no", "institution_code", *_CANONICAL}
    if len(set(header)) != len(header) or not set(header) <= known or not {"case_no", "institution_code"} <= set(header):
        return None
    if b"\n\n" in body or body.startswith(b"\n"):
        return None  # blank lines: the reader skips them, COPY would not
    names = [f"f{i}" for i in range(len(header))]
    column = dict(zip(header, names))
    equal = []
    for name, (canonical, empty) in _CANONICAL.items():
        if name not in column:
            if empty is None:
                return None
            raw = f"'{empty}'"
        else:
            raw = f"t.{column[name]}" if empty is None else f"coalesce(nullif(t.{column[name]}, ''), '{empty}')"
        equal.append(f"{raw} = {canonical}")
    table = Case._meta.db_table
    institutions = Institution._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:  # a savepoint: a COPY that fails leaves the load intact
        try:
            cursor.execute("DROP TABLE IF EXISTS drg_case_text")
            cursor.execute(f"CREATE TEMPORARY TABLE drg_case_text ({', '.join(f'{n} text' for n in names)}) ON COMMIT DROP")
            with connection.wrap_database_errors, cursor.connection.cursor() as pg_cursor:
                with pg_cursor.copy(f"COPY drg_case_text ({', '.join(names)}) FROM STDIN WITH (FORMAT csv)") as copy:
                    copy.write(body)
        except DatabaseError:
            transaction.set_rollback(True)
            return None
        cursor.execute(
            f"SELECT t.{column['institution_code']}, t.{column['case_no']} FROM drg_case_text t "
            f"LEFT JOIN {institutions} i ON i.region_id = %s AND i.code = t.{column['institution_code']} "
            # the region's cases only: the planner need not look at other regions' (a no-op for the result)
            f"LEFT JOIN {table} c ON c.region_id = %s AND c.institution_id = i.id AND c.case_no = t.{column['case_no']} "
            f"WHERE c.id IS NULL OR NOT coalesce({' AND '.join(equal)}, false) LIMIT %s",
            [region_id, region_id, limit + 1],
        )
        rows = cursor.fetchall()
        cursor.execute("DROP TABLE drg_case_text")
    if len(rows) > limit:
        return None
    return {(code, number) for code, number in rows}
