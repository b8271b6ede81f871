"""Hospital API views for cases, valuations, special reviews and correction requests.

Each view translates the request, makes one service or selector call, and maps errors to the one
error shape (drg.api.errors). Every query is scoped to the caller's institution; records are looked
up by the caller's institution plus their own keys (case_no), so other institutions' records answer
404 exactly like records that do not exist.
"""
from __future__ import annotations

import csv

from django.db.models import OuterRef, Q, Subquery
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiRequest, OpenApiResponse, extend_schema
from rest_framework import serializers as drf_serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from drg.api import serializers as s
from drg.api.base import IDEMPOTENCY_PARAMETER, InstitutionAPIView, error_responses
from drg.api.case_rows import error_code, json_rows_to_frame
from drg.api.errors import ApiError, ApiErrorItem, too_large
from drg.api.parsers import CSVParser
from common.models import ReviewStatus
from common.text import printable
from drg.choices import CaseCategory, Fund
from drg.domain.bundle import CASES, LINE, read_csv_text
from drg.models import Case, CaseCorrection, CorrectionRequest, SpecialReview
from drg.services import (
    CREATED,
    AlreadyDecided,
    CaseNotFound,
    CasesFinalized,
    CasesInvalid,
    LateCaseRefused,
    cases_submit,
    cases_validate,
    correction_request_submit,
    late_case_request_submit,
    special_review_submit,
)
from settlement.choices import RunStatus
from settlement.models import CaseResult

VALUED_RUN_STATUSES = (RunStatus.DRAFT, RunStatus.FINALIZED)
MAX_ERRORS_LISTED = 1000


def case_not_found(case_no: str, field: str | None = None) -> ApiError:
    return ApiError(
        [ApiErrorItem(code="case_not_found", message=f"No case {case_no[:40]!r} of your institution.", field=field)],
        status_code=404,
    )


def latest_results(case_ref) -> "CaseResult.objects":
    return CaseResult.objects.filter(case=case_ref, run__status__in=VALUED_RUN_STATUSES).order_by("-run__created_at", "-run_id")


class MeView(InstitutionAPIView):
    @extend_schema(summary="Who am I: the institution and key of this request", responses={200: s.MeSerializer, **error_responses(401, 429)})
    def get(self, request):
        return Response(s.MeSerializer(request.auth).data)


# --- cases ------------------------------------------------------------------------------------------


class CaseFilter(filters.FilterSet):
    month = filters.CharFilter(method="filter_month", help_text="discharge month YYYY-MM")
    drg_code = filters.CharFilter(field_name="drg_code", max_length=16)
    fund = filters.ChoiceFilter(choices=Fund.choices)
    category = filters.ChoiceFilter(
        choices=CaseCategory.choices, field_name="latest_category", help_text="category in the latest clearing run containing the case"
    )

    class Meta:
        model = Case
        fields = ["month", "drg_code", "fund", "category"]

    def filter_month(self, queryset, name, value):
        try:
            year, month = (int(part) for part in value.split("-"))
            if len(value) != 7 or not (1 <= month <= 12 and 1900 <= year <= 9999):
                raise ValueError
        except ValueError:
            raise drf_serializers.ValidationError({"month": [drf_serializers.ErrorDetail("month must be YYYY-MM", code="invalid_month")]})
        return queryset.filter(discharge_date__year=year, discharge_date__month=month)


def _items(errors) -> list[ApiErrorItem]:
    return [ApiErrorItem(code=e.code, message=e.message, row=e.row, field=e.field) for e in errors]


def _invalid(items: list[ApiErrorItem]) -> ApiError:
    items = sorted(items, key=lambda i: (i.row if i.row is not None else -1, i.field or ""))
    truncated = len(items) > MAX_ERRORS_LISTED
    return ApiError(items[:MAX_ERRORS_LISTED], extra={"truncated": True} if truncated else None)


def submit_frame(view: InstitutionAPIView, frame, *, pre_errors: list[ApiErrorItem] = ()) -> Response:
    """Validate and store the rows (one service call); ``pre_errors`` are problems found while
    translating the request (wrong JSON types, CSV shape): the other rows are still checked, so
    the answer lists every error, then nothing is stored."""
    if pre_errors:
        _typed, errors = cases_validate(institution=view.institution, frame=frame)
        raise _invalid([*pre_errors, *_items(errors)])
    try:
        report = cases_submit(institution=view.institution, frame=frame, actor=f"API key {view.request.auth.prefix}")
    except CasesInvalid as exc:
        raise _invalid(_items(exc.errors))
    except CasesFinalized as exc:
        items = [ApiErrorItem(code=e.code, message=e.message, row=e.row, field=e.field, case_no=e.case_no) for e in exc.conflicts]
        raise ApiError(
            items[:MAX_ERRORS_LISTED], status_code=409,
            extra={"links": {"correction_requests": reverse("api-v1:correction-requests")}},
        )
    return Response(s.SubmissionReportSerializer(report.as_dict()).data)


CASES_EXAMPLE = [
    {
        "case_no": "c01", "fund": "employee", "patient_id": "P001", "admission_date": "2025-01-03",
        "discharge_date": "2025-01-10", "drg_code": "GB25", "total_cost": "8000.00", "self_pay": "1600.00",
        "discharge_status": "normal", "tcm_treatment": 0, "tcm_cost": "0", "surgery_grade": 3, "malignant_tumor_surgery": 1,
    }
]


class CaseCollectionView(InstitutionAPIView):
    filterset_class = CaseFilter

    def get_queryset(self):
        latest = latest_results(OuterRef("pk"))
        return (
            Case.objects.filter(institution=self.institution)
            .annotate(
                latest_category=Subquery(latest.values("category")[:1]),
                latest_points=Subquery(latest.values("points")[:1]),
            )
            .order_by("discharge_date", "case_no")
        )

    @extend_schema(
        summary="List your cases",
        responses={200: s.CaseSerializer(many=True), **error_responses(400, 401, 404, 429)},
    )
    def get(self, request):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(s.CaseSerializer(page, many=True).data)

    @extend_schema(
        summary="Submit cases (bulk JSON, all or nothing, up to 5,000)",
        description=(
            "A JSON array of up to 5,000 cases (EXCHANGE.md case columns less institution_code, which is the "
            "caller's). All or nothing: any bad row stores nothing and every error is listed with its row (array "
            "index) and field. Identical cases are skipped; a changed case of an open period is updated and "
            "recorded as a correction; a changed or new case of a finalized period answers 409 — send a correction "
            "request (kind change for a stored case, late_case for a new one)."
        ),
        request=s.CaseInSerializer(many=True),
        parameters=[IDEMPOTENCY_PARAMETER],
        examples=[OpenApiExample("two cases", value=CASES_EXAMPLE, request_only=True)],
        responses={200: s.SubmissionReportSerializer, **error_responses(400, 401, 409, 413, 422, 429)},
    )
    def post(self, request):
        return self.idempotent(request, lambda: self._submit(request))

    def _submit(self, request) -> Response:
        data = request.data
        if not isinstance(data, list):
            raise ApiError([ApiErrorItem(code="invalid_type", message="The body must be a JSON array of case objects.")])
        if len(data) > s.MAX_BATCH:
            raise too_large(f"{len(data)} cases in one request; at most {s.MAX_BATCH} are accepted.", code="too_many_cases")
        if not data:
            raise ApiError([ApiErrorItem(code="empty", message="The array holds no cases.")])
        frame, type_errors = json_rows_to_frame(enumerate(data), institution_code=self.institution.code)
        return submit_frame(self, frame, pre_errors=[ApiErrorItem(**e) for e in type_errors])


class CaseCsvUploadView(InstitutionAPIView):
    parser_classes = [CSVParser, MultiPartParser]

    @extend_schema(
        summary="Submit cases as a CSV file (EXCHANGE.md cases.csv columns)",
        description=(
            "Either a `text/csv` body or a multipart form with the file in `file`. UTF-8 (BOM tolerated), header "
            "row, at most 5,000 records. `institution_code`, if present, must be the caller's. Errors give the "
            "CSV line number in `row` (the header is line 1). Same rules as the JSON submission."
        ),
        request={
            "text/csv": OpenApiTypes.STR,
            "multipart/form-data": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}, "required": ["file"]},
        },
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: s.SubmissionReportSerializer, **error_responses(400, 401, 409, 413, 415, 422, 429)},
    )
    def post(self, request):
        return self.idempotent(request, lambda: self._submit(request))

    def _submit(self, request) -> Response:
        data = request.data
        if isinstance(data, str):
            text = data
        elif (request.content_type or "").startswith(CSVParser.media_type):
            text = ""  # an empty text/csv body never reaches the parser
        else:
            upload = request.FILES.get("file")
            if upload is None:
                raise ApiError([ApiErrorItem(code="required", message="Send the CSV as a text/csv body or as the multipart field 'file'.", field="file")])
            try:
                text = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise ApiError([ApiErrorItem(code="malformed_csv", message=f"The CSV file is not UTF-8: {exc}")])
        try:
            frame, errors = read_csv_text(text, CASES)
        except csv.Error as exc:  # e.g. a bare carriage return inside an unquoted field
            raise ApiError([ApiErrorItem(code="malformed_csv", message=f"The CSV cannot be read: {exc}")])
        errors = [e for e in errors if not (e.line == 1 and e.column == "institution_code" and e.reason.startswith("missing required column"))]
        header_errors = [e for e in errors if e.line == 1]
        if header_errors:  # no usable header (missing columns, a PDF sent as CSV, …): nothing to check row by row
            missing = [e.column for e in header_errors if e.reason.startswith("missing required column")]
            extra = {"missing_columns": missing} if missing else None
            raise ApiError(
                [ApiErrorItem(code=error_code(e.reason), message=printable(e.reason, 300), row=1, field=printable(e.column) or None) for e in header_errors],
                extra=extra,
            )
        pre_errors = [
            ApiErrorItem(code=error_code(e.reason), message=e.reason, row=e.line, field=e.column or None) for e in errors
        ] + _unstorable_cells(frame)
        if len(frame) > s.MAX_BATCH:
            raise too_large(f"{len(frame)} cases in one file; at most {s.MAX_BATCH} are accepted.", code="too_many_cases")
        if frame.empty and not pre_errors:
            raise ApiError([ApiErrorItem(code="empty", message="The CSV holds no cases.")])
        if "institution_code" not in frame.columns:
            frame["institution_code"] = ""
        return submit_frame(self, frame, pre_errors=pre_errors)


def _unstorable_cells(frame) -> list[ApiErrorItem]:
    """A CSV cell holding NUL (the one character UTF-8 text may carry that no database text takes)."""
    items = []
    for column in frame.columns:
        if column == LINE or frame[column].dtype == "int64":
            continue
        bad = frame[column].astype(str).str.contains("\x00", regex=False)
        for line in frame.loc[bad, LINE].tolist():
            items.append(ApiErrorItem(code="invalid_characters", message=f"{column} contains a NUL character", row=int(line), field=column))
    return items


CASE_NO_PARAMETER = OpenApiParameter("case_no", OpenApiTypes.STR, OpenApiParameter.PATH, description="your case number")


class CaseDetailView(InstitutionAPIView):
    @extend_schema(summary="One of your cases", parameters=[CASE_NO_PARAMETER], responses={200: s.CaseSerializer, **error_responses(401, 404, 429)})
    def get(self, request, case_no: str):
        latest = latest_results(OuterRef("pk"))
        case = (
            Case.objects.filter(institution=self.institution, case_no=case_no)
            .annotate(latest_category=Subquery(latest.values("category")[:1]), latest_points=Subquery(latest.values("points")[:1]))
            .first()
        )
        if case is None:
            raise case_not_found(case_no)
        return Response(s.CaseSerializer(case).data)


class CaseValuationView(InstitutionAPIView):
    @extend_schema(
        summary="Why a case got its points (latest clearing run that valued it)",
        parameters=[CASE_NO_PARAMETER],
        responses={200: s.ValuationSerializer, **error_responses(401, 404, 429)},
    )
    def get(self, request, case_no: str):
        case = Case.objects.filter(institution=self.institution, case_no=case_no).first()
        if case is None:
            raise case_not_found(case_no)
        result = latest_results(case).select_related("run", "case").first()
        if result is None:
            raise ApiError([ApiErrorItem(code="not_valued", message=f"Case {case_no} has not been valued by a clearing run yet.")], status_code=404)
        return Response(s.ValuationSerializer(result).data)


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
