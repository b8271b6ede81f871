"""Text a database or a spreadsheet cannot take, found before it gets there.

PostgreSQL refuses NUL (U+0000) in text and JSONB, and a lone surrogate (``"\\ud800"`` in JSON)
cannot be encoded as UTF-8 at all: either would otherwise surface as a server error deep in a
query. :func:`unstorable_text_path` walks a parsed JSON document (keys and values) and names the
first such string; :func:`printable` shows any string safely inside an error message. Identifiers
that hospitals' systems (HIS) issue — case_no, claim_no, patient_id, … — follow a stricter rule,
:func:`identifier_problem`.

Pure: stdlib only.
"""
from __future__ import annotations

import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Letters (any script, as HIS systems of Chinese hospitals may issue), digits and - _ . /
IDENTIFIER_PUNCTUATION = "-_./"
IDENTIFIER_PATTERN = r"[^\W_][\w\-./]*"  # whole value; \w is Unicode-aware (re), so letters of any script
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
FORMULA_LEADS = "=+-@"


def has_unstorable(text: str) -> bool:
    """True when ``text`` holds NUL or a lone surrogate."""
    return bool(_UNSTORABLE.search(text))


def printable(text: str, limit: int = 64) -> str:
    """``text`` cut to ``limit`` characters with NUL, control characters and lone surrogates shown as
    escapes (``\\x00``, ``\\ud800``): safe inside any error message, database row or JSON answer."""
    text = str(text)[:limit]
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def unstorable_text_path(value: Any, path: tuple = ()) -> tuple | None:
    """The path (keys and list indexes) to the first string — key or value — of a parsed JSON
    document that holds NUL or a lone surrogate; None when there is none. A bad key's path ends
    with the key itself."""
    if isinstance(value, str):
        return path if has_unstorable(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and has_unstorable(key):
                return (*path, key)
            found = unstorable_text_path(item, (*path, key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = unstorable_text_path(item, (*path, index))
            if found is not None:
                return found
    return None


def identifier_problem(text: str) -> str | None:
    """Why ``text`` is not an identifier as HIS systems issue them (letters, digits and ``-_./``,
    starting with a letter or digit), or None when it is one. Empty text is the caller's concern
    (a required value)."""
    if text == "":
        return None
    if not text.strip():
        return "is only whitespace"
    if _CONTROL.search(text):
        return "contains control characters (such as NUL, tab or line breaks)"
    if text[0] in FORMULA_LEADS:
        return f"starts with {text[0]!r} (identifiers start with a letter or digit; a spreadsheet would read it as a formula)"
    if not _IDENTIFIER.fullmatch(text):
        return "may hold only letters, digits and - _ . / (starting with a letter or digit)"
    return None


def storable_json(value: Any) -> Any:
    """A parsed JSON document with every string (key or value) passed through :func:`printable` when
    it holds NUL or a lone surrogate, so it can be stored as JSONB; other values unchanged."""
    if isinstance(value, str):
        return printable(value, limit=len(value)) if has_unstorable(value) else value
    if isinstance(value, dict):
        return {storable_json(k): storable_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable_json(v) for v in value]
    return value
