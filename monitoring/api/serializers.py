"""Hospital API serializers: the caller's indicators and the confirmed findings about it."""
from __future__ import annotations

from rest_framework import serializers

from monitoring.models import Finding, IndicatorValue


class IndicatorSerializer(serializers.ModelSerializer):
    class Meta:
        model = IndicatorValue
        fields = [
            "fund", "year", "period", "cases", "points", "cmi", "cost_per_point", "time_index", "cost_index", "high_share",
            "low_share", "readmission_share", "self_pay_share", "special_review_share", "transfer_share", "run", "computed_at",
        ]
        read_only_fields = fields


class FindingSerializer(serializers.ModelSerializer):
    rule_name = serializers.CharField(source="get_rule_display", read_only=True)
    cases = serializers.SerializerMethodField(help_text="your evidence cases (case_no); another institution's stays are only counted")
    other_institution_cases = serializers.SerializerMethodField()

    class Meta:
        model = Finding
        fields = [
            "id", "fund", "year", "period", "rule", "rule_name", "value", "reference", "basis", "case_count", "cases",
            "other_institution_cases", "review_reason", "reviewed_at",
        ]
        read_only_fields = fields

    def _split(self, finding) -> tuple[list[str], int]:
        own = finding.institution.code
        rows = [(c.case_institution_code, c.case_no) for c in finding.cases.all()]
        return sorted(no for code, no in rows if code == own), sum(1 for code, _ in rows if code != own)

    def get_cases(self, finding) -> list[str]:
        return self._split(finding)[0]

    def get_other_institution_cases(self, finding) -> int:
        return self._split(finding)[1]
