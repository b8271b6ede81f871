"""The exchange bundle (EXCHANGE.md): read and validate its files. Pure: stdlib, decimal, numpy, pandas.

Every CSV is read as strings (UTF-8, a BOM tolerated, no NA guessing) and checked column by column
with vectorised operations; a problem becomes a ``RowError(file, line, column, reason)`` where
``line`` is the CSV line number (the header is line 1, the first record line 2; a record whose
quoted value spans lines counts as one line). ``params.json`` problems use line 0 (the JSON line for
a syntax error) and the JSON path as the column, e.g. ``budgets.employee.growth_rate``.

Typed frames: a parse function returns its rows with the values converted exactly, plus ``_line``:
- a decimal column becomes integer units, never float: money ``<name>_fen`` (0.01 yuan), points,
  coefficients and multiples ``<name>_u`` (0.0001), the evaluation score ``score_c`` (0.01);
  nullable ones use pandas ``Int64``;
- dates stay ISO strings ``YYYY-MM-DD`` (they compare correctly as strings); a month ``YYYY-MM``
  becomes the ISO string of its first day;
- booleans (``1``/``0``/empty = 0) become bool, small integers int64.

The case rules live in ``parse_cases`` so that the hospital API validates a submission with the same
rules as the batch door; ``classify_cases`` and ``frozen_case_errors`` decide what a submission does
to stored cases (new / changed / unchanged; refused in a finalized period).
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from budget.domain.lines import BudgetInputs, BudgetRuleError, budget_lines

LINE = "_line"
PARAMS_FILE = "params.json"

# The choices of drg.choices / settlement / incentives, restated here because the domain layer may
# not import Django; tests/unit/test_bundle_parse.py asserts they stay equal.
FUNDS = ("employee", "resident")
INSTITUTION_CATEGORIES = ("general", "tcm", "specialist", "primary")
GROUP_KINDS = ("stable", "unstable", "per_diem")
DISCHARGE_STATUSES = ("normal", "transfer", "against_advice", "death")
HOSPICE_KINDS = ("bed", "inpatient", "home")

# Field sizes of the models (max length of text, digits before the decimal point).
MONEY_INT_DIGITS = 14  # DecimalField(max_digits=16, decimal_places=2)
POINTS_INT_DIGITS = 10  # DecimalField(max_digits=14, decimal_places=4)
FACTOR_INT_DIGITS = 4  # coefficient / multiple: DecimalField(max_digits=8, decimal_places=4)
RATE_PLACES = 6  # RATE: DecimalField(max_digits=9, decimal_places=6)
RATE_INT_DIGITS = 3


@dataclass(frozen=True, order=True)
class RowError:
    """One problem of a bundle: file, CSV line (header = 1; 0 = the whole file / params.json), column
    (or JSON path), and why."""

    file: str
    line: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.column}: {self.reason}" if self.column else f"{self.file}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class FileSpec:
    """One CSV file of the bundle: its columns (optional ones may be left out of the header: their
    values are then empty), whether the file itself must be present, and its key within the file."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    required: bool = False
    optional_columns: frozenset[str] = frozenset()

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.optional_columns)


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
CASES = FileSpec(
    "cases.csv",
    (
        "case_no", "institution_code", "fund", "patient_id", "admission_date", "discharge_date", "drg_code",
        "total_cost", "self_pay", "discharge_status", "tcm_treatment", "tcm_cost", "surgery_grade",
        "malignant_tumor_surgery",
    ),
    key=("institution_code", "case_no"), required=True,
    optional_columns=frozenset({"tcm_treatment", "tcm_cost", "surgery_grade", "malignant_tumor_surgery"}),
)
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

# In load order: catalogs before the records that refer to them.
FILE_SPECS: tuple[FileSpec, ...] = (
    INSTITUTIONS, DRG_GROUPS, COEFFICIENTS, TCM_EQUIVALENTS, CASES, SPECIAL_REVIEWS, ITEMIZED_CLAIMS,
    POINT_ADJUSTMENTS, EVALUATIONS, CHRONIC_ENROLLMENTS, TCM_WORKLOAD, HOSPICE_SERVICES, SCREENINGS,
)
SPECS_BY_NAME = {spec.name: spec for spec in FILE_SPECS}
FILE_ORDER = {PARAMS_FILE: 0, **{spec.name: i + 1 for i, spec in enumerate(FILE_SPECS)}}


def sort_errors(errors: Iterable[RowError]) -> list[RowError]:
    """Bundle order: params.json, then the files in load order, each by line and column."""
    return sorted(errors, key=lambda e: (FILE_ORDER.get(e.file, len(FILE_ORDER)), e.file, e.line, e.column, e.reason))


# --- reading -----------------------------------------------------------------------------------------


def _empty_frame(columns: Iterable[str]) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=str) for c in columns})
    frame[LINE] = pd.Series(dtype="int64")
    return frame


def check_header(columns: Iterable[str], spec: FileSpec) -> list[RowError]:
    """Unknown, duplicate and missing required columns (line 1, the header)."""
    columns = list(columns)
    errors: list[RowError] = []
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            errors.append(RowError(spec.name, 1, name, "duplicate column"))
        elif name not in spec.columns:
            errors.append(RowError(spec.name, 1, name, f"unknown column (expected: {', '.join(spec.columns)})"))
        seen.add(name)
    for name in spec.required_columns:
        if name not in seen:
            errors.append(RowError(spec.name, 1, name, "missing required column"))
    return errors


def _field_counts(text: str) -> tuple[np.ndarray, list[list[str]] | None]:
    """Number of fields of every record after the header (0 for a blank line). Without quotes in the
    file, records are lines and commas count the fields (vectorised over the bytes); otherwise the
    csv module parses the records (returned too, so the caller can build the frame from them)."""
    if '"' not in text:
        data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        newlines = np.flatnonzero(data == 10)
        starts = np.concatenate(([0], newlines + 1))
        ends = np.concatenate((newlines, [len(data)]))
        if starts[-1] == len(data):  # the newline that ends the last record
            starts, ends = starts[:-1], ends[:-1]
        commas = np.flatnonzero(data == 44)
        counts = np.bincount(np.searchsorted(newlines, commas), minlength=len(starts)).astype("int64") + 1
        length = ends - starts
        carriage = np.zeros(len(starts), dtype=bool)
        carriage[length > 0] = data[ends[length > 0] - 1] == 13
        counts[(length - carriage) == 0] = 0
        return counts[1:], None
    records = list(csv.reader(io.StringIO(text)))[1:]
    return np.array([len(r) for r in records], dtype="int64"), records


def read_csv_text(text: str, spec: FileSpec) -> tuple[pd.DataFrame, list[RowError]]:
    """Parse one CSV file's text into a frame of strings (one column per header name, plus _line).
    Blank lines are skipped; a record with the wrong number of fields is an error and left out."""
    if text.startswith("\ufeff"):
        text = text[1:]
    header_rows = list(csv.reader(io.StringIO(text.split("\n", 1)[0])))
    if not header_rows or not any(h.strip() for h in header_rows[0]):
        return _empty_frame(spec.columns), [RowError(spec.name, 1, "", "empty file: no header row")]
    header = header_rows[0]
    errors = check_header(header, spec)
    if len(set(header)) != len(header):
        return _empty_frame(spec.columns), errors
    counts, records = _field_counts(text)
    wrong = (counts != len(header)) & (counts != 0)
    for position in np.flatnonzero(wrong):
        errors.append(RowError(spec.name, int(position) + 2, "", f"expected {len(header)} fields, found {int(counts[position])}"))
    frame = None
    if records is None and not wrong.any():
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False, skip_blank_lines=False)
        if len(frame) == len(counts):
            frame[LINE] = np.arange(2, len(frame) + 2, dtype="int64")
            frame = frame[counts != 0]
        else:  # defensive: numbering must follow the records exactly
            frame = None
    if frame is None:
        if records is None:
            records = list(csv.reader(io.StringIO(text)))[1:]
        keep = [i for i, r in enumerate(records) if len(r) == len(header)]
        frame = pd.DataFrame([records[i] for i in keep], columns=header, dtype=str) if keep else pd.DataFrame(
            {c: pd.Series(dtype=str) for c in header}
        )
        frame[LINE] = np.array(keep, dtype="int64") + 2
    return frame.reset_index(drop=True), errors


def read_csv_file(path: Path, spec: FileSpec) -> tuple[pd.DataFrame, list[RowError]]:
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return _empty_frame(spec.columns), [RowError(spec.name, line, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
    return read_csv_text(text, spec)


# --- column checks -----------------------------------------------------------------------------------


class _Rows:
    """The rows of one file being checked: collects errors, knows which cells are valid."""

    def __init__(self, frame: pd.DataFrame, spec: FileSpec):
        frame = frame.copy()
        if LINE not in frame.columns:
            frame[LINE] = np.arange(2, len(frame) + 2, dtype="int64")
        for name in spec.columns:
            if name not in frame.columns:
                frame[name] = ""
            elif frame[name].dtype != "str":
                frame[name] = frame[name].astype(object).where(frame[name].notna(), "").astype(str)
        self.frame = frame.reset_index(drop=True)
        self.spec = spec
        self.lines = self.frame[LINE].to_numpy(dtype="int64")
        self.errors: list[RowError] = []
        self.out = pd.DataFrame({LINE: self.lines})

    def __len__(self) -> int:
        return len(self.frame)

    def raw(self, column: str) -> pd.Series:
        return self.frame[column]

    def flag(self, mask, column: str, reason: str | Callable[[int], str]) -> None:
        """Add an error for every row where mask is true; reason may be a function of the row position."""
        positions = np.flatnonzero(np.asarray(mask, dtype=bool))
        for position in positions:
            text = reason(int(position)) if callable(reason) else reason
            self.errors.append(RowError(self.spec.name, int(self.lines[position]), column, text))

    def value(self, column: str, position: int) -> str:
        return self.frame[column].iat[position]

    # typed columns -------------------------------------------------------------------------------

    def text(self, column: str, *, max_length: int, required: bool = True) -> np.ndarray:
        """A text value; returns the validity mask (non-empty when required, not too long)."""
        values = self.raw(column)
        lengths = values.str.len().to_numpy()
        empty = lengths == 0
        too_long = lengths > max_length
        if required:
            self.flag(empty, column, "required value is empty")
        self.flag(too_long, column, f"longer than {max_length} characters")
        self.out[column] = values.to_numpy(dtype=object)
        return ~too_long & (~empty if required else True)

    def enum(self, column: str, choices: tuple[str, ...]) -> np.ndarray:
        values = self.raw(column)
        empty = (values == "").to_numpy()
        bad = ~values.isin(choices).to_numpy() & ~empty
        self.flag(empty, column, f"required value is empty (one of {', '.join(choices)})")
        self.flag(bad, column, lambda p: f"{self.value(column, p)!r} is not one of {', '.join(choices)}")
        self.out[column] = values.to_numpy(dtype=object)
        return ~bad & ~empty

    def boolean(self, column: str) -> np.ndarray:
        values = self.raw(column)
        bad = ~values.isin(("1", "0", "")).to_numpy()
        self.flag(bad, column, lambda p: f"{self.value(column, p)!r} is not a boolean (1, 0 or empty)")
        self.out[column] = (values == "1").to_numpy()
        return ~bad

    def integer(self, column: str, *, low: int, high: int, default: int | None = None) -> np.ndarray:
        values = self.raw(column)
        empty = (values == "").to_numpy()
        numbers, digits = _chunked(_whole_numbers, values)
        out_of_range = digits & ((numbers < low) | (numbers > high))
        if default is None:
            self.flag(empty, column, "required value is empty")
        else:
            numbers[empty] = default
        self.flag(~digits & ~empty, column, lambda p: f"{self.value(column, p)!r} is not a whole number")
        self.flag(out_of_range, column, lambda p: f"{self.value(column, p)} is outside {low}–{high}")
        self.out[column] = numbers
        valid = digits & ~out_of_range
        return (valid | empty) if default is not None else valid

    def decimal(
        self, column: str, *, places: int, int_digits: int, out: str, what: str,
        required: bool = True, default: int | None = None, positive: bool = False, maximum: int | None = None,
    ) -> np.ndarray:
        """An unsigned decimal with at most `places` decimals -> integer units in column `out`
        (Int64, <NA> where empty and not required). Returns the validity mask (empty counts as
        valid when not required)."""
        values = self.raw(column)
        empty = (values == "").to_numpy()
        units, good = _chunked(_decimal_units, values, places=places, int_digits=int_digits)
        bad = ~good & ~empty
        if bad.any():  # say why, row by row (only the bad rows)
            bad_values = values[bad]
            negative = np.zeros(len(values), dtype=bool)
            too_fine = np.zeros(len(values), dtype=bool)
            too_big = np.zeros(len(values), dtype=bool)
            shape = bad_values.str.fullmatch(r"\d+(?:\.\d+)?").to_numpy(dtype=bool)
            negative[bad] = bad_values.str.fullmatch(r"-\s*\d+(?:\.\d+)?").to_numpy(dtype=bool)
            too_fine[bad] = shape & bad_values.str.fullmatch(rf"\d+\.\d{{{places + 1},}}").to_numpy(dtype=bool)
            too_big[bad] = shape
            too_big &= ~too_fine
            self.flag(negative, column, lambda p: f"negative {what}: {self.value(column, p)!r}")
            self.flag(too_fine, column, lambda p: f"{self.value(column, p)!r} has more than {places} decimals")
            self.flag(too_big, column, lambda p: f"{self.value(column, p)!r} is too large (at most {int_digits} digits before the point)")
            self.flag(bad & ~negative & ~too_fine & ~too_big, column,
                      lambda p: f"{self.value(column, p)!r} is not {'an' if what[0] in 'aeiou' else 'a'} {what} (digits with at most {places} decimals)")
        valid = good.copy()
        if positive:
            zero = good & (units == 0)
            self.flag(zero, column, f"{what} must be greater than 0")
            valid &= ~zero
        if maximum is not None:
            over = good & (units > maximum)
            self.flag(over, column, lambda p: f"{self.value(column, p)} is above the maximum {maximum / 10 ** places:g}")
            valid &= ~over
        if required and default is None:
            self.flag(empty, column, "required value is empty")
            self.out[out] = units
            return valid
        if default is not None:
            units = units.copy()
            units[empty] = default
            self.out[out] = units
        else:
            result = pd.array(units, dtype="Int64")
            result[empty] = pd.NA
            self.out[out] = result
        return valid | empty

    def date(self, column: str) -> np.ndarray:
        values = self.raw(column)
        empty = (values == "").to_numpy()
        shape, calendar, _ = _chunked(_iso_dates, values)
        self.flag(empty, column, "required value is empty")
        self.flag(~shape & ~empty, column, lambda p: f"{self.value(column, p)!r} is not a date YYYY-MM-DD")
        self.flag(shape & ~calendar, column, lambda p: f"{self.value(column, p)} is not a calendar date")
        self.out[column] = values.to_numpy(dtype=object)
        return calendar

    def month(self, column: str) -> np.ndarray:
        """A month YYYY-MM -> the ISO date of its first day."""
        values = self.raw(column)
        empty = (values == "").to_numpy()
        (shape,) = _chunked(_iso_months, values)
        self.flag(empty, column, "required value is empty")
        self.flag(~shape & ~empty, column, lambda p: f"{self.value(column, p)!r} is not a month YYYY-MM")
        self.out[column] = (values + "-01").to_numpy(dtype=object)
        return shape

    def known(self, column: str, valid: np.ndarray, known: set[str] | frozenset[str], what: str) -> np.ndarray:
        values = self.raw(column)
        unknown = valid & ~values.isin(list(known)).to_numpy()
        self.flag(unknown, column, lambda p: f"unknown {what} {self.value(column, p)!r}")
        return valid & ~unknown

    def duplicates(self) -> np.ndarray:
        """Every record whose key repeats an earlier record of the file."""
        key = list(self.spec.key)
        frame = self.frame[key + [LINE]]
        dup = frame.duplicated(subset=key, keep="first").to_numpy()
        if dup.any():
            first_line = frame.groupby(key, sort=False)[LINE].transform("first").to_numpy()
            label = ", ".join(key)

            def reason(p: int) -> str:
                values = ", ".join(repr(self.value(k, p)) for k in key)
                return f"duplicate key ({label}) = ({values}); first at line {int(first_line[p])}"

            self.flag(dup, key[-1], reason)
        return ~dup

    def result(self) -> tuple[pd.DataFrame, list[RowError]]:
        return self.out, self.errors


CHUNK_ROWS = 250_000  # bounds the character matrices' memory
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype="int64")


def _chars(values: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Strings as a (rows, width) matrix of code points (0 past the end) and their lengths;
    a string longer than `width` gets length -1. Vectorised: one conversion to a fixed-width
    numpy string array (one spare character tells a too-long string)."""
    fixed = np.asarray(values, dtype=f"<U{width + 1}")
    length = np.char.str_len(fixed).astype("int64")
    chars = fixed.view(np.uint32).reshape(len(values), width + 1)[:, :width]
    return chars, np.where(length <= width, length, -1)


def _chunked(function: Callable[..., tuple], values: pd.Series, **kwargs) -> tuple[np.ndarray, ...]:
    array = values.to_numpy(dtype=object)
    if len(array) <= CHUNK_ROWS:
        return function(array, **kwargs)
    parts = [function(array[start:start + CHUNK_ROWS], **kwargs) for start in range(0, len(array), CHUNK_ROWS)]
    return tuple(np.concatenate(column) for column in zip(*parts))


_POWERS = 10 ** np.arange(19, dtype="int64")


def _decimal_units(values: np.ndarray, *, places: int, int_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """Unsigned decimals `\\d{1,int_digits}(\\.\\d{1,places})?` -> (int64 units of 10**-places, ok).

    Exact integer arithmetic over the code-point matrix, one character column at a time."""
    width = int_digits + 1 + places
    chars, length = _chars(values, width)
    rows = len(values)
    ok = length >= 1
    digits = np.zeros(rows, dtype="int64")
    dots = np.zeros(rows, dtype="int64")
    dot_at = np.full(rows, -1, dtype="int64")
    for j in range(width):
        code = chars[:, j]
        inside = j < length
        is_digit = (code >= 48) & (code <= 57)
        is_dot = inside & (code == 46)
        ok &= ~inside | is_digit | is_dot
        dot_at = np.where(is_dot & (dot_at < 0), j, dot_at)
        dots += is_dot
        take = inside & is_digit
        digits = np.where(take, digits * 10 + (code.astype("int64") - 48), digits)
    has_dot = dots == 1
    decimals = np.where(has_dot, length - dot_at - 1, 0)
    whole = np.where(has_dot, dot_at, length)
    ok &= (dots <= 1) & (whole >= 1) & (whole <= int_digits) & (~has_dot | ((decimals >= 1) & (decimals <= places)))
    units = np.where(ok, digits * _POWERS[np.clip(places - decimals, 0, 18)], 0)
    return units, ok


def _whole_numbers(values: np.ndarray, *, max_digits: int = 9) -> tuple[np.ndarray, np.ndarray]:
    units, ok = _decimal_units(values, places=0, int_digits=max_digits)
    return units, ok


def _iso_dates(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YYYY-MM-DD -> (shape ok, calendar ok, year*100+month)."""
    chars, length = _chars(values, 10)
    d = chars.astype("int64") - 48
    digits = ((d[:, [0, 1, 2, 3, 5, 6, 8, 9]] >= 0) & (d[:, [0, 1, 2, 3, 5, 6, 8, 9]] <= 9)).all(axis=1)
    shape = (length == 10) & digits & (chars[:, 4] == 45) & (chars[:, 7] == 45)
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month = d[:, 5] * 10 + d[:, 6]
    day = d[:, 8] * 10 + d[:, 9]
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_ok = (month >= 1) & (month <= 12)
    days = _DAYS_IN_MONTH[np.where(month_ok, month, 0)] + ((month == 2) & leap)
    calendar = shape & (year >= 1) & month_ok & (day >= 1) & (day <= days)
    return shape, calendar, np.where(calendar, year * 100 + month, 0)


def _iso_months(values: np.ndarray) -> tuple[np.ndarray]:
    """YYYY-MM (month 01–12) -> ok."""
    chars, length = _chars(values, 7)
    d = chars.astype("int64") - 48
    digits = ((d[:, [0, 1, 2, 3, 5, 6]] >= 0) & (d[:, [0, 1, 2, 3, 5, 6]] <= 9)).all(axis=1)
    month = d[:, 5] * 10 + d[:, 6]
    return ((length == 7) & digits & (chars[:, 4] == 45) & (month >= 1) & (month <= 12),)


# --- the files ---------------------------------------------------------------------------------------


def parse_institutions(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[RowError]]:
    """code, name, level (int), category, is_public (bool), group_code, coef_u (Int64, <NA>: none)."""
    rows = _Rows(frame, INSTITUTIONS)
    rows.text("code", max_length=32)
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


CASE_TYPED_COLUMNS = (
    "case_no", "institution_code", "fund", "patient_id", "admission_date", "discharge_date", "drg_code",
    "total_fen", "self_fen", "discharge_status", "tcm_treatment", "tcm_fen", "surgery_grade",
    "malignant_tumor_surgery", LINE,
)
# Typed column -> the CSV column (and Case field) it comes from.
CASE_FIELD_OF = {
    "fund": "fund", "patient_id": "patient_id", "admission_date": "admission_date",
    "discharge_date": "discharge_date", "drg_code": "drg_code", "total_fen": "total_cost", "self_fen": "self_pay",
    "discharge_status": "discharge_status", "tcm_treatment": "tcm_treatment", "tcm_fen": "tcm_cost",
    "surgery_grade": "surgery_grade", "malignant_tumor_surgery": "malignant_tumor_surgery",
}
CASE_VALUE_COLUMNS = tuple(CASE_FIELD_OF)


def parse_cases(
    frame: pd.DataFrame, *, known_institutions: Iterable[str], known_groups: Iterable[str],
) -> tuple[pd.DataFrame, list[RowError]]:
    """Validate case rows (strings, CSV column names; `_line` optional) and convert them exactly.

    Returns the typed frame (CASE_TYPED_COLUMNS: amounts as int64 fen `total_fen`, `self_fen`,
    `tcm_fen`; dates as ISO strings) and the errors. Rules: every column typed as EXCHANGE.md says
    (tcm_cost and surgery_grade empty = 0, booleans empty = 0), institution known, drg_code in the
    year's catalog, (institution, case_no) unique, discharge not before admission, self_pay and
    tcm_cost not above total_cost."""
    rows = _Rows(frame, CASES)
    rows.text("case_no", max_length=40)
    rows.known("institution_code", rows.text("institution_code", max_length=32), frozenset(known_institutions), "institution")
    rows.enum("fund", FUNDS)
    rows.text("patient_id", max_length=64)
    admission_ok = rows.date("admission_date")
    discharge_ok = rows.date("discharge_date")
    rows.known("drg_code", rows.text("drg_code", max_length=16), frozenset(known_groups), "DRG group (not in the year's catalog)")
    total_ok = rows.decimal("total_cost", places=2, int_digits=MONEY_INT_DIGITS, out="total_fen", what="amount")
    self_ok = rows.decimal("self_pay", places=2, int_digits=MONEY_INT_DIGITS, out="self_fen", what="amount")
    rows.enum("discharge_status", DISCHARGE_STATUSES)
    rows.boolean("tcm_treatment")
    tcm_ok = rows.decimal("tcm_cost", places=2, int_digits=MONEY_INT_DIGITS, out="tcm_fen", what="amount", required=False, default=0)
    rows.integer("surgery_grade", low=0, high=4, default=0)
    rows.boolean("malignant_tumor_surgery")
    out = rows.out
    out["tcm_fen"] = out["tcm_fen"].astype("int64")

    admission = out["admission_date"].to_numpy(dtype=object)
    discharge = out["discharge_date"].to_numpy(dtype=object)
    both = admission_ok & discharge_ok
    before = np.zeros(len(rows), dtype=bool)
    before[both] = discharge[both] < admission[both]
    rows.flag(before, "discharge_date", lambda p: f"discharge_date {discharge[p]} is before admission_date {admission[p]}")
    total = out["total_fen"].to_numpy()
    self_pay = out["self_fen"].to_numpy()
    tcm = out["tcm_fen"].to_numpy()
    rows.flag(total_ok & self_ok & (self_pay > total), "self_pay",
              lambda p: f"self_pay {rows.value('self_pay', p)} exceeds total_cost {rows.value('total_cost', p)}")
    rows.flag(total_ok & tcm_ok & (tcm > total), "tcm_cost",
              lambda p: f"tcm_cost {rows.value('tcm_cost', p)} exceeds total_cost {rows.value('total_cost', p)}")
    rows.duplicates()
    typed, errors = rows.result()
    return typed[list(CASE_TYPED_COLUMNS)], errors


def parse_special_reviews(frame: pd.DataFrame, *, known_cases: set[tuple[str, str]]) -> tuple[pd.DataFrame, list[RowError]]:
    """institution_code, case_no, approved_fen. The case must be in the bundle or stored."""
    rows = _Rows(frame, SPECIAL_REVIEWS)
    inst_ok = rows.text("institution_code", max_length=32)
    case_ok = rows.text("case_no", max_length=40)
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
    rows.text("claim_no", max_length=40)
    rows.known("institution_code", rows.text("institution_code", max_length=32), known_institutions, "institution")
    rows.enum("fund", FUNDS)
    rows.month("month")
    rows.text("patient_id", max_length=64)
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
    rows.text("patient_id", max_length=64)
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
    rows.text("patient_id", max_length=64, required=False)
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
    rows.text("patient_id", max_length=64)
    rows.date("screening_date")
    rows.decimal("fee", places=2, int_digits=MONEY_INT_DIGITS, out="fee_fen", what="amount")
    rows.boolean("high_risk")
    rows.duplicates()
    return rows.result()


# --- params.json -------------------------------------------------------------------------------------

SCHEME_DECIMALS = {
    # key: (places, int digits, low, high, low inclusive)
    "all_case_avg_cost": (2, MONEY_INT_DIGITS, Decimal(0), None, False),
    "low_outlier_multiple": (RATE_PLACES, RATE_INT_DIGITS, Decimal(0), None, True),
    "readmission_factor": (RATE_PLACES, RATE_INT_DIGITS, Decimal(0), Decimal(1), True),
    "prepay_ratio": (RATE_PLACES, RATE_INT_DIGITS, Decimal("0.85"), Decimal(1), True),
}
# key: ((bound key, value key), value low, value high) — bands end with an open (null) bound.
SCHEME_TIERS = {
    "high_outlier_tiers": ("upto", "multiple", Decimal(0), None),
    "surplus_tiers": ("upto", "hospital_share", Decimal(0), Decimal(1)),
    "overrun_tiers": ("upto", "fund_share", Decimal(0), Decimal(1)),
}
SCHEME_KEYS = ("all_case_avg_cost", "high_outlier_tiers", "low_outlier_multiple", "readmission_days",
               "readmission_factor", "prepay_ratio", "surplus_tiers", "overrun_tiers", "tcm_rate_tiers")
BUDGET_MONEY = ("base_amount", "policy_adjustment")
BUDGET_RATES = ("growth_rate", "growth_cap", "reserve_rate", "outpatient_share", "primary_care_share")
BUDGET_REQUIRED = ("base_amount", "growth_rate")
PARAMS_KEYS = ("region", "year", "budgets", "scheme")


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


class _Params:
    def __init__(self) -> None:
        self.errors: list[RowError] = []

    def error(self, path: str, reason: str) -> None:
        self.errors.append(RowError(PARAMS_FILE, 0, path, reason))

    def decimal(self, value: Any, path: str, *, places: int, int_digits: int, signed: bool = False) -> Decimal | None:
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            self.error(path, f"expected a decimal number or string, got {json.dumps(value, default=str)}")
            return None
        if isinstance(value, str) and not re.fullmatch(r"-?\d+(?:\.\d+)?", value):
            number = None
        else:
            try:
                number = Decimal(value)
            except InvalidOperation:
                number = None
        if number is None or not number.is_finite():
            self.error(path, f"{value!r} is not a decimal number")
            return None
        if number < 0 and not signed:
            self.error(path, f"must not be negative, got {value}")
            return None
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > places and number != number.quantize(Decimal(1).scaleb(-places)):
            self.error(path, f"{value} has more than {places} decimals")
            return None
        if abs(number) >= Decimal(10) ** int_digits:
            self.error(path, f"{value} is too large")
            return None
        return number

    def json_number(self, value: Any, path: str, *, low: Decimal | None, high: Decimal | None, low_inclusive: bool = True) -> int | float | None:
        """A tier number kept in the JSON shape of the model defaults (int or float), exactly."""
        number = self.decimal(value, path, places=RATE_PLACES, int_digits=9, signed=True)
        if number is None:
            return None
        if (low is not None and (number < low or (number == low and not low_inclusive))) or (high is not None and number > high):
            bounds = f"{'≥' if low_inclusive else '>'} {low}" if high is None else f"between {low} and {high}"
            self.error(path, f"{value} must be {bounds}")
            return None
        if number == number.to_integral_value():
            return int(number)
        as_float = float(number)
        if Decimal(repr(as_float)) != number:
            self.error(path, f"{value} cannot be stored exactly")
            return None
        return as_float


def _object(value: Any) -> bool:
    return isinstance(value, dict)


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
    region_ok = not any(e.column.startswith("region") for e in check.errors) and bool(region_code)
    if year is None or not region_ok:
        return None, check.errors
    # With errors elsewhere the params are still returned (only the valid budgets and scheme keys) so
    # that the CSV files can be checked against the region's stored records.
    return BundleParams(region_code=region_code, region_name=region_name, year=year, budgets=budgets, scheme=scheme), check.errors


def _parse_scheme(raw: Any, check: _Params) -> dict[str, Any]:
    scheme: dict[str, Any] = {}
    if not _object(raw):
        check.error("scheme", "required: an object with at least all_case_avg_cost")
        return scheme
    for key, value in raw.items():
        path = f"scheme.{key}"
        if key in SCHEME_DECIMALS:
            places, int_digits, low, high, low_inclusive = SCHEME_DECIMALS[key]
            number = check.decimal(value, path, places=places, int_digits=int_digits)
            if number is None:
                continue
            if number < low or (number == low and not low_inclusive) or (high is not None and number > high):
                bounds = f"{'≥' if low_inclusive else '>'} {low}" if high is None else f"between {low} and {high}"
                check.error(path, f"{value} must be {bounds}")
                continue
            scheme[key] = number
        elif key == "readmission_days":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 366:
                check.error(path, f"expected a whole number of days 0–366, got {json.dumps(value, default=str)}")
                continue
            scheme[key] = value
        elif key in SCHEME_TIERS:
            tiers = _parse_bands(value, path, *SCHEME_TIERS[key], check=check)
            if tiers is not None:
                scheme[key] = tiers
        elif key == "tcm_rate_tiers":
            tiers = _parse_uplift_tiers(value, path, check)
            if tiers is not None:
                scheme[key] = tiers
        else:
            check.error(path, f"unknown key (expected: {', '.join(SCHEME_KEYS)})")
    if "all_case_avg_cost" not in raw:
        check.error("scheme.all_case_avg_cost", "required (全部病例次均费用 A has no default)")
    return scheme


def _parse_bands(value: Any, path: str, bound: str, share: str, low: Decimal, high: Decimal | None, *, check: _Params) -> list | None:
    """[{bound: number, share: number}, …, {bound: null, share: number}], bounds increasing."""
    if not isinstance(value, list) or not value:
        check.error(path, f"expected a non-empty list of {{{bound}, {share}}}")
        return None
    tiers: list[dict[str, Any]] = []
    ok = True
    previous: float | None = None
    for i, tier in enumerate(value):
        at = f"{path}[{i}]"
        if not _object(tier) or set(tier) != {bound, share}:
            check.error(at, f"expected exactly the keys {bound}, {share}")
            ok = False
            continue
        last = i == len(value) - 1
        upto = tier[bound]
        if upto is None:
            if not last:
                check.error(f"{at}.{bound}", "only the last tier may be open (null)")
                ok = False
                continue
        else:
            upto = check.json_number(upto, f"{at}.{bound}", low=Decimal(0), high=None, low_inclusive=False)
            if upto is None:
                ok = False
                continue
            if last:
                check.error(f"{at}.{bound}", "the last tier must be open (null)")
                ok = False
            if previous is not None and Decimal(repr(upto)) <= Decimal(repr(previous)):
                check.error(f"{at}.{bound}", "bounds must increase")
                ok = False
            previous = upto
        amount = check.json_number(tier[share], f"{at}.{share}", low=low, high=high, low_inclusive=share != "multiple")
        if amount is None:
            ok = False
            continue
        tiers.append({bound: upto, share: amount})
    return tiers if ok else None


def _parse_uplift_tiers(value: Any, path: str, check: _Params) -> list | None:
    if not isinstance(value, list):
        check.error(path, "expected a list of {min_rate, uplift}")
        return None
    tiers: list[dict[str, Any]] = []
    ok = True
    for i, tier in enumerate(value):
        at = f"{path}[{i}]"
        if not _object(tier) or set(tier) != {"min_rate", "uplift"}:
            check.error(at, "expected exactly the keys min_rate, uplift")
            ok = False
            continue
        rate = check.json_number(tier["min_rate"], f"{at}.min_rate", low=Decimal(0), high=Decimal(1))
        uplift = check.json_number(tier["uplift"], f"{at}.uplift", low=Decimal(0), high=Decimal(1))
        if rate is None or uplift is None:
            ok = False
            continue
        tiers.append({"min_rate": rate, "uplift": uplift})
    return tiers if ok else None


def scheme_tiers_validate(key: str, value: Any) -> tuple[list | None, list[str]]:
    """One tier list of the payment scheme (high_outlier_tiers, surplus_tiers, overrun_tiers,
    tcm_rate_tiers) checked by the same rules as params.json, for tiers entered by hand (the admin):
    (the tiers in stored form, or None; the reasons, 'path: reason')."""
    def exact(item: Any) -> Any:  # a JSON form gives floats; the rules read decimals exactly
        if isinstance(item, float):
            return Decimal(repr(item))
        if isinstance(item, list):
            return [exact(i) for i in item]
        if isinstance(item, dict):
            return {k: exact(v) for k, v in item.items()}
        return item

    check = _Params()
    if key in SCHEME_TIERS:
        tiers = _parse_bands(exact(value), key, *SCHEME_TIERS[key], check=check)
    elif key == "tcm_rate_tiers":
        tiers = _parse_uplift_tiers(exact(value), key, check)
    else:
        raise KeyError(key)
    return tiers, [f"{error.column}: {error.reason}" for error in check.errors]


# --- cases against what is stored -------------------------------------------------------------------

NEW, CHANGED, UNCHANGED = "new", "changed", "unchanged"


def classify_cases(rows: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """Compare typed case rows with the stored cases of the same (institution_code, case_no).

    `stored` has institution_code, case_no, case_id and CASE_VALUE_COLUMNS in the typed units.
    Returns `rows` with case_id (Int64), state (new / changed / unchanged), `changed` (the differing
    typed columns, a tuple) and the stored values as `<column>_stored` (object; None for new rows)."""
    key = ["institution_code", "case_no"]
    stored = stored.reset_index(drop=True)
    positions = pd.DataFrame({"institution_code": stored["institution_code"], "case_no": stored["case_no"],
                              "_stored_pos": np.arange(len(stored), dtype="int64")})
    merged = rows.reset_index(drop=True).merge(positions, on=key, how="left", sort=False)
    exists = merged["_stored_pos"].notna().to_numpy()
    pos = merged["_stored_pos"].to_numpy(dtype="float64")[exists].astype("int64")
    case_id = pd.array(np.zeros(len(merged), dtype="int64"), dtype="Int64")
    case_id[exists] = stored["case_id"].to_numpy(dtype="int64")[pos]
    case_id[~exists] = pd.NA
    merged["case_id"] = case_id
    any_diff = np.zeros(len(merged), dtype=bool)
    differs = {}
    for column in CASE_VALUE_COLUMNS:
        native = stored[column].to_numpy()
        new_values = merged[column].to_numpy()
        if native.dtype == object or new_values.dtype == object or native.dtype.kind != new_values.dtype.kind:
            native, new_values = native.astype(object), new_values.astype(object)
        old_values = native[pos]
        diff = np.zeros(len(merged), dtype=bool)
        diff[exists] = new_values[exists] != old_values
        differs[column] = diff
        any_diff |= diff
        old = np.full(len(merged), None, dtype=object)
        old[exists] = old_values
        merged[f"{column}_stored"] = old
    merged = merged.drop(columns="_stored_pos")
    merged["state"] = np.where(~exists, NEW, np.where(any_diff, CHANGED, UNCHANGED))
    changed = np.empty(len(merged), dtype=object)
    changed[:] = [()] * len(merged)
    changed_positions = np.flatnonzero(any_diff)
    if len(changed_positions):
        matrix = np.column_stack([differs[c][changed_positions] for c in CASE_VALUE_COLUMNS])
        names = np.array(CASE_VALUE_COLUMNS, dtype=object)
        for i, position in enumerate(changed_positions):
            changed[position] = tuple(names[matrix[i]])
    merged["changed"] = changed
    return merged


def _frozen_through(funds: np.ndarray, years: np.ndarray, frozen: Mapping[tuple[str, int], int]) -> np.ndarray:
    """The last frozen month of each (fund, year), 0 when none (vectorised lookup)."""
    table = pd.DataFrame([(f, int(y), int(m)) for (f, y), m in frozen.items()], columns=["fund", "year", "through"])
    keys = pd.DataFrame({"fund": pd.Series(funds, dtype=object), "year": np.asarray(years, dtype="int64")})
    table["fund"] = table["fund"].astype(object)
    return keys.merge(table, on=["fund", "year"], how="left")["through"].fillna(0).to_numpy(dtype="int64")


def _period(dates: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    text = dates.astype(str)
    return text.str.slice(0, 4).astype("int64").to_numpy(), text.str.slice(5, 7).astype("int64").to_numpy()


def frozen_case_errors(
    classified: pd.DataFrame, frozen: Mapping[tuple[str, int], int], *, file: str = CASES.name,
) -> list[RowError]:
    """A case may not be added to, changed in, or moved out of a finalized period (its fund and
    discharge month, frozen through `frozen[(fund, year)]`); such rows are errors."""
    if not frozen or classified.empty:
        return []
    active = classified[classified["state"] != UNCHANGED]
    if active.empty:
        return []
    fund = active["fund"].to_numpy(dtype=object)
    year, month = _period(active["discharge_date"])
    frozen_new = month <= _frozen_through(fund, year, frozen)
    is_changed = (active["state"] == CHANGED).to_numpy()
    frozen_old = np.zeros(len(active), dtype=bool)
    old_year = np.zeros(len(active), dtype="int64")
    old_month = np.zeros(len(active), dtype="int64")
    if is_changed.any():
        old = active.loc[is_changed]
        oy, om = _period(old["discharge_date_stored"])
        old_year[is_changed], old_month[is_changed] = oy, om
        frozen_old[is_changed] = om <= _frozen_through(old["fund_stored"].to_numpy(dtype=object), oy, frozen)
    errors: list[RowError] = []
    lines = active[LINE].to_numpy()
    states = active["state"].to_numpy(dtype=object)
    changes = active["changed"].to_numpy(dtype=object)
    case_nos = active["case_no"].to_numpy(dtype=object)
    institutions = active["institution_code"].to_numpy(dtype=object)
    for p in np.flatnonzero(frozen_new | frozen_old):
        if states[p] == NEW:
            f, y, m = fund[p], int(year[p]), int(month[p])
            errors.append(RowError(file, int(lines[p]), "discharge_date",
                                   f"new case {case_nos[p]!r} of {institutions[p]!r} falls in a finalized period "
                                   f"({f} {y}-{m:02d}, finalized through month {frozen[(f, y)]}); "
                                   "a late case goes in as a correction request of kind late_case "
                                   "(POST /api/v1/correction-requests/) that the bureau approves, "
                                   "not in a reload or a case submission"))
            continue
        fields = [CASE_FIELD_OF[c] for c in changes[p]]
        if frozen_old[p]:
            f, y, m = active["fund_stored"].iat[p], int(old_year[p]), int(old_month[p])
        else:
            f, y, m = fund[p], int(year[p]), int(month[p])
        errors.append(RowError(file, int(lines[p]), fields[0],
                               f"case {case_nos[p]!r} of {institutions[p]!r} is in a finalized period "
                               f"({f} {y}-{m:02d}, finalized through month {frozen[(f, y)]}) and differs from the "
                               f"stored case ({', '.join(fields)}); change it through a correction request"))
    return errors


def fen_text(units: int) -> str:
    sign = "-" if units < 0 else ""
    whole, cents = divmod(abs(int(units)), 100)
    return f"{sign}{whole}.{cents:02d}"


def case_json_value(column: str, value: Any) -> Any:
    """A typed case value in the JSON form of CaseCorrection.before/after (keyed by Case field)."""
    if column.endswith("_fen"):
        return fen_text(value)
    if column in ("tcm_treatment", "malignant_tumor_surgery"):
        return bool(value)
    if column == "surgery_grade":
        return int(value)
    return str(value)
