"""The C++ string kernels of the row checks (Arrow: lengths, the ASCII identifier test) decide
exactly as the Python reading they speed up, hostile values included."""
from __future__ import annotations

import random
import string

import pandas as pd
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
