"""The building blocks every hospital API view uses: authentication by institution key, the
per-institution throttle, the one error shape, pagination, body-size limits and Idempotency-Key."""
from __future__ import annotations

import hashlib
import json
import re
from typing import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import exceptions, generics, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from common.text import has_unstorable, printable, storable_json
from drg.api.authentication import ApiKeyAuthentication, HasInstitutionCredential
from drg.api.errors import ApiError, ApiErrorItem, api_exception_handler, too_large
from drg.api.parsers import ExactJSONParser
from drg.api.throttling import InstitutionRateThrottle
from drg.models import IdempotencyRecord, Institution

IDEMPOTENCY_HEADER = "Idempotency-Key"
_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,128}$")
# Answers worth replaying: successes and the deterministic refusals of the request itself.
REPLAYABLE_STATUSES = frozenset({200, 201, 400, 409, 413, 422})

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    name=IDEMPOTENCY_HEADER,
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Any unique string (≤128 printable ASCII characters). A retry with the same key and the same body "
        "returns the first answer (header Idempotent-Replayed: true); the same key with a different body is "
        "refused with 422."
    ),
)


class ApiPagination(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class InstitutionAPIView(generics.GenericAPIView):
    """Base of every hospital API view: the caller is one institution, everything is scoped to it."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasInstitutionCredential]
    throttle_classes = [InstitutionRateThrottle]
    renderer_classes = [JSONRenderer]
    parser_classes = [ExactJSONParser]
    pagination_class = ApiPagination
    filter_backends = [DjangoFilterBackend]
    metadata_class = None  # OPTIONS answers 405: the OpenAPI document describes the API

    def get_exception_handler(self):
        return api_exception_handler

    @property
    def institution(self) -> Institution | None:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no caller
            return None
        return self.request.auth.institution

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self._refuse_unstorable_url(request, kwargs)
        if request.method in ("POST", "PUT", "PATCH"):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if limit is not None and length > limit:
                raise too_large(f"The request body is {length} bytes; the limit is {limit} bytes.")
            try:
                request._request.body  # read (and size-check) the body once; parsers read the copy
            except RequestDataTooBig:
                raise too_large(f"The request body is larger than {limit} bytes.")

    @staticmethod
    def _refuse_unstorable_url(request, kwargs) -> None:
        """NUL or a lone surrogate in the URL never reaches a query (PostgreSQL refuses them): in a
        path parameter the record cannot exist (404), in a query parameter the filter is refused (400)."""
        for name, value in kwargs.items():
            if isinstance(value, str) and has_unstorable(value):
                raise ApiError(
                    [ApiErrorItem(code="not_found", message=f"No record '{printable(value, 40)}': {name} holds a NUL character.", field=name)],
                    status_code=404,
                )
        for name, values in request.query_params.lists():
            if has_unstorable(name) or any(has_unstorable(v) for v in values):
                raise ApiError([ApiErrorItem(
                    code="invalid_characters", message=f"The query parameter {printable(name)} holds a NUL character.", field=printable(name),
                )])

    # --- Idempotency-Key -------------------------------------------------------------------------

    def idempotent(self, request, handler: Callable[[], Response]) -> Response:
        """Run ``handler`` at most once per (institution, Idempotency-Key)."""
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return handler()
        if not _KEY_PATTERN.match(key):
            raise ApiError(
                [ApiErrorItem(code="invalid_idempotency_key", message="Idempotency-Key must be 1-128 printable ASCII characters.", field=IDEMPOTENCY_HEADER)]
            )
        digest = hashlib.sha256()
        for part in (request.method, request.path, request.content_type or ""):
            digest.update(part.encode("utf-8") + b"\0")
        digest.update(request._request.body)
        request_hash = digest.hexdigest()
        institution = self.institution
        with transaction.atomic():
            try:
                with transaction.atomic():
                    record = IdempotencyRecord.objects.create(
                        institution=institution, key=key, method=request.method, path=request.path[:300],
                        request_hash=request_hash, status_code=0, response_body={},
                    )
            except IntegrityError:
                record = IdempotencyRecord.objects.get(institution=institution, key=key)
                if record.request_hash != request_hash:
                    raise ApiError(
                        [ApiErrorItem(
                            code="idempotency_key_reused",
                            message="This Idempotency-Key was used for a different request; use a new key.",
                            field=IDEMPOTENCY_HEADER,
                        )],
                        status_code=status.HTTP_422_UNPROCESSABLE_ENTITY,
                    )
                return Response(record.response_body, status=record.status_code, headers={"Idempotent-Replayed": "true"})
            try:
                response = handler()
            except exceptions.APIException as exc:
                response = api_exception_handler(exc, self.get_exception_handler_context())
            if response.status_code in REPLAYABLE_STATUSES:
                record.status_code = response.status_code
                # An answer may quote what was sent; JSONB takes no NUL, so such text is stored escaped.
                record.response_body = storable_json(json.loads(JSONRenderer().render(response.data) or b"null"))
                record.save(update_fields=["status_code", "response_body"])
            else:
                record.delete()
        return response


def error_responses(*codes: int) -> dict:
    """OpenAPI responses for error statuses, all in the one error shape."""
    from drg.api.serializers import ErrorResponseSerializer

    return {code: ErrorResponseSerializer for code in codes}


def query_month(value: str) -> tuple[int, int]:
    """(year, month) of a `month=YYYY-MM` query parameter; a 400 naming `month` otherwise. Every list
    filtered by month (cases by discharge, special-outpatient claims by service date) reads it here."""
    try:
        year, month = (int(part) for part in value.split("-"))
        if len(value) != 7 or not (1 <= month <= 12 and 1900 <= year <= 9999):
            raise ValueError
    except ValueError:
        raise serializers.ValidationError({"month": [serializers.ErrorDetail("month must be YYYY-MM", code="invalid_month")]})
    return year, month
