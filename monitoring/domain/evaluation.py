"""MONITORING.md §3: the DRG payment evaluation score (DRG付费评价) from confirmed findings."""
from __future__ import annotations

from decimal import Decimal
from typing import Iterable

from monitoring.domain.parameters import ScreeningParameters


def evaluation_deductions(*, rules: Iterable[str], params: ScreeningParameters) -> dict[str, Decimal]:
    """Deduction per rule of the confirmed findings: a rule counts once per institution and year."""
    return {rule: params.deduction(rule) for rule in sorted(set(rules))}


def evaluation_score(*, rules: Iterable[str], params: ScreeningParameters) -> Decimal:
    """score = max(0, 100 − Σ deductions of the institution's confirmed findings of the year)."""
    total = sum(evaluation_deductions(rules=rules, params=params).values(), Decimal("0"))
    return max(Decimal("0"), Decimal("100") - total)
