"""common.precision: one home for rounding; a non-terminating quotient is rounded, never cut."""
from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction

import pytest

from common.precision import r2, r4, round_half_up, to_decimal


def test_exact_halves_round_away_from_zero_at_every_place():
    assert r4(Fraction(61297, 160)) == D("383.1063")  # 383.10625
    assert r2(Fraction(5, 1000)) == D("0.01") and r2(Fraction(-5, 1000)) == D("-0.01")
    assert round_half_up(Fraction(1, 3), 6) == D("0.333333") and round_half_up(Fraction(2, 3), 6) == D("0.666667")
    assert round_half_up(Fraction(5, 10**7), 6) == D("0.000001")  # half-up, not half-even
    assert round_half_up(D("0.0000005"), 6) == D("0.000001")


def test_a_non_terminating_fraction_has_no_exact_decimal():
    assert to_decimal(Fraction(3, 8)) == D("0.375")
    with pytest.raises(ValueError, match="no exact decimal form"):
        to_decimal(Fraction(1, 3))
