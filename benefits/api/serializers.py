"""Serializers of the special-outpatient counter API (input strictly validated; output with the
split and its explanation)."""
from __future__ import annotations

import re

from django.core.validators import RegexValidator
from rest_framework import serializers

from benefits.models import SettlementCorrection, SpecialOutpatientClaim
from drg.api.serializers import StrictSerializer
from drg.choices import Fund

MONEY_HELP = "decimal string (or JSON number) ≥ 0 with at most 2 decimals"
# identifiers: no control characters (C0, DEL, C1), no surrounding blanks
_IDENTIFIER = RegexValidator(
    re.compile(r"^[^\x00-\x20\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\x9f])?$"),
    message="must be printable text without control characters or surrounding blanks",
    code="invalid_characters",
)


def identifier(max_length: int, help_text: str) -> serializers.CharField:
    return serializers.CharField(max_length=max_length, trim_whitespace=False, validators=[_IDENTIFIER], help_text=help_text)


class ClaimInSerializer(StrictSerializer):
    claim_no = identifier(40, "your claim number (unique per institution)")
    fund = serializers.ChoiceField(choices=Fund.choices)
    patient_id = identifier(64, "the patient's insurance number")
    disease_code = identifier(32, "a code of the region's special-disease catalog for the service year")
    service_date = serializers.DateField(format="%Y-%m-%d", input_formats=["%Y-%m-%d"])
    total_cost = serializers.DecimalField(max_digits=16, decimal_places=2, min_value=0, help_text=MONEY_HELP)
    eligible_cost = serializers.DecimalField(
        max_digits=16, decimal_places=2, min_value=0, help_text=MONEY_HELP + "; 政策范围内费用, ≤ total_cost"
    )

    def validate_service_date(self, value):
        if not 2000 <= value.year <= 2100:
            raise serializers.ValidationError("service_date must lie in 2000–2100", code="out_of_range")
        return value


class ExplanationSerializer(serializers.Serializer):
    ratio = serializers.CharField(required=False, help_text="reimbursement ratio of the institution's level")
    deductible = serializers.CharField(required=False, help_text="deductible used by this claim")
    base = serializers.CharField(required=False, help_text="r2((eligible − deductible) × ratio) before the caps")
    cap_left_before = serializers.CharField(required=False, help_text="shared annual cap left before this claim (inpatient shares counted)")
    disease_cap_left_before = serializers.CharField(required=False)
    burden_to_date = serializers.CharField(required=False, help_text="year-to-date Σ (eligible − basic), this claim included")
    critical_threshold = serializers.CharField(required=False)
    critical_ratio = serializers.CharField(required=False)
    assistance_ratio = serializers.CharField(required=False, help_text="a ratio, or 'full' (destitute)")


class ClaimSerializer(serializers.ModelSerializer):
    institution_code = serializers.CharField(source="institution.code")
    patient = serializers.DecimalField(source="patient_pay", max_digits=16, decimal_places=2, allow_null=True, help_text="个人负担")
    explanation = ExplanationSerializer()

    class Meta:
        model = SpecialOutpatientClaim
        fields = [
            "claim_no", "institution_code", "fund", "patient_id", "disease_code", "service_date", "total_cost", "eligible_cost",
            "basic", "critical", "assistance", "patient", "explanation", "settled_at",
        ]
        read_only_fields = fields


class SplitSnapshotSerializer(serializers.Serializer):
    basic = serializers.CharField(allow_null=True)
    critical = serializers.CharField(allow_null=True)
    assistance = serializers.CharField(allow_null=True)
    patient = serializers.CharField(allow_null=True)
    explanation = ExplanationSerializer(required=False)


class CorrectionSerializer(serializers.ModelSerializer):
    claim_no = serializers.CharField(source="claim.claim_no")
    before = SplitSnapshotSerializer()
    after = SplitSnapshotSerializer()

    class Meta:
        model = SettlementCorrection
        fields = ["id", "claim_no", "before", "after", "cause", "source", "changed_at"]
        read_only_fields = fields


class ClaimAnswerSerializer(serializers.Serializer):
    claim = ClaimSerializer()
    created = serializers.BooleanField(help_text="false when an identical claim was already stored (nothing done)")
    corrections = CorrectionSerializer(many=True, help_text="your earlier-settled claims this claim re-settled")
    resettled_elsewhere = serializers.IntegerField(help_text="claims of other institutions re-settled (not shown)")
