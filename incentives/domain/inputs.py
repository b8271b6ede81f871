"""The records a payout is computed from, as pandas DataFrames (built by incentives.selectors).

Only approved records belong here (cases are not reviewed and all count). Dates are datetime64
columns, money is int64 fen; nothing is a float.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

INSTITUTION_COLUMNS = {"id": "int64", "code": "object", "is_public": "bool", "group_code": "object"}
CASE_COLUMNS = {
    "id": "int64",
    "institution_id": "int64",
    "admission_date": "datetime64[s]",
    "discharge_date": "datetime64[s]",
    "tcm_treatment": "bool",
    "surgery_grade": "int64",
    "malignant_tumor_surgery": "bool",
}
ENROLLMENT_COLUMNS = {"id": "int64", "institution_id": "int64", "patient_id": "object", "disease": "object", "enrolled_on": "datetime64[s]"}
TCM_WORKLOAD_COLUMNS = {"id": "int64", "institution_id": "int64", "month": "datetime64[s]", "prescriptions": "int64"}
HOSPICE_COLUMNS = {"id": "int64", "institution_id": "int64", "kind": "object", "patient_id": "object", "service_date": "datetime64[s]", "quantity": "int64"}
SCREENING_COLUMNS = {"id": "int64", "institution_id": "int64", "patient_id": "object", "screening_date": "datetime64[s]", "fee_fen": "int64", "high_risk": "bool"}


def frame(rows: list[tuple] | list[dict] | None, columns: dict[str, str]) -> pd.DataFrame:
    """A DataFrame with exactly `columns` in their dtypes (an empty one when there are no rows)."""
    df = pd.DataFrame.from_records(rows or [], columns=list(columns))
    for name, dtype in columns.items():
        if dtype.startswith("datetime64"):
            df[name] = pd.to_datetime(df[name]).astype(dtype)
        else:
            df[name] = df[name].astype(dtype)
    return df


def _empty(columns: dict[str, str]):
    return field(default_factory=lambda: frame(None, columns))


@dataclass
class IncentiveInputs:
    """institutions: every institution of the region (code, is_public, group_code).
    cases: cases discharged in the year (those with TCM treatment or malignant tumour surgery are
    enough). enrollments: for every patient included, the patient's whole history up to the end of
    the year (the selector reads only the patients first enrolled in the year, so their history is
    their enrollments of the year). tcm_workloads, hospice_services, screenings: approved
    records of the year (more is harmless: the rules filter by date)."""

    institutions: pd.DataFrame = _empty(INSTITUTION_COLUMNS)
    cases: pd.DataFrame = _empty(CASE_COLUMNS)
    enrollments: pd.DataFrame = _empty(ENROLLMENT_COLUMNS)
    tcm_workloads: pd.DataFrame = _empty(TCM_WORKLOAD_COLUMNS)
    hospice_services: pd.DataFrame = _empty(HOSPICE_COLUMNS)
    screenings: pd.DataFrame = _empty(SCREENING_COLUMNS)
