"""Request parsers: JSON with exact decimals, and CSV bodies."""
from __future__ import annotations

import json
from decimal import Decimal

from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser, JSONParser

from common.text import has_unstorable, printable, unstorable_text_path
from drg.api.errors import ApiError, ApiErrorItem


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed")


class ExactJSONParser(JSONParser):
    """JSON whose numbers with a fraction become ``Decimal`` (never float): money stays exact."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding") or "utf-8"
        try:
            raw = stream.read() if stream is not None else b""
            text = raw.decode("utf-8-sig" if encoding.lower() in ("utf-8", "utf8") else encoding)
            if not text.strip():
                raise ParseError("The request body is empty; a JSON document is expected.", code="malformed_json")
            data = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
        except ParseError:
            raise
        except (ValueError, UnicodeDecodeError, LookupError, RecursionError) as exc:
            raise ParseError(f"Malformed JSON: {printable(str(exc), 300)}", code="malformed_json")
        refuse_unstorable_text(data)
        return data


def refuse_unstorable_text(data) -> None:
    """400 naming the first string (key or value) that holds NUL or a lone surrogate: PostgreSQL
    cannot store either, and no field of this API needs them. In a bulk array the index is the
    ``row``; elsewhere the dotted path is the ``field``."""
    path = unstorable_text_path(data)
    if path is None:
        return
    row = None
    if path and isinstance(path[0], int) and isinstance(data, list):
        row, path = path[0], path[1:]
    field = ".".join(printable(str(part)) for part in path) or None
    bad_key = bool(path) and isinstance(path[-1], str) and has_unstorable(path[-1])
    what = f"the field name {field}" if bad_key else (field or "the value")
    raise ApiError([ApiErrorItem(
        code="invalid_characters",
        message=f"{what} contains a NUL character or a lone surrogate (\\u0000, \\ud800-\\udfff), which no text field accepts.",
        row=row, field=field,
    )])


class CSVParser(BaseParser):
    """``text/csv`` bodies are handed to the view as text (UTF-8, a BOM tolerated)."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ParseError(f"The CSV body is not UTF-8: {exc}", code="malformed_csv")
