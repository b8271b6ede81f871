"""Hospital API serializers for clearing runs, case valuations, statements (clearing lines) and
special-outpatient itemized claims."""
from __future__ import annotations

import datetime as dt
import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from drg.api.serializers import IdentifierField, StrictSerializer
from drg.choices import CaseCategory, Fund
from settlement.choices import RunKind, RunStatus
from settlement.models import InstitutionLine, ItemizedClaim

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@extend_schema_field({"type": "string", "pattern": r"^\d{4}-(0[1-9]|1[0-2])$", "example": "2025-02"})
class MonthField(serializers.Field):
    """A month as ``YYYY-MM`` in and out (stored as the first day of the month)."""

    default_error_messages = {"invalid_month": "month must be YYYY-MM"}

    def to_internal_value(self, data):
        match = _MONTH.match(data) if isinstance(data, str) else None
        if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1900:
            self.fail("invalid_month")
        return dt.date(int(match.group(1)), int(match.group(2)), 1)

    def to_representation(self, value):
        return f"{value:%Y-%m}" if isinstance(value, dt.date) else value


class RunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    fund = serializers.ChoiceField(choices=Fund.choices)
    year = serializers.IntegerField()
    month = serializers.IntegerField(allow_null=True)
    kind = serializers.ChoiceField(choices=RunKind.choices)
    status = serializers.ChoiceField(choices=RunStatus.choices)
    created_at = serializers.DateTimeField()
    finalized_at = serializers.DateTimeField(allow_null=True)


class ValuationSerializer(serializers.Serializer):
    """Why a case got its points (SETTLEMENT.md §2), from the latest run that valued it."""

    case_no = serializers.CharField(source="case.case_no")
    drg_code = serializers.CharField(source="case.drg_code")
    valuation_group = serializers.CharField(help_text="the group the case was valued as (TCM equivalent or its own)")
    coefficient = serializers.DecimalField(max_digits=8, decimal_places=4)
    ratio = serializers.DecimalField(max_digits=14, decimal_places=4, allow_null=True, help_text="total_cost / avg_cost of the group")
    category = serializers.ChoiceField(choices=CaseCategory.choices)
    base_points = serializers.DecimalField(max_digits=14, decimal_places=4, allow_null=True)
    readmission_halved = serializers.BooleanField()
    points_before_readmission = serializers.DecimalField(max_digits=14, decimal_places=4)
    points = serializers.DecimalField(max_digits=14, decimal_places=4)
    run = RunSerializer()


STANDINGS = (
    ("binding", "the binding run of its period: finalized, not superseded; its amounts are payment orders"),
    ("superseded", "finalized, then replaced by a later finalized run of the same period (see superseded_by); "
                   "what it paid counts and the successor is net of it"),
    ("draft", "not finalized; the numbers may still change"),
)


def standing_of(run) -> str:
    return {RunStatus.FINALIZED: "binding", RunStatus.SUPERSEDED: "superseded"}.get(run.status, "draft")


class StatementSerializer(serializers.ModelSerializer):
    """One institution's line of a clearing run: monthly (due/prepay/withheld) or annual (all)."""

    run = RunSerializer()
    standing = serializers.SerializerMethodField(
        help_text="binding (finalized, not superseded), superseded (replaced by `superseded_by`) or draft"
    )
    supersedes = serializers.SerializerMethodField(help_text="id of the run this run replaced when it was finalized")
    superseded_by = serializers.SerializerMethodField(help_text="id of the run that replaced this one (superseded runs only)")
    settled_before = serializers.DecimalField(
        max_digits=16, decimal_places=2, allow_null=True, read_only=True,
        help_text="what earlier finalized runs of the year already settled: monthly, the prepayments made before "
                  "(prepay = prepaid_to_date − settled_before); annual, the balances of earlier annual runs "
                  "(balance = fund_payment − quality_deduction − prepaid − settled_before)",
    )

    class Meta:
        model = InstitutionLine
        fields = [
            "run", "standing", "supersedes", "superseded_by", "case_count", "raw_points", "penalty_points", "tcm_rate",
            "uplift", "points", "point_value", "gross_amount", "self_pay", "itemized_fund", "fund_payment", "surplus",
            "due", "prepaid_to_date", "prepay", "prepaid", "withheld", "quality_score", "quality_deduction",
            "settled_before", "balance",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=STANDINGS))
    def get_standing(self, line) -> str:
        return standing_of(line.run)

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_supersedes(self, line) -> int | None:
        return line.run.supersedes_id

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_superseded_by(self, line) -> int | None:
        successor = line.run.successor
        return successor.pk if successor is not None else None


class ItemizedClaimInSerializer(StrictSerializer):
    claim_no = IdentifierField(max_length=40)
    fund = serializers.ChoiceField(choices=Fund.choices)
    month = MonthField()
    patient_id = IdentifierField(max_length=64)
    claimed_amount = serializers.DecimalField(max_digits=16, decimal_places=2, min_value=0)


class ItemizedClaimSerializer(serializers.ModelSerializer):
    month = MonthField(read_only=True)

    class Meta:
        model = ItemizedClaim
        fields = [
            "claim_no", "fund", "month", "patient_id", "claimed_amount", "approved_amount", "status",
            "submitted_at", "decided_at", "rejection_reason",
        ]
        read_only_fields = fields
