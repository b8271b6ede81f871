"""Screening and evaluation parameters (MONITORING.md §2 ⚙ and §3), with the spec's defaults.

Stored per region as data (monitoring.models.ScreeningParameters.values, a JSON object of these
field names); ``from_mapping`` reads that object strictly, ``as_mapping`` writes it.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from decimal import Decimal, InvalidOperation
from fractions import Fraction

RULES = ("cost_shifting", "low_standard_admission", "patient_selection", "split_stay", "upcoding")


@dataclass(frozen=True)
class ScreeningParameters:
    split_stay_enabled: bool = True
    split_stay_days: int = 15
    split_stay_factor: Decimal = Decimal("2")
    split_stay_min_pairs: int = 3

    low_standard_admission_enabled: bool = True
    low_standard_max_bed_days: int = 2
    low_standard_max_ratio: Decimal = Decimal("0.4")
    low_standard_factor: Decimal = Decimal("2")
    low_standard_min_cases: int = 5

    upcoding_enabled: bool = True
    upcoding_factor: Decimal = Decimal("1.5")
    upcoding_min_cases: int = 20
    upcoding_cmi_factor: Decimal = Decimal("1.10")

    cost_shifting_enabled: bool = True
    cost_shifting_margin: Decimal = Decimal("0.05")
    cost_shifting_previous_margin: Decimal = Decimal("0.05")

    patient_selection_enabled: bool = True
    patient_selection_transfer_factor: Decimal = Decimal("2")
    patient_selection_min_transfers: int = 5
    patient_selection_high_factor: Decimal = Decimal("0.5")
    patient_selection_min_previous_high: int = 20

    deduction_split_stay: Decimal = Decimal("1")
    deduction_low_standard_admission: Decimal = Decimal("0.5")
    deduction_upcoding: Decimal = Decimal("5")
    deduction_cost_shifting: Decimal = Decimal("3")
    deduction_patient_selection: Decimal = Decimal("3")

    def enabled(self, rule: str) -> bool:
        return bool(getattr(self, f"{rule}_enabled"))

    def deduction(self, rule: str) -> Decimal:
        return getattr(self, f"deduction_{rule}")

    @staticmethod
    def f(value: Decimal) -> Fraction:
        return Fraction(value)

    def as_mapping(self) -> dict:
        out = {}
        for field in fields(self):
            value = getattr(self, field.name)
            out[field.name] = str(value) if isinstance(value, Decimal) else value
        return out

    @classmethod
    def from_mapping(cls, values: dict | None) -> "ScreeningParameters":
        """Defaults overridden by `values`; unknown names, wrong types and negative numbers are
        refused with ValueError naming the field."""
        params = cls()
        if not values:
            return params
        if not isinstance(values, dict):
            raise ValueError("parameters must be an object of name: value")
        known = {f.name: f for f in fields(cls)}
        changes = {}
        for name, raw in values.items():
            if name not in known:
                raise ValueError(f"unknown parameter {name!r}")
            default = getattr(params, name)
            if isinstance(default, bool):
                if not isinstance(raw, bool):
                    raise ValueError(f"{name}: expected true or false")
                changes[name] = raw
            elif isinstance(default, int):
                if isinstance(raw, bool) or not isinstance(raw, (int, str)) or not str(raw).strip().isdigit():
                    raise ValueError(f"{name}: expected a whole number ≥ 0")
                changes[name] = int(raw)
                if changes[name] > 100_000:
                    raise ValueError(f"{name}: too large")
            else:
                try:
                    value = Decimal(str(raw))
                except (InvalidOperation, ValueError):
                    raise ValueError(f"{name}: expected a decimal number") from None
                if not value.is_finite() or value < 0 or value > 1000 or value.as_tuple().exponent < -6:
                    raise ValueError(f"{name}: expected a decimal number between 0 and 1000 with at most 6 decimals")
                changes[name] = value
        return replace(params, **changes)
