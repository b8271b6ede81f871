"""Hospital submissions of incentive events (kept out of incentives/services.py, the payout engine).
Each event is identified as in its model's unique constraint; see drg.services.reviewable_submit."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from drg.models import Institution
from drg.services import reviewable_submit
from incentives.models import ChronicEnrollment, HospiceService, Screening, TcmWorkload


def chronic_enrollment_submit(*, institution: Institution, patient_id: str, disease: str, enrolled_on: dt.date) -> tuple[Any, str]:
    return reviewable_submit(
        model=ChronicEnrollment,
        lookup={"institution": institution, "patient_id": patient_id, "disease": disease},
        values={"enrolled_on": enrolled_on},
    )


def tcm_workload_submit(*, institution: Institution, month: dt.date, prescriptions: int) -> tuple[Any, str]:
    return reviewable_submit(model=TcmWorkload, lookup={"institution": institution, "month": month}, values={"prescriptions": prescriptions})


def hospice_service_submit(
    *, institution: Institution, kind: str, patient_id: str, service_date: dt.date, quantity: int
) -> tuple[Any, str]:
    return reviewable_submit(
        model=HospiceService,
        lookup={"institution": institution, "kind": kind, "patient_id": patient_id, "service_date": service_date},
        values={"quantity": quantity},
    )


def screening_submit(
    *, institution: Institution, patient_id: str, screening_date: dt.date, fee: Decimal, high_risk: bool
) -> tuple[Any, str]:
    return reviewable_submit(
        model=Screening,
        lookup={"institution": institution, "patient_id": patient_id, "screening_date": screening_date},
        values={"fee": fee, "high_risk": high_risk},
    )
