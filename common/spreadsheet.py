"""Writing officer-facing spreadsheets safely: text that a spreadsheet would read as a formula is
escaped (OWASP CSV/formula injection): a cell starting with = + - @, a tab or a carriage return gets a
leading apostrophe-free single quote character so Excel and LibreOffice show it as text."""
from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell_text(value: str) -> str:
    """'=HYPERLINK(…)' -> "'=HYPERLINK(…)"; ordinary text unchanged. Numbers are never passed here."""
    if value and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
