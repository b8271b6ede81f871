"""Input and output serializers of the hospital API (cases, special reviews, correction requests), one
pair per endpoint where input and output differ. Clearing runs and case valuations: settlement/api/serializers.py."""
from __future__ import annotations

from collections.abc import Mapping

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from common.text import identifier_problem
from drg.choices import CaseCategory, DischargeStatus, Fund
from drg.models import Case, CaseCorrection, CorrectionRequest, SpecialReview

MAX_BATCH = 5000


# --- common -----------------------------------------------------------------------------------------


class IdentifierField(serializers.CharField):
    """An identifier as hospitals' systems issue it (case_no, claim_no, patient_id): letters, digits
    and ``-_./``, starting with a letter or digit (common.text.identifier_problem). Whitespace-only
    text, control characters and a leading ``=``, ``+``, ``-`` or ``@`` are refused (code
    ``invalid_identifier``), so none of them reaches a statement or a spreadsheet."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        problem = identifier_problem(value)
        if problem:
            raise serializers.ValidationError(f"{self.field_name or 'identifier'} {problem}", code="invalid_identifier")
        return value


class StrictSerializer(serializers.Serializer):
    """Unknown fields are an error (code ``unknown_field``), never silently ignored."""

    def to_internal_value(self, data):
        unknown: dict = {}
        if isinstance(data, Mapping):
            writable = {name for name, f in self.fields.items() if not f.read_only}
            unknown = {
                str(name)[:64]: [ErrorDetail(f"unknown field {str(name)[:64]!r}", code="unknown_field")]
                for name in data
                if name not in writable
            }
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                exc.detail.update(unknown)
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class ErrorItemSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="stable machine-readable code, e.g. above_total_cost, unknown_field")
    message = serializers.CharField()
    row = serializers.IntegerField(required=False, help_text="JSON array index, or CSV line number (header = 1)")
    field = serializers.CharField(required=False)
    case_no = serializers.CharField(required=False)


class ErrorLinksSerializer(serializers.Serializer):
    correction_requests = serializers.CharField(required=False, help_text="where to POST a correction request (a change or a late case)")
    cases = serializers.CharField(required=False, help_text="where to submit an ordinary case (a late case of an open period)")


class ErrorResponseSerializer(serializers.Serializer):
    errors = ErrorItemSerializer(many=True)
    truncated = serializers.BooleanField(required=False, help_text="true when more errors were found than listed")
    links = ErrorLinksSerializer(required=False)
    missing_columns = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="CSV upload: the required columns its header lacks"
    )


class MeSerializer(serializers.Serializer):
    institution_code = serializers.CharField(source="institution.code")
    institution_name = serializers.CharField(source="institution.name")
    region_code = serializers.CharField(source="institution.region.code")
    key_prefix = serializers.CharField(source="prefix")
    key_name = serializers.CharField(source="name")


# --- cases ------------------------------------------------------------------------------------------

MONEY_HELP = "decimal string (or JSON number) ≥ 0 with at most 2 decimals"


class CaseInSerializer(serializers.Serializer):
    """One case of a bulk submission (EXCHANGE.md cases.csv less institution_code). Documentation of
    the JSON shape: the rows are validated by the fast row validator of drg.domain.case_rows."""

    case_no = serializers.CharField(max_length=40)
    fund = serializers.ChoiceField(choices=Fund.choices)
    patient_id = serializers.CharField(max_length=64)
    admission_date = serializers.DateField()
    discharge_date = serializers.DateField()
    drg_code = serializers.CharField(max_length=16, help_text="a code of the region's catalog for the discharge year")
    total_cost = serializers.DecimalField(max_digits=16, decimal_places=2, min_value=0, help_text=MONEY_HELP)
    self_pay = serializers.DecimalField(max_digits=16, decimal_places=2, min_value=0, help_text=MONEY_HELP + "; ≤ total_cost")
    discharge_status = serializers.ChoiceField(choices=DischargeStatus.choices, required=False, default="normal")
    tcm_treatment = serializers.BooleanField(required=False, default=False, help_text="true/false or 1/0")
    tcm_cost = serializers.DecimalField(max_digits=16, decimal_places=2, min_value=0, required=False, help_text=MONEY_HELP)
    surgery_grade = serializers.IntegerField(min_value=0, max_value=4, required=False, default=0)
    malignant_tumor_surgery = serializers.BooleanField(required=False, default=False, help_text="true/false or 1/0")


class ProposedCaseSerializer(serializers.Serializer):
    """The case fields a correction request proposes (any subset; case_no cannot change)."""

    fund = serializers.ChoiceField(choices=Fund.choices, required=False)
    patient_id = serializers.CharField(max_length=64, required=False)
    admission_date = serializers.DateField(required=False)
    discharge_date = serializers.DateField(required=False)
    drg_code = serializers.CharField(max_length=16, required=False)
    total_cost = serializers.DecimalField(max_digits=16, decimal_places=2, min_value=0, required=False)
    self_pay = serializers.DecimalField(max_digits=16, decimal_places=2, min_value=0, required=False)
    discharge_status = serializers.ChoiceField(choices=DischargeStatus.choices, required=False)
    tcm_treatment = serializers.BooleanField(required=False)
    tcm_cost = serializers.DecimalField(max_digits=16, decimal_places=2, min_value=0, required=False)
    surgery_grade = serializers.IntegerField(min_value=0, max_value=4, required=False)
    malignant_tumor_surgery = serializers.BooleanField(required=False)


class SubmissionReportSerializer(serializers.Serializer):
    received = serializers.IntegerField(help_text="valid cases in the request")
    created = serializers.IntegerField()
    updated = serializers.IntegerField(help_text="changed cases of open periods, each recorded as a correction")
    unchanged = serializers.IntegerField(help_text="identical to what is stored: nothing done")


class CaseSerializer(serializers.ModelSerializer):
    latest_category = serializers.ChoiceField(
        choices=CaseCategory.choices, read_only=True, allow_null=True, help_text="category in the latest clearing run containing the case"
    )
    latest_points = serializers.DecimalField(max_digits=14, decimal_places=4, read_only=True, allow_null=True)

    class Meta:
        model = Case
        fields = [
            "case_no", "fund", "patient_id", "admission_date", "discharge_date", "drg_code", "total_cost", "self_pay",
            "discharge_status", "tcm_treatment", "tcm_cost", "surgery_grade", "malignant_tumor_surgery",
            "created_at", "updated_at", "latest_category", "latest_points",
        ]
        read_only_fields = fields


class CaseCorrectionSerializer(serializers.ModelSerializer):
    class Meta:
        model = CaseCorrection
        fields = ["id", "source", "changed_at", "before", "after", "reason"]
        read_only_fields = fields


# --- special reviews --------------------------------------------------------------------------------


class SpecialReviewInSerializer(StrictSerializer):
    case_no = IdentifierField(max_length=40)
    reason = serializers.CharField(max_length=5000)
    requested_cost = serializers.DecimalField(max_digits=16, decimal_places=2, min_value=0)
    documents = serializers.ListField(
        child=serializers.CharField(max_length=500), max_length=50, required=False, default=list,
        help_text="references to supporting documents (document numbers, archive URLs)",
    )


class SpecialReviewSerializer(serializers.ModelSerializer):
    case_no = serializers.CharField(source="case.case_no", read_only=True)
    documents = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = SpecialReview
        fields = [
            "case_no", "status", "requested_cost", "approved_cost", "reason", "documents",
            "submitted_at", "decided_at", "rejection_reason",
        ]
        read_only_fields = fields



# --- correction requests ----------------------------------------------------------------------------


class LateCaseRowSerializer(serializers.Serializer):
    """The whole row of a late case: the case submission's fields less case_no (given at the top level)."""

    fund = serializers.ChoiceField(choices=Fund.choices)
    patient_id = serializers.CharField(max_length=64)
    admission_date = serializers.DateField()
    discharge_date = serializers.DateField(help_text="in a finalized period of the fund (else submit the case normally)")
    drg_code = serializers.CharField(max_length=16, help_text="a code of the region's catalog for the discharge year")
    total_cost = serializers.DecimalField(max_digits=16, decimal_places=2, min_value=0, help_text=MONEY_HELP)
    self_pay = serializers.DecimalField(max_digits=16, decimal_places=2, min_value=0, help_text=MONEY_HELP + "; ≤ total_cost")
    discharge_status = serializers.ChoiceField(choices=DischargeStatus.choices)
    tcm_treatment = serializers.BooleanField(required=False, default=False, help_text="true/false or 1/0")
    tcm_cost = serializers.DecimalField(max_digits=16, decimal_places=2, min_value=0, required=False, help_text=MONEY_HELP)
    surgery_grade = serializers.IntegerField(min_value=0, max_value=4, required=False, default=0)
    malignant_tumor_surgery = serializers.BooleanField(required=False, default=False, help_text="true/false or 1/0")


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="CorrectionRequestProposed", serializers=[ProposedCaseSerializer, LateCaseRowSerializer],
        resource_type_field_name=None,
    )
)
class ProposedField(serializers.JSONField):
    """The proposed case fields, as JSON; validated by the service (against the stored case for a
    change, as a whole case row for a late case)."""

    def to_internal_value(self, data):
        if not isinstance(data, Mapping) or not data:
            raise serializers.ValidationError("give the case fields as a non-empty object", code="invalid_type")
        return dict(data)


class CorrectionRequestInSerializer(StrictSerializer):
    kind = serializers.ChoiceField(
        choices=CorrectionRequest.Kind.choices, required=False, default=CorrectionRequest.Kind.CHANGE,
        help_text="change (default): correct a stored case; late_case: add a new case discharged in a finalized period",
    )
    case_no = IdentifierField(max_length=40, help_text="the stored case to change, or the late case's new case_no")
    reason = serializers.CharField(max_length=5000)
    proposed = ProposedField(
        help_text="change: the case fields to change, with their new values (ProposedCase); "
        "late_case: the whole case row less case_no, as in a case submission (LateCaseRow)"
    )


class CorrectionRequestSerializer(serializers.ModelSerializer):
    case_no = serializers.CharField(source="target_case_no", read_only=True)
    proposed = ProposedCaseSerializer(read_only=True, help_text="change: the fields to change; late_case: the whole case row")

    class Meta:
        model = CorrectionRequest
        fields = ["id", "kind", "case_no", "status", "proposed", "reason", "submitted_at", "decided_at", "rejection_reason"]
        read_only_fields = fields
