"""The special-outpatient counter (一站式结算): hospitals post a claim and get its split at once;
they read their claims and the corrections a late claim or stay caused. Scoped to the caller's
institution like every hospital API view."""
from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from django.utils.translation import gettext as _
from rest_framework.response import Response

from benefits import selectors
from benefits.api import serializers as s
from benefits.models import SpecialOutpatientClaim
from benefits.services import ClaimConflict, ClaimRefused, special_outpatient_claim_submit
from drg.api.base import IDEMPOTENCY_PARAMETER, InstitutionAPIView, error_responses, query_month
from drg.api.errors import ApiError, ApiErrorItem, flatten_detail
from drg.choices import Fund


class ClaimFilter(filters.FilterSet):
    month = filters.CharFilter(method="filter_month", help_text="service month YYYY-MM")
    patient_id = filters.CharFilter(field_name="patient_id", max_length=64)
    disease_code = filters.CharFilter(field_name="disease_code", max_length=32)
    fund = filters.ChoiceFilter(choices=Fund.choices)

    class Meta:
        model = SpecialOutpatientClaim
        fields = ["month", "patient_id", "disease_code", "fund"]

    def filter_month(self, queryset, name, value):
        year, month = query_month(value)
        return queryset.filter(service_date__year=year, service_date__month=month)


CLAIM_EXAMPLE = {
    "claim_no": "MT2025000123", "fund": "resident", "patient_id": "P001", "disease_code": "M00100",
    "service_date": "2025-03-15", "total_cost": "1200.00", "eligible_cost": "1000.00",
}


class ClaimCollectionView(InstitutionAPIView):
    filterset_class = ClaimFilter

    def get_queryset(self):
        return SpecialOutpatientClaim.objects.filter(institution=self.institution).select_related("institution").order_by("service_date", "claim_no")

    @extend_schema(summary="List your special-outpatient claims with their split", responses={200: s.ClaimSerializer(many=True), **error_responses(400, 401, 429)})
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.ClaimSerializer(page, many=True).data)

    @extend_schema(
        summary="Settle a special-outpatient claim at the counter (一站式结算)",
        description=(
            "Settles the claim in three layers (BENEFITS.md) and answers its split: basic (基本医保), critical (大病保险), "
            "assistance (医疗救助) and patient (个人负担), with the explanation. A claim that belongs before claims already "
            "settled re-settles the patient's later claims; your claims among them are listed in `corrections`. A claim "
            "with an unknown disease, a fund differing from the listed patient's, or eligible_cost above total_cost is "
            "refused (400, the field named) and not stored. Resending an identical claim answers 200 with the stored one; "
            "the same claim_no with other values answers 409."
        ),
        request=s.ClaimInSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        examples=[OpenApiExample("a claim", value=CLAIM_EXAMPLE, request_only=True)],
        responses={201: s.ClaimAnswerSerializer, 200: s.ClaimAnswerSerializer, **error_responses(400, 401, 409, 413, 422, 429)},
    )
    def post(self, request):
        return self.idempotent(request, lambda: self._submit(request))

    def _submit(self, request) -> Response:
        if not isinstance(request.data, dict):
            raise ApiError([ApiErrorItem(code="invalid_type", message="The body must be a JSON object (one claim).")])
        incoming = s.ClaimInSerializer(data=request.data)
        if not incoming.is_valid():
            raise ApiError(flatten_detail(incoming.errors))
        try:
            outcome = special_outpatient_claim_submit(institution=self.institution, **incoming.validated_data)
        except ClaimRefused as exc:
            raise ApiError([ApiErrorItem(code=exc.code, message=exc.message, field=exc.field)])
        except ClaimConflict as exc:
            raise ApiError(
                [ApiErrorItem(code="claim_exists", message=_("此结算单号已以不同内容结算；请使用新的结算单号。"), field="claim_no")], status_code=409,
            )
        mine = [c for c in outcome.corrections if c.claim.institution_id == self.institution.pk]
        answer = {"claim": outcome.claim, "created": outcome.created, "corrections": mine,
                  "resettled_elsewhere": len(outcome.corrections) - len(mine)}
        return Response(s.ClaimAnswerSerializer(answer).data, status=201 if outcome.created else 200)


CLAIM_NO_PARAMETER = OpenApiParameter("claim_no", str, OpenApiParameter.PATH, description="your claim number")


class ClaimDetailView(InstitutionAPIView):
    @extend_schema(summary="One of your claims with its split and explanation", parameters=[CLAIM_NO_PARAMETER],
                   responses={200: s.ClaimSerializer, **error_responses(401, 404, 429)})
    def get(self, request, claim_no: str):
        claim = SpecialOutpatientClaim.objects.filter(institution=self.institution, claim_no=claim_no).select_related("institution").first()
        if claim is None:
            raise ApiError([ApiErrorItem(code="claim_not_found", message=f"No claim {claim_no[:40]!r} of your institution.")], status_code=404)
        return Response(s.ClaimSerializer(claim).data)


class CorrectionCollectionView(InstitutionAPIView):
    def get_queryset(self):
        return selectors.corrections_of_institution(institution=self.institution)

    @extend_schema(summary="Re-settlements of your claims (before/after), newest first",
                   responses={200: s.CorrectionSerializer(many=True), **error_responses(401, 429)})
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.CorrectionSerializer(page, many=True).data)
