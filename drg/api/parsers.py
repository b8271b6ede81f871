"""Request parsers: JSON with exact decimals, and CSV bodies."""
from __future__ import annotations

import json
from decimal import Decimal

from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser, JSONParser


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
            return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
        except ParseError:
            raise
        except (ValueError, UnicodeDecodeError, LookupError, RecursionError) as exc:
            raise ParseError(f"Malformed JSON: {exc}", code="malformed_json")


class CSVParser(BaseParser):
    """``text/csv`` bodies are handed to the view as text (UTF-8, a BOM tolerated)."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ParseError(f"The CSV body is not UTF-8: {exc}", code="malformed_csv")
