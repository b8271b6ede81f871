"""One error shape for the whole hospital API.

Every 4xx answer is ``{"errors": [{"code": ..., "message": ..., "row": ..., "field": ...}]}``:
``code`` is stable and machine-readable, ``message`` is for people, ``row`` (bulk submissions only)
is the index in the JSON array or the CSV line number (header = line 1), ``field`` names the column
or attribute. Extra top-level keys (e.g. ``links``) may accompany particular errors.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


@dataclass(frozen=True)
class ApiErrorItem:
    code: str
    message: str
    row: int | None = None
    field: str | None = None
    case_no: str | None = None

    def as_dict(self) -> dict[str, Any]:
        item = asdict(self)
        return {k: v for k, v in item.items() if v is not None or k in ("code", "message")}


class ApiError(exceptions.APIException):
    """An API error that carries a list of error items and an explicit status."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(self, items: list[ApiErrorItem], *, status_code: int = 400, extra: dict | None = None):
        self.items = items
        self.status_code = status_code
        self.extra = extra or {}
        super().__init__(detail=items[0].message if items else "error")


def too_large(message: str, code: str = "payload_too_large") -> ApiError:
    return ApiError([ApiErrorItem(code=code, message=message)], status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)


def flatten_detail(detail: Any, *, row: int | None = None, field: str | None = None) -> list[ApiErrorItem]:
    """DRF's nested ValidationError detail -> flat error items (row for list items, dotted fields)."""
    items: list[ApiErrorItem] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key in ("non_field_errors", "__all__"):
                sub_field = field
            else:
                sub_field = f"{field}.{key}" if field else str(key)
            items.extend(flatten_detail(value, row=row, field=sub_field))
    elif isinstance(detail, list):
        if detail and all(isinstance(d, (dict, list)) or d is None or d == {} for d in detail) and any(detail):
            for index, value in enumerate(detail):
                if not value:
                    continue
                if field is None and row is None:
                    items.extend(flatten_detail(value, row=index))
                else:
                    items.extend(flatten_detail(value, row=row, field=f"{field}.{index}" if field else str(index)))
        else:
            for value in detail:
                items.extend(flatten_detail(value, row=row, field=field))
    else:
        code = getattr(detail, "code", None) or "invalid"
        items.append(ApiErrorItem(code=str(code), message=str(detail), row=row, field=field))
    return items


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF exception handler producing the one error shape; 404s never say whose record it was."""
    if isinstance(exc, ApiError):
        body = {"errors": [item.as_dict() for item in exc.items], **exc.extra}
        return Response(body, status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        items = flatten_detail(exc.detail)
    elif isinstance(exc, exceptions.NotFound):
        items = [ApiErrorItem(code="not_found", message=str(_("未找到。")))]
    else:
        # DRF's codes are stable: parse_error, not_authenticated, authentication_failed,
        # permission_denied, method_not_allowed, not_acceptable, unsupported_media_type, throttled.
        detail = getattr(exc, "detail", str(exc))
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        items = [ApiErrorItem(code=str(code), message=str(detail))]
    response.data = {"errors": [item.as_dict() for item in items]}
    return response


@dataclass
class ErrorCollector:
    """Collects row errors of a bulk submission (stops collecting after `limit` to bound the answer)."""

    limit: int = 1000
    items: list[ApiErrorItem] = field(default_factory=list)
    truncated: bool = False

    def add(self, code: str, message: str, *, row: int | None = None, field: str | None = None) -> None:
        if len(self.items) >= self.limit:
            self.truncated = True
            return
        self.items.append(ApiErrorItem(code=code, message=message, row=row, field=field))

    def __bool__(self) -> bool:
        return bool(self.items)
