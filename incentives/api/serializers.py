"""Hospital API serializers for incentive events (SETTLEMENT.md §7 inputs) and payout lines."""
from __future__ import annotations

from rest_framework import serializers

from drg.api.serializers import IdentifierField, StrictSerializer
from incentives.models import ChronicEnrollment, HospiceKind, HospiceService, PayoutLine, Screening, TcmWorkload
from settlement.api.serializers import MonthField

REVIEW_FIELDS = ["status", "submitted_at", "decided_at", "rejection_reason"]


class ChronicEnrollmentInSerializer(StrictSerializer):
    patient_id = IdentifierField(max_length=64)
    disease = serializers.CharField(max_length=64)
    enrolled_on = serializers.DateField()


class ChronicEnrollmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChronicEnrollment
        fields = ["id", "patient_id", "disease", "enrolled_on", *REVIEW_FIELDS]
        read_only_fields = fields


class TcmWorkloadInSerializer(StrictSerializer):
    month = MonthField()
    prescriptions = serializers.IntegerField(min_value=0, max_value=2_000_000_000)


class TcmWorkloadSerializer(serializers.ModelSerializer):
    month = MonthField(read_only=True)

    class Meta:
        model = TcmWorkload
        fields = ["id", "month", "prescriptions", *REVIEW_FIELDS]
        read_only_fields = fields


class HospiceServiceInSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=HospiceKind.choices)
    patient_id = IdentifierField(max_length=64, required=False, allow_blank=True, default="", help_text="required unless kind=bed")
    service_date = serializers.DateField()
    quantity = serializers.IntegerField(min_value=1, max_value=100_000, required=False, default=1, help_text="beds opened (kind=bed); else 1")

    def validate(self, attrs):
        if attrs["kind"] != HospiceKind.BED and not attrs.get("patient_id"):
            raise serializers.ValidationError({"patient_id": [serializers.ErrorDetail("patient_id is required unless kind is bed", code="required")]})
        return attrs


class HospiceServiceSerializer(serializers.ModelSerializer):
    class Meta:
        model = HospiceService
        fields = ["id", "kind", "patient_id", "service_date", "quantity", *REVIEW_FIELDS]
        read_only_fields = fields


class ScreeningInSerializer(StrictSerializer):
    patient_id = IdentifierField(max_length=64)
    screening_date = serializers.DateField()
    fee = serializers.DecimalField(max_digits=16, decimal_places=2, min_value=0)
    high_risk = serializers.BooleanField(required=False, default=False)


class ScreeningSerializer(serializers.ModelSerializer):
    class Meta:
        model = Screening
        fields = ["id", "patient_id", "screening_date", "fee", "high_risk", *REVIEW_FIELDS]
        read_only_fields = fields


class PayoutLineSerializer(serializers.ModelSerializer):
    year = serializers.IntegerField(source="payout.year")
    payout_status = serializers.CharField(source="payout.status")
    paid_to_group = serializers.SerializerMethodField(help_text="true when the line pays the institution's health-community group")

    class Meta:
        model = PayoutLine
        fields = [
            "id", "year", "payout_status", "payee_code", "paid_to_group", "rule_code", "count", "unit_amount", "rate",
            "basis_amount", "gross_amount", "capped_amount", "amount",
        ]
        read_only_fields = fields

    def get_paid_to_group(self, line) -> bool:
        return line.institution_id is None
