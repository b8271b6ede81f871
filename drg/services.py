"""Writes behind the hospital API: institution credentials, case submission, special reviews (特病单议)
and correction requests. Keyword-only, typed, ``<thing>_<action>``; each runs in one transaction.

Cases are written in bulk by :func:`cases_upsert` (COPY on PostgreSQL, executemany on SQLite), for the
exchange bundle (exchange/bundle.py) and for hospital-submitted cases alike; the API goes through
:func:`cases_submit`, which validates rows, refuses changes to finalized periods and upserts the rest
(changes of open periods are recorded as ``CaseCorrection`` rows with source=api). A case of a
finalized period goes in through a correction request: :func:`correction_request_submit` for a change
to a stored case, :func:`late_case_request_submit` for a new (late) case; the bureau's approval
(common.reviews) applies it.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from itertools import repeat
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from common.bulk import columns_to_rows, copy_columns, copy_create, foreign_keys_check_now, ids_of, is_postgres
from common.models import ReviewStatus
from common.reviews import error_text
from common.units_text import units_decimal_array
from drg import selectors
from drg.choices import ChangeSource
from drg.domain.cases import (
    CASE_FIELD_OF, CASE_TYPED_COLUMNS, CASE_VALUE_COLUMNS, CASES, case_json_value,
    classify_cases, frozen_case_errors, parse_cases,
)
from drg.domain import cases as case_rules
from drg.domain.case_rows import error_code, json_rows_to_frame
from drg.domain.rows import LINE, RowError, check_header, line_sample, plain_lines, read_lines
from drg.partitions import PartitionFill, partition_fill_beside, partition_load
from drg.signals import cases_stored
from drg.models import (
    Case, CaseCorrection, CorrectionRequest, DrgGroup, IdempotencyRecord, Institution, InstitutionCredential, Region,
    SpecialReview,
)

# --- credentials ------------------------------------------------------------------------------------

PREFIX_BYTES = 4  # 8 hex characters, unique per key
SECRET_BYTES = 32


def credential_hash(raw_key: str) -> str:
    """SHA-256 of the whole key. The secret is 256 random bits, so a fast hash is enough (no
    dictionary to attack) and keeps authentication cheap on every request."""
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def credential_split(raw_key: str) -> tuple[str, str] | None:
    prefix, dot, secret = raw_key.partition(".")
    if not raw_key.isascii() or not raw_key.isprintable():
        return None
    if not dot or not prefix or not secret or len(prefix) > 12 or len(raw_key) > 200:
        return None
    return prefix, secret


def credential_issue(*, institution: Institution, name: str, user) -> tuple[InstitutionCredential, str]:
    """Issue an API key for an institution. Returns the credential and the raw key, which is shown
    once and never stored (only its hash is)."""
    for _attempt in range(5):
        prefix = secrets.token_hex(PREFIX_BYTES)
        raw_key = f"{prefix}.{secrets.token_urlsafe(SECRET_BYTES)}"
        try:
            with transaction.atomic():
                credential = InstitutionCredential(
                    institution=institution, name=name, prefix=prefix, key_hash=credential_hash(raw_key), created_by=user
                )
                credential._history_user = user
                credential._change_reason = "API key issued"
                credential.save()
        except IntegrityError:
            continue  # prefix collision (1 in 4 billion): draw again
        return credential, raw_key
    raise RuntimeError("could not draw a unique API key prefix")


def credential_revoke(*, credential: InstitutionCredential, user) -> InstitutionCredential:
    """Revoke a key (idempotent: revoking a revoked key keeps the first revocation time)."""
    with transaction.atomic():
        credential = InstitutionCredential.objects.select_for_update().get(pk=credential.pk)
        if credential.revoked_at is None:
            credential.revoked_at = timezone.now()
            credential._history_user = user
            credential._change_reason = "API key revoked"
            credential.save(update_fields=["revoked_at"])
    return credential


# --- cases -------------------------------------------------------------------------------------------


CASE_VALUE_FIELDS = tuple(CASE_FIELD_OF.values())  # the Case fields a submission sets


@dataclass(frozen=True)
class CaseRowError:
    """One bad submitted row: ``row`` is the submission's label (JSON index or CSV line), ``code``
    a stable machine-readable code (see drg.domain.case_rows.error_code)."""

    row: int
    field: str | None
    code: str
    message: str
    case_no: str | None = None


class CasesInvalid(Exception):
    """Some submitted rows are invalid; nothing was stored."""

    def __init__(self, errors: list[CaseRowError]):
        super().__init__(f"{len(errors)} invalid case rows")
        self.errors = errors


class CasesFinalized(Exception):
    """Some submitted rows would add to or change a finalized period; nothing was stored. A change
    to a stored case goes through a correction request that the bureau approves."""

    def __init__(self, conflicts: list[CaseRowError]):
        super().__init__(f"{len(conflicts)} cases fall in finalized periods")
        self.conflicts = conflicts


@dataclass
class SubmissionReport:
    received: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    corrections: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"received": self.received, "created": self.created, "updated": self.updated, "unchanged": self.unchanged}


def drg_catalog_codes(*, region_id: int) -> dict[int, frozenset[str]]:
    codes: dict[int, set[str]] = {}
    for year, code in DrgGroup.objects.filter(region_id=region_id).values_list("year", "code"):
        codes.setdefault(year, set()).add(code)
    return {year: frozenset(c) for year, c in codes.items()}


def _catalog_errors(typed: pd.DataFrame, catalogs: dict[int, frozenset[str]]) -> list[RowError]:
    """drg_code must be in the region's catalog of the discharge year, or of the latest earlier year
    when the region has none for that year yet (a stay discharged in early January is valued with
    the catalog in force, as the bundle does for its own year)."""
    errors: list[RowError] = []
    if typed.empty:
        return errors
    years = sorted(catalogs)
    discharge_years = typed["discharge_date"].str.slice(0, 4).astype("int64").to_numpy()
    codes = typed["drg_code"].to_numpy(dtype=object)
    lines = typed[LINE].to_numpy()
    for year in sorted(set(discharge_years.tolist())):
        catalog_year = year if year in catalogs else max((y for y in years if y < year), default=None)
        known = catalogs.get(catalog_year, frozenset()) if catalog_year is not None else frozenset()
        for position in np.flatnonzero(discharge_years == year):
            if codes[position] not in known:
                errors.append(RowError(
                    CASES.name, int(lines[position]), "drg_code",
                    f"unknown DRG group {codes[position]!r} (not in the region's {catalog_year or year} catalog)",
                ))
    return errors


def _row_errors(errors: Iterable[RowError], frame: pd.DataFrame) -> list[CaseRowError]:
    case_no_of = dict(zip(frame[LINE].tolist(), frame["case_no"].tolist())) if len(frame) else {}
    return [
        CaseRowError(e.line, e.column or None, error_code(e.reason), e.reason, case_no_of.get(e.line) or None)
        for e in sorted(errors, key=lambda e: (e.line, e.column))
    ]


def cases_validate(*, institution: Institution, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[CaseRowError]]:
    """The loader's case rules (parse_cases) plus the region catalog of each discharge year; reads
    only. Returns the typed rows and the errors (empty when all rows are good)."""
    frame = frame.copy()
    frame["institution_code"] = frame["institution_code"].where(frame["institution_code"] != "", institution.code)
    catalogs = drg_catalog_codes(region_id=institution.region_id)
    all_codes = frozenset().union(*catalogs.values()) if catalogs else frozenset()
    typed, errors = parse_cases(frame, known_institutions={institution.code}, known_groups=all_codes)
    if not errors:
        errors = _catalog_errors(typed, catalogs)
    return typed, _row_errors(errors, frame)


def cases_submit(*, institution: Institution, frame: pd.DataFrame, actor: str = "") -> SubmissionReport:
    """Validate and store one institution's submitted cases, all or nothing.

    ``frame`` holds the rows as strings in cases.csv columns with ``_line`` (the label errors point
    at: JSON index or CSV line); institution_code, where empty, is the caller's. The rules are the
    bundle loader's (``parse_cases``; ``cases_upsert``): identical cases are skipped, a changed case of
    an open period is updated and recorded as a ``CaseCorrection`` (source=api), a row that would add
    to or change a finalized period raises :class:`CasesFinalized`. Bad rows raise
    :class:`CasesInvalid` listing every one."""
    typed, errors = cases_validate(institution=institution, frame=frame)
    if errors:
        raise CasesInvalid(errors)
    report = SubmissionReport(received=len(typed))
    if typed.empty:
        return report
    try:
        upserted = cases_upsert(
            region=institution.region, rows=typed, source=ChangeSource.API, user=None,
            reason=f"hospital API submission{f' ({actor})' if actor else ''}",
        )
    except CasesFrozen as exc:
        conflicts = [
            CaseRowError(e.row, e.field, "period_finalized", e.message, e.case_no) for e in _row_errors(exc.errors, frame)
        ]
        raise CasesFinalized(conflicts) from exc
    report.created, report.updated, report.unchanged = upserted.created, upserted.updated, upserted.unchanged
    report.corrections = [c.pk for c in upserted.corrections if c.pk is not None]
    return report


class CasesFrozen(Exception):
    """cases_upsert refused: some rows would add to or change a finalized period (API: 409)."""

    def __init__(self, errors: Iterable[RowError]):
        self.errors = sorted(errors)
        super().__init__(f"{len(self.errors)} case(s) fall in a finalized period; nothing was changed")


@dataclass
class FileCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


@dataclass
class UpsertReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    corrections: list[CaseCorrection] = field(default_factory=list)
    # the (patient_id, fund, year) the write touches, a row per case (repeats left in): a frame, so
    # that a million new cases do not become a million tuples only to be filtered (touched_keys
    # filters, then makes the set)
    touched: pd.DataFrame = field(default_factory=lambda: _touched_frame(new=pd.DataFrame(), changed=pd.DataFrame()))
    # cases_apply(beside=True): the new cases being stored beside the caller's transaction, to be
    # attached by it (drg.partitions.PartitionFill)
    fill: PartitionFill | None = None
    # with a fill: the stays of its cases, which are all the region has (patient_id, fund,
    # discharge_date as ISO text, share = total cost - self-pay in fen), for what must read the
    # region's stays before the fill is attached
    stays: pd.DataFrame | None = None

    @property
    def counts(self) -> FileCounts:
        return FileCounts(self.created, self.updated, self.unchanged)


# --- cases in bulk: the bundle loader and the API submission ---------------------------------------


# from this many lines on, a bundle's cases.csv is first read against the stored cases (cases_read_changed)
UNCHANGED_FIRST_LINES = 50_000
SAMPLE_LINES = 1_000  # lines whose keys are looked up first: three quarters must name stored cases


@dataclass
class ChangedLines:
    """What cases_read_changed found: the file's lines that are not a stored case verbatim, read and
    checked (parse_cases output, numbered as in the file), and how many lines are."""

    frame: pd.DataFrame  # the lines as read (strings), for the loader's other files
    typed: pd.DataFrame
    errors: list[RowError]
    unchanged: int


def cases_read_changed(
    *, region: Region, raw: bytes, known_institutions: Iterable[str], known_groups: Iterable[str],
) -> ChangedLines | None:
    """Read a large cases.csv against the region's stored cases (selectors.cases_stored_lines): a
    line byte-identical to a stored case's line is that case unchanged and is neither parsed nor
    checked again; every other line is read, checked (parse_cases) and returned with its line number.

    The result is the one reading and checking the whole file gives, restricted to the lines that
    are not unchanged. None (read the whole file instead) when it could differ or would not pay:
    not PostgreSQL, a file with quotes or carriage returns, a header the whole reading reports on,
    fewer than UNCHANGED_FIRST_LINES lines, fewer than three quarters of a sample of its lines
    naming a stored case (a first load of the region-year), bytes that are not UTF-8, or a line
    repeating the key of an unchanged line (the whole reading names both). Call it with the region
    locked."""
    if not is_postgres():
        return None
    plain = plain_lines(raw)
    if plain is None or len(plain.lines) < UNCHANGED_FIRST_LINES:
        return None
    header = plain.header.split(",")
    if check_header(header, CASES) or not set(CASES.required_columns) <= set(header):
        return None
    sample = line_sample(plain, header, rows=SAMPLE_LINES)
    if not sample.keys or sample.years is None:
        return None
    if selectors.stored_key_count(region_id=region.pk, keys=sample.keys) < len(sample.keys) * 3 // 4:
        return None  # mostly new cases (a first load of the region-year): nothing to save
    groups = sorted(set(known_groups))
    # the stored cases of the years the sample names (a line of another year is read and compared)
    stored = selectors.cases_stored_lines(region_id=region.pk, header=header, groups=groups, years=sample.years)
    # each stored line matches one line of the file at most: a repeated line is read
    same = np.array(list(map(stored.pop, plain.lines, repeat(False))), dtype=bool)
    read = read_lines(plain, np.flatnonzero(~same), CASES)
    if read is None:
        return None
    frame, errors = read
    typed, parse_errors = parse_cases(frame, known_institutions=known_institutions, known_groups=groups)
    # a read line naming a stored case whose own line the file sent too repeats that line's key
    keys = zip(frame["institution_code"], frame["case_no"])
    if any(line not in stored for line in selectors.case_lines_of_keys(region_id=region.pk, keys=keys, header=header, groups=groups,
                                                                          years=sample.years)):
        return None
    return ChangedLines(frame=frame, typed=typed, errors=errors + parse_errors, unchanged=int(same.sum()))


def cases_plan(
    *, region: Region | None, rows: pd.DataFrame, file: str = CASES.name, keys_unique: bool = False,
) -> tuple[pd.DataFrame, list[RowError]]:
    """Compare validated case rows (parse_cases output) with the stored cases: each row gets
    state new / changed / unchanged (drg.domain.cases.classify_cases); rows that would add to or
    change a finalized period are returned as errors. Reads only.

    `keys_unique`: the caller has dropped the rows parse_cases reported (a repeated key among
    them), so the keys are not hashed a second time (0.3–0.4 s for a million rows)."""
    missing = [c for c in CASE_TYPED_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"case rows lack the typed columns {missing}; pass them through parse_cases first")
    if not keys_unique and rows.duplicated(["institution_code", "case_no"]).any():
        raise ValueError("case rows repeat an (institution_code, case_no); parse_cases reports those as errors")
    region_id = region.pk if region is not None else None
    ids = selectors.institution_ids(region_id=region_id)
    known = rows[rows["institution_code"].isin(list(ids))]
    keys = pd.DataFrame({"institution_id": ids_of(known["institution_code"], ids), "case_no": known["case_no"]})
    stored = selectors.cases_stored_frame(keys=keys)  # many keys: their institutions' cases read whole
    codes = {pk: code for code, pk in ids.items()}
    stored["institution_code"] = stored["institution_id"].map(codes).astype(object)
    classified = classify_cases(rows, stored)
    frozen = selectors.finalized_through(region_id=region_id) if region_id is not None else {}
    return classified, frozen_case_errors(classified, frozen, file=file)


def cases_upsert(
    *, region: Region, rows: pd.DataFrame, source: str, user=None, reason: str = "", file: str = CASES.name,
) -> UpsertReport:
    """Insert new cases, update changed ones (recording a CaseCorrection each), skip identical ones.

    `rows` are validated typed rows (drg.domain.cases.parse_cases); their institutions must be
    stored in `region`. Raises CasesFrozen (nothing written) when a row would add to or change a
    finalized period. One transaction; bulk statements only."""
    with transaction.atomic():
        Region.objects.select_for_update().filter(pk=region.pk).first()
        classified, errors = cases_plan(region=region, rows=rows, file=file)
        if errors:
            raise CasesFrozen(errors)
        return cases_apply(region=region, classified=classified, source=source, user=user, reason=reason)


_CASE_VALUE_FIELDS = (
    "fund", "patient_id", "admission_date", "discharge_date", "drg_code", "total_cost", "self_pay",
    "discharge_status", "tcm_treatment", "tcm_cost", "surgery_grade", "malignant_tumor_surgery",
)


def _case_columns(rows: pd.DataFrame, *, institution_ids: dict[str, int], region_id: int, now: dt.datetime) -> dict[str, Any]:
    """Typed case rows -> drg_case column name -> its values in database form, column at a time
    (common.bulk.arrow_column: amounts as Arrow decimals made from their fen, dates ISO, booleans
    bool; one value where every row has the same). Everything but the id."""
    unknown = sorted(set(rows["institution_code"].unique()) - set(institution_ids))
    if unknown:
        raise ValueError(f"institutions not stored in the region: {unknown}")
    stamp = now if is_postgres() else connection.ops.adapt_datetimefield_value(now)
    return {
        "region_id": region_id,
        "institution_id": ids_of(rows["institution_code"], institution_ids),
        **{name: rows[name] for name in ("case_no", "fund", "patient_id", "admission_date", "discharge_date", "drg_code")},
        "total_cost": units_decimal_array(rows["total_fen"], 2),
        "self_pay": units_decimal_array(rows["self_fen"], 2),
        "discharge_status": rows["discharge_status"],
        "tcm_treatment": rows["tcm_treatment"].to_numpy(dtype=bool),
        "tcm_cost": units_decimal_array(rows["tcm_fen"], 2),
        "surgery_grade": rows["surgery_grade"].to_numpy(dtype="int64"),
        "malignant_tumor_surgery": rows["malignant_tumor_surgery"].to_numpy(dtype=bool),
        "created_at": stamp,
        "updated_at": stamp,
    }


def _cases_insert(columns: dict[str, Any], count: int, *, region_id: int, beside: bool = False) -> PartitionFill | None:
    """INSERT new cases: on PostgreSQL into a new table of the region's own when it has none yet
    (drg.partitions.partition_load, or partition_fill_beside when `beside`: the fill returned, for
    the caller to attach), else COPY into drg_case; one executemany on SQLite."""
    table = Case._meta.db_table
    if is_postgres():
        if beside:
            fill = partition_fill_beside(region_id, columns, count)
            if fill is not None:
                return fill
        if partition_load(region_id, columns, count):
            return None
        copy_columns(table, columns, count)
        foreign_keys_check_now(table)  # while the new pages are cached, not at commit
        return None
    names = ", ".join(columns)
    sql = f"INSERT INTO {connection.ops.quote_name(table)} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"
    with connection.cursor() as cursor:
        cursor.executemany(sql, columns_to_rows(columns, count))
    return None


def _cases_update(ids: list[int], columns: dict[str, Any]) -> None:
    """UPDATE changed cases by id: PostgreSQL through a temporary table filled by COPY, SQLite by
    executemany."""
    table = connection.ops.quote_name(Case._meta.db_table)
    fields = [*_CASE_VALUE_FIELDS, "updated_at"]
    values = {**{name: columns[name] for name in fields}, "id": ids}  # id last: the WHERE of the SQLite UPDATE
    if is_postgres():
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS drg_case_load")
            cursor.execute(
                f"CREATE TEMPORARY TABLE drg_case_load ON COMMIT DROP AS SELECT id, {', '.join(fields)} FROM {table} WITH NO DATA"
            )
            copy_columns("drg_case_load", values, len(ids))
            assignments = ", ".join(f"{name} = t.{name}" for name in fields)
            cursor.execute(f"UPDATE {table} AS c SET {assignments} FROM drg_case_load AS t WHERE c.id = t.id")
            cursor.execute("DROP TABLE drg_case_load")
        return
    sql = f"UPDATE {table} SET {', '.join(f'{name} = %s' for name in fields)} WHERE id = %s"
    with connection.cursor() as cursor:
        cursor.executemany(sql, columns_to_rows(values, len(ids)))


def cases_fill_beside(*, region_id: int, rows: pd.DataFrame, institution_ids: dict[str, int], now: dt.datetime,
                      more: bool = False) -> PartitionFill:
    """Start storing the first cases of a region created in the caller's uncommitted transaction
    (typed rows, parse_cases output, every one new) beside that transaction, in the region's own
    table (drg.partitions.PartitionFill); hand the fill to cases_apply(fill=…). No query on the
    calling thread, which may be any: for a caller holding drg.partitions.first_loads_serialize,
    on PostgreSQL with drg_case partitioned. ``more``: further rows follow (cases_fill_add), then
    the fill's ``close``, or its ``abort`` if they fail their checks."""
    fill = PartitionFill(region_id)
    try:
        cases_fill_add(fill, rows=rows, institution_ids=institution_ids, now=now)
    except BaseException:
        fill.abort()  # its thread rolls back and ends
        raise
    if not more:
        fill.close()
    return fill


def cases_fill_add(fill: PartitionFill, *, rows: pd.DataFrame, institution_ids: dict[str, int], now: dt.datetime) -> None:
    """More new cases for a fill cases_fill_beside started with ``more`` (the same ``now``)."""
    fill.put(_case_columns(rows, institution_ids=institution_ids, region_id=fill.region_id, now=now), len(rows))


def cases_apply(
    *, region: Region, classified: pd.DataFrame, source: str, user=None, reason: str = "", announce: bool = True,
    beside: bool = False, fill: PartitionFill | None = None, now: dt.datetime | None = None,
) -> UpsertReport:
    """Write a checked plan (cases_plan, no errors) inside the caller's transaction, with the region
    locked: insert new cases, update changed ones and record a CaseCorrection for each.

    The (patient, fund, discharge year) keys the write touches are in the report's ``touched``;
    they are announced after commit (drg.signals.cases_stored) unless ``announce`` is False, in
    which case the caller announces them (cases_announce).

    ``beside``: a region that has no table of cases yet gets its new cases stored on a connection
    of their own (drg.partitions.PartitionFill, in the report's ``fill``): the caller goes on and
    must ``attach`` the fill before it reads the region's cases or commits, and ``discard`` it if
    its transaction rolls back. Only for a caller holding drg.partitions.first_loads_serialize.
    ``fill``: those new cases already being stored so (cases_fill_beside, at ``now``), by a
    caller that discards it if anything fails."""
    now = now or timezone.now()
    ids = selectors.institution_ids(region_id=region.pk)
    state = classified["state"].to_numpy(dtype=object)
    new = classified[state == case_rules.NEW]
    changed = classified[state == case_rules.CHANGED]
    report = UpsertReport(created=len(new), updated=len(changed), unchanged=int((state == case_rules.UNCHANGED).sum()))
    if fill is not None:
        if len(changed) or fill.count != len(new) or fill.region_id != region.pk:
            raise ValueError(f"the fill of {fill.count} cases of region {fill.region_id} is not the plan's "
                             f"{len(new)} new and {len(changed)} changed cases of region {region.pk}")
        report.fill = fill
    elif len(new):
        report.fill = _cases_insert(_case_columns(new, institution_ids=ids, region_id=region.pk, now=now), len(new),
                                    region_id=region.pk, beside=beside)
    try:
        if report.fill is not None:
            report.stays = pd.DataFrame({
                "patient_id": new["patient_id"].array, "fund": new["fund"].array, "discharge_date": new["discharge_date"].array,
                "share": new["total_fen"].to_numpy(dtype="int64") - new["self_fen"].to_numpy(dtype="int64"),
            })
        if len(changed):
            _cases_update(changed["case_id"].astype("int64").tolist(),
                          _case_columns(changed, institution_ids=ids, region_id=region.pk, now=now))
            corrections = []
            for row in changed[["case_id", "changed", *CASE_VALUE_COLUMNS, *[f"{c}_stored" for c in CASE_VALUE_COLUMNS]]].itertuples(index=False):
                values = row._asdict()
                before = {CASE_FIELD_OF[c]: case_json_value(c, values[f"{c}_stored"]) for c in row.changed}
                after = {CASE_FIELD_OF[c]: case_json_value(c, values[c]) for c in row.changed}
                corrections.append(CaseCorrection(
                    case_id=int(row.case_id), source=source, changed_by=user, before=before, after=after, reason=reason,
                ))
            report.corrections = copy_create(CaseCorrection, corrections)
        report.touched = _touched_frame(new=new, changed=changed)
    except BaseException:
        if report.fill is not None and fill is None:  # the caller does not know of the fill yet: its table goes now
            report.fill.discard()
        raise
    if announce:
        cases_announce(region_id=region.pk, keys=touched_keys(report.touched), source=source)
    return report


def _as_text(values: pd.Series) -> pd.Series:
    """A column as pandas' str: a typed case column already is (astype would copy a million values
    through Python objects), a stored-values column (objects) is converted."""
    return values if isinstance(values.dtype, pd.StringDtype) else values.astype(str)


def _touched_frame(*, new: pd.DataFrame, changed: pd.DataFrame) -> pd.DataFrame:
    """The (patient_id, fund, year of discharge) that stored cases touch, once each: a changed case
    names its stored values too."""
    parts = []
    for frame, suffix in ((new, ""), (changed, ""), (changed, "_stored")):
        columns = [f"patient_id{suffix}", f"fund{suffix}", f"discharge_date{suffix}"]
        if len(frame) and all(c in frame.columns for c in columns):
            # pandas' str columns, held by Arrow: the typed cases' own buffers, no Python string per row
            dates = pa.array(_as_text(frame[columns[2]]))
            parts.append(pd.DataFrame({
                "patient_id": _as_text(frame[columns[0]]).array, "fund": _as_text(frame[columns[1]]).array,
                "year": pc.cast(pc.utf8_slice_codeunits(dates, 0, 4), pa.int64()).to_numpy(),
            }))
    if not parts:
        return pd.DataFrame({"patient_id": pd.Series(dtype=object), "fund": pd.Series(dtype=object), "year": pd.Series(dtype="int64")})
    return pd.concat(parts, ignore_index=True)  # a patient's many stays of a year: one key each in touched_keys


def touched_keys(touched: pd.DataFrame, *, except_years: Iterable[int] = ()) -> set[tuple[str, str, int]]:
    """The (patient_id, fund, year) of a touched frame as a set, leaving out `except_years`."""
    if except_years:
        touched = touched[~touched["year"].isin(list(except_years))]
    touched = touched.drop_duplicates()
    return set(zip(touched["patient_id"].tolist(), touched["fund"].tolist(), touched["year"].tolist()))


def cases_announce(*, region_id: int, keys: set[tuple[str, str, int]], source: str) -> None:
    """After commit, tell the apps above which (patient, fund, discharge year) stored cases touch
    (drg.signals.cases_stored); nothing when `keys` is empty."""
    if keys:
        transaction.on_commit(lambda: cases_stored.send(sender=Case, region_id=region_id, keys=keys, source=source))


# --- special reviews and correction requests --------------------------------------------------------


class CaseNotFound(Exception):
    """No case with this case_no at the caller's institution (other institutions' cases look the same)."""


class AlreadyDecided(Exception):
    """The record has been approved and can no longer be changed by the hospital."""


def case_of_institution(*, institution: Institution, case_no: str) -> Case:
    case = Case.objects.filter(institution=institution, case_no=case_no).first()
    if case is None:
        raise CaseNotFound(case_no)
    return case


def special_review_submit(
    *, institution: Institution, case_no: str, reason: str, requested_cost: Decimal, documents: list[str]
) -> tuple[SpecialReview, str]:
    """Request 特病单议 for a case. Returns (review, CREATED / UPDATED / UNCHANGED). A pending or
    rejected request is replaced by the new one (back to submitted); an approved one cannot change
    (AlreadyDecided). Sending the same pending request again changes nothing. Of parallel first
    requests of a case exactly one creates the review; the others then see it (see reviewable_submit)."""
    with transaction.atomic():
        case = case_of_institution(institution=institution, case_no=case_no)
        review = SpecialReview.objects.select_for_update().filter(case=case).first()
        if review is None:
            review = SpecialReview(
                institution=institution, case=case, reason=reason, requested_cost=requested_cost, documents=list(documents)
            )
            review._change_reason = "submitted through the hospital API"
            if _created_first(review):
                return review, CREATED
            review = SpecialReview.objects.select_for_update().get(case=case)
        if review.status == ReviewStatus.APPROVED:
            raise AlreadyDecided(f"the special review of case {case_no} is already approved")
        if (
            review.status == ReviewStatus.SUBMITTED
            and review.reason == reason
            and review.requested_cost == requested_cost
            and list(review.documents or []) == list(documents)
        ):
            return review, UNCHANGED
        review.reason = reason
        review.requested_cost = requested_cost
        review.documents = list(documents)
        review.status = ReviewStatus.SUBMITTED
        review.decided_at = None
        review.decided_by = None
        review.rejection_reason = ""
        review._change_reason = "resubmitted through the hospital API"
        review.save()
    return review, UPDATED


def correction_request_submit(
    *, institution: Institution, case_no: str, proposed: dict[str, Any], reason: str
) -> CorrectionRequest:
    """Ask the bureau to correct a case (typically one of a finalized period; the bureau's approval
    applies it, see common.reviews). ``proposed`` holds the case fields to change as raw JSON values;
    merged with the stored case they must pass the same rules as a submission. Only fields that
    differ from the stored case are kept. Raises CasesInvalid (field errors, or ``no_change``) and
    CaseNotFound."""
    with transaction.atomic():
        case = case_of_institution(institution=institution, case_no=case_no)
        if "case_no" in proposed:
            raise CasesInvalid([CaseRowError(0, "case_no", "not_correctable", "case_no cannot be corrected; it identifies the case")])
        stored = {name: _raw_value(getattr(case, name)) for name in CASE_VALUE_FIELDS}
        frame, type_errors = json_rows_to_frame([(0, {**stored, **proposed, "case_no": case.case_no})], institution_code=institution.code)
        if type_errors:
            raise CasesInvalid([CaseRowError(0, e.get("field"), e["code"], e["message"]) for e in type_errors])
        typed, errors = cases_validate(institution=institution, frame=frame)
        if errors:
            raise CasesInvalid(errors)
        row = typed.iloc[0]
        changes: dict[str, Any] = {}
        for column, name in CASE_FIELD_OF.items():
            if name in proposed:
                value = case_json_value(column, row[column])
                if value != case_json_value(column, _typed_value(column, getattr(case, name))):
                    changes[name] = value
        if not changes:
            raise CasesInvalid([CaseRowError(0, None, "no_change", "the proposed values equal the stored case; nothing to correct")])
        request = CorrectionRequest(institution=institution, case=case, proposed=changes, reason=reason)
        request._change_reason = "submitted through the hospital API"
        request.save()
    return request


class LateCaseRefused(Exception):
    """A late case that the stored state refuses (nothing stored). ``code``: ``case_exists`` (the
    institution already has this case_no: a change goes through a change request),
    ``already_requested`` (a late case of this case_no awaits a decision) or ``period_open`` (its
    discharge month is not finalized: it is submitted as an ordinary case)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def late_case_row(*, institution: Institution, case_no: str, proposed: dict[str, Any]) -> dict[str, Any]:
    """Check a late case: the whole row by the case submission's rules (``json_rows_to_frame``,
    :func:`cases_validate`: the loader's ``parse_cases`` plus the region's catalog), a case_no new
    at the institution and a discharge month in a finalized period of its fund. Reads only; used
    when the request is submitted and again when it is approved.

    Returns the row as JSON values keyed by Case field, less case_no (the form of
    ``CaseCorrection.after``). Raises :class:`CasesInvalid` and :class:`LateCaseRefused`."""
    if "case_no" in proposed:
        raise CasesInvalid([CaseRowError(0, "case_no", "unknown_field", "case_no goes at the top level of the request, not in proposed")])
    frame, type_errors = json_rows_to_frame([(0, {**proposed, "case_no": case_no})], institution_code=institution.code)
    if type_errors:
        raise CasesInvalid([CaseRowError(0, e.get("field"), e["code"], e["message"]) for e in type_errors])
    typed, errors = cases_validate(institution=institution, frame=frame)
    if errors:
        raise CasesInvalid(errors)
    typed_row = typed.iloc[0]
    row = {name: case_json_value(column, typed_row[column]) for column, name in CASE_FIELD_OF.items()}
    if Case.objects.filter(institution=institution, case_no=case_no).exists():
        raise LateCaseRefused(
            "case_exists",
            f"case {case_no!r} of your institution is already stored; to change it, send a correction request "
            "of kind change with the fields to change",
        )
    fund, year, month = row["fund"], int(row["discharge_date"][:4]), int(row["discharge_date"][5:7])
    through = selectors.finalized_through(region_id=institution.region_id).get((fund, year), 0)
    if month > through:
        state = f"finalized through month {through}" if through else "no month of it is finalized"
        raise LateCaseRefused(
            "period_open",
            f"case {case_no!r} is discharged in {fund} {year}-{month:02d}, an open period ({state}); "
            "submit it as an ordinary case (POST /api/v1/cases/), not as a late case",
        )
    return row


def late_case_request_submit(
    *, institution: Institution, case_no: str, proposed: dict[str, Any], reason: str
) -> CorrectionRequest:
    """Ask the bureau to add a late case: a new case discharged in a finalized period, which a
    submission or a bundle may no longer add (SETTLEMENT.md §6). ``proposed`` is the whole case row
    (the submission's fields less case_no) as raw JSON values; it is checked by
    :func:`late_case_row` and stored normalised. The bureau's approval creates the case and records
    a ``CaseCorrection`` (common.reviews); the next cumulative or annual run values it.
    Raises CasesInvalid (row errors) and LateCaseRefused."""
    with transaction.atomic():
        row = late_case_row(institution=institution, case_no=case_no, proposed=proposed)
        pending = CorrectionRequest.objects.filter(
            institution=institution, kind=CorrectionRequest.Kind.LATE_CASE, case_no=case_no, status=ReviewStatus.SUBMITTED
        ).values_list("pk", flat=True).first()
        if pending is not None:
            raise LateCaseRefused(
                "already_requested", f"late case {case_no!r} already awaits the bureau's decision (correction request #{pending})"
            )
        request = CorrectionRequest(
            institution=institution, kind=CorrectionRequest.Kind.LATE_CASE, case_no=case_no, proposed=row, reason=reason
        )
        request._change_reason = "late case submitted through the hospital API"
        try:
            with transaction.atomic():
                request.save()
        except IntegrityError as exc:  # a concurrent request for the same case_no won the race
            raise LateCaseRefused("already_requested", f"late case {case_no!r} already awaits the bureau's decision") from exc
    return request


def _raw_value(value: Any) -> Any:
    """A stored case value as a submission would carry it."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (dt.date, Decimal)):
        return str(value)
    return value


def _typed_value(column: str, value: Any) -> Any:
    """A stored case value in the loader's typed units (fen for amounts)."""
    if column.endswith("_fen"):
        return int(Decimal(value) * 100)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


# Case fields a correction request may change (the identity — institution, case_no, region — may not).
CORRECTABLE_CASE_FIELDS = (
    "fund", "patient_id", "admission_date", "discharge_date", "drg_code", "total_cost", "self_pay",
    "discharge_status", "tcm_treatment", "tcm_cost", "surgery_grade", "malignant_tumor_surgery",
)


# --- approving correction requests (common.reviews.review_approve calls it: drg.apps) ------------------------------------------------------------------------------

def _json_value(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def correction_request_apply(*, request: CorrectionRequest, user, note: str = "") -> CaseCorrection:
    """Apply an approved correction request's proposed values to its case; returns the CaseCorrection.

    Runs inside review_approve's transaction. The case may belong to a finalized period: that is what
    a correction request is for; finalized runs keep their numbers and the next run picks it up.
    A late case (kind late_case) is created instead: late_case_create."""
    if request.kind == request.Kind.LATE_CASE:
        return late_case_create(request=request, user=user, note=note)
    case = Case.objects.select_for_update().get(pk=request.case_id)
    if case.institution_id != request.institution_id:
        raise ValidationError("the correction request's institution is not the case's institution")
    proposed = request.proposed
    if not isinstance(proposed, dict) or not proposed:
        raise ValidationError({"proposed": "nothing proposed: give the case fields to change, e.g. {\"drg_code\": \"GB25\"}"})
    unknown = sorted(set(proposed) - set(CORRECTABLE_CASE_FIELDS))
    if unknown:
        raise ValidationError({"proposed": f"these case fields cannot be corrected: {', '.join(unknown)}"})
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for name in CORRECTABLE_CASE_FIELDS:
        if name not in proposed:
            continue
        model_field = Case._meta.get_field(name)
        try:
            value = model_field.to_python(proposed[name])
        except (ValidationError, InvalidOperation, TypeError, ValueError) as exc:
            raise ValidationError({"proposed": f"{name}: {error_text(exc) if isinstance(exc, ValidationError) else exc}"}) from exc
        old = getattr(case, name)
        if value != old:
            before[name] = _json_value(old)
            after[name] = _json_value(value)
            setattr(case, name, value)
    if not after:
        raise ValidationError({"proposed": "the proposed values equal the stored case; nothing to correct"})
    # the catalog in force: the discharge year's, else the latest earlier one (as the API and bundle check)
    catalog_year = (DrgGroup.objects.filter(region_id=case.region_id, year__lte=case.discharge_date.year)
                    .order_by("-year").values_list("year", flat=True).first())
    if catalog_year is None or not DrgGroup.objects.filter(region_id=case.region_id, year=catalog_year, code=case.drg_code).exists():
        raise ValidationError({"proposed": f"drg_code {case.drg_code} is not in the {catalog_year or case.discharge_date.year} catalog of the region"})
    try:
        case.full_clean(exclude=["region", "institution"], validate_unique=False)
    except ValidationError as exc:
        raise ValidationError({"proposed": error_text(exc)}) from exc
    case.save(update_fields=[*after, "updated_at"])
    return CaseCorrection.objects.create(
        case=case, source=ChangeSource.ADMIN, changed_by=user, before=before, after=after, reason=_correction_reason(request, note)
    )


def _correction_reason(request: CorrectionRequest, note: str) -> str:
    reason = f"correction request #{request.pk}: {request.reason}"
    return f"{reason} — {note}" if note else reason


def late_case_create(*, request: CorrectionRequest, user, note: str = "") -> CaseCorrection:
    """Create the late case of an approved correction request (kind late_case); returns the
    CaseCorrection (before={}, after=the whole row with case_no, source=admin, who approved).

    Runs inside review_approve's transaction, with the region locked as case loads and API
    submissions lock it, so a case with this case_no cannot slip in between the check and the
    insert. The row is checked again by the submission's rules (late_case_row): the
    case_no must still be new and its discharge month finalized; otherwise nothing is written and the
    request stays pending (reject it with a reason)."""
    institution = request.institution
    Region.objects.select_for_update().filter(pk=institution.region_id).first()
    proposed = request.proposed if isinstance(request.proposed, dict) else {}
    try:
        row = late_case_row(institution=institution, case_no=request.case_no, proposed=proposed)
    except CasesInvalid as exc:
        raise ValidationError({"proposed": "; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in exc.errors)}) from exc
    except LateCaseRefused as exc:
        raise ValidationError(exc.message) from exc
    values = {name: Case._meta.get_field(name).to_python(value) for name, value in row.items()}
    case = Case(region_id=institution.region_id, institution=institution, case_no=request.case_no, **values)
    try:
        case.full_clean(exclude=["region", "institution"], validate_unique=False)
    except ValidationError as exc:
        raise ValidationError({"proposed": error_text(exc)}) from exc
    case.save()
    request.case = case
    return CaseCorrection.objects.create(
        case=case, source=ChangeSource.ADMIN, changed_by=user, before={}, after={"case_no": case.case_no, **row},
        reason=_correction_reason(request, note),
    )


def correction_request_approved(*, record: CorrectionRequest, user, note: str = "") -> CaseCorrection:
    """The effect of approving a correction request (registered with common.reviews by drg.apps)."""
    return correction_request_apply(request=record, user=user, note=note)


# --- other records hospitals submit for review (itemized claims, incentive events) -------------------

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


def _created_first(record) -> bool:
    """Insert a new record in a savepoint. False when a parallel request inserted the same key first
    (the unique constraint refused this one): the caller then reads and updates the stored record,
    so of parallel first submissions one is created and the others answer like a resubmission."""
    try:
        with transaction.atomic():
            record.save()
    except IntegrityError:
        return False
    return True


def reviewable_submit(*, model, lookup: dict[str, Any], values: dict[str, Any]) -> tuple[Any, str]:
    """Submit a ``Reviewable`` record identified by ``lookup`` (which includes the institution).

    New -> created (status submitted). A pending or rejected record with the same key is replaced by
    the new values and goes back to submitted (``updated``), or is left alone when identical and
    pending (``unchanged``). An approved record cannot change: AlreadyDecided."""
    with transaction.atomic():
        record = model.objects.select_for_update().filter(**lookup).first()
        if record is None:
            record = model(**lookup, **values)
            record._change_reason = "submitted through the hospital API"
            if _created_first(record):
                return record, CREATED
            record = model.objects.select_for_update().get(**lookup)
        if record.status == ReviewStatus.APPROVED:
            raise AlreadyDecided(f"this {model._meta.verbose_name} is already approved")
        if record.status == ReviewStatus.SUBMITTED and all(getattr(record, k) == v for k, v in values.items()):
            return record, UNCHANGED
        for name, value in values.items():
            setattr(record, name, value)
        record.status = ReviewStatus.SUBMITTED
        record.decided_at = None
        record.decided_by = None
        record.rejection_reason = ""
        record._change_reason = "resubmitted through the hospital API"
        record.save()
    return record, UPDATED


def idempotency_records_purge(*, older_than: dt.timedelta) -> int:
    """Forget stored Idempotency-Key answers older than `older_than` (a retry after that is processed
    again, which case submission tolerates: identical cases are a no-op). Returns how many went."""
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted
