"""The C++ string kernels of the row checks (Arrow: lengths, the ASCII identifier test) decide
exactly as the Python reading they speed up, hostile values included."""
from __future__ import annotations

import random
import string

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from drg.domain.cases import CASES
from drg.domain.rows import _Rows

ALPHABET = string.ascii_letters + string.digits + "-_./ ,=+@\"'\t\n\r\x00\x1b" + "é中１\u3000\u200b𝔘"


def _values(seed: int, count: int = 4000) -> list[str]:
    rng = random.Random(seed)
    values = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 6))) for _ in range(count)]
    values += ["C2025-01/a.b", "患者001", "x" * 41, "", "-lead", "=SUM(A1)", "_x", "Ａ１", "a\x00b", "ok_1"]
    return values


def _rows(frame, spec, *, arrow: bool, monkeypatch) -> _Rows:
    """The rows read by Arrow's kernels, or (arrow=False) as if no column were Arrow text."""
    if not arrow:
        monkeypatch.setattr(_Rows, "arrow", lambda self, column: None)
        return _Rows(pd.DataFrame(frame), spec)
    try:  # held by Arrow in two chunks, as Arrow's CSV reader hands a large file over in blocks
        table = pa.table({name: pa.array(values, type=pa.large_string()) for name, values in frame.items()})
    except (pa.ArrowException, UnicodeError):  # a lone surrogate: pandas holds it as a Python object
        return _Rows(pd.DataFrame(frame), spec)
    middle = table.num_rows // 2
    table = pa.concat_tables([table.slice(0, middle), table.slice(middle)])
    chunked = table.to_pandas(types_mapper=lambda kind: pd.StringDtype("pyarrow", na_value=np.nan))
    assert pa.array(chunked[spec.columns[0]]).num_chunks == 2
    return _Rows(chunked, spec)


def _alike(read, values: list[str], monkeypatch) -> tuple:
    """What `read` makes of the values by Arrow's kernels, checked equal to the Python reading."""
    fast = read(values, arrow=True, monkeypatch=monkeypatch)
    assert fast == read(values, arrow=False, monkeypatch=monkeypatch)
    return fast


def _check(values: list[str], *, arrow: bool, monkeypatch) -> tuple[list, list, list]:
    frame = {name: [""] * len(values) for name in CASES.columns}
    frame["case_no"] = values
    frame["patient_id"] = list(reversed(values))
    with monkeypatch.context() as patched:
        rows = _rows(frame, CASES, arrow=arrow, monkeypatch=patched)
        case_ok = rows.identifier("case_no", max_length=40)
        patient_ok = rows.identifier("patient_id", max_length=64, required=False)
    return case_ok.tolist(), patient_ok.tolist(), [(e.line, e.column, e.reason) for e in rows.errors]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_arrow_kernels_flag_the_same_rows_with_the_same_reasons_as_python(seed, monkeypatch):
    case_ok, _patient_ok, errors = _alike(_check, _values(seed), monkeypatch)
    assert case_ok[-10:] == [True, True, False, False, False, False, False, True, False, True]
    assert any("longer than 40 characters" in reason for _l, _c, reason in errors)


def test_a_lone_surrogate_is_checked_by_the_python_reading(monkeypatch):
    values = ["ok1", "bad\ud800", ""]
    case_ok, _patient_ok, errors = _check(values, arrow=True, monkeypatch=monkeypatch)
    assert case_ok == [True, False, False]
    assert sorted((line, column) for line, column, _r in errors if column == "case_no") == [(3, "case_no"), (4, "case_no")]


NUMERIC = "0123456789" + "..-+ e,\t\n１٣\x00"


def _numbers(seed: int, count: int = 4000) -> list[str]:
    rng = random.Random(seed)
    values = ["".join(rng.choice(NUMERIC[:10] if rng.random() < 0.6 else NUMERIC) for _ in range(rng.randint(0, 15)))
              for _ in range(count)]
    values += ["12.5", "12.50", "12.505", "007.25", "1.", ".5", "9" * 12 + ".99", "9" * 13, "-1", "１２", "12\n", ""]
    return values


def _read_numbers(values: list[str], *, arrow: bool, monkeypatch) -> tuple:
    frame = {name: [""] * len(values) for name in CASES.columns}
    frame["total_cost"] = values
    frame["self_pay"] = list(reversed(values))
    frame["surgery_grade"] = values
    with monkeypatch.context() as patched:
        rows = _rows(frame, CASES, arrow=arrow, monkeypatch=patched)
        total_ok = rows.decimal("total_cost", places=2, int_digits=12, out="total_fen", what="amount")
        self_ok = rows.decimal("self_pay", places=4, int_digits=6, out="self_u", what="amount", required=False)
        grade_ok = rows.integer("surgery_grade", low=0, high=4, default=0)
    return (total_ok.tolist(), self_ok.tolist(), grade_ok.tolist(), rows.out["total_fen"].tolist(),
            rows.out["self_u"].tolist(), rows.out["surgery_grade"].tolist(), [(e.line, e.column, e.reason) for e in rows.errors])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_decimals_and_whole_numbers_read_by_arrow_equal_the_numpy_reading(seed, monkeypatch):
    total_ok, self_ok, _grade_ok, total_fen, self_u, _grade, _errors = _alike(_read_numbers, _numbers(seed), monkeypatch)
    assert total_ok[-12:] == [True, True, False, True, False, False, True, False, False, False, False, False]
    assert total_fen[-12:-6] == [1250, 1250, 0, 725, 0, 0]
    assert total_fen[-6] == 99999999999999  # 999,999,999,999.99 in fen: twelve digits before the point
    assert self_u[0] is pd.NA and self_ok[0]  # an empty optional amount (the last value, reversed) stays missing, valid


@pytest.mark.parametrize("arrow", [True, False])
def test_a_trailing_nul_makes_a_date_a_month_or_an_amount_bad_in_either_reading(arrow, monkeypatch):
    from drg.domain.rows import FileSpec

    spec = FileSpec(name="x.csv", columns=("day", "month", "amount"), key=("day",))
    frame = {"day": ["2025-01-28", "2025-01-28\x00"], "month": ["2025-01", "2025-01\x00"], "amount": ["12.50", "12.50\x00"]}
    with monkeypatch.context() as patched:
        rows = _rows(frame, spec, arrow=arrow, monkeypatch=patched)
        day_ok = rows.date("day")
        month_ok = rows.month("month")
        amount_ok = rows.decimal("amount", places=2, int_digits=12, out="amount_fen", what="amount")
    assert (day_ok.tolist(), month_ok.tolist(), amount_ok.tolist()) == ([True, False], [True, False], [True, False])
    assert rows.out["amount_fen"].tolist() == [1250, 0]
    assert sorted(e.column for e in rows.errors) == ["amount", "day", "month"]
    assert all(e.line == 3 for e in rows.errors)


DATE_CHARS = "0123456789-" + "/ .\t\n１٣\x00T:"


def _dates(seed: int, count: int = 4000) -> list[str]:
    rng = random.Random(seed)
    values = ["".join(rng.choice(DATE_CHARS[:11] if rng.random() < 0.7 else DATE_CHARS) for _ in range(rng.randint(5, 12)))
              for _ in range(count)]
    # shaped dates around every month's end, leap years and the edges of the fields
    values += [f"{y:04d}-{m:02d}-{d:02d}" for y in (0, 1, 1900, 2000, 2023, 2024, 9999) for m in range(0, 14) for d in (0, 1, 28, 29, 30, 31, 32)]
    values += ["2024-02-29", "2023-02-29", "2024-1-05", "2024-01-05\n", "2024-01", "2024-13", "2024-00", "2024-01\x00", "２０２４-01-05", ""]
    return values


def _read_dates(values: list[str], *, arrow: bool, monkeypatch) -> tuple:
    frame = {name: [""] * len(values) for name in CASES.columns}
    frame["admission_date"] = values
    frame["discharge_date"] = [value[:7] for value in values]  # read as months below
    with monkeypatch.context() as patched:
        rows = _rows(frame, CASES, arrow=arrow, monkeypatch=patched)
        day_ok = rows.date("admission_date")
        month_ok = rows.month("discharge_date")
    return day_ok.tolist(), month_ok.tolist(), [(e.line, e.column, e.reason) for e in rows.errors]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dates_and_months_read_by_arrow_equal_the_numpy_reading(seed, monkeypatch):
    values = _dates(seed)
    day_ok, month_ok, errors = _alike(_read_dates, values, monkeypatch)
    verdicts = dict(zip(values, day_ok))
    assert (verdicts["2024-02-29"], verdicts["2023-02-29"], verdicts["2000-02-29"], verdicts["1900-02-29"]) == (True, False, True, False)
    assert (verdicts["2024-04-30"], verdicts["2024-04-31"], verdicts["0000-01-01"], verdicts["2024-01-05\n"]) == (True, False, False, False)
    assert sum(day_ok) > 300 and sum(month_ok) > 300
    assert any("is not a calendar date" in reason for _l, _c, reason in errors)


def test_a_column_of_good_dates_is_known_at_once_and_read_as_the_numpy_reading(monkeypatch):
    """Every date good: Arrow's cast to date32 accepts the column whole (_all_iso_dates) and the
    verdicts are the numpy reading's. One bad value anywhere, or a day of year 0000, and the column
    is read value by value as before; a month of year 0000 stays a month."""
    from drg.domain import rows as kernels

    good = [f"{y:04d}-{m:02d}-{d:02d}" for y in (1, 1900, 2000, 2023, 2024, 9999) for m in range(1, 13) for d in (1, 28)]
    good += ["2024-02-29", "2000-02-29", "2024-04-30", "0001-01-01"]
    assert kernels._all_iso_dates(pa.array(good))
    for bad in ("2023-02-29", "0000-01-01", "2024-1-05", "2024-01-05\x00", "２０２４-01-05", ""):
        assert not kernels._all_iso_dates(pa.chunked_array([pa.array(good), pa.array([bad])])), bad
    day_ok, month_ok, errors = _alike(_read_dates, good, monkeypatch)
    assert all(day_ok) and all(month_ok) and errors == []
    months = ["0000-01", "2024-12", "9999-06"]
    assert kernels._iso_months_arrow(pa.chunked_array([pa.array(months)])).tolist() == [True, True, True]
    assert kernels._iso_months_arrow(pa.array(months + ["2024-13"])).tolist() == [True, True, True, False]
    # the first reading of a good column is the cast; the slices are not computed
    monkeypatch.setattr(kernels, "_whole", lambda *a: pytest.fail("a good column is read value by value"))
    shape, calendar = kernels._iso_dates_arrow(pa.array(good))
    assert shape.all() and calendar.all()
