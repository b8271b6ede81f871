"""Hand-built valued-case frames for the monitoring domain tests."""
from __future__ import annotations

import itertools

import pandas as pd

_seq = itertools.count(1)


def case(
    inst: str = "H1", no: str | None = None, *, patient: str | None = None, adm: str = "2025-03-01", dis: str = "2025-03-05",
    total: int = 1000, self_pay: int = 0, status: str = "normal", group: str = "GB25", stable: bool = True, base: int = 100,
    avg: int = 1000, exempt: bool = False, category: str = "normal", points: float | None = None, halved: bool = False,
) -> dict:
    """One valued case; money in whole yuan, base points whole."""
    n = next(_seq)
    return {
        "institution": inst, "case_no": no or f"c{n:05d}", "patient_id": patient or f"p{n:05d}",
        "admission_date": pd.Timestamp(adm), "discharge_date": pd.Timestamp(dis),
        "total_fen": total * 100, "self_fen": self_pay * 100, "discharge_status": status, "group": group,
        "stable": stable, "base_u": base * 10_000 if stable else 0, "avg_fen": avg * 100, "exempt": exempt,
        "category": category, "points_u": int((base if points is None else points) * 10_000), "halved": halved,
    }


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def many(n: int, **kw) -> list[dict]:
    return [case(**kw) for _ in range(n)]
