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
from monitoring.domain.cases import POOL, bed_days, int_sums, months, r4_or_none, ratio, round4_array, sorted_codes

HIGH, LOW, SPECIAL_REVIEW, TRANSFER = "high", "low", "special_review", "transfer"



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


def _cube(sums: dict[str, np.ndarray], shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Per (institution, month 1..12[, group]) sums → with month 0 = the year and a last
    institution row = the pool."""
    out = {}
    for name, flat in sums.items():
        cube = flat.reshape(shape)
        cube[:, 0] = cube[:, 1:].sum(axis=1)
        out[name] = np.concatenate([cube, cube.sum(axis=0, keepdims=True)], axis=0)
    return out


def _period(year: int, month: int) -> str:
    return str(year) if month == 0 else f"{year}-{month:02d}"


def _consumption_indices(cases: pd.DataFrame, inst_code: np.ndarray, month: np.ndarray, n_inst: int) -> dict[str, np.ndarray]:
    """time_index and cost_index per (institution row, month 0..12) as r4 Decimals (object arrays,
    None where undefined): Σ_g n_hg × (mean_hg ÷ mean_g) ÷ Σ_g n_hg over stable groups; each term is
    S_hg × n_g ÷ S_g (S a sum of bed days or of cost); pool row and month 0 included."""
    mask = cases["stable"].to_numpy(bool)
    empty = np.full((n_inst + 1, 13), None, dtype=object)
    if not mask.any():
        return {"time": empty, "cost": empty.copy()}
    group_code, group_names = pd.factorize(cases["group"].to_numpy()[mask])
    n_groups = len(group_names)
    key = (inst_code[mask] * 13 + month[mask]) * n_groups + group_code
    sums = _cube(
        int_sums(key, n_inst * 13 * n_groups, {"n": np.ones(int(mask.sum()), dtype=np.int64), "days": bed_days(cases[mask]),
                                                 "cost": cases["total_fen"].to_numpy(np.int64)[mask]}),
        (n_inst, 13, n_groups),
    )
    n = sums["n"]
    n_g = n[-1][None, :, :]
    denominator = n.sum(axis=2)
    out = {}
    for name, column in (("time", "days"), ("cost", "cost")):
        s_hg = sums[column]
        s_g = s_hg[-1][None, :, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            # a group whose pool mean is 0 (only zero-cost stays): the institution's mean equals it, ratio 1
            term = np.where(s_g > 0, s_hg.astype(float) * n_g / np.where(s_g > 0, s_g, 1), n.astype(float))
            approx = term.sum(axis=2) / np.where(denominator > 0, denominator, 1)
        approx = np.where(denominator > 0, approx, np.nan)
        cells = list(zip(*np.nonzero(denominator > 0)))

        def exact(i: int, s_hg=s_hg, s_g=s_g) -> Fraction:
            h, m = cells[i]
            total = Fraction(0)
            for g in np.flatnonzero(n[h, m] > 0):
                sg = int(s_g[0, m, g])
                total += Fraction(int(s_hg[h, m, g]) * int(n_g[0, m, g]), sg) if sg > 0 else Fraction(int(n[h, m, g]))
            return total / int(denominator[h, m])

        rounded = round4_array(np.array([approx[h, m] for h, m in cells], dtype=float), exact)
        result = np.full((n_inst + 1, 13), None, dtype=object)
        for (h, m), value in zip(cells, rounded):
            result[h, m] = value
        out[name] = result
    return out


def indicators_compute(cases: pd.DataFrame, *, year: int) -> list[IndicatorRow]:
    """The §1 indicators of one run's valued cases, sorted by institution (``*`` first), then
    period (the year first, then months). Periods and institutions without valued cases are left out."""
    if cases.empty:
        return []
    inst_code, inst_names = sorted_codes(cases["institution"].to_numpy())
    n_inst = len(inst_names)
    month = months(cases)
    category = cases["category"].to_numpy()
    stable = cases["stable"].to_numpy(bool)
    sums = _cube(
        int_sums(inst_code * 13 + month, n_inst * 13, {
            "cases": np.ones(len(cases), dtype=np.int64),
            "points_u": cases["points_u"].to_numpy(np.int64),
            "stable_n": stable.astype(np.int64),
            "stable_base_u": np.where(stable, cases["base_u"].to_numpy(np.int64), 0),
            "total_fen": cases["total_fen"].to_numpy(np.int64),
            "self_fen": cases["self_fen"].to_numpy(np.int64),
            "high_n": (category == HIGH).astype(np.int64),
            "low_n": (category == LOW).astype(np.int64),
            "halved_n": cases["halved"].to_numpy(bool).astype(np.int64),
            "special_n": (category == SPECIAL_REVIEW).astype(np.int64),
            "transfer_n": (cases["discharge_status"].to_numpy() == TRANSFER).astype(np.int64),
        }),
        (n_inst, 13),
    )
    indices = _consumption_indices(cases, inst_code, month, n_inst)
    rows: list[IndicatorRow] = []
    for h in [n_inst, *range(n_inst)]:  # the pool first, then institutions in code order
        for m in range(13):
            n = int(sums["cases"][h, m])
            if n == 0:
                continue
            get = lambda name: int(sums[name][h, m])  # noqa: E731
            rows.append(
                IndicatorRow(
                    institution=POOL if h == n_inst else inst_names[h],
                    period=_period(year, m),
                    cases=n,
                    points=r4(Fraction(get("points_u"), 10_000)),
                    cmi=r4_or_none(ratio(get("stable_base_u"), get("stable_n") * 100 * 10_000)),
                    cost_per_point=r4_or_none(ratio(get("total_fen") * 100, get("points_u"))),
                    time_index=indices["time"][h, m],
                    cost_index=indices["cost"][h, m],
                    high_share=r4_or_none(ratio(get("high_n"), n)),
                    low_share=r4_or_none(ratio(get("low_n"), n)),
                    readmission_share=r4_or_none(ratio(get("halved_n"), n)),
                    self_pay_share=r4_or_none(ratio(get("self_fen"), get("total_fen"))),
                    special_review_share=r4_or_none(ratio(get("special_n"), n)),
                    transfer_share=r4_or_none(ratio(get("transfer_n"), n)),
                )
            )
    return rows
