"""Case rows: the rules every case obeys, whether it comes in a bundle's cases.csv or through the
hospital API. Pure: stdlib, numpy, pandas.

``parse_cases`` validates and converts rows; ``classify_cases`` and ``frozen_case_errors`` decide
what a submission does to stored cases (new / changed / unchanged; refused in a finalized period);
``case_json_value`` gives a typed value in the JSON form of a CaseCorrection.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from drg.domain.rows import DISCHARGE_STATUSES, FUNDS, LINE, MONEY_INT_DIGITS, FileSpec, RowError, _Rows

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
    frame: pd.DataFrame, *, known_institutions: Iterable[str], known_groups: Iterable[str], keys: bool = True,
) -> tuple[pd.DataFrame, list[RowError]]:
    """Validate case rows (strings, CSV column names; `_line` optional) and convert them exactly.

    Returns the typed frame (CASE_TYPED_COLUMNS: amounts as int64 fen `total_fen`, `self_fen`,
    `tcm_fen`; dates as ISO strings) and the errors. Rules: every column typed as EXCHANGE.md says
    (tcm_cost and surgery_grade empty = 0, booleans empty = 0), institution known, drg_code in the
    year's catalog, (institution, case_no) unique, discharge not before admission, self_pay and
    tcm_cost not above total_cost. ``keys`` False leaves the keys' uniqueness to case_key_errors,
    for a caller that has something to do with rows good otherwise before it knows."""
    rows = _Rows(frame, CASES)
    rows.identifier("case_no", max_length=40)
    rows.known("institution_code", rows.text("institution_code", max_length=32), frozenset(known_institutions), "institution")
    rows.enum("fund", FUNDS)
    rows.identifier("patient_id", max_length=64)
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

    admission, discharge = out["admission_date"], out["discharge_date"]  # ISO text: compared as text, by Arrow
    before = admission_ok & discharge_ok & (discharge < admission).to_numpy(dtype=bool)
    rows.flag(before, "discharge_date", lambda p: f"discharge_date {discharge.iat[p]} is before admission_date {admission.iat[p]}")
    total = out["total_fen"].to_numpy()
    self_pay = out["self_fen"].to_numpy()
    tcm = out["tcm_fen"].to_numpy()
    rows.flag(total_ok & self_ok & (self_pay > total), "self_pay",
              lambda p: f"self_pay {rows.value('self_pay', p)} exceeds total_cost {rows.value('total_cost', p)}")
    rows.flag(total_ok & tcm_ok & (tcm > total), "tcm_cost",
              lambda p: f"tcm_cost {rows.value('tcm_cost', p)} exceeds total_cost {rows.value('total_cost', p)}")
    if keys:
        rows.duplicates()
    typed, errors = rows.result()
    return typed[list(CASE_TYPED_COLUMNS)], errors


def case_key_errors(frame: pd.DataFrame) -> list[RowError]:
    """parse_cases' errors for repeated (institution_code, case_no) keys, alone: of the same rows
    (strings, CSV column names, `_line`), the same errors parse_cases reports for them."""
    key = list(CASES.key)
    rows = _Rows(frame[[*key, *([LINE] if LINE in frame.columns else [])]], replace(CASES, columns=tuple(key)))
    rows.duplicates()
    return rows.result()[1]


# --- cases against what is stored -------------------------------------------------------------------

NEW, CHANGED, UNCHANGED = "new", "changed", "unchanged"


def _all_new(rows: pd.DataFrame) -> pd.DataFrame:
    """classify_cases when nothing is stored (a region's first load): every row new, the columns
    classify_cases gives them built whole instead of compared (0.5 → 0.1 s for a million rows)."""
    merged = rows.reset_index(drop=True)
    count = len(merged)
    merged["case_id"] = pd.arrays.IntegerArray(np.zeros(count, dtype="int64"), np.ones(count, dtype=bool))
    nothing_stored = np.full(count, None, dtype=object)  # shared, read only, as classify_cases does
    for column in CASE_VALUE_COLUMNS:
        merged[f"{column}_stored"] = pd.Series(nothing_stored, index=merged.index, dtype=object, copy=False)
    merged["state"] = pd.Series([NEW], dtype="str").repeat(count).set_axis(merged.index)
    changed = np.empty(count, dtype=object)
    changed[:] = [()] * count
    merged["changed"] = changed
    return merged


def classify_cases(rows: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """Compare typed case rows with the stored cases of the same (institution_code, case_no).

    `stored` has institution_code, case_no, case_id and CASE_VALUE_COLUMNS in the typed units.
    Returns `rows` with case_id (Int64), state (new / changed / unchanged), `changed` (the differing
    typed columns, a tuple) and the stored values as `<column>_stored` (object; None for new rows)."""
    if stored.empty:
        return _all_new(rows)
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
    at = np.flatnonzero(exists)  # only the rows with a stored case are compared (none in a first load)
    nothing_stored = np.full(len(merged), None, dtype=object)  # read only: every column's when no row has a stored case
    for column in CASE_VALUE_COLUMNS:
        native = stored[column].to_numpy()
        new_values = merged[column].iloc[at].to_numpy()
        if native.dtype == object or new_values.dtype == object or native.dtype.kind != new_values.dtype.kind:
            native, new_values = native.astype(object), new_values.astype(object)
        old_values = native[pos]
        diff = np.zeros(len(merged), dtype=bool)
        diff[at] = new_values != old_values
        differs[column] = diff
        any_diff |= diff
        if len(at):
            old = np.full(len(merged), None, dtype=object)
            old[at] = old_values
        else:
            old = nothing_stored
        merged[f"{column}_stored"] = pd.Series(old, index=merged.index, dtype=object)
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
