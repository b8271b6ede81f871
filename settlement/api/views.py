"""Hospital API views: the caller's statements (clearing lines) and itemized claims."""
from __future__ import annotations

from django.http import HttpResponse
from django.utils.translation import gettext_lazy as _
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response

from common.models import ReviewStatus
from drg.api.base import IDEMPOTENCY_PARAMETER, InstitutionAPIView, error_responses
from drg.api.errors import ApiError, ApiErrorItem
from drg.choices import Fund
from drg.services import CREATED, AlreadyDecided
from settlement.api import serializers as s
from settlement.api.services import itemized_claim_submit
from settlement.choices import RESULT_RUN_STATUSES, RunKind, RunStatus
from settlement.models import InstitutionLine, ItemizedClaim

STATEMENT_RUN_STATUSES = RESULT_RUN_STATUSES
# ?include= adds these to the binding runs a statement list shows by default
INCLUDABLE = {"superseded": RunStatus.SUPERSEDED, "draft": RunStatus.DRAFT}
REVIEW_STATUSES = ReviewStatus.choices


class StatementFilter(filters.FilterSet):
    fund = filters.ChoiceFilter(field_name="run__fund", choices=Fund.choices)
    year = filters.NumberFilter(field_name="run__year")
    month = filters.NumberFilter(field_name="run__month", help_text="1-12 (monthly runs)")
    kind = filters.ChoiceFilter(field_name="run__kind", choices=RunKind.choices)
    status = filters.ChoiceFilter(
        field_name="run__status", choices=[(st.value, st.label) for st in STATEMENT_RUN_STATUSES],
        help_text="only lines of runs in this status (finalized = binding); overrides `include`",
    )

    class Meta:
        model = InstitutionLine
        fields = ["fund", "year", "month", "kind", "status"]


def statement_lines(queryset):
    return queryset.select_related("run", "run__superseded_by")


INCLUDE_PARAMETER = OpenApiParameter(
    "include", str, OpenApiParameter.QUERY, required=False,
    description="comma-separated: `superseded`, `draft` — also list lines of superseded runs and of drafts "
                "(by default only binding runs: finalized, not superseded)",
)


class StatementCollectionView(InstitutionAPIView):
    filterset_class = StatementFilter

    def _statuses(self) -> list[str]:
        if self.request.query_params.get("status"):
            return list(STATEMENT_RUN_STATUSES)  # the status filter chooses
        raw = self.request.query_params.get("include", "")
        asked = [part.strip() for part in raw.split(",") if part.strip()]
        unknown = [part for part in asked if part not in INCLUDABLE]
        if unknown:
            raise ApiError([ApiErrorItem(
                code="invalid_include", field="include",
                message=f"include takes a comma-separated list of {', '.join(sorted(INCLUDABLE))}; not {unknown[0][:40]!r}",
            )])
        return [RunStatus.FINALIZED, *(INCLUDABLE[part] for part in asked)]

    def get_queryset(self):
        return statement_lines(
            InstitutionLine.objects.filter(institution=self.institution, run__status__in=self._statuses())
            .order_by("-run__year", "run__fund", "run__kind", "-run__month", "-run__created_at", "-run_id")
        )

    @extend_schema(
        summary="Your monthly and annual statements (one line per clearing run)",
        description=(
            "By default the lines of binding runs only: one per period, the finalized run that is not superseded. "
            "`?include=superseded,draft` adds the lines of superseded runs (finalized, then replaced by a re-run of the "
            "same period; what they paid counts, and the successor pays only the difference) and of drafts (may still "
            "change). Each line says its `standing` and links `supersedes` / `superseded_by`."
        ),
        parameters=[INCLUDE_PARAMETER],
        responses={200: s.StatementSerializer(many=True), **error_responses(400, 401, 404, 429)},
    )
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.StatementSerializer(page, many=True).data)


class StatementDetailView(InstitutionAPIView):
    @extend_schema(
        summary="Your statement line of one clearing run (binding, superseded or draft: see `standing`)",
        parameters=[OpenApiParameter("run_id", int, OpenApiParameter.PATH)],
        responses={200: s.StatementSerializer, **error_responses(401, 404, 429)},
    )
    def get(self, request, run_id: int):
        line = statement_lines(
            InstitutionLine.objects.filter(institution=self.institution, run_id=run_id, run__status__in=STATEMENT_RUN_STATUSES)
        ).first()
        if line is None:
            raise ApiError([ApiErrorItem(code="not_found", message=str(_("未找到。")))], status_code=404)
        return Response(s.StatementSerializer(line).data)


class ItemizedClaimFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=REVIEW_STATUSES)
    fund = filters.ChoiceFilter(choices=Fund.choices)

    class Meta:
        model = ItemizedClaim
        fields = ["status", "fund"]


class ItemizedClaimCollectionView(InstitutionAPIView):
    filterset_class = ItemizedClaimFilter

    def get_queryset(self):
        return ItemizedClaim.objects.filter(institution=self.institution).order_by("-month", "claim_no")

    @extend_schema(summary="Your special-outpatient itemized claims", responses={200: s.ItemizedClaimSerializer(many=True), **error_responses(400, 401, 404, 429)})
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.ItemizedClaimSerializer(page, many=True).data)

    @extend_schema(
        summary="Submit a special-outpatient itemized claim (门诊特殊病 单议)",
        description="A pending or rejected claim with the same claim_no is replaced (back to submitted); an approved one answers 409.",
        request=s.ItemizedClaimInSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: s.ItemizedClaimSerializer, 200: s.ItemizedClaimSerializer, **error_responses(400, 401, 409, 422, 429)},
    )
    def post(self, request):
        return self.idempotent(request, lambda: self._submit(request))

    def _submit(self, request) -> Response:
        serializer = s.ItemizedClaimInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            claim, outcome = itemized_claim_submit(institution=self.institution, **serializer.validated_data)
        except AlreadyDecided as exc:
            raise ApiError([ApiErrorItem(code="already_decided", message=str(exc))], status_code=409)
        return Response(s.ItemizedClaimSerializer(claim).data, status=201 if outcome == CREATED else 200)


class ItemizedClaimDetailView(InstitutionAPIView):
    @extend_schema(summary="One of your itemized claims", responses={200: s.ItemizedClaimSerializer, **error_responses(401, 404, 429)})
    def get(self, request, claim_no: str):
        claim = ItemizedClaim.objects.filter(institution=self.institution, claim_no=claim_no).first()
        if claim is None:
            raise ApiError([ApiErrorItem(code="not_found", message="Not found.")], status_code=404)
        return Response(s.ItemizedClaimSerializer(claim).data)


class _FileNegotiation(BaseContentNegotiation):
    """A file download answers its own content type whatever the client accepts; errors stay JSON."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


MAX_ID = 2**63 - 1
STATEMENT_FILE_TYPES = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class StatementFileView(InstitutionAPIView):
    """The caller's own statement of one run as a printable PDF or an Excel workbook (its line and its cases)."""

    content_negotiation_class = _FileNegotiation

    @extend_schema(
        summary="Your statement of one clearing run as PDF or Excel",
        description="PDF: a printable Chinese statement with the run's totals, inputs fingerprint and a signature/seal area. "
        "xlsx: your line, the run's inputs and your cases' points. Only your own institution's statement is served.",
        parameters=[
            OpenApiParameter("run_id", int, OpenApiParameter.PATH),
            OpenApiParameter("fmt", str, OpenApiParameter.PATH, enum=list(STATEMENT_FILE_TYPES)),
        ],
        responses={
            (200, "application/pdf"): OpenApiTypes.BINARY,
            (200, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"): OpenApiTypes.BINARY,
            **error_responses(401, 404, 429),
        },
    )
    def get(self, request, run_id: int, fmt: str):
        from settlement import statement_pdf, statements

        if fmt not in STATEMENT_FILE_TYPES or not 0 < run_id <= MAX_ID:  # an id no column can hold is simply not found
            raise ApiError([ApiErrorItem(code="not_found", message=str(_("未找到。")))], status_code=404)
        line = (
            InstitutionLine.objects.filter(institution=self.institution, run_id=run_id, run__status__in=STATEMENT_RUN_STATUSES)
            .select_related("run__region", "run__finalized_by", "run__started_by")
            .first()
        )
        if line is None:
            raise ApiError([ApiErrorItem(code="not_found", message=str(_("未找到。")))], status_code=404)
        build = statement_pdf.statement_pdf if fmt == "pdf" else statements.statement_xlsx
        try:
            content = build(run=line.run, institution=self.institution)
        except statements.StatementError as exc:
            raise ApiError([ApiErrorItem(code="statement_unavailable", message=str(exc))], status_code=409) from exc
        response = HttpResponse(content, content_type=STATEMENT_FILE_TYPES[fmt])
        filename = statements.statement_filename(run=line.run, institution=self.institution, ext=fmt)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
