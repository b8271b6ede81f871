"""Hospital API views: each institution reads its own indicators and the confirmed findings about it."""
from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema

from drg.api.base import InstitutionAPIView, error_responses
from drg.choices import Fund
from monitoring import selectors
from monitoring.api import serializers as s
from monitoring.choices import Rule
from monitoring.models import Finding, IndicatorValue


class IndicatorFilter(filters.FilterSet):
    fund = filters.ChoiceFilter(choices=Fund.choices)
    year = filters.NumberFilter()
    period = filters.CharFilter(help_text="YYYY or YYYY-MM")

    class Meta:
        model = IndicatorValue
        fields = ["fund", "year", "period"]


class IndicatorCollectionView(InstitutionAPIView):
    filterset_class = IndicatorFilter

    def get_queryset(self):
        if self.institution is None:
            return IndicatorValue.objects.none()
        return selectors.indicators_of_institution(institution=self.institution)

    @extend_schema(
        summary="Your monitoring indicators (运行指标) per fund, year and month",
        description="From the pool's binding clearing run; ratios to 4 decimals, empty where undefined (MONITORING.md §1).",
        responses={200: s.IndicatorSerializer(many=True), **error_responses(400, 401, 404, 429)},
    )
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.IndicatorSerializer(page, many=True).data)


class FindingFilter(filters.FilterSet):
    fund = filters.ChoiceFilter(choices=Fund.choices)
    year = filters.NumberFilter()
    rule = filters.ChoiceFilter(choices=Rule.choices)

    class Meta:
        model = Finding
        fields = ["fund", "year", "rule"]


class FindingCollectionView(InstitutionAPIView):
    filterset_class = FindingFilter

    def get_queryset(self):
        if self.institution is None:
            return Finding.objects.none()
        return selectors.confirmed_findings_of_institution(institution=self.institution).select_related("institution").prefetch_related("cases")

    @extend_schema(
        summary="Confirmed screening findings about you (已确认疑点)",
        description="Only findings the bureau has confirmed after review (MONITORING.md §2).",
        responses={200: s.FindingSerializer(many=True), **error_responses(400, 401, 404, 429)},
    )
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.FindingSerializer(page, many=True).data)
