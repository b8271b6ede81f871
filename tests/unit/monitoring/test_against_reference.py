"""The vectorised domain against the row-by-row reference (tests/unit/monitoring/reference_monitoring.py)
on random pools built to trip every rule somewhere: indicators, findings and evidence, value for value."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.domain.indicators import INDICATOR_FIELDS, indicators_compute
from monitoring.domain.screening import screen
from tests.unit.monitoring import reference_monitoring as ref

GROUPS = [  # code, kind, base points, avg cost (yuan), exempt
    ("GB21", "stable", 180, 30000, False), ("GB23", "stable", 120, 20000, False), ("GB25", "stable", 80, 8000, False),
    ("ES21", "stable", 300, 40000, False), ("ES23", "stable", 250, 25000, False),
    ("RE11", "stable", 60, 6000, True), ("RE13", "stable", 50, 5000, True),
    ("MH01", "per_diem", 0, 0, False), ("0000", "unstable", 0, 0, False),
]


def _pool(seed: int, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    inst = rng.choice([f"H{i}" for i in range(1, 9)], size=n, p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05])
    g = rng.choice(len(GROUPS), size=n, p=[0.08, 0.12, 0.3, 0.05, 0.15, 0.08, 0.07, 0.1, 0.05])
    # H2 upcodes, H3 keeps short cheap stays, H4 shifts costs, H5 transfers
    upcode = (inst == "H2") & np.isin(g, [1, 2]) & (rng.random(n) < 0.5)
    g = np.where(upcode, 0, g)
    code = np.array([GROUPS[i][0] for i in g], dtype=object)
    kind = np.array([GROUPS[i][1] for i in g], dtype=object)
    avg = np.array([GROUPS[i][3] for i in g]) * 100
    base = np.array([GROUPS[i][2] for i in g]) * 10_000
    admission = pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 350, n), unit="D")
    los = rng.integers(0, 12, n)
    los = np.where((inst == "H3") & (rng.random(n) < 0.3), rng.integers(0, 3, n), los)
    discharge = admission + pd.to_timedelta(los, unit="D")
    patients = rng.integers(0, n // 3, n)  # many patients with several stays
    six = np.flatnonzero(inst == "H6")  # H6 splits stays: a second stay 0…17 days after the first
    for a, b in zip(six[0::2], six[1::2]):
        if rng.random() < 0.7:
            patients[b] = patients[a]
            admission = admission.where(np.arange(n) != b, discharge[a] + pd.Timedelta(days=int(rng.integers(0, 18))))
            discharge = admission + pd.to_timedelta(los, unit="D")
    total = np.where(avg > 0, (avg * rng.uniform(0.2, 2.5, n)).astype(np.int64), rng.integers(100_00, 90_000_00, n))
    total = np.where((inst == "H3") & (los <= 2), (avg * 0.4).astype(np.int64), total)  # exactly r = 0.4 too
    total[rng.random(n) < 0.002] = 0
    share = np.where(inst == "H4", rng.uniform(0.2, 0.5, n), rng.uniform(0.05, 0.3, n))
    self_pay = (total * share).astype(np.int64)
    status = np.where(rng.random(n) < np.where(inst == "H5", 0.12, 0.02), "transfer", "normal").astype(object)
    status[rng.random(n) < 0.02] = "death"
    category = np.where(kind == "stable", rng.choice(["normal", "high", "low", "special_review"], size=n, p=[0.8, 0.08, 0.1, 0.02]), kind)
    return pd.DataFrame({
        "institution": inst, "case_no": [f"c{i:05d}" for i in range(n)], "patient_id": [f"p{p}" for p in patients],
        "admission_date": admission, "discharge_date": discharge, "total_fen": total, "self_fen": self_pay,
        "discharge_status": status, "group": code, "stable": kind == "stable", "base_u": np.where(kind == "stable", base, 0),
        "avg_fen": avg, "exempt": np.array([GROUPS[i][4] for i in g]), "category": category,
        "points_u": rng.integers(0, 3_000_000, n), "halved": rng.random(n) < 0.03,
    })


def _reference_cases(frame: pd.DataFrame) -> list[dict]:
    return [
        {
            "institution": r.institution, "case_no": r.case_no, "patient_id": r.patient_id, "admission": r.admission_date.date(),
            "discharge": r.discharge_date.date(), "total_fen": int(r.total_fen), "self_fen": int(r.self_fen), "status": r.discharge_status,
            "group": r.group, "kind": "stable" if r.stable else "other", "base_u": int(r.base_u), "avg_fen": int(r.avg_fen),
            "exempt": bool(r.exempt), "category": r.category, "points_u": int(r.points_u), "halved": bool(r.halved),
        }
        for r in frame.itertuples(index=False)
    ]


def _text(value) -> str:
    return "" if value is None else (f"{value:.4f}" if not isinstance(value, (int, str)) else str(value))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_indicators_and_findings_equal_the_row_by_row_reference(seed):
    frame = _pool(seed)
    cases = _reference_cases(frame)

    rows = [[_text(getattr(r, f)) for f in INDICATOR_FIELDS] for r in indicators_compute(frame, year=2025)]
    assert rows == ref.indicators(cases, 2025)

    found = screen(frame)
    expected_rows, expected_cases = ref.findings(cases, 2025)
    assert [[f.rule, f.institution, "2025", _text(f.value), _text(f.reference), str(len(f.evidence))] for f in found] == expected_rows
    assert [[f.rule, f.institution, i, no] for f in found for i, no in f.evidence] == expected_cases
    assert {f.rule for f in found} == {"cost_shifting", "low_standard_admission", "patient_selection", "split_stay", "upcoding"}
