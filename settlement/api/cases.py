"""Hospital API views for cases: submit (JSON or CSV), list, read, and why a case got its points.

They live in settlement because they show each case with its latest valuation (its result in the
newest draft or finalized clearing run, settlement.selectors.case_latest_results); the case rules
and writes are drg's (drg.services.cases_submit, which refuses changes to finalized periods). Each view translates the request, makes one service or
selector call and maps errors to the one error shape (drg.api.errors); every query is scoped to the
caller's institution.
"""
from __future__ import annotations

import csv

from types import SimpleNamespace

from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from common.text import printable
from drg.api import serializers as s
from drg.api.base import IDEMPOTENCY_PARAMETER, InstitutionAPIView, error_responses, query_month
from drg.api.errors import ApiError, ApiErrorItem, too_large
from drg.api.parsers import CSVParser
from drg.api.views import CASE_NO_PARAMETER, CASES_EXAMPLE, MAX_ERRORS_LISTED, case_not_found
from drg.choices import CaseCategory, Fund
from drg.domain.case_rows import error_code, json_rows_to_frame
from drg.domain.cases import CASES
from drg.domain.rows import LINE, read_csv_text
from drg.models import Case
from drg.services import CasesFinalized, CasesInvalid, cases_submit, cases_validate
from settlement.api.serializers import ValuationSerializer
from settlement.domain.results import as_records
from settlement.models import ClearingRun
from settlement.selectors import case_latest_results


def with_latest(cases: list[Case]) -> list[Case]:
    """Set latest_category / latest_points on each case: its result in the newest draft or finalized
    run that valued it (None when no run has)."""
    by_institution: dict[int, list[Case]] = {}
    for case in cases:
        case.latest_category = case.latest_points = None
        by_institution.setdefault(case.institution_id, []).append(case)
    for institution_id, group in by_institution.items():
        latest = case_latest_results(institution_id=institution_id, case_ids=[c.pk for c in group])
        found = {int(r.case_id): (r.category, r.points) for r in latest[["case_id", "category", "points"]].itertuples(index=False)}
        for case in group:
            case.latest_category, case.latest_points = found.get(case.pk, (None, None))
    return cases


class CaseFilter(filters.FilterSet):
    month = filters.CharFilter(method="filter_month", help_text="discharge month YYYY-MM")
    drg_code = filters.CharFilter(field_name="drg_code", max_length=16)
    fund = filters.ChoiceFilter(choices=Fund.choices)
    category = filters.ChoiceFilter(
        choices=CaseCategory.choices, method="filter_category", help_text="category in the latest clearing run containing the case"
    )

    class Meta:
        model = Case
        fields = ["month", "drg_code", "fund", "category"]

    def filter_month(self, queryset, name, value):
        year, month = query_month(value)
        return queryset.filter(discharge_date__year=year, discharge_date__month=month)

    def filter_category(self, queryset, name, value):
        # the cases the other filters left, by institution: the newest result blocks are read first and
        # reading stops once each of them is found
        wanted: dict[int, list[int]] = {}
        for pk, institution_id in queryset.order_by().values_list("pk", "institution_id"):
            wanted.setdefault(institution_id, []).append(pk)
        ids: list[int] = []
        for institution_id, case_ids in wanted.items():
            latest = case_latest_results(institution_id=institution_id, case_ids=case_ids)
            ids += latest.loc[latest["category"] == value, "case_id"].astype("int64").tolist()
        return queryset.filter(pk__in=ids)


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


class CaseCollectionView(InstitutionAPIView):
    filterset_class = CaseFilter

    def get_queryset(self):
        return Case.objects.filter(institution=self.institution).order_by("discharge_date", "case_no")

    @extend_schema(
        summary="List your cases",
        responses={200: s.CaseSerializer(many=True), **error_responses(400, 401, 404, 429)},
    )
    def get(self, request):
        queryset = self.filter_queryset(self.get_queryset())
        page = with_latest(list(self.paginate_queryset(queryset)))
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
            raise ApiError(
                [ApiErrorItem(code=error_code(e.reason), message=printable(e.reason, 300), row=1, field=printable(e.column) or None) for e in header_errors],
                extra={"missing_columns": missing} if missing else None,
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


class CaseDetailView(InstitutionAPIView):
    @extend_schema(summary="One of your cases", parameters=[CASE_NO_PARAMETER], responses={200: s.CaseSerializer, **error_responses(401, 404, 429)})
    def get(self, request, case_no: str):
        case = Case.objects.filter(institution=self.institution, case_no=case_no).first()
        if case is None:
            raise case_not_found(case_no)
        return Response(s.CaseSerializer(with_latest([case])[0]).data)


class CaseValuationView(InstitutionAPIView):
    @extend_schema(
        summary="Why a case got its points (latest clearing run that valued it)",
        parameters=[CASE_NO_PARAMETER],
        responses={200: ValuationSerializer, **error_responses(401, 404, 429)},
    )
    def get(self, request, case_no: str):
        case = Case.objects.filter(institution=self.institution, case_no=case_no).first()
        if case is None:
            raise case_not_found(case_no)
        latest = case_latest_results(institution_id=case.institution_id, case_ids=[case.pk])
        if latest.empty:
            raise ApiError([ApiErrorItem(code="not_valued", message=f"Case {case_no} has not been valued by a clearing run yet.")], status_code=404)
        result = as_records(latest)[0]
        run = ClearingRun.objects.select_related("region").get(pk=result["run_id"])
        return Response(ValuationSerializer(SimpleNamespace(**result, case=case, run=run)).data)
