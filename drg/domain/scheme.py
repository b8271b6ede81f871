"""The payment scheme's values as params.json and the admin give them: exact decimals and tier
lists checked by one set of rules. Pure: stdlib, decimal.

``_Params`` collects problems as ``RowError("params.json", 0, <JSON path>, reason)``;
``_parse_scheme`` reads the scheme object of params.json; ``scheme_tiers_validate`` checks one tier
list entered by hand (the admin's payment scheme form).
"""
from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from drg.domain.rows import MONEY_INT_DIGITS, RATE_INT_DIGITS, RATE_PLACES, RowError

PARAMS_FILE = "params.json"

SCHEME_DECIMALS = {
    # key: (places, int digits, low, high, low inclusive)
    "all_case_avg_cost": (2, MONEY_INT_DIGITS, Decimal(0), None, False),
    "low_outlier_multiple": (RATE_PLACES, RATE_INT_DIGITS, Decimal(0), None, True),
    "readmission_factor": (RATE_PLACES, RATE_INT_DIGITS, Decimal(0), Decimal(1), True),
    "prepay_ratio": (RATE_PLACES, RATE_INT_DIGITS, Decimal("0.85"), Decimal(1), True),
}
# key: ((bound key, value key), value low, value high) — bands end with an open (null) bound.
SCHEME_TIERS = {
    "high_outlier_tiers": ("upto", "multiple", Decimal(0), None),
    "surplus_tiers": ("upto", "hospital_share", Decimal(0), Decimal(1)),
    "overrun_tiers": ("upto", "fund_share", Decimal(0), Decimal(1)),
}
SCHEME_KEYS = ("all_case_avg_cost", "high_outlier_tiers", "low_outlier_multiple", "readmission_days",
               "readmission_factor", "prepay_ratio", "surplus_tiers", "overrun_tiers", "tcm_rate_tiers")


class _Params:
    def __init__(self) -> None:
        self.errors: list[RowError] = []

    def error(self, path: str, reason: str) -> None:
        self.errors.append(RowError(PARAMS_FILE, 0, path, reason))

    def decimal(self, value: Any, path: str, *, places: int, int_digits: int, signed: bool = False) -> Decimal | None:
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            self.error(path, f"expected a decimal number or string, got {json.dumps(value, default=str)}")
            return None
        if isinstance(value, str) and not re.fullmatch(r"-?\d+(?:\.\d+)?", value):
            number = None
        else:
            try:
                number = Decimal(value)
            except InvalidOperation:
                number = None
        if number is None or not number.is_finite():
            self.error(path, f"{value!r} is not a decimal number")
            return None
        if number < 0 and not signed:
            self.error(path, f"must not be negative, got {value}")
            return None
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > places and number != number.quantize(Decimal(1).scaleb(-places)):
            self.error(path, f"{value} has more than {places} decimals")
            return None
        if abs(number) >= Decimal(10) ** int_digits:
            self.error(path, f"{value} is too large")
            return None
        return number

    def json_number(self, value: Any, path: str, *, low: Decimal | None, high: Decimal | None, low_inclusive: bool = True) -> int | float | None:
        """A tier number kept in the JSON shape of the model defaults (int or float), exactly."""
        number = self.decimal(value, path, places=RATE_PLACES, int_digits=9, signed=True)
        if number is None:
            return None
        if (low is not None and (number < low or (number == low and not low_inclusive))) or (high is not None and number > high):
            bounds = f"{'≥' if low_inclusive else '>'} {low}" if high is None else f"between {low} and {high}"
            self.error(path, f"{value} must be {bounds}")
            return None
        if number == number.to_integral_value():
            return int(number)
        as_float = float(number)
        if Decimal(repr(as_float)) != number:
            self.error(path, f"{value} cannot be stored exactly")
            return None
        return as_float


def _object(value: Any) -> bool:
    return isinstance(value, dict)


def _parse_scheme(raw: Any, check: _Params) -> dict[str, Any]:
    scheme: dict[str, Any] = {}
    if not _object(raw):
        check.error("scheme", "required: an object with at least all_case_avg_cost")
        return scheme
    for key, value in raw.items():
        path = f"scheme.{key}"
        if key in SCHEME_DECIMALS:
            places, int_digits, low, high, low_inclusive = SCHEME_DECIMALS[key]
            number = check.decimal(value, path, places=places, int_digits=int_digits)
            if number is None:
                continue
            if number < low or (number == low and not low_inclusive) or (high is not None and number > high):
                bounds = f"{'≥' if low_inclusive else '>'} {low}" if high is None else f"between {low} and {high}"
                check.error(path, f"{value} must be {bounds}")
                continue
            scheme[key] = number
        elif key == "readmission_days":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 366:
                check.error(path, f"expected a whole number of days 0–366, got {json.dumps(value, default=str)}")
                continue
            scheme[key] = value
        elif key in SCHEME_TIERS:
            tiers = _parse_bands(value, path, *SCHEME_TIERS[key], check=check)
            if tiers is not None:
                scheme[key] = tiers
        elif key == "tcm_rate_tiers":
            tiers = _parse_uplift_tiers(value, path, check)
            if tiers is not None:
                scheme[key] = tiers
        else:
            check.error(path, f"unknown key (expected: {', '.join(SCHEME_KEYS)})")
    if "all_case_avg_cost" not in raw:
        check.error("scheme.all_case_avg_cost", "required (全部病例次均费用 A has no default)")
    return scheme


def _parse_bands(value: Any, path: str, bound: str, share: str, low: Decimal, high: Decimal | None, *, check: _Params) -> list | None:
    """[{bound: number, share: number}, …, {bound: null, share: number}], bounds increasing."""
    if not isinstance(value, list) or not value:
        check.error(path, f"expected a non-empty list of {{{bound}, {share}}}")
        return None
    tiers: list[dict[str, Any]] = []
    ok = True
    previous: float | None = None
    for i, tier in enumerate(value):
        at = f"{path}[{i}]"
        if not _object(tier) or set(tier) != {bound, share}:
            check.error(at, f"expected exactly the keys {bound}, {share}")
            ok = False
            continue
        last = i == len(value) - 1
        upto = tier[bound]
        if upto is None:
            if not last:
                check.error(f"{at}.{bound}", "only the last tier may be open (null)")
                ok = False
                continue
        else:
            upto = check.json_number(upto, f"{at}.{bound}", low=Decimal(0), high=None, low_inclusive=False)
            if upto is None:
                ok = False
                continue
            if last:
                check.error(f"{at}.{bound}", "the last tier must be open (null)")
                ok = False
            if previous is not None and Decimal(repr(upto)) <= Decimal(repr(previous)):
                check.error(f"{at}.{bound}", "bounds must increase")
                ok = False
            previous = upto
        amount = check.json_number(tier[share], f"{at}.{share}", low=low, high=high, low_inclusive=share != "multiple")
        if amount is None:
            ok = False
            continue
        tiers.append({bound: upto, share: amount})
    return tiers if ok else None


def _parse_uplift_tiers(value: Any, path: str, check: _Params) -> list | None:
    if not isinstance(value, list):
        check.error(path, "expected a list of {min_rate, uplift}")
        return None
    tiers: list[dict[str, Any]] = []
    ok = True
    for i, tier in enumerate(value):
        at = f"{path}[{i}]"
        if not _object(tier) or set(tier) != {"min_rate", "uplift"}:
            check.error(at, "expected exactly the keys min_rate, uplift")
            ok = False
            continue
        rate = check.json_number(tier["min_rate"], f"{at}.min_rate", low=Decimal(0), high=Decimal(1))
        uplift = check.json_number(tier["uplift"], f"{at}.uplift", low=Decimal(0), high=Decimal(1))
        if rate is None or uplift is None:
            ok = False
            continue
        tiers.append({"min_rate": rate, "uplift": uplift})
    return tiers if ok else None


def scheme_tiers_validate(key: str, value: Any) -> tuple[list | None, list[str]]:
    """One tier list of the payment scheme (high_outlier_tiers, surplus_tiers, overrun_tiers,
    tcm_rate_tiers) checked by the same rules as params.json, for tiers entered by hand (the admin):
    (the tiers in stored form, or None; the reasons, 'path: reason')."""
    def exact(item: Any) -> Any:  # a JSON form gives floats; the rules read decimals exactly
        if isinstance(item, float):
            return Decimal(repr(item))
        if isinstance(item, list):
            return [exact(i) for i in item]
        if isinstance(item, dict):
            return {k: exact(v) for k, v in item.items()}
        return item

    check = _Params()
    if key in SCHEME_TIERS:
        tiers = _parse_bands(exact(value), key, *SCHEME_TIERS[key], check=check)
    elif key == "tcm_rate_tiers":
        tiers = _parse_uplift_tiers(exact(value), key, check)
    else:
        raise KeyError(key)
    return tiers, [f"{error.column}: {error.reason}" for error in check.errors]
