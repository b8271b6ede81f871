"""Benefit parameters of BENEFITS.md (⚙) with the spec's defaults, and the `benefits` key of
params.json (parsed and validated exactly: every ratio in [0, 1], assistance_ratio +
subsistence_uplift ≤ 1)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Mapping

FUNDS = ("employee", "resident")
LEVELS = (1, 2, 3)
CATEGORIES = ("ordinary", "poor", "subsistence", "destitute", "birth_defect")
EASY_CATEGORIES = frozenset({"poor", "birth_defect"})
DISEASE_CLASSES = ("I", "II")
RATIO_PLACES = 6  # ratios are stored as RATE fields (6 decimals)
MONEY_PLACES = 2
MONEY_INT_DIGITS = 14

DEFAULT_RATIOS = {
    "resident": {1: Decimal("0.90"), 2: Decimal("0.80"), 3: Decimal("0.60")},
    "employee": {1: Decimal("0.92"), 2: Decimal("0.90"), 3: Decimal("0.88")},
}
DEFAULT_SHARED_CAP = {"resident": Decimal("200000"), "employee": Decimal("470000")}
DEFAULT_CLASS_CAPS = {"I": Decimal("100000"), "II": Decimal("5000")}


@dataclass(frozen=True)
class BenefitTerms:
    """Everything the engine needs for one fund of one region and year."""

    fund: str
    ratio_by_level: Mapping[int, Decimal]
    deductible: Decimal = Decimal("0")
    shared_annual_cap: Decimal = Decimal("200000")
    critical_deductible: Decimal = Decimal("7500")
    critical_ratio: Decimal = Decimal("0.50")
    class_caps: Mapping[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_CLASS_CAPS))
    easy_deductible_factor: Decimal = Decimal("0.5")
    easy_critical_ratio: Decimal = Decimal("0.90")
    assistance_ratio: Decimal = Decimal("0.70")
    subsistence_uplift: Decimal = Decimal("0.05")

    def ratio(self, level: int) -> Decimal:
        return self.ratio_by_level[int(level)]

    def threshold(self, category: str) -> Fraction:
        """Critical-illness threshold in yuan (exact), halved (⚙) for the easy categories."""
        base = Fraction(self.critical_deductible)
        return base * Fraction(self.easy_deductible_factor) if category in EASY_CATEGORIES else base

    def critical_ratio_for(self, category: str) -> Decimal:
        return self.easy_critical_ratio if category in EASY_CATEGORIES else self.critical_ratio

    def assistance_ratio_for(self, category: str) -> Decimal | None:
        """None = the whole remainder (destitute); 0 = no assistance."""
        if category == "destitute":
            return None
        if category == "subsistence":
            return self.assistance_ratio + self.subsistence_uplift
        if category == "poor":
            return self.assistance_ratio
        return Decimal("0")

    def disease_cap(self, disease_class: str, annual_cap: Decimal | None) -> Decimal:
        return annual_cap if annual_cap is not None else self.class_caps[disease_class]


def default_terms(fund: str) -> BenefitTerms:
    return BenefitTerms(fund=fund, ratio_by_level=dict(DEFAULT_RATIOS[fund]), shared_annual_cap=DEFAULT_SHARED_CAP[fund])


def problems(terms: BenefitTerms) -> list[tuple[str, str]]:
    """(field, reason) of every out-of-range parameter."""
    out: list[tuple[str, str]] = []

    def ratio(name: str, value: Decimal) -> None:
        if not (Decimal(0) <= value <= Decimal(1)):
            out.append((name, f"must lie in [0, 1], got {value}"))
        elif value.as_tuple().exponent < -RATIO_PLACES:  # type: ignore[operator]
            out.append((name, f"at most {RATIO_PLACES} decimals"))

    for level in LEVELS:
        if level not in terms.ratio_by_level:
            out.append((f"ratio_by_level.{level}", "missing"))
        else:
            ratio(f"ratio_by_level.{level}", terms.ratio_by_level[level])
    for name in ("critical_ratio", "easy_deductible_factor", "easy_critical_ratio", "assistance_ratio", "subsistence_uplift"):
        ratio(name, getattr(terms, name))
    if terms.assistance_ratio + terms.subsistence_uplift > 1:
        out.append(("subsistence_uplift", "assistance_ratio + subsistence_uplift must not exceed 1"))
    for name in ("deductible", "shared_annual_cap", "critical_deductible"):
        value = getattr(terms, name)
        if value < 0 or value.as_tuple().exponent < -MONEY_PLACES:  # type: ignore[operator]
            out.append((name, "must be an amount ≥ 0 with at most 2 decimals"))
    for cls in DISEASE_CLASSES:
        value = terms.class_caps.get(cls)
        if value is None:
            out.append((f"class_caps.{cls}", "missing"))
        elif value < 0 or value.as_tuple().exponent < -MONEY_PLACES:  # type: ignore[operator]
            out.append((f"class_caps.{cls}", "must be an amount ≥ 0 with at most 2 decimals"))
    return out


# --- params.json `benefits` ---------------------------------------------------------------------

FUND_KEYS = ("ratio_by_level", "deductible", "shared_annual_cap", "critical_deductible", "critical_ratio")
SHARED_KEYS = ("class_caps", "easy_deductible_factor", "easy_critical_ratio", "assistance_ratio", "subsistence_uplift")
MONEY_KEYS = frozenset({"deductible", "shared_annual_cap", "critical_deductible"})


def _decimal(value: Any) -> Decimal:
    """A JSON number (already parsed as Decimal by the caller) or a decimal string."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal, float)):
        raise ValueError("must be a decimal number or string")
    if isinstance(value, float):  # only when the caller parsed floats: use the text it spells
        value = repr(value)
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a decimal: {str(value)[:40]!r}")
    if not result.is_finite():
        raise ValueError("must be finite")
    return result


def parse_benefits(raw: Any, *, path: str = "benefits") -> tuple[dict[str, BenefitTerms] | None, list[tuple[str, str]]]:
    """The `benefits` object of params.json → terms per fund (defaults for what is missing).
    Returns (terms, [(path, reason), …]); terms is None when anything is wrong."""
    errors: list[tuple[str, str]] = []
    if not isinstance(raw, Mapping):
        return None, [(path, "must be an object")]
    for key in raw:
        if key not in FUNDS and key not in SHARED_KEYS:
            errors.append((f"{path}.{str(key)[:40]}", "unknown key"))
    shared: dict[str, Any] = {}
    for key in SHARED_KEYS:
        if key not in raw:
            continue
        value = raw[key]
        if key == "class_caps":
            if not isinstance(value, Mapping):
                errors.append((f"{path}.class_caps", "must be an object {\"I\": …, \"II\": …}"))
                continue
            caps = dict(DEFAULT_CLASS_CAPS)
            for cls, cap in value.items():
                if cls not in DISEASE_CLASSES:
                    errors.append((f"{path}.class_caps.{str(cls)[:10]}", "unknown class (I or II)"))
                    continue
                try:
                    caps[cls] = _decimal(cap)
                except ValueError as exc:
                    errors.append((f"{path}.class_caps.{cls}", str(exc)))
            shared["class_caps"] = caps
        else:
            try:
                shared[key] = _decimal(value)
            except ValueError as exc:
                errors.append((f"{path}.{key}", str(exc)))
    result: dict[str, BenefitTerms] = {}
    for fund in FUNDS:
        terms = replace(default_terms(fund), **shared)
        section = raw.get(fund, {})
        if not isinstance(section, Mapping):
            errors.append((f"{path}.{fund}", "must be an object"))
            continue
        changes: dict[str, Any] = {}
        for key, value in section.items():
            if key not in FUND_KEYS:
                errors.append((f"{path}.{fund}.{str(key)[:40]}", "unknown key"))
            elif key == "ratio_by_level":
                if not isinstance(value, Mapping):
                    errors.append((f"{path}.{fund}.ratio_by_level", "must be an object {\"1\": …, \"2\": …, \"3\": …}"))
                    continue
                ratios = dict(terms.ratio_by_level)
                for level, ratio in value.items():
                    if str(level) not in ("1", "2", "3"):
                        errors.append((f"{path}.{fund}.ratio_by_level.{str(level)[:10]}", "unknown level (1, 2 or 3)"))
                        continue
                    try:
                        ratios[int(level)] = _decimal(ratio)
                    except ValueError as exc:
                        errors.append((f"{path}.{fund}.ratio_by_level.{level}", str(exc)))
                changes["ratio_by_level"] = ratios
            else:
                try:
                    changes[key] = _decimal(value)
                except ValueError as exc:
                    errors.append((f"{path}.{fund}.{key}", str(exc)))
        terms = replace(terms, **changes)
        for name, reason in problems(terms):
            where = f"{path}.{name}" if name in SHARED_KEYS or name.startswith("class_caps") else f"{path}.{fund}.{name}"
            if (where, reason) not in errors:
                errors.append((where, reason))
        result[fund] = terms
    return (None, errors) if errors else (result, [])


def parse_benefits_text(text: str) -> tuple[dict[str, BenefitTerms] | None, list[tuple[str, str]]]:
    """Convenience for tests and the admin: a JSON text of the `benefits` object."""
    try:
        raw = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    except json.JSONDecodeError as exc:
        return None, [("benefits", f"malformed JSON: {exc.msg}")]
    return parse_benefits(raw)
