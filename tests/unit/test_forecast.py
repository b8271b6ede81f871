"""PLANNING.md §3: the year-end forecast, computed by hand."""
from decimal import Decimal
from fractions import Fraction

import pytest

from planning.domain.forecast import (
    ForecastError, forecast_year_end, relative_error, season_from_months, track_record_band, uniform_season,
)
from settlement.domain.clearing import ClearingParameters


def _forecast(fund_claims: str, season=None):
    return forecast_year_end(
        month=6, season=season or uniform_season(6), points_to_date={"A": Decimal("100"), "B": Decimal("300")},
        self_pay_to_date={"A": Decimal("1000"), "B": Decimal("2000")}, fund_claims_to_date=Decimal(fund_claims),
        drg_budget=Decimal("120000"), reserve=Decimal("5000"), params=ClearingParameters(),
    )


def test_surplus_year_end_by_hand():
    # P̂ = 400 × 2 = 800, F̂ = 100000, Ŝ = 6000; surplus 20000: 12000 × 0.85 retained -> Â = 110200
    result = _forecast("50000")
    assert (result.points, result.fund_claims, result.self_pay) == (800, 100000, 6000)
    assert result.distributed == Decimal("110200.00")
    assert result.point_value == Decimal("145.2500")  # (110200 + 6000) / 800
    assert result.payments == {"A": Decimal("27050.00"), "B": Decimal("83150.00")}  # 200 × V̂ − 2000, 600 × V̂ − 4000
    assert sum(result.payments.values()) == result.distributed


def test_overrun_year_end_by_hand():
    # F̂ = 130000 > B: 6000 × 0.5 + 4000 × 0.3 = 4200 from the reserve -> Â = 124200
    result = _forecast("65000")
    assert result.distributed == Decimal("124200.00")
    assert result.point_value == Decimal("162.7500")


def test_season_is_the_previous_years_share_or_m_over_12():
    season = season_from_months(month=2, points_by_month={1: 10, 2: 30, 3: 60}, claims_by_month={1: 5, 2: 5, 3: 10})
    assert (season.points, season.claims, season.source) == (Fraction(2, 5), Fraction(1, 2), "previous_year")
    assert season_from_months(month=3, points_by_month={}, claims_by_month={}).points == Fraction(1, 4)
    result = _forecast("50000", season=season)
    assert result.points == Fraction(400) / Fraction(2, 5) and result.fund_claims == 100000


def test_errors_and_band():
    assert relative_error(Decimal("110"), Decimal("100")) == Fraction(1, 10)
    assert track_record_band({3: [Fraction(1, 10), Fraction(1, 20)], 4: []}) == {3: Fraction(1, 10)}
    with pytest.raises(ForecastError):
        forecast_year_end(month=13, season=uniform_season(1), points_to_date={}, self_pay_to_date={},
                          fund_claims_to_date=Decimal(0), drg_budget=Decimal(1), reserve=Decimal(0), params=ClearingParameters())
    with pytest.raises(ForecastError, match="no points"):
        forecast_year_end(month=3, season=uniform_season(3), points_to_date={"A": Decimal(0)}, self_pay_to_date={},
                          fund_claims_to_date=Decimal(0), drg_budget=Decimal(1), reserve=Decimal(0), params=ClearingParameters())
