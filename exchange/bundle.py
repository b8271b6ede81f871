"""The batch door: load an exchange bundle (EXCHANGE.md) all or nothing, idempotently, in bulk.

``bundle_load`` reads every file (exchange.domain.bundle parses and checks them, pure), then in one
transaction checks them against what is stored (references, cases of finalized periods, pending
budget drafts), raises ``BundleInvalid`` with every bad row if there is any, and otherwise writes:
region, payment scheme, budgets (through budget.services), catalogs, cases (drg.services.cases_upsert:
COPY on PostgreSQL, executemany on SQLite) and the approved records. A record identical to the
stored one is left alone and counted as unchanged; a changed case of an open period is updated and
recorded as a CaseCorrection. Nothing is ever deleted. See docs/loading.md.
"""
from __future__ import annotations

import datetime as dt
import queue
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from benefits import selectors as benefit_selectors
from benefits.services import benefits_bundle_store
from budget.choices import BudgetStatus
from budget.models import Budget
from budget.services import budget_approve, budget_current, budget_draft, budget_inputs_of
from common.bulk import copy_create, copy_create_columns, copy_create_history, foreign_keys_check_now, is_postgres, read_frame
from common.models import ReviewStatus
from common.units_text import units_text_array
from common.users import system_user
from drg import selectors
from drg.models import Coefficient, DrgGroup, Institution, PaymentScheme, Region, SpecialReview, TcmEquivalent
from drg.partitions import PartitionFill, cases_partitioned, first_loads_serialize, orphans_drop, partition_ensure
from drg.choices import ChangeSource
from drg.revisions import parameter_revisions_record_load
from drg.services import (
    FileCounts, UpsertReport, cases_announce, cases_apply, cases_fill_add, cases_fill_beside, cases_plan, cases_read_changed, touched_keys,
)
from exchange.domain import bundle as domain
from exchange.domain.bundle import LINE, PARAMS_FILE, BundleParams, FileSpec, RowError
from incentives.models import ChronicEnrollment, HospiceService, Screening, TcmWorkload
from settlement.choices import AdjustmentStatus, ItemizedSource
from settlement.models import Evaluation, ItemizedClaim, PointAdjustment

Progress = Callable[[str], None]
BATCH = 5_000


class BundleInvalid(Exception):
    """The bundle has bad rows; nothing was loaded. `errors` lists every one, in bundle order."""

    def __init__(self, errors: Iterable[RowError]):
        self.errors = domain.sort_errors(errors)
        super().__init__(f"the bundle has {len(self.errors)} error(s); nothing was loaded")


@dataclass
class LoadReport:
    path: Path
    region: str
    year: int
    files: dict[str, FileCounts] = field(default_factory=dict)
    corrections: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    benefits_settled: list[tuple[int, int, int]] = field(default_factory=list)  # per settled year: claims, newly settled, corrected
    revisions: list = field(default_factory=list)  # parameter revisions the load recorded (drg.revisions)
    write_timings: dict[str, float] = field(default_factory=dict)  # the write phase by part (catalogs, cases, records, benefits)


# --- records other than cases ------------------------------------------------------------------------


def _has_history(model) -> bool:
    return bool(getattr(model._meta, "simple_history_manager_attribute", None))


@dataclass
class _Writer:
    """What every record write of one load shares: who acts, when, and why (for history rows)."""

    user: Any
    system: Any
    now: dt.datetime
    reason: str

    @property
    def actor(self):
        return self.user or self.system

    def sync(self, model, *, existing: dict, rows: Iterable[tuple[tuple, dict]], make: Callable[[tuple], Any],
             on_write: dict | None = None, on_create: dict | None = None) -> FileCounts:
        """Upsert `rows` (key, compared values) against `existing` (key -> stored object): new
        keys are bulk-created, differing ones bulk-updated (with `on_write` set too), identical
        ones left alone. History rows are written for models that keep history."""
        counts = FileCounts()
        to_create, to_update = [], []
        fields: set[str] = set()
        for key, values in rows:
            obj = existing.get(key)
            if obj is None:
                obj = make(key)
                for name, value in {**values, **(on_write or {}), **(on_create or {})}.items():
                    setattr(obj, name, value)
                to_create.append(obj)
                existing[key] = obj
                continue
            differing = [name for name, value in values.items() if getattr(obj, name) != value]
            if not differing:
                counts.unchanged += 1
                continue
            for name, value in {**values, **(on_write or {})}.items():
                setattr(obj, name, value)
            fields.update(values)
            fields.update(on_write or {})
            to_update.append(obj)
        history = _has_history(model)
        if to_create and is_postgres():  # COPY: the first load of a large bundle is mostly creates
            copy_create(model, to_create)
            if history:
                copy_create_history(model, to_create, user=self.actor, reason=self.reason, date=self.now)
        elif to_create:
            if history:
                bulk_create_with_history(to_create, model, batch_size=BATCH, default_user=self.actor,
                                         default_change_reason=self.reason, default_date=self.now)
            else:
                model.objects.bulk_create(to_create, batch_size=BATCH)
        if to_update:
            update_fields = sorted(fields)
            if history:
                bulk_update_with_history(to_update, model, update_fields, batch_size=BATCH, default_user=self.actor,
                                         default_change_reason=self.reason, default_date=self.now)
            else:
                model.objects.bulk_update(to_update, update_fields, batch_size=BATCH)
        counts.created, counts.updated = len(to_create), len(to_update)
        return counts

    def sync_frame(self, model, *, queryset, frame: pd.DataFrame, keys: dict[str, Any], values: dict[str, Any],
                   fixed: dict[str, Any] | None = None, on_write: dict | None = None, on_create: dict | None = None) -> FileCounts:
        """``sync`` for the typed rows of one file. `keys` and `values` name the model fields that
        identify and describe a record, each with its typed column (or one value for every row);
        `fixed` the fields every record of `queryset` shares (set on creation).

        The stored values are read in one query, in the typed units, and compared by columns: rows
        identical to their stored record are counted unchanged and never become objects. On
        PostgreSQL the rows with no stored record are written from their columns by COPY, history
        rows included (common.bulk.copy_create_columns); the other rows go through ``sync``."""
        meta = model._meta
        fixed = fixed or {}
        names = [*keys, *values]
        fields = {name: meta.get_field(name) for name in names}
        stored = _stored_units(queryset, names)
        typed = pd.DataFrame({name: _typed_units(fields[name], column, len(frame)) for name, column in {**keys, **values}.items()})
        new = np.zeros(len(frame), dtype=bool)
        if stored.duplicated(list(keys)).any():  # not a unique key: compare every row as objects
            same = np.zeros(len(frame), dtype=bool)
        else:
            merged = typed.merge(stored, on=list(keys), how="left", suffixes=("", "__stored"))
            found = merged["pk"].notna().to_numpy(dtype=bool, copy=True)
            same = found.copy()
            for name in values:
                same &= _equal(merged[name], merged[f"{name}__stored"])
            if is_postgres():
                new = ~found
        counts = FileCounts(unchanged=int(same.sum()))
        if new.any():
            count = int(new.sum())
            columns = {fields[name].attname: _db_column(fields[name], typed.loc[new, name]) for name in names}
            columns.update({meta.get_field(name).attname: value for name, value in {**fixed, **(on_write or {}), **(on_create or {})}.items()})
            history = {"user": self.actor, "reason": self.reason, "date": self.now} if _has_history(model) else None
            copy_create_columns(model, columns, count, history=history)
            counts.created += count
        rest = ~same & ~new
        if rest.any():
            existing = {tuple(getattr(obj, name) for name in keys): obj
                        for obj in _objects_of(queryset, stored, typed[rest], list(keys))}
            rows = (
                (tuple(_python_value(fields[name], record[name]) for name in keys),
                 {name: _python_value(fields[name], record[name]) for name in values})
                for record in _records(typed[rest])
            )
            synced = self.sync(model, existing=existing, rows=rows, make=lambda key: model(**dict(zip(keys, key)), **fixed),
                               on_write=on_write, on_create=on_create)
            counts.created += synced.created
            counts.updated += synced.updated
            counts.unchanged += synced.unchanged
        return counts

    @property
    def approved(self) -> dict:
        """Reviewable records from a bundle are approved by the system user."""
        return {"decided_by": self.system, "decided_at": self.now, "rejection_reason": ""}

    @property
    def adjustment_approved(self) -> dict:
        return {"decided_by": self.system, "decided_at": self.now}


class _Laps:
    """Seconds between successive calls, recorded under the name of the part just done."""

    def __init__(self, into: dict[str, float]):
        self.into, self.mark = into, time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.into[name] = self.into.get(name, 0.0) + now - self.mark
        self.mark = now


def _unit_kind(field) -> str:
    internal = field.get_internal_type()
    if internal == "DecimalField":
        return "units"
    if internal == "DateField":
        return "date"
    if internal == "BooleanField":
        return "bool"
    if internal in ("ForeignKey", "OneToOneField", "AutoField", "BigAutoField", "IntegerField", "BigIntegerField",
                    "SmallIntegerField", "PositiveIntegerField", "PositiveSmallIntegerField", "PositiveBigIntegerField"):
        return "int"
    return "text"


def _stored_units(queryset, names: list[str]) -> pd.DataFrame:
    """pk and the named fields of the records of `queryset`, in the typed units of the bundle:
    decimals as integer units (Int64), dates ISO text, booleans 0/1, integers Int64, text as text.
    One query."""
    meta = queryset.model._meta
    selects, dtypes = [f"t.{connection.ops.quote_name(meta.pk.column)}"], {"pk": "Int64"}
    for name in names:
        field = meta.get_field(name)
        column = f"t.{connection.ops.quote_name(field.column)}"
        kind = _unit_kind(field)
        if kind == "units":
            selects.append(f"CAST(ROUND({column} * {10 ** field.decimal_places}) AS BIGINT)")
        elif kind == "date":
            selects.append(f"to_char({column}, 'YYYY-MM-DD')" if is_postgres() else f"CAST({column} AS TEXT)")
        elif kind == "bool":
            selects.append(f"CASE WHEN {column} THEN 1 WHEN NOT {column} THEN 0 END")
        elif kind == "text" and is_postgres():
            selects.append(f"'v' || {column}")  # CSV would read an empty text as missing: marked, unmarked below
        else:
            selects.append(column)
        dtypes[name] = "Int64" if kind in ("units", "bool", "int") else str
    inner, params = queryset.values("pk").query.sql_with_params()
    sql = (f"SELECT {', '.join(selects)} FROM {connection.ops.quote_name(meta.db_table)} t "
           f"WHERE t.{connection.ops.quote_name(meta.pk.column)} IN ({inner})")
    frame = read_frame(sql, params, ["pk", *names], dtypes)
    for name in names:
        if dtypes[name] is str:
            values = frame[name].astype(object)
            if is_postgres() and _unit_kind(meta.get_field(name)) == "text":
                values = values.str.slice(1)
            frame[name] = values.where(values.notna(), None)
    return frame


def _typed_units(field, column, count: int) -> pd.Series:
    """A typed column (or one value for every row) in the units of _stored_units."""
    if not isinstance(column, pd.Series):
        column = pd.Series([getattr(column, "value", column)] * count, dtype=object)
    column = column.reset_index(drop=True)
    kind = _unit_kind(field)
    if kind in ("units", "int"):
        return column.astype("Int64")
    if kind == "bool":
        return column.astype(bool).astype("Int64") if column.notna().all() else column.astype("boolean").astype("Int64")
    return column.astype(object).where(column.notna(), None)


def _equal(typed: pd.Series, stored: pd.Series) -> np.ndarray:
    """Element-wise equality, missing equal to missing."""
    both_missing = (typed.isna() & stored.isna()).to_numpy()
    equal = (typed == stored)
    equal = equal.fillna(False).to_numpy(dtype=bool) if hasattr(equal, "fillna") else np.asarray(equal, dtype=bool)
    return equal | both_missing


def _objects_of(queryset, stored: pd.DataFrame, rows: pd.DataFrame, keys: list[str]) -> Iterable:
    """The stored objects whose keys the given typed rows name."""
    found = rows[keys].merge(stored[[*keys, "pk"]], on=keys, how="inner")["pk"]
    if len(found) > 10_000:  # many: all of them, as one query without a long IN list
        return queryset
    return queryset.filter(pk__in=[int(pk) for pk in found])


def _db_column(field, typed: pd.Series) -> Any:
    """A typed column (_typed_units) in database form for copy_create_columns: decimals as exact
    text, booleans as booleans; integers, dates (ISO text) and text as they are; missing is NULL."""
    kind = _unit_kind(field)
    if kind == "units":
        return units_text_array(typed, field.decimal_places)
    if kind == "bool":
        return typed.astype("boolean")
    return typed


def _python_value(field, value: Any) -> Any:
    """A typed value (_typed_units) as the model field holds it."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    kind = _unit_kind(field)
    if kind == "units":
        return _decimal(value, field.decimal_places)
    if kind == "date":
        return _date(value) if isinstance(value, str) else value
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return int(value)
    return value


def _decimal(units, places: int) -> Decimal | None:
    if units is None or units is pd.NA or (isinstance(units, float) and np.isnan(units)):
        return None
    return Decimal(int(units)).scaleb(-places)


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


# --- the bundle --------------------------------------------------------------------------------------


@dataclass
class _Bundle:
    """What the files say, parsed and typed."""

    path: Path
    params: BundleParams | None
    typed: dict[str, pd.DataFrame] = field(default_factory=dict)
    raw: dict[str, pd.DataFrame] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    # a large cases.csv, read in _check against the stored cases (drg.services.cases_read_changed)
    cases_bytes: bytes | None = None
    cases_unchanged: int = 0  # its lines that are stored cases verbatim (not in raw / typed)


def _read(path: Path) -> _Bundle:
    errors: list[RowError] = []
    params_path = path / PARAMS_FILE
    params = None
    if not params_path.is_file():
        errors.append(RowError(PARAMS_FILE, 0, "", "missing: every bundle needs params.json"))
    else:
        try:
            params, params_errors = domain.parse_params(params_path.read_bytes().decode("utf-8"))
            errors.extend(params_errors)
        except UnicodeDecodeError as exc:
            errors.append(RowError(PARAMS_FILE, 0, "", f"not UTF-8 text ({exc.reason})"))
    bundle = _Bundle(path=path, params=params, errors=errors)
    expected = {PARAMS_FILE, *domain.SPECS_BY_NAME}
    for entry in sorted(path.iterdir()):
        if entry.suffix.lower() in (".csv", ".json") and entry.name not in expected:
            errors.append(RowError(entry.name, 0, "", "unknown file (not part of the exchange format)"))
    for spec in domain.FILE_SPECS:
        file = path / spec.name
        if not file.is_file():
            if spec.required:
                errors.append(RowError(spec.name, 0, "", "missing required file"))
            continue
        data = file.read_bytes()
        if spec is domain.CASES and is_postgres():
            bundle.cases_bytes = data  # read once the region is locked (_check)
            continue
        _add_file(bundle, spec, *domain.read_csv_bytes(data, spec))
    return bundle


def _add_file(bundle: _Bundle, spec: FileSpec, frame: pd.DataFrame, file_errors: list[RowError]) -> None:
    bundle.errors.extend(file_errors)
    if any(e.reason == "missing required column" for e in file_errors):
        return  # rows cannot be checked without their columns
    bundle.raw[spec.name] = frame


def _read_cases(bundle: _Bundle, *, region: Region | None, institutions: set[str], groups: set[str]) -> None:
    """A deferred cases.csv: its lines that are stored cases verbatim are counted, the others read
    and checked (drg.services.cases_read_changed); the whole file is read when that cannot be done."""
    data, bundle.cases_bytes = bundle.cases_bytes, None
    changed = None
    if region is not None:
        changed = cases_read_changed(region=region, raw=data, known_institutions=institutions, known_groups=groups)
    if changed is None:
        _add_file(bundle, domain.CASES, *domain.read_csv_bytes(data, domain.CASES))
        return
    bundle.raw[domain.CASES.name] = changed.frame
    bundle.typed[domain.CASES.name] = changed.typed
    bundle.errors.extend(changed.errors)
    bundle.cases_unchanged = changed.unchanged


CHECK_PART_ROWS = 250_000  # cases checked at a time by a new region's cases check (_CasesCheck)


class _CasesCheck:
    """The cases.csv of a region this load creates, read, checked and planned on a thread of its
    own while the load writes what does not name a case (the catalogs, the approved records and
    their keys): with no stored case to compare with, the check is computation only, no query.
    Once the load has stored the region and its institutions (``store_beside``), cases checked
    without an error are stored beside the load's transaction from this thread at once
    (drg.services.cases_fill_beside), the fill listed in ``fills`` for bundle_load to drop if the
    load fails. ``join`` hands the frames, the errors, the plan and the fill to the bundle, in the
    load's thread."""

    def __init__(self, data: bytes, *, institutions: set[str], groups: set[str], fills: list):
        self.seconds = 0.0
        self.fill: PartitionFill | None = None
        self._data, self._institutions, self._groups, self._fills = data, institutions, groups, fills
        self._result: tuple | None = None
        self._failure: BaseException | None = None
        self._target: queue.Queue = queue.Queue(maxsize=1)  # where to store the cases, or None
        self._given = False
        self._thread = threading.Thread(target=self._run, name="cases-check", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            data, self._data = self._data, None
            frame, read_errors = domain.read_csv_bytes(data, domain.CASES)
            del data
            typed = classified = None
            check_errors: list[RowError] = []
            if not any(e.reason == "missing required column" for e in read_errors):
                # the keys' uniqueness is left to the region's table when the cases are stored from
                # here: its unique key refuses a repeat, which _cases_attach then names (case_key_errors)
                if read_errors:
                    typed, check_errors = self._parse(frame)
                else:
                    typed, check_errors = self._parse_storing(frame)
                if self.fill is None:
                    check_errors += domain.case_key_errors(frame)
                bad_lines = {e.line for e in read_errors + check_errors}
                good = typed[~typed[LINE].isin(list(bad_lines))] if bad_lines else typed
                classified, frozen_errors = cases_plan(region=None, rows=good, keys_unique=True)
                check_errors += frozen_errors
            self._result = (frame, read_errors, typed, check_errors, classified)
        except BaseException as failure:  # raised again in the load's thread (join)
            self._failure = failure
        finally:
            connection.close()  # none is opened for a new region's cases; if one were, not left behind
            self.seconds = time.perf_counter() - started

    def _parse(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[RowError]]:
        return domain.parse_cases(frame, known_institutions=self._institutions, known_groups=self._groups, keys=False)

    def _parse_storing(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[RowError]]:
        """parse_cases of the file CHECK_PART_ROWS rows at a time, each part that passes handed at
        once to the cases' fill, which the first part starts once the load has said where they go
        (``store_beside``, when the region's institutions are stored): the COPY runs while the rest
        is checked, and every row new and good, all of them are stored, as cases_apply would. At
        the first part that fails, the fill is aborted (its thread rolls back) and the whole file
        checked again, so that every bad row of it is named, those of later parts too."""
        parts: list[pd.DataFrame] = []
        try:
            for start in range(0, max(len(frame), 1), CHECK_PART_ROWS):
                part, errors = self._parse(frame.iloc[start:start + CHECK_PART_ROWS])
                if errors:
                    if self.fill is not None:
                        self.fill.abort()
                        self.fill = None
                    return self._parse(frame)
                parts.append(part)
                if start == 0:
                    target = self._target.get()  # the region and its institutions, once stored
                    if target is not None:
                        self.fill = cases_fill_beside(rows=part, more=True, **target)
                        self._fills.append(self.fill)
                elif self.fill is not None:
                    cases_fill_add(self.fill, rows=part, institution_ids=target["institution_ids"], now=target["now"])
        except BaseException:
            if self.fill is not None:
                self.fill.abort()
            raise
        if self.fill is not None:
            self.fill.close()
        return (pd.concat(parts) if len(parts) > 1 else parts[0]), []

    def store_beside(self, target: dict[str, Any] | None) -> None:
        """Where the cases go once checked (cases_fill_beside's region_id, institution_ids, now);
        None: they are not stored from the thread (cases_apply stores them after ``join``)."""
        if not self._given:
            self._given = True
            self._target.put(target)

    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self) -> None:
        """Wait for the check to end, its result left unused (a fill it started is in ``fills``)."""
        self.store_beside(None)
        self._thread.join()
        self._result = None

    def join(self, bundle: _Bundle, plan: dict[str, Any]) -> None:
        """Wait for the check; its frames and errors go to the bundle, its plan to ``plan`` (the fill
        it started, if any, is ``fill``)."""
        self.store_beside(None)  # nothing to wait for when the load did not say where
        self._thread.join()
        if self._failure is not None:
            raise self._failure
        frame, read_errors, typed, check_errors, classified = self._result
        self._result = None
        _add_file(bundle, domain.CASES, frame, read_errors)
        if typed is not None:
            bundle.typed[domain.CASES.name] = typed
            plan["cases"] = classified
        bundle.errors.extend(check_errors)


def _cases_joined(bundle: _Bundle, plan: dict[str, Any]) -> _CasesCheck | None:
    """The cases check of a region this load creates (_CasesCheck), joined and returned: its plan
    in ``plan``, its errors and those of the special reviews, which name its cases, in
    bundle.errors. None when the cases were checked in _check."""
    check = plan.pop("cases_check", None)
    if check is None:
        return None
    check.join(bundle, plan)
    _check_special_reviews(bundle, region_id=None, stored_institutions={})  # a new region: no stored case
    return check


def _run_check(bundle: _Bundle, spec: FileSpec, parse, **kwargs) -> None:
    """Check one read file (parse: its exchange.domain.bundle parse_ function), once."""
    if spec.name in bundle.raw and spec.name not in bundle.typed:
        typed, file_errors = parse(bundle.raw[spec.name], **kwargs)
        bundle.typed[spec.name] = typed
        bundle.errors.extend(file_errors)


def _check_special_reviews(bundle: _Bundle, *, region_id: int | None, stored_institutions: dict[str, int]) -> None:
    """Special reviews name cases: of the bundle, or stored."""
    raw = bundle.raw
    known_cases: set[tuple[str, str]] = set()
    if domain.SPECIAL_REVIEWS.name in raw:
        wanted = set(zip(raw[domain.SPECIAL_REVIEWS.name]["institution_code"], raw[domain.SPECIAL_REVIEWS.name]["case_no"]))
        if domain.CASES.name in raw:
            cases_raw = raw[domain.CASES.name]
            # the few cases the reviews name, found among a million by a vectorised filter first
            named = cases_raw[cases_raw["case_no"].isin({number for _code, number in wanted})]
            in_bundle = set(zip(named["institution_code"], named["case_no"]))
            known_cases |= wanted & in_bundle
        if region_id is not None:
            known_cases |= set(selectors.case_ids(region_id=region_id, institution_ids=stored_institutions, keys=wanted - known_cases))
    _run_check(bundle, domain.SPECIAL_REVIEWS, domain.parse_special_reviews, known_cases=known_cases)


def _check(bundle: _Bundle, *, region: Region | None, fills: list | None = None) -> dict[str, Any]:
    """Parse every file against the bundle and the stored records; returns what writing needs
    (the case plan) and extends bundle.errors.

    ``fills``: a region this load creates has its cases.csv checked on a thread of its own
    (_CasesCheck, in the plan's ``cases_check``) while the load goes on, and its cases stored
    beside the load's transaction from there (the fill added to ``fills``); the special reviews,
    which name its cases, are checked once it is joined (_cases_joined)."""
    params = bundle.params
    year = params.year if params else 0
    region_id = region.pk if region else None
    raw = bundle.raw
    stored_institutions = selectors.institution_ids(region_id=region_id)
    institutions = set(stored_institutions)
    if domain.INSTITUTIONS.name in raw:
        institutions |= set(raw[domain.INSTITUTIONS.name]["code"])
    groups = selectors.group_codes(region_id=region_id, year=year)
    if domain.DRG_GROUPS.name in raw:
        groups |= set(raw[domain.DRG_GROUPS.name]["code"])

    cases_check = None
    if bundle.cases_bytes is not None:
        if fills is not None and region is None:
            cases_check = _CasesCheck(bundle.cases_bytes, institutions=institutions, groups=groups, fills=fills)
            bundle.cases_bytes = None
        else:
            _read_cases(bundle, region=region, institutions=institutions, groups=groups)
    try:
        return _check_files(bundle, region=region, stored_institutions=stored_institutions, institutions=institutions,
                            groups=groups, cases_check=cases_check)
    except BaseException:
        if cases_check is not None:  # its thread ends before the load does
            cases_check.wait()
        raise


def _check_files(bundle: _Bundle, *, region: Region | None, stored_institutions: dict[str, int], institutions: set[str],
                 groups: set[str], cases_check: _CasesCheck | None) -> dict[str, Any]:
    """_check of every file, the region's catalog codes known (``institutions``, ``groups``)."""
    params = bundle.params
    year = params.year if params else 0
    region_id = region.pk if region else None
    raw = bundle.raw
    errors = bundle.errors

    def run(spec: FileSpec, parse, **kwargs) -> None:
        _run_check(bundle, spec, parse, **kwargs)

    run(domain.INSTITUTIONS, domain.parse_institutions)
    run(domain.DRG_GROUPS, domain.parse_groups)
    run(domain.COEFFICIENTS, domain.parse_coefficients, known_institutions=institutions, known_groups=groups)
    run(domain.TCM_EQUIVALENTS, domain.parse_tcm_equivalents, known_groups=groups)
    run(domain.CASES, domain.parse_cases, known_institutions=institutions, known_groups=groups)
    if cases_check is None:
        _check_special_reviews(bundle, region_id=region_id, stored_institutions=stored_institutions)
    run(domain.ITEMIZED_CLAIMS, domain.parse_itemized_claims, known_institutions=institutions)
    run(domain.POINT_ADJUSTMENTS, domain.parse_point_adjustments, known_institutions=institutions, known_groups=groups)
    run(domain.EVALUATIONS, domain.parse_evaluations, known_institutions=institutions)
    run(domain.CHRONIC_ENROLLMENTS, domain.parse_chronic_enrollments, known_institutions=institutions)
    run(domain.TCM_WORKLOAD, domain.parse_tcm_workload, known_institutions=institutions)
    run(domain.HOSPICE_SERVICES, domain.parse_hospice_services, known_institutions=institutions)
    run(domain.SCREENINGS, domain.parse_screenings, known_institutions=institutions)
    # BENEFITS.md: patients, the special-disease catalog of the bundle's year, claims
    run(domain.PATIENTS, domain.parse_patients)
    run(domain.SPECIAL_DISEASES, domain.parse_special_diseases)
    if domain.SPECIAL_OUTPATIENT_CLAIMS.name in raw:
        diseases_by_year = benefit_selectors.disease_codes_by_year(region_id=region_id) if region_id is not None else {}
        if domain.SPECIAL_DISEASES.name in raw:
            diseases_by_year.setdefault(year, set()).update(raw[domain.SPECIAL_DISEASES.name]["code"])
        patient_funds = {pid: fund for pid, (fund, _c) in benefit_selectors.categories(region_id=region_id).items()} if region_id else {}
        if domain.PATIENTS.name in raw:
            listed = raw[domain.PATIENTS.name]
            in_bundle: dict[str, str] = {}
            for pid, fund in zip(listed["patient_id"], listed["fund"]):
                if fund in domain.FUNDS:
                    in_bundle.setdefault(pid, fund)  # a repeated patient is a bad row; the first one counts
            patient_funds.update(in_bundle)
        run(domain.SPECIAL_OUTPATIENT_CLAIMS, domain.parse_special_outpatient_claims, known_institutions=institutions,
            diseases_by_year=diseases_by_year, patient_funds=patient_funds)

    plan: dict[str, Any] = {}
    if cases_check is not None:
        plan["cases_check"] = cases_check
    cases = bundle.typed.get(domain.CASES.name)
    if cases is not None:
        # Only rows without errors are compared with the stored cases (the others are reported
        # already), so a frozen-period change is reported in the same run as a malformed row.
        bad_lines = {e.line for e in errors if e.file == domain.CASES.name}
        good = cases[~cases[LINE].isin(list(bad_lines))] if bad_lines else cases
        # parse_cases reported every repeated key as a bad line: the good rows' keys are unique
        classified, frozen_errors = cases_plan(region=region, rows=good, keys_unique=True)
        errors.extend(frozen_errors)
        plan["cases"] = classified
    if params is not None and region is not None:
        for fund, inputs in params.budgets.items():
            current = budget_current(region=region, fund=fund, year=params.year)
            if current is not None and budget_inputs_of(current) == inputs:
                continue
            draft = Budget.objects.filter(region=region, fund=fund, year=params.year, status=BudgetStatus.DRAFT).first()
            if draft is not None:
                errors.append(RowError(PARAMS_FILE, 0, f"budgets.{fund}",
                                       f"a draft budget (revision {draft.revision}) is pending for this pool; approve "
                                       "or delete it before loading a bundle that changes the budget"))
    return plan


def _benefits_store(bundle: _Bundle, *, region: Region, report: LoadReport, w: _Writer, say: Progress,
                    region_stays: pd.DataFrame | None) -> set[int]:
    """BENEFITS.md files and params.json `benefits`: stored, then the claims settled on load.
    Returns the years whose claims were settled as a whole. ``region_stays``: the new region's
    stays while its cases are stored beside the load (benefits_bundle_store)."""
    params, typed = bundle.params, bundle.typed
    names = (domain.PATIENTS.name, domain.SPECIAL_DISEASES.name, domain.SPECIAL_OUTPATIENT_CLAIMS.name)
    if params.benefits is None and not any(name in typed for name in names):
        return set()
    say("special-outpatient patients, catalog and claims (settled on load)")
    patients = diseases = claims = None
    if domain.PATIENTS.name in typed:
        patients = typed[domain.PATIENTS.name]
    if domain.SPECIAL_DISEASES.name in typed:
        frame = typed[domain.SPECIAL_DISEASES.name]
        diseases = pd.DataFrame({"code": frame["code"], "name": frame["name"], "class": frame["class"],
                                 "annual_cap": [_decimal(v, 2) for v in frame["cap_fen"]]})
    if domain.SPECIAL_OUTPATIENT_CLAIMS.name in typed:
        frame = typed[domain.SPECIAL_OUTPATIENT_CLAIMS.name]
        claims = pd.DataFrame({
            "claim_no": frame["claim_no"], "institution_code": frame["institution_code"], "fund": frame["fund"],
            "patient_id": frame["patient_id"], "disease_code": frame["disease_code"],
            "service_date": [_date(v) for v in frame["service_date"]],
            "total_cost": [_decimal(v, 2) for v in frame["total_fen"]], "eligible_cost": [_decimal(v, 2) for v in frame["eligible_fen"]],
        })
    stored = benefits_bundle_store(region=region, year=params.year, terms=params.benefits, patients=patients, diseases=diseases,
                                   claims=claims, user=w.actor, region_stays=region_stays)
    for name, counts in stored.files.items():
        report.files[name] = FileCounts(counts["created"], counts["updated"], counts["unchanged"])
    report.benefits_settled = [(r.claims, r.newly_settled, r.corrected) for r in stored.settled]
    return stored.settled_years


def bundle_load(*, path: Path, user=None, progress: Progress | None = None) -> LoadReport:
    """Validate a bundle directory completely, then load it in one transaction (EXCHANGE.md).

    Raises BundleInvalid (nothing written) listing every bad row. Loading the same bundle again
    changes nothing."""
    started = time.perf_counter()
    say = progress or (lambda message: None)
    path = Path(path)
    if not path.is_dir():
        raise BundleInvalid([RowError(str(path), 0, "", "not a bundle directory")])
    timings: dict[str, float] = {}
    mark = time.perf_counter()
    say(f"reading {path}")
    bundle = _read(path)
    timings["read"] = time.perf_counter() - mark
    params = bundle.params
    fills: list[PartitionFill] = []  # cases stored beside the transaction, dropped if it rolls back
    plan: dict[str, Any] = {}
    # only beside a transaction of the load's own: inside a caller's, a table committed beside it
    # could not be dropped when the caller rolls back later
    beside = not connection.in_atomic_block
    try:
        with transaction.atomic():
            mark = time.perf_counter()
            region = None
            if params is not None:
                region = Region.objects.select_for_update().filter(code=params.region_code).first()
                # a load that creates its region waits for any other doing so (drg.partitions), then
                # finds the region if that one made it; what a load that died left behind goes first
                if region is None and first_loads_serialize():
                    region = Region.objects.select_for_update().filter(code=params.region_code).first()
                    orphans_drop()
            say("checking rows against the stored records")
            # a region this load creates has its cases checked beside the writing of its records
            plan = _check(bundle, region=region, fills=fills if beside and params is not None else None)
            timings["check"] = time.perf_counter() - mark
            if bundle.errors or params is None:
                _cases_joined(bundle, plan)  # every bad row is reported, the cases' too
                raise BundleInvalid(bundle.errors)
            mark = time.perf_counter()
            report = _write(bundle, region=region, plan=plan, user=user, say=say, fills=fills if beside else None)
            timings["write"] = time.perf_counter() - mark
            mark = time.perf_counter()
    except BaseException:
        if "cases_check" in plan:  # failed before the cases check was joined: its thread ends first
            plan["cases_check"].wait()
        for fill in fills:
            fill.discard()
        raise
    # the commit: deferred foreign-key checks, then what runs once it is committed (drg.signals.cases_stored)
    timings["commit"] = time.perf_counter() - mark
    report.timings = timings
    report.seconds = time.perf_counter() - started
    return report


def _cases_attach(bundle: _Bundle, fill: PartitionFill) -> None:
    """Attach the region's table its cases were stored in beside the load. Stored from the cases
    check's thread, their keys were checked by the table's unique key alone: when the table could
    not be made, a repeated key is named as the check names it (BundleInvalid)."""
    try:
        fill.attach()
    except Exception as failure:
        cases = bundle.raw.get(domain.CASES.name)
        repeated = domain.case_key_errors(cases) if cases is not None else []
        if repeated:
            raise BundleInvalid(repeated) from failure
        raise


def _cases_write(bundle: _Bundle, *, region: Region, plan: dict, report: LoadReport, w: _Writer, say: Progress,
                 fills: list | None, started: PartitionFill | None = None) -> UpsertReport | None:
    """The planned cases stored (drg.services.cases_apply); None when the bundle has no cases.csv.
    ``fills``: a region this load creates and a transaction of the load's own: its cases are stored
    beside the transaction while the load goes on (drg.partitions.PartitionFill, added to fills;
    ``started`` when the cases check started it, already there), attached before anything reads
    them."""
    upsert = None
    if "cases" in plan:
        say(f"cases: {len(plan['cases']) + bundle.cases_unchanged} rows")
        upsert = cases_apply(region=region, classified=plan["cases"], source=ChangeSource.BUNDLE, user=w.actor,
                             reason=w.reason, announce=False, beside=fills is not None, fill=started, now=w.now)
        if upsert.fill is not None and started is None:  # there is a fill only when fills is a list (beside above)
            fills.append(upsert.fill)
        counts = upsert.counts
        report.files[domain.CASES.name] = FileCounts(counts.created, counts.updated, counts.unchanged + bundle.cases_unchanged)
        report.corrections = len(upsert.corrections)
    if upsert is None or upsert.fill is None:
        partition_ensure(region.pk)  # a new region whose bundle brought no new case: its table, empty
    return upsert


def _write(bundle: _Bundle, *, region: Region | None, plan: dict, user, say: Progress, fills: list | None) -> LoadReport:
    """Store a checked bundle. ``fills``: where to list the cases stored beside the transaction
    (a region this load creates, drg.partitions.PartitionFill), for bundle_load to drop them if the
    transaction rolls back; None stores them inside it."""
    params = bundle.params
    assert params is not None
    year = params.year
    system = system_user()
    w = _Writer(user=user, system=system, now=timezone.now(), reason=f"数据包 {bundle.path.resolve()}")
    report = LoadReport(path=bundle.path, region=params.region_code, year=year)
    typed = bundle.typed

    # params.json: region, scheme, budgets
    counts = FileCounts()
    created = region is None  # then this load holds first_loads_serialize's lock (bundle_load)
    if region is None:
        region = Region(code=params.region_code, name=params.region_name)
        region._history_user = w.actor
        region._cases_partition_by_load = True  # its cases' table is made below, filled by their COPY
        region.save()
        counts.created = 1
    elif region.name != params.region_name:
        region.name = params.region_name
        region._history_user = w.actor
        region.save()
        counts.updated = 1
    else:
        counts.unchanged = 1
    report.files["params.json region"] = counts
    report.files["params.json scheme"] = _scheme_upsert(region=region, params=params, w=w)
    report.files["params.json budgets"] = _budgets_upsert(region=region, params=params, w=w)

    # catalogs
    lap = _Laps(report.write_timings)
    lap("params")
    say("institutions, groups, coefficients")
    if domain.INSTITUTIONS.name in typed:
        existing = {(i.code,): i for i in Institution.objects.filter(region=region)}
        rows = (
            ((r["code"],), {"name": r["name"], "level": int(r["level"]), "category": r["category"], "is_public": bool(r["is_public"]),
                            "group_code": r["group_code"], "coefficient": _decimal(r["coef_u"], 4)})
            for r in _records(typed[domain.INSTITUTIONS.name])
        )
        report.files[domain.INSTITUTIONS.name] = w.sync(Institution, existing=existing, rows=rows,
                                                        make=lambda key: Institution(region=region, code=key[0]))
    ids = selectors.institution_ids(region_id=region.pk)
    if domain.DRG_GROUPS.name in typed:
        existing = {(g.code,): g for g in DrgGroup.objects.filter(region=region, year=year)}
        rows = (
            ((r["code"],), {"name": r["name"], "kind": r["kind"], "base_points": _decimal(r["base_u"], 4),
                            "avg_cost": _decimal(r["avg_fen"], 2), "daily_points": _decimal(r["daily_u"], 4),
                            "same_price": bool(r["same_price"]), "readmission_exempt": bool(r["readmission_exempt"])})
            for r in _records(typed[domain.DRG_GROUPS.name])
        )
        report.files[domain.DRG_GROUPS.name] = w.sync(DrgGroup, existing=existing, rows=rows,
                                                      make=lambda key: DrgGroup(region=region, year=year, code=key[0]))
    if domain.COEFFICIENTS.name in typed:
        existing = {(c.institution_id, c.drg_code): c for c in Coefficient.objects.filter(institution__region=region, year=year)}
        rows = (
            ((ids[r["institution_code"]], r["drg_code"]), {"coefficient": _decimal(r["coef_u"], 4)})
            for r in _records(typed[domain.COEFFICIENTS.name])
        )
        report.files[domain.COEFFICIENTS.name] = w.sync(
            Coefficient, existing=existing, rows=rows,
            make=lambda key: Coefficient(institution_id=key[0], year=year, drg_code=key[1]))
    if domain.TCM_EQUIVALENTS.name in typed:
        existing = {(t.drg_code,): t for t in TcmEquivalent.objects.filter(region=region, year=year)}
        rows = (((r["drg_code"],), {"equivalent_code": r["equivalent_code"]}) for r in _records(typed[domain.TCM_EQUIVALENTS.name]))
        report.files[domain.TCM_EQUIVALENTS.name] = w.sync(
            TcmEquivalent, existing=existing, rows=rows, make=lambda key: TcmEquivalent(region=region, year=year, drg_code=key[0]))
    # the parameters in force are revisioned (SETTLEMENT.md §6): what the bundle changed is recorded
    # as a revision approved by the system user; an unchanged re-load records nothing
    report.revisions = parameter_revisions_record_load(region=region, year=year, reason=w.reason, user=w.user, system_user=system)

    lap("catalogs")
    # cases; those of a region this load creates are still being checked (_CasesCheck): they come
    # once the records, which do not name them, are written
    aside = "cases_check" in plan
    if aside:  # the cases, once checked, go into the region's table from the check's thread
        plan["cases_check"].store_beside(
            dict(region_id=region.pk, institution_ids=ids, now=w.now) if cases_partitioned() else None)
    else:
        upsert = _cases_write(bundle, region=region, plan=plan, report=report, w=w, say=say,
                              fills=fills if created else None)
        lap("cases")
    # approved records
    say("claims, adjustments, evaluations, incentive records")
    approved = {"status": ReviewStatus.APPROVED}
    if domain.ITEMIZED_CLAIMS.name in typed:
        frame = typed[domain.ITEMIZED_CLAIMS.name]
        report.files[domain.ITEMIZED_CLAIMS.name] = w.sync_frame(
            ItemizedClaim, queryset=ItemizedClaim.objects.filter(institution__region=region, source=ItemizedSource.ADJUDICATED),
            frame=frame, keys={"institution_id": frame["institution_code"].map(ids), "claim_no": frame["claim_no"]},
            values={"region_id": region.pk, "fund": frame["fund"], "month": frame["month"], "patient_id": frame["patient_id"],
                    "approved_amount": frame["approved_fen"], **approved},
            fixed={"source": ItemizedSource.ADJUDICATED}, on_write=w.approved)
    adjustment_approved = {"status": AdjustmentStatus.APPROVED}
    if domain.POINT_ADJUSTMENTS.name in typed:
        frame = typed[domain.POINT_ADJUSTMENTS.name]
        report.files[domain.POINT_ADJUSTMENTS.name] = w.sync_frame(
            PointAdjustment, queryset=PointAdjustment.objects.filter(institution__region=region, year=year), frame=frame,
            keys={"institution_id": frame["institution_code"].map(ids), "fund": frame["fund"], "drg_code": frame["drg_code"],
                  "reason": frame["reason"]},
            values={"multiple": frame["multiple_u"], **adjustment_approved}, fixed={"year": year},
            on_write=w.adjustment_approved, on_create={"created_by": w.user})
    if domain.EVALUATIONS.name in typed:
        frame = typed[domain.EVALUATIONS.name]
        report.files[domain.EVALUATIONS.name] = w.sync_frame(
            Evaluation, queryset=Evaluation.objects.filter(institution__region=region, year=year), frame=frame,
            keys={"institution_id": frame["institution_code"].map(ids), "fund": frame["fund"]},
            values={"score": frame["score_c"], **adjustment_approved}, fixed={"year": year},
            on_write=w.adjustment_approved, on_create={"created_by": w.user})
    if domain.CHRONIC_ENROLLMENTS.name in typed:
        frame = typed[domain.CHRONIC_ENROLLMENTS.name]
        report.files[domain.CHRONIC_ENROLLMENTS.name] = w.sync_frame(
            ChronicEnrollment, queryset=ChronicEnrollment.objects.filter(institution__region=region), frame=frame,
            keys={"institution_id": frame["institution_code"].map(ids), "patient_id": frame["patient_id"], "disease": frame["disease"]},
            values={"enrolled_on": frame["enrolled_on"], **approved},
            on_write=w.approved)
    if domain.TCM_WORKLOAD.name in typed:
        frame = typed[domain.TCM_WORKLOAD.name]
        report.files[domain.TCM_WORKLOAD.name] = w.sync_frame(
            TcmWorkload, queryset=TcmWorkload.objects.filter(institution__region=region), frame=frame,
            keys={"institution_id": frame["institution_code"].map(ids), "month": frame["month"]},
            values={"prescriptions": frame["prescriptions"], **approved},
            on_write=w.approved)
    if domain.HOSPICE_SERVICES.name in typed:
        frame = typed[domain.HOSPICE_SERVICES.name]
        report.files[domain.HOSPICE_SERVICES.name] = w.sync_frame(
            HospiceService, queryset=HospiceService.objects.filter(institution__region=region), frame=frame,
            keys={"institution_id": frame["institution_code"].map(ids), "kind": frame["kind"], "patient_id": frame["patient_id"],
                  "service_date": frame["service_date"]},
            values={"quantity": frame["quantity"], **approved},
            on_write=w.approved)
    if domain.SCREENINGS.name in typed:
        frame = typed[domain.SCREENINGS.name]
        report.files[domain.SCREENINGS.name] = w.sync_frame(
            Screening, queryset=Screening.objects.filter(institution__region=region), frame=frame,
            keys={"institution_id": frame["institution_code"].map(ids), "patient_id": frame["patient_id"],
                  "screening_date": frame["screening_date"]},
            values={"fee": frame["fee_fen"], "high_risk": frame["high_risk"], **approved},
            on_write=w.approved)
    lap("records")
    if aside:
        if plan["cases_check"].running():  # the records' keys checked while the cases still are
            foreign_keys_check_now()
            lap("record keys")
        check = _cases_joined(bundle, plan)
        report.write_timings["cases check"] = check.seconds
        if bundle.errors:
            raise BundleInvalid(bundle.errors)  # the transaction rolls back: nothing was loaded
        lap("cases check wait")
        upsert = _cases_write(bundle, region=region, plan=plan, report=report, w=w, say=say,
                              fills=fills if created else None, started=check.fill)
        lap("cases")
    fill = upsert.fill if upsert is not None else None
    touched = upsert.touched if upsert is not None else None  # the (patient, fund, year) the cases touch
    settled_years = _benefits_store(bundle, region=region, report=report, w=w, say=say,
                                    region_stays=upsert.stays if fill is not None else None)
    lap("benefits")
    if fill is not None:
        say("the cases being stored: their table attached")
        foreign_keys_check_now()  # the records' keys checked while the cases are stored, not at commit
        lap("record keys")
        _cases_attach(bundle, fill)
        report.write_timings["cases beside"] = fill.seconds
        lap("attach")
    # special reviews name cases: after those of a new region are attached
    if domain.SPECIAL_REVIEWS.name in typed:
        say("special reviews")
        frame = typed[domain.SPECIAL_REVIEWS.name]
        case_ids = selectors.case_ids(region_id=region.pk, institution_ids=ids, keys=zip(frame["institution_code"], frame["case_no"]))
        report.files[domain.SPECIAL_REVIEWS.name] = w.sync_frame(
            SpecialReview, queryset=SpecialReview.objects.filter(case_id__in=list(case_ids.values())), frame=frame,
            keys={"case_id": pd.Series([case_ids[key] for key in zip(frame["institution_code"], frame["case_no"])], dtype="int64")},
            values={"institution_id": frame["institution_code"].map(ids), "approved_cost": frame["approved_fen"], **approved},
            on_write=w.approved)
        lap("special reviews")
    # the stays announced after commit (drg.signals.cases_stored) are those of years whose claims
    # the load did not settle itself after storing the cases (settling them again would be a no-op)
    if touched is not None:
        cases_announce(region_id=region.pk, keys=touched_keys(touched, except_years=settled_years), source=ChangeSource.BUNDLE)
    return report


def _scheme_values(params: BundleParams) -> dict[str, Any]:
    """Every scheme parameter: the bundle's, else the PaymentScheme default (SETTLEMENT.md)."""
    values = {}
    for name in domain.SCHEME_KEYS:
        values[name] = params.scheme[name] if name in params.scheme else PaymentScheme._meta.get_field(name).get_default()
    return values


def _scheme_upsert(*, region: Region, params: BundleParams, w: _Writer) -> FileCounts:
    values = _scheme_values(params)
    scheme = PaymentScheme.objects.filter(region=region, year=params.year).first()
    if scheme is not None and all(getattr(scheme, name) == value for name, value in values.items()):
        return FileCounts(unchanged=1)
    created = scheme is None
    scheme = scheme or PaymentScheme(region=region, year=params.year)
    for name, value in values.items():
        setattr(scheme, name, value)
    scheme._history_user = w.actor
    scheme._change_reason = w.reason
    scheme.save()
    return FileCounts(created=1) if created else FileCounts(updated=1)


def _budgets_upsert(*, region: Region, params: BundleParams, w: _Writer) -> FileCounts:
    """Each fund's budget: identical to the approved one in force = unchanged; else a new revision,
    drafted (by the loading user, if any) and approved by the system user (budget.services)."""
    counts = FileCounts()
    for fund, inputs in params.budgets.items():
        current = budget_current(region=region, fund=fund, year=params.year)
        if current is not None and budget_inputs_of(current) == inputs:
            counts.unchanged += 1
            continue
        exists = Budget.objects.filter(region=region, fund=fund, year=params.year).exists()
        reason = f"{w.reason}：params.json budgets.{fund}"
        draft = budget_draft(region=region, fund=fund, year=params.year, inputs=inputs, user=w.user, reason=reason)
        budget_approve(budget=draft, user=w.system, system=True)
        if exists:
            counts.updated += 1
        else:
            counts.created += 1
    return counts
