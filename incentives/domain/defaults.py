"""The default rule set of SETTLEMENT.md §7 (Yuhuan 2024). The data migration
`incentives/migrations/0003_default_rules.py` installs a frozen copy of these rows; after that the
rules live in the database and the bureau edits them in the admin."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from incentives.domain.rules import PAYEE_GROUP, PAYEE_INSTITUTION, RuleSpec

YUHUAN_2024_FROM = date(2024, 1, 1)

YUHUAN_2024: tuple[RuleSpec, ...] = (
    RuleSpec(code="tumor_surgery", basis="tumor_surgery", grade_amounts={3: Decimal("1000"), 4: Decimal("2000")}, valid_from=YUHUAN_2024_FROM),
    RuleSpec(code="chronic_enrollment", basis="chronic_enrollment", amount=Decimal("50"), payee=PAYEE_GROUP, valid_from=YUHUAN_2024_FROM),
    RuleSpec(code="tcm_prescription", basis="tcm_prescription", amount=Decimal("5"), public_only=True, valid_from=YUHUAN_2024_FROM),
    RuleSpec(code="tcm_bed_day", basis="tcm_bed_day", amount=Decimal("30"), public_only=True, valid_from=YUHUAN_2024_FROM),
    RuleSpec(code="hospice_bed", basis="hospice_bed", amount=Decimal("30000"), public_only=True, valid_from=YUHUAN_2024_FROM),
    RuleSpec(code="hospice_inpatient", basis="hospice_inpatient", amount=Decimal("2000"), valid_from=YUHUAN_2024_FROM),
    RuleSpec(code="hospice_home", basis="hospice_home", amount=Decimal("1000"), valid_from=YUHUAN_2024_FROM),
    RuleSpec(code="screening_waiver", basis="screening_waiver", rate=Decimal("0.30"), valid_from=YUHUAN_2024_FROM),
)
assert all(rule.payee in (PAYEE_INSTITUTION, PAYEE_GROUP) for rule in YUHUAN_2024)
