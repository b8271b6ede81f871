"""The C++ string kernels of the row checks (Arrow: lengths, the ASCII identifier test) decide
exactly as the Python reading they speed up, hostile values included."""
from __future__ import annotations

import random
import string

import pytest

from drg.domain.cases import CASES
from drg.domain.rows import _Rows

ALPHABET = string.ascii_letters + string.digits + "-_./ ,=+@\"'\t\n\r\x00\x1b" + "é中１\u3000\u200b𝔘"


def _values(seed: int, count: int = 4000) -> list[str]:
    rng = random.Random(seed)
    values = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 6))) for _ in range(count)]
    values += ["C2025-01/a.b", "患者001", "x" * 41, "", "-lead", "=SUM(A1)", "_x", "Ａ１", "a\x00b", "ok_1"]
    return values


def _check(values: list[str], *, arrow: bool, monkeypatch) -> tuple[list, list, list]:
    frame = {name: [""] * len(values) for name in CASES.columns}
    frame["case_no"] = values
    frame["patient_id"] = list(reversed(values))
    import pandas as pd

    with monkeypatch.context() as patched:
        if not arrow:
            patched.setattr(_Rows, "arrow", lambda self, column: None)
        rows = _Rows(pd.DataFrame(frame), CASES)
        case_ok = rows.identifier("case_no", max_length=40)
        patient_ok = rows.identifier("patient_id", max_length=64, required=False)
    return case_ok.tolist(), patient_ok.tolist(), [(e.line, e.column, e.reason) for e in rows.errors]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_arrow_kernels_flag_the_same_rows_with_the_same_reasons_as_python(seed, monkeypatch):
    values = _values(seed)
    fast = _check(values, arrow=True, monkeypatch=monkeypatch)
    slow = _check(values, arrow=False, monkeypatch=monkeypatch)
    assert fast == slow
    case_ok, _patient_ok, errors = fast
    assert case_ok[-10:] == [True, True, False, False, False, False, False, True, False, True]
    assert any("longer than 40 characters" in reason for _l, _c, reason in errors)


def test_a_lone_surrogate_is_checked_by_the_python_reading(monkeypatch):
    values = ["ok1", "bad\ud800", ""]
    case_ok, _patient_ok, errors = _check(values, arrow=True, monkeypatch=monkeypatch)
    assert case_ok == [True, False, False]
    assert sorted((line, column) for line, column, _r in errors if column == "case_no") == [(3, "case_no"), (4, "case_no")]
