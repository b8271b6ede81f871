"""PLANNING.md §3: the year-end point-value forecast after the monthly run of month m.

Pure and exact (Fractions), except where the estimate is shown: V̂ as r4, amounts as r2. The
annual rule is SETTLEMENT.md §4's own `distributed_amount`, not a copy of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Mapping, Sequence

from common.precision import r2, r4
from settlement.domain.clearing import ClearingParameters, distributed_amount


class ForecastError(ValueError):
    """The forecast cannot be made (month out of range, no points)."""


@dataclass(frozen=True)
class Season:
    points: Fraction  # season_P: share of the previous year's annual points discharged in months 1..m
    claims: Fraction  # season_F: the same for fund claims F
    source: str       # "previous_year" or "uniform" (m / 12)


@dataclass(frozen=True)
class ForecastResult:
    month: int
    season: Season
    points: Fraction        # P̂
    fund_claims: Fraction   # F̂
    self_pay: Fraction      # Ŝ
    distributed: Decimal    # Â
    point_value_exact: Fraction
    point_value: Decimal    # V̂, r4
    payments: dict          # institution key -> estimated pay_h (r2)
    points_by_institution: dict  # institution key -> points_h,m / season_P (r4)


def season_from_months(*, month: int, points_by_month: Mapping[int, Fraction | Decimal | int],
                       claims_by_month: Mapping[int, Fraction | Decimal | int]) -> Season:
    """season_P and season_F from the previous year's annual points and fund claims by discharge
    month; 1/12 × m when there is no previous year (both totals zero or missing)."""
    if not 1 <= month <= 12:
        raise ForecastError(f"month must be 1..12, got {month}")
    p_total = sum((Fraction(v) for v in points_by_month.values()), Fraction(0))
    f_total = sum((Fraction(v) for v in claims_by_month.values()), Fraction(0))
    p_to = sum((Fraction(v) for k, v in points_by_month.items() if k <= month), Fraction(0))
    f_to = sum((Fraction(v) for k, v in claims_by_month.items() if k <= month), Fraction(0))
    if p_total <= 0 or f_total <= 0 or p_to <= 0 or f_to <= 0:
        return uniform_season(month)
    return Season(points=p_to / p_total, claims=f_to / f_total, source="previous_year")


def uniform_season(month: int) -> Season:
    return Season(points=Fraction(month, 12), claims=Fraction(month, 12), source="uniform")


def forecast_year_end(
    *,
    month: int,
    season: Season,
    points_to_date: Mapping,       # institution key -> P_h,m (Decimal)
    self_pay_to_date: Mapping,     # institution key -> S_h,m
    fund_claims_to_date: Decimal,  # F_m
    drg_budget: Decimal,           # B of the full year
    reserve: Decimal,
    params: ClearingParameters,
) -> ForecastResult:
    """P̂ = P_m / season_P, F̂ = F_m / season_F, Ŝ = S_m / season_F; Â by §4 on (B, F̂, Ŝ, P̂);
    V̂ = (Â + Ŝ) / P̂; pay_h ≈ points_h,m / season_P × V̂ − S_h,m / season_F."""
    if not 1 <= month <= 12:
        raise ForecastError(f"month must be 1..12, got {month}")
    p_m = sum((Fraction(v) for v in points_to_date.values()), Fraction(0))
    s_m = sum((Fraction(v) for v in self_pay_to_date.values()), Fraction(0))
    if p_m <= 0:
        raise ForecastError("no points to date: nothing to forecast from")
    p_hat = p_m / season.points
    f_hat = Fraction(fund_claims_to_date) / season.claims
    s_hat = s_m / season.claims
    # F̂ is exact and need not terminate (F_m / season): §4 runs on the exact value, rounded once in A
    distributed, _, _ = distributed_amount(drg_budget=Fraction(drg_budget), fund_claims=f_hat, reserve=reserve, params=params)
    value = (Fraction(distributed) + s_hat) / p_hat
    payments, points_hat = {}, {}
    for key, points in points_to_date.items():
        projected = Fraction(points) / season.points
        points_hat[key] = r4(projected)
        payments[key] = r2(projected * value - Fraction(self_pay_to_date.get(key, 0)) / season.claims)
    return ForecastResult(
        month=month, season=season, points=p_hat, fund_claims=f_hat, self_pay=s_hat, distributed=distributed,
        point_value_exact=value, point_value=r4(value), payments=payments, points_by_institution=points_hat,
    )


def relative_error(forecast: Decimal | Fraction, actual: Decimal | Fraction) -> Fraction:
    """|V̂ − V_actual| / V_actual."""
    actual_f = Fraction(actual)
    if actual_f == 0:
        raise ForecastError("the actual point value is zero")
    return abs(Fraction(forecast) - actual_f) / actual_f


def track_record_band(errors_by_month: Mapping[int, Sequence[Fraction]]) -> dict[int, Fraction]:
    """Per month, the largest relative error of the same forecast in past years (the band shown
    around V̂ is V̂ × (1 ± that error)); months without history have no band."""
    return {month: max(errors) for month, errors in errors_by_month.items() if errors}
