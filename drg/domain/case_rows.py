"""Translate submitted cases into the loader's input, and the loader's errors into API error codes.

The case rules themselves are the bundle loader's (``drg.domain.cases.parse_cases``), so the batch
door and the API accept exactly the same cases. This module only:

- turns JSON objects into rows of strings as a CSV would carry them (amounts as exact decimal text,
  booleans as 1/0), refusing unknown fields and values of the wrong JSON type;
- gives every loader error a stable machine-readable ``code`` (the loader's ``reason`` is text).
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Iterable

import pandas as pd

from drg.domain.cases import CASES
from drg.domain.rows import LINE

# JSON fields of a case: the cases.csv columns less institution_code (the caller's).
CASE_FIELDS = tuple(c for c in CASES.columns if c != "institution_code")
TEXT_FIELDS = frozenset({"case_no", "fund", "patient_id", "admission_date", "discharge_date", "drg_code", "discharge_status"})
MONEY_FIELDS = frozenset({"total_cost", "self_pay", "tcm_cost"})
BOOL_FIELDS = frozenset({"tcm_treatment", "malignant_tumor_surgery"})
INT_FIELDS = frozenset({"surgery_grade"})


class TypeProblem(Exception):
    def __init__(self, message: str):
        self.message = message


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeProblem("must be a string")


def _money(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise TypeProblem("must be a decimal string such as \"8000.00\" (or a JSON number)")
    if isinstance(value, int):
        return str(value)
    if not value.is_finite():
        raise TypeProblem("must be a finite number")
    return format(value, "f")


def _bool(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, Decimal)) and value in (0, 1):
        return "1" if value == 1 else "0"
    if isinstance(value, str):
        return value
    raise TypeProblem("must be true/false or 1/0")


def _int(value: Any) -> str:
    if isinstance(value, bool):
        raise TypeProblem("must be an integer")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return str(int(value))
    if isinstance(value, str):
        return value
    raise TypeProblem("must be an integer")


_CONVERT = {
    **{name: _text for name in TEXT_FIELDS},
    **{name: _money for name in MONEY_FIELDS},
    **{name: _bool for name in BOOL_FIELDS},
    **{name: _int for name in INT_FIELDS},
}


def json_rows_to_frame(
    rows: Iterable[tuple[int, Any]], *, institution_code: str, max_errors: int = 1000
) -> tuple[pd.DataFrame, list[dict]]:
    """(row label, JSON value) pairs -> a frame of strings in cases.csv columns (``_line`` = label),
    and the type errors as API error dicts {row, field, code, message}. Strings pass through as they
    are (the loader checks them); other JSON types are converted or refused."""
    allowed = frozenset(CASE_FIELDS)
    records: list[tuple] = []
    errors: list[dict] = []
    for label, raw in rows:
        if len(errors) >= max_errors:
            break
        if type(raw) is not dict:
            errors.append({"row": label, "code": "invalid_type", "message": "each case must be a JSON object"})
            continue
        row_ok = True
        if not raw.keys() <= allowed:
            for name in raw.keys() - allowed:
                shown = str(name)[:64]
                errors.append({"row": label, "field": shown, "code": "unknown_field", "message": f"unknown field {shown!r}"})
            row_ok = False
        values = []
        for name in CASE_FIELDS:
            value = raw.get(name)
            if type(value) is str:
                values.append(value)
            elif value is None:
                values.append("")
            else:
                try:
                    values.append(_CONVERT[name](value))
                except TypeProblem as exc:
                    errors.append({"row": label, "field": name, "code": "invalid_type", "message": f"{name} {exc.message}"})
                    row_ok = False
        if row_ok:
            values.append(institution_code)
            values.append(label)
            records.append(tuple(values))
    names = [*CASE_FIELDS, "institution_code", LINE]
    if records:
        frame = pd.DataFrame.from_records(records, columns=names)
        frame = frame.astype({name: str for name in names[:-1]} | {LINE: "int64"})
    else:
        frame = pd.DataFrame({c: pd.Series(dtype=str) for c in names[:-1]})
        frame[LINE] = pd.Series(dtype="int64")
    return frame, errors[:max_errors]


# The row rules' reasons (drg.domain.rows, drg.domain.cases) -> stable API codes; first match wins.
_REASON_CODES: tuple[tuple[re.Pattern, str], ...] = tuple(
    (re.compile(pattern), code)
    for pattern, code in (
        (r"finalized period", "period_finalized"),
        (r"^duplicate key", "duplicate"),
        (r"^duplicate column", "duplicate_column"),
        (r"^unknown column", "unknown_field"),
        (r"^missing required column", "missing_column"),
        (r"^expected \d+ fields", "wrong_field_count"),
        (r"^empty file", "empty"),
        (r"^required value is empty", "required"),
        (r"^longer than", "too_long"),
        (r"is not one of", "invalid_choice"),
        (r"is not a boolean", "invalid_boolean"),
        (r"is not a whole number", "invalid_number"),
        (r"is outside", "out_of_range"),
        (r"^negative", "negative"),
        (r"more than \d+ decimals", "too_many_decimals"),
        (r"is too large", "out_of_range"),
        (r"is not a calendar date|is not a date", "invalid_date"),
        (r"is not an? .*digits", "invalid_number"),
        (r"^unknown institution", "wrong_institution"),
        (r"^unknown DRG group", "unknown_drg_code"),
        (r"before admission_date", "before_admission"),
        (r"^self_pay .* exceeds total_cost", "above_total_cost"),
        (r"^tcm_cost .* exceeds total_cost", "above_total_cost"),
        (r"not UTF-8", "malformed_csv"),
        (r"' (is only whitespace|contains control characters|starts with |may hold only letters)", "invalid_identifier"),
    )
)


def error_code(reason: str) -> str:
    for pattern, code in _REASON_CODES:
        if pattern.search(reason):
            return code
    return "invalid"
