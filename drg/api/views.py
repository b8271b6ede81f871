"""Hospital API views of the drg app: who am I, a case's corrections, special reviews and correction requests.

The case collection, CSV upload, case detail and valuation views show clearing results and live in
settlement/api/cases.py.

Each view translates the request, makes one service or selector call, and maps errors to the one
error shape (drg.api.errors). Every query is scoped to the caller's institution; records are looked
up by the caller's institution plus their own keys (case_no), so other institutions' records answer
404 exactly like records that do not exist.
"""
from __future__ import annotations

from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.response import Response

from drg.api import serializers as s
from drg.api.base import IDEMPOTENCY_PARAMETER, InstitutionAPIView, error_responses
from drg.api.errors import ApiError, ApiErrorItem
from common.models import ReviewStatus
from drg.models import Case, CaseCorrection, CorrectionRequest, SpecialReview
from drg.services import (
    CREATED,
    AlreadyDecided,
    CaseNotFound,
    CasesInvalid,
    LateCaseRefused,
    correction_request_submit,
    late_case_request_submit,
    special_review_submit,
)
MAX_ERRORS_LISTED = 1000


def case_not_found(case_no: str, field: str | None = None) -> ApiError:
    return ApiError(
        [ApiErrorItem(code="case_not_found", message=f"No case {case_no[:40]!r} of your institution.", field=field)],
        status_code=404,
    )


class MeView(InstitutionAPIView):
    @extend_schema(summary="Who am I: the institution and key of this request", responses={200: s.MeSerializer, **error_responses(401, 429)})
    def get(self, request):
        return Response(s.MeSerializer(request.auth).data)


# --- cases (the case collection, CSV upload, detail and valuation views: settlement/api/cases.py) ---

CASES_EXAMPLE = [
    {
        "case_no": "c01", "fund": "employee", "patient_id": "P001", "admission_date": "2025-01-03",
        "discharge_date": "2025-01-10", "drg_code": "GB25", "total_cost": "8000.00", "self_pay": "1600.00",
        "discharge_status": "normal", "tcm_treatment": 0, "tcm_cost": "0", "surgery_grade": 3, "malignant_tumor_surgery": 1,
    }
]


CASE_NO_PARAMETER = OpenApiParameter("case_no", OpenApiTypes.STR, OpenApiParameter.PATH, description="your case number")


class CaseCorrectionsView(InstitutionAPIView):
    queryset = CaseCorrection.objects.none()  # for the schema; rows are read per case below
    @extend_schema(
        summary="Recorded changes to one of your cases",
        parameters=[CASE_NO_PARAMETER],
        responses={200: s.CaseCorrectionSerializer(many=True), **error_responses(401, 404, 429)},
    )
    def get(self, request, case_no: str):
        case = Case.objects.filter(institution=self.institution, case_no=case_no).first()
        if case is None:
            raise case_not_found(case_no)
        page = self.paginate_queryset(CaseCorrection.objects.filter(case=case).order_by("-changed_at", "-id"))
        return self.get_paginated_response(s.CaseCorrectionSerializer(page, many=True).data)


# --- special reviews (特病单议) -----------------------------------------------------------------------


class SpecialReviewFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=ReviewStatus.choices)

    class Meta:
        model = SpecialReview
        fields = ["status"]


class SpecialReviewCollectionView(InstitutionAPIView):
    filterset_class = SpecialReviewFilter

    def get_queryset(self):
        return SpecialReview.objects.filter(institution=self.institution).select_related("case").order_by("-submitted_at", "-id")

    @extend_schema(summary="Your special review requests", responses={200: s.SpecialReviewSerializer(many=True), **error_responses(400, 401, 404, 429)})
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.SpecialReviewSerializer(page, many=True).data)

    @extend_schema(
        summary="Request a special review (特病单议) of a case",
        description="A pending or rejected request of the same case is replaced (back to submitted); an approved one answers 409.",
        request=s.SpecialReviewInSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: s.SpecialReviewSerializer, 200: s.SpecialReviewSerializer, **error_responses(400, 401, 404, 409, 422, 429)},
    )
    def post(self, request):
        return self.idempotent(request, lambda: self._submit(request))

    def _submit(self, request) -> Response:
        serializer = s.SpecialReviewInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            review, outcome = special_review_submit(
                institution=self.institution, case_no=data["case_no"], reason=data["reason"],
                requested_cost=data["requested_cost"], documents=data["documents"],
            )
        except CaseNotFound:
            raise case_not_found(data["case_no"], field="case_no")
        except AlreadyDecided as exc:
            raise ApiError([ApiErrorItem(code="already_decided", message=str(exc))], status_code=409)
        return Response(s.SpecialReviewSerializer(review).data, status=201 if outcome == CREATED else 200)


class SpecialReviewDetailView(InstitutionAPIView):
    @extend_schema(
        summary="The special review request of one of your cases",
        parameters=[CASE_NO_PARAMETER],
        responses={200: s.SpecialReviewSerializer, **error_responses(401, 404, 429)},
    )
    def get(self, request, case_no: str):
        review = SpecialReview.objects.filter(institution=self.institution, case__case_no=case_no).select_related("case").first()
        if review is None:
            raise ApiError([ApiErrorItem(code="not_found", message="Not found.")], status_code=404)
        return Response(s.SpecialReviewSerializer(review).data)


# --- correction requests ----------------------------------------------------------------------------


class CorrectionRequestFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=ReviewStatus.choices)
    kind = filters.ChoiceFilter(choices=CorrectionRequest.Kind.choices)
    case_no = filters.CharFilter(method="filter_case_no", max_length=40, help_text="the stored case's or the late case's case_no")

    class Meta:
        model = CorrectionRequest
        fields = ["status", "kind", "case_no"]

    def filter_case_no(self, queryset, name, value):
        return queryset.filter(Q(case__case_no=value) | Q(case_no=value))


class CorrectionRequestCollectionView(InstitutionAPIView):
    filterset_class = CorrectionRequestFilter

    def get_queryset(self):
        return CorrectionRequest.objects.filter(institution=self.institution).select_related("case").order_by("-submitted_at", "-id")

    @extend_schema(summary="Your correction requests", responses={200: s.CorrectionRequestSerializer(many=True), **error_responses(400, 401, 404, 429)})
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.CorrectionRequestSerializer(page, many=True).data)

    @extend_schema(
        summary="Ask the bureau to correct a case of a finalized period, or to add a late case to one",
        description=(
            "kind `change` (default): `case_no` names a stored case, `proposed` the fields to change. kind "
            "`late_case`: a new case discharged in a finalized period (which case submission refuses with 409); "
            "`proposed` is the whole case row less case_no, checked exactly like a case submission. A late case "
            "whose case_no is already stored (`case_exists`), already awaits a decision (`already_requested`) or "
            "whose discharge month is not finalized (`period_open`: submit it normally) answers 409. The bureau "
            "approves or rejects the request in the admin; approval applies the change or creates the late case, "
            "recorded as a correction, and the next cumulative or annual run picks it up."
        ),
        request=s.CorrectionRequestInSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        examples=[
            OpenApiExample(
                "a change", request_only=True,
                value={"case_no": "c01", "reason": "HIS export rounded the drug costs", "proposed": {"total_cost": "8500.00"}},
            ),
            OpenApiExample(
                "a late case", request_only=True,
                value={
                    "kind": "late_case", "case_no": "c31", "reason": "discharge record found in the March audit",
                    "proposed": {k: v for k, v in CASES_EXAMPLE[0].items() if k != "case_no"},
                },
            ),
        ],
        responses={201: s.CorrectionRequestSerializer, **error_responses(400, 401, 404, 409, 422, 429)},
    )
    def post(self, request):
        return self.idempotent(request, lambda: self._submit(request))

    def _submit(self, request) -> Response:
        serializer = s.CorrectionRequestInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data["kind"] == CorrectionRequest.Kind.LATE_CASE:
            return self._submit_late_case(data)
        try:
            correction = correction_request_submit(
                institution=self.institution, case_no=data["case_no"], proposed=data["proposed"], reason=data["reason"]
            )
        except CaseNotFound:
            raise case_not_found(data["case_no"], field="case_no")
        except CasesInvalid as exc:
            raise _proposed_invalid(exc)
        return Response(s.CorrectionRequestSerializer(correction).data, status=201)

    def _submit_late_case(self, data) -> Response:
        try:
            correction = late_case_request_submit(
                institution=self.institution, case_no=data["case_no"], proposed=data["proposed"], reason=data["reason"]
            )
        except CasesInvalid as exc:
            raise _proposed_invalid(exc)
        except LateCaseRefused as exc:
            if exc.code == "period_open":
                field, extra = "proposed.discharge_date", {"links": {"cases": reverse("api-v1:cases")}}
            else:
                field, extra = "case_no", None
            raise ApiError([ApiErrorItem(code=exc.code, message=exc.message, field=field, case_no=data["case_no"])], status_code=409, extra=extra)
        return Response(s.CorrectionRequestSerializer(correction).data, status=201)


def _proposed_invalid(exc: CasesInvalid) -> ApiError:
    """Row errors of a correction request, the fields named as sent (``proposed.<field>``)."""
    return ApiError(
        [ApiErrorItem(code=e.code, message=e.message, field=f"proposed.{e.field}" if e.field else "proposed") for e in exc.errors]
    )


class CorrectionRequestDetailView(InstitutionAPIView):
    @extend_schema(summary="One of your correction requests", responses={200: s.CorrectionRequestSerializer, **error_responses(401, 404, 429)})
    def get(self, request, pk: int):
        correction = get_object_or_404(CorrectionRequest.objects.select_related("case"), institution=self.institution, pk=pk)
        return Response(s.CorrectionRequestSerializer(correction).data)
