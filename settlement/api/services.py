"""Hospital submissions of settlement records (kept here so settlement/services.py stays the
clearing engine's)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from drg.models import Institution
from drg.services import reviewable_submit
from settlement.models import ItemizedClaim


def itemized_claim_submit(
    *, institution: Institution, claim_no: str, fund: str, month: dt.date, patient_id: str, claimed_amount: Decimal
) -> tuple[ItemizedClaim, str]:
    """Submit a special-outpatient itemized claim (门诊特殊病 单议) for review; see reviewable_submit."""
    return reviewable_submit(
        model=ItemizedClaim,
        lookup={"institution": institution, "claim_no": claim_no},
        values={"region_id": institution.region_id, "fund": fund, "month": month, "patient_id": patient_id, "claimed_amount": claimed_amount},
    )
