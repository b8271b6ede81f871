"""Reads for incentives: the rules in force, a year's inputs as DataFrames, payouts and their lines."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.db.models import Min, Q, QuerySet

from common.models import ReviewStatus
from common.precision import to_fen
from drg.models import Case, Institution, Region
from incentives.choices import PayoutStatus
from incentives.domain import inputs as schema
from incentives.domain.inputs import IncentiveInputs, frame
from incentives.models import (
    ChronicEnrollment,
    HospiceService,
    IncentiveBudget,
    IncentiveRule,
    Payout,
    PayoutLine,
    Screening,
    TcmWorkload,
)

SOURCE_MODELS = {
    "case": Case,
    "chronic_enrollment": ChronicEnrollment,
    "tcm_workload": TcmWorkload,
    "hospice_service": HospiceService,
    "screening": Screening,
}
APPROVED = ReviewStatus.APPROVED


def _year_bounds(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year + 1, 1, 1)


def rules_in_force(*, year: int) -> list[IncentiveRule]:
    """Rules whose validity [valid_from, valid_to) shares at least a day with the year."""
    start, end = _year_bounds(year)
    return list(IncentiveRule.objects.filter(Q(valid_to__isnull=True) | Q(valid_to__gt=start), valid_from__lt=end).order_by("code"))


def incentive_budget_amount(*, region: Region, year: int) -> Decimal | None:
    return IncentiveBudget.objects.filter(region=region, year=year).values_list("amount", flat=True).first()


def incentive_inputs(*, region: Region, year: int) -> IncentiveInputs:
    """The region's records that can count in the year, approved only (cases have no review).

    One query per table, read as tuples (no model instances): cheap for 100k+ records. Enrollments:
    those of the year of the patients whose first approved enrollment in the region falls in the
    year (a GROUP BY in the database; the domain picks the first one and breaks ties).
    """
    start, end = _year_bounds(year)
    institutions = Institution.objects.filter(region=region).values_list("id", "code", "is_public", "group_code")
    cases = (
        Case.objects.filter(region=region, discharge_date__gte=start, discharge_date__lt=end)
        .filter(Q(tcm_treatment=True) | Q(malignant_tumor_surgery=True, surgery_grade__gt=0))
        .values_list("id", "institution_id", "admission_date", "discharge_date", "tcm_treatment", "surgery_grade", "malignant_tumor_surgery")
    )
    enrolled = ChronicEnrollment.objects.filter(institution__region=region, status=APPROVED)
    new_patients = (
        enrolled.filter(enrolled_on__lt=end)
        .order_by()
        .values("patient_id")
        .annotate(first=Min("enrolled_on"))
        .filter(first__gte=start)
        .values("patient_id")
    )
    enrollments = enrolled.filter(enrolled_on__gte=start, enrolled_on__lt=end, patient_id__in=new_patients).values_list(
        "id", "institution_id", "patient_id", "disease", "enrolled_on"
    )
    workloads = TcmWorkload.objects.filter(institution__region=region, status=APPROVED, month__gte=start, month__lt=end).values_list(
        "id", "institution_id", "month", "prescriptions"
    )
    hospice = HospiceService.objects.filter(
        institution__region=region, status=APPROVED, service_date__gte=start, service_date__lt=end
    ).values_list("id", "institution_id", "kind", "patient_id", "service_date", "quantity")
    screenings = Screening.objects.filter(
        institution__region=region, status=APPROVED, high_risk=True, screening_date__gte=start, screening_date__lt=end
    ).values_list("id", "institution_id", "patient_id", "screening_date", "fee", "high_risk")
    return IncentiveInputs(
        institutions=frame(list(institutions), schema.INSTITUTION_COLUMNS),
        cases=frame(list(cases.order_by()), schema.CASE_COLUMNS),
        enrollments=frame(list(enrollments.order_by()), schema.ENROLLMENT_COLUMNS),
        tcm_workloads=frame(list(workloads.order_by()), schema.TCM_WORKLOAD_COLUMNS),
        hospice_services=frame(list(hospice.order_by()), schema.HOSPICE_COLUMNS),
        screenings=frame([(*row[:4], to_fen(row[4]), row[5]) for row in screenings.order_by()], schema.SCREENING_COLUMNS),
    )


def payout_for(*, region: Region, year: int) -> Payout | None:
    return Payout.objects.filter(region=region, year=year).first()


def payout_lines(*, payout: Payout) -> QuerySet[PayoutLine]:
    """The lines of a payout in file order (payee code, rule code), without the source id lists."""
    return payout.lines.select_related("institution", "rule").defer("source_ids").order_by("payee_code", "rule_code")


def payout_lines_for_institution(
    *, institution: Institution, year: int | None = None, include_group: bool = True, include_drafts: bool = False
) -> QuerySet[PayoutLine]:
    """An institution's incentive lines: those paid to it and, with include_group, those paid to its
    health-community group (institution empty, payee_code = its group_code). Approved and paid
    payouts only unless include_drafts. Source id lists are deferred (load them per line with
    `payout_line_sources`)."""
    paid_to = Q(institution=institution)
    if include_group and institution.group_code:
        paid_to |= Q(institution__isnull=True, payee_code=institution.group_code)
    lines = PayoutLine.objects.filter(paid_to, payout__region_id=institution.region_id)
    if year is not None:
        lines = lines.filter(payout__year=year)
    if not include_drafts:
        lines = lines.filter(payout__status__in=[PayoutStatus.APPROVED, PayoutStatus.PAID])
    return lines.select_related("payout", "rule").defer("source_ids").order_by("-payout__year", "payee_code", "rule_code")


def payout_line_sources(*, line: PayoutLine, institution: Institution | None = None) -> QuerySet:
    """The records a line counted (cases, enrollments, workloads, hospice services or screenings);
    with `institution`, only that institution's records (a group line counts several members)."""
    model = SOURCE_MODELS[line.source_model]
    ids = PayoutLine.objects.filter(pk=line.pk).values_list("source_ids", flat=True).get()
    records = model.objects.filter(pk__in=ids)
    if institution is not None:
        records = records.filter(institution=institution)
    return records
