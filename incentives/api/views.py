"""Hospital API views: incentive events (submit, list, follow the review) and payout lines."""
from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from common.models import ReviewStatus
from drg.api.base import IDEMPOTENCY_PARAMETER, InstitutionAPIView, error_responses
from drg.api.errors import ApiError, ApiErrorItem
from drg.services import CREATED, AlreadyDecided
from incentives.api import serializers as s
from incentives.api import services
from incentives.models import ChronicEnrollment, HospiceService, PayoutLine, Screening, TcmWorkload

REVIEW_STATUSES = ReviewStatus.choices


class StatusFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=REVIEW_STATUSES)


def _status_filter(model_class):
    return type(f"{model_class.__name__}Filter", (StatusFilter,), {"Meta": type("Meta", (), {"model": model_class, "fields": ["status"]})})


class EventCollectionView(InstitutionAPIView):
    """List and submit one kind of incentive event. A pending or rejected event with the same key is
    replaced (back to submitted); an approved one answers 409; an identical pending one is a no-op."""

    model = None
    in_serializer = None
    out_serializer = None
    submit = None
    ordering: tuple[str, ...] = ("-id",)

    def get_queryset(self):
        return self.model.objects.filter(institution=self.institution).order_by(*self.ordering)

    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.out_serializer(page, many=True).data)

    def create(self, request):
        return self.idempotent(request, lambda: self._submit(request))

    def _submit(self, request) -> Response:
        serializer = self.in_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            record, outcome = type(self).submit(institution=self.institution, **serializer.validated_data)
        except AlreadyDecided as exc:
            raise ApiError([ApiErrorItem(code="already_decided", message=str(exc))], status_code=409)
        return Response(self.out_serializer(record).data, status=201 if outcome == CREATED else 200)


def _event_views(model, in_serializer, out_serializer, submit, ordering, label):
    """A collection view and a detail view (by id, scoped to the caller) for one event model."""

    collection_schema = dict(responses={200: out_serializer(many=True), **error_responses(400, 401, 404, 429)})
    create_schema = dict(
        request=in_serializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: out_serializer, 200: out_serializer, **error_responses(400, 401, 409, 422, 429)},
    )

    class Collection(EventCollectionView):
        filterset_class = _status_filter(model)

        @extend_schema(summary=f"Your {label}", **collection_schema)
        def get(self, request):
            return self.list(request)

        @extend_schema(summary=f"Submit {label[:-1] if label.endswith('s') else label}", **create_schema)
        def post(self, request):
            return self.create(request)

    Collection.model = model
    Collection.in_serializer = in_serializer
    Collection.out_serializer = out_serializer
    Collection.submit = staticmethod(submit)
    Collection.ordering = ordering
    Collection.__name__ = Collection.__qualname__ = f"{model.__name__}CollectionView"

    class Detail(InstitutionAPIView):
        @extend_schema(summary=f"One of your {label}",
                       responses={200: out_serializer, **error_responses(401, 404, 429)})
        def get(self, request, pk: int):
            record = model.objects.filter(institution=self.institution, pk=pk).first()
            if record is None:
                raise ApiError([ApiErrorItem(code="not_found", message="Not found.")], status_code=404)
            return Response(out_serializer(record).data)

    Detail.__name__ = Detail.__qualname__ = f"{model.__name__}DetailView"
    return Collection, Detail


ChronicEnrollmentCollectionView, ChronicEnrollmentDetailView = _event_views(
    ChronicEnrollment, s.ChronicEnrollmentInSerializer, s.ChronicEnrollmentSerializer, services.chronic_enrollment_submit,
    ("-enrolled_on", "-id"), "chronic disease enrollments",
)
TcmWorkloadCollectionView, TcmWorkloadDetailView = _event_views(
    TcmWorkload, s.TcmWorkloadInSerializer, s.TcmWorkloadSerializer, services.tcm_workload_submit, ("-month", "-id"),
    "TCM herbal prescription workloads",
)
HospiceServiceCollectionView, HospiceServiceDetailView = _event_views(
    HospiceService, s.HospiceServiceInSerializer, s.HospiceServiceSerializer, services.hospice_service_submit,
    ("-service_date", "-id"), "hospice services",
)
ScreeningCollectionView, ScreeningDetailView = _event_views(
    Screening, s.ScreeningInSerializer, s.ScreeningSerializer, services.screening_submit, ("-screening_date", "-id"),
    "high-risk screenings",
)


class PayoutLineView(InstitutionAPIView):
    queryset = PayoutLine.objects.none()  # for the schema; rows come from the incentives selector
    @extend_schema(
        summary="Your incentive payout lines (approved and paid payouts), including your group's",
        parameters=[OpenApiParameter("year", int, OpenApiParameter.QUERY, required=False)],
        responses={200: s.PayoutLineSerializer(many=True), **error_responses(400, 401, 404, 429)},
    )
    def get(self, request):
        from incentives.selectors import payout_lines_for_institution

        year = request.query_params.get("year")
        if year is not None and not (year.isdigit() and 1900 <= int(year) <= 9999):
            raise ApiError([ApiErrorItem(code="invalid", message="year must be a 4-digit year", field="year")])
        lines = payout_lines_for_institution(institution=self.institution, year=int(year) if year else None)
        page = self.paginate_queryset(lines)
        return self.get_paginated_response(s.PayoutLineSerializer(page, many=True).data)
