"""MONITORING.md §1: indicators per institution (and the pool, ``*``) per period (the year and each
discharge month) over the valued cases of a clearing run.

Every value is computed exactly (integer sums, one exact division) and rounded r4 once; the two
consumption indices, sums of per-group quotients, take a float fast path whose near-ties are
recomputed with Fractions.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd

from common.precision import r4
from monitoring.domain.cases import POOL, bed_days, months, r4_or_none, ratio, round4_array

HIGH, LOW, SPECIAL_REVIEW, TRANSFER = "high", "low", "special_review", "transfer"

COUNT_COLUMNS = (
    "cases", "points_u", "stable_n", "stable_base_u", "total_fen", "self_fen", "high_n", "low_n", "halved_n",
    "special_n", "transfer_n",
)


@dataclass(frozen=True)
class IndicatorRow:
    institution: str
    period: str
    cases: int
    points: Decimal
    cmi: Decimal | None
    cost_per_point: Decimal | None
    time_index: Decimal | None
    cost_index: Decimal | None
    high_share: Decimal | None
    low_share: Decimal | None
    readmission_share: Decimal | None
    self_pay_share: Decimal | None
    special_review_share: Decimal | None
    transfer_share: Decimal | None

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


INDICATOR_FIELDS = tuple(f.name for f in fields(IndicatorRow))
RATIO_FIELDS = INDICATOR_FIELDS[4:]


def period_key(period: str) -> tuple[int, int]:
    """Sort key of a period: the year first, then its months."""
    return (int(period[:4]), int(period[5:7]) if len(period) > 4 else 0)


def _counts(cases: pd.DataFrame) -> pd.DataFrame:
    """Integer sums per (institution, month)."""
    frame = pd.DataFrame(
        {
            "institution": cases["institution"].to_numpy(),
            "month": months(cases),
            "cases": 1,
            "points_u": cases["points_u"].to_numpy(np.int64),
            "stable_n": cases["stable"].to_numpy(bool).astype(np.int64),
            "stable_base_u": np.where(cases["stable"].to_numpy(bool), cases["base_u"].to_numpy(np.int64), 0),
            "total_fen": cases["total_fen"].to_numpy(np.int64),
            "self_fen": cases["self_fen"].to_numpy(np.int64),
            "high_n": (cases["category"].to_numpy() == HIGH).astype(np.int64),
            "low_n": (cases["category"].to_numpy() == LOW).astype(np.int64),
            "halved_n": cases["halved"].to_numpy(bool).astype(np.int64),
            "special_n": (cases["category"].to_numpy() == SPECIAL_REVIEW).astype(np.int64),
            "transfer_n": (cases["discharge_status"].to_numpy() == TRANSFER).astype(np.int64),
        }
    )
    return frame.groupby(["institution", "month"], sort=False).sum().reset_index()


def _with_year_and_pool(per_month: pd.DataFrame, keys: list[str], value_columns: list[str], year: int) -> pd.DataFrame:
    """Rows per (institution, period, *keys) for the months, the year, and the pool (*)."""
    year_rows = per_month.groupby(["institution", *keys], sort=False)[value_columns].sum().reset_index()
    year_rows["month"] = 0
    both = pd.concat([per_month, year_rows], ignore_index=True)
    pool = both.groupby(["month", *keys], sort=False)[value_columns].sum().reset_index()
    pool["institution"] = POOL
    out = pd.concat([both, pool], ignore_index=True)
    out["period"] = np.where(out["month"].to_numpy() == 0, str(year), [f"{year}-{m:02d}" for m in out["month"].to_numpy()])
    return out


def _consumption_indices(cases: pd.DataFrame, year: int) -> dict[tuple[str, str], tuple[Decimal | None, Decimal | None]]:
    """time_index and cost_index per (institution, period): Σ_g n_hg × (mean_hg ÷ mean_g) ÷ Σ_g n_hg
    over stable groups; each term is S_hg × n_g ÷ S_g (S a sum of bed days or of cost)."""
    stable = cases[cases["stable"].to_numpy(bool)]
    if stable.empty:
        return {}
    per = pd.DataFrame(
        {
            "institution": stable["institution"].to_numpy(),
            "month": months(stable),
            "group": stable["group"].to_numpy(),
            "n": 1,
            "days": bed_days(stable),
            "cost": stable["total_fen"].to_numpy(np.int64),
        }
    ).groupby(["institution", "month", "group"], sort=False).sum().reset_index()
    rows = _with_year_and_pool(per, ["group"], ["n", "days", "cost"], year)
    pool = rows[rows["institution"] == POOL][["period", "group", "n", "days", "cost"]].rename(
        columns={"n": "n_g", "days": "days_g", "cost": "cost_g"}
    )
    rows = rows.merge(pool, on=["period", "group"], how="left")
    n_hg = rows["n"].to_numpy(np.int64)
    n_g = rows["n_g"].to_numpy(np.int64)
    out: dict[tuple[str, str], list] = {}
    results = {}
    for name, s_col, g_col in (("time", "days", "days_g"), ("cost", "cost", "cost_g")):
        s_hg = rows[s_col].to_numpy(np.int64)
        s_g = rows[g_col].to_numpy(np.int64)
        # a group whose pool mean is 0 (only zero-cost stays): the institution's mean equals it, ratio 1
        with np.errstate(divide="ignore", invalid="ignore"):
            term = np.where(s_g > 0, s_hg.astype(float) * n_g / np.where(s_g > 0, s_g, 1), n_hg.astype(float))
        frame = pd.DataFrame({"institution": rows["institution"].to_numpy(), "period": rows["period"].to_numpy(), "term": term, "n": n_hg})
        sums = frame.groupby(["institution", "period"], sort=False)[["term", "n"]].sum()
        keys = list(sums.index)
        approx = (sums["term"] / sums["n"]).to_numpy(float)
        member = rows.groupby(["institution", "period"], sort=False).indices

        def exact(i: int, s_hg=s_hg, s_g=s_g, keys=keys) -> Fraction:
            idx = member[keys[i]]
            total = sum(
                (Fraction(int(s_hg[j]) * int(n_g[j]), int(s_g[j])) if s_g[j] > 0 else Fraction(int(n_hg[j])) for j in idx),
                Fraction(0),
            )
            return total / int(n_hg[idx].sum())

        results[name] = dict(zip(keys, round4_array(approx, exact)))
    for key in results["time"]:
        out[key] = (results["time"][key], results["cost"][key])
    return out


def indicators_compute(cases: pd.DataFrame, *, year: int) -> list[IndicatorRow]:
    """The §1 indicators of one run's valued cases, sorted by institution (``*`` first), then
    period (the year first, then months). Periods and institutions without valued cases are left out."""
    if cases.empty:
        return []
    counts = _with_year_and_pool(_counts(cases), [], list(COUNT_COLUMNS), year)
    indices = _consumption_indices(cases, year)
    rows: list[IndicatorRow] = []
    for rec in counts.itertuples(index=False):
        n = int(rec.cases)
        if n == 0:
            continue
        time_index, cost_index = indices.get((rec.institution, rec.period), (None, None))
        rows.append(
            IndicatorRow(
                institution=rec.institution,
                period=rec.period,
                cases=n,
                points=r4(Fraction(int(rec.points_u), 10_000)),
                cmi=r4_or_none(ratio(int(rec.stable_base_u), int(rec.stable_n) * 100 * 10_000)),
                cost_per_point=r4_or_none(ratio(int(rec.total_fen) * 100, int(rec.points_u))),
                time_index=time_index,
                cost_index=cost_index,
                high_share=r4_or_none(ratio(rec.high_n, n)),
                low_share=r4_or_none(ratio(rec.low_n, n)),
                readmission_share=r4_or_none(ratio(rec.halved_n, n)),
                self_pay_share=r4_or_none(ratio(rec.self_fen, rec.total_fen)),
                special_review_share=r4_or_none(ratio(rec.special_n, n)),
                transfer_share=r4_or_none(ratio(rec.transfer_n, n)),
            )
        )
    rows.sort(key=lambda r: ("" if r.institution == POOL else "1" + r.institution, period_key(r.period)))
    return rows
