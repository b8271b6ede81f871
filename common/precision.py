"""The one home of precision and rounding (SETTLEMENT.md §0).

Money is kept to 0.01 yuan and points to 0.0001, both ROUND_HALF_UP, and only where the spec says
so; everything in between is exact rational arithmetic: a quotient is a Fraction (or integers with a
common denominator), Decimal holds only values that are exact (given amounts, their sums and
products). A value exactly half-way rounds up, however it was reached. Pure: stdlib only.
"""
from __future__ import annotations

import decimal
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Iterable, Mapping, Sequence, TypeVar

CENT = Decimal("0.01")
POINT = Decimal("0.0001")
MONEY_PLACES = 2
POINT_PLACES = 4
MONEY_SCALE = 100  # fen per yuan
POINT_SCALE = 10_000  # ten-thousandths per point

# Context for products and sums of exact decimals: wide enough that every product or sum of
# bundle-sized values is exact. Never for a quotient (use Fraction).
EXACT = decimal.Context(prec=60, rounding=ROUND_HALF_UP)

Number = Decimal | Fraction | int
K = TypeVar("K")


def to_decimal(value: Number) -> Decimal:
    """The exact Decimal of a value; a Fraction must terminate (denominator 2^a·5^b), else ValueError:
    a non-terminating quotient is rounded where the spec says (r2, r4, round_half_up), never cut."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Fraction):
        exact = EXACT.divide(Decimal(value.numerator), Decimal(value.denominator))
        if Fraction(exact) != value:
            raise ValueError(f"{value} has no exact decimal form; round it first")
        return exact
    raise TypeError(f"not an exact number: {value!r}")


def to_fraction(value: Number) -> Fraction:
    return value if isinstance(value, Fraction) else Fraction(value)


def _round_fraction(value: Fraction, scale: int) -> int:
    """Round value*scale half-up (away from zero at .5) to an integer."""
    scaled = value * scale
    sign = -1 if scaled < 0 else 1
    magnitude = abs(scaled)
    return sign * int((magnitude + Fraction(1, 2)).__floor__())


def round_half_up(value: Number, places: int) -> Decimal:
    """`places` decimals, ROUND_HALF_UP, of the exact value (a Fraction is rounded exactly, never
    through a finite-precision quotient)."""
    if isinstance(value, Fraction):
        return Decimal(_round_fraction(value, 10**places)).scaleb(-places)
    return to_decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def r2(value: Number) -> Decimal:
    """Money: 2 places, ROUND_HALF_UP."""
    return round_half_up(value, MONEY_PLACES)


def r4(value: Number) -> Decimal:
    """Points and point values: 4 places, ROUND_HALF_UP."""
    return round_half_up(value, POINT_PLACES)


def floor_cent(value: Number) -> Decimal:
    if isinstance(value, Fraction):
        return Decimal((value * MONEY_SCALE).__floor__()).scaleb(-MONEY_PLACES)
    return to_decimal(value).quantize(CENT, rounding=ROUND_FLOOR)


def to_fen(value: Decimal) -> int:
    """Exact 2-place amount -> integer fen; refuses more precision than a cent."""
    fen = value * MONEY_SCALE
    if fen != fen.to_integral_value():
        raise ValueError(f"amount {value} has more than 2 decimals")
    return int(fen)


def to_ten_thousandths(value: Decimal) -> int:
    scaled = value * POINT_SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"value {value} has more than 4 decimals")
    return int(scaled)


def from_fen(fen: int) -> Decimal:
    return Decimal(int(fen)).scaleb(-MONEY_PLACES)


def from_ten_thousandths(units: int) -> Decimal:
    return Decimal(int(units)).scaleb(-POINT_PLACES)


def allocate_largest_remainder(
    exact: Mapping[K, Number], total: Decimal, order: Sequence[K] | None = None
) -> dict[K, Decimal]:
    """Round exact amounts to cents so that they add up to `total` exactly.

    Floor every amount to the cent, then hand out the missing cents one each to the keys with the
    largest dropped fractions; ties go to the key that sorts first (institution code ascending).
    `total` must equal the exact sum up to less than one cent per key (it is in the clearing,
    where the exact amounts add up to the distributed pool by construction).
    """
    keys = list(order) if order is not None else sorted(exact)
    floors: dict[K, Fraction] = {}
    remainders: list[tuple[Fraction, int, K]] = []
    for position, key in enumerate(keys):
        value = to_fraction(exact[key]) * MONEY_SCALE
        floor = Fraction(value.__floor__())
        floors[key] = floor
        remainders.append((value - floor, position, key))
    missing = to_fraction(total) * MONEY_SCALE - sum(floors.values(), Fraction(0))
    if missing.denominator != 1:
        raise ValueError(f"total {total} is not a whole number of cents")
    missing = int(missing)
    if not 0 <= missing <= len(keys):
        raise ValueError(f"cannot allocate {total}: it differs from the exact sum by {missing} cents")
    remainders.sort(key=lambda item: (-item[0], item[1]))
    for _, _, key in remainders[:missing]:
        floors[key] += 1
    return {key: from_fen(int(floors[key])) for key in keys}


def total_of(values: Iterable[Decimal]) -> Decimal:
    return sum(values, Decimal("0"))
