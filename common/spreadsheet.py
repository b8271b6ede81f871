"""The one guard against formula injection for every cell this project writes to Excel or CSV.

A spreadsheet reads a text cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab, carriage
return, line feed or NUL before one of them) as a formula: a hospital's case_no
``=cmd|' /C calc'!A0`` would become a live formula in the bureau's statement. Following the OWASP
CSV-injection guidance (and ASVS 1.2.10), such a text is written with a leading single quote,
which spreadsheets take as "this is text" and do not display. Every text is judged the same way
("-3" and "+86" too); amounts are written by the exporters as numbers or formatted number text and
never pass through here, so the exchange files' negative amounts stay as they are. The full-width
forms (＝＋－＠) are escaped as well: some East Asian spreadsheet settings convert them.

Pure: stdlib and pandas only (no Django), so the domain and the exports may both use it.
"""
from __future__ import annotations

import re
from typing import Any

import pandas as pd

FORMULA_LEADS = "=+-@\t\r\n\0＝＋－＠"
_RISKY = re.compile(f"^[{re.escape(FORMULA_LEADS)}]")
_RISKY_TEXT_PATTERN = f"^[{re.escape(FORMULA_LEADS)}]"


def formula_safe(value: Any) -> Any:
    """``value`` as it may be written to a spreadsheet cell: a text that a spreadsheet would read as
    a formula gets a leading ``'``; every other value (numbers, dates, None, harmless text) is
    returned unchanged. Pass texts, not amounts formatted as text."""
    if isinstance(value, str) and _RISKY.match(value):
        return "'" + value
    return value


def formula_safe_row(values) -> list:
    """:func:`formula_safe` of each value of a row."""
    return [formula_safe(v) for v in values]


def formula_safe_series(series: pd.Series) -> pd.Series:
    """:func:`formula_safe` of a whole text column, vectorised (case_points.csv has a row per case)."""
    text = series.astype(str)
    risky = text.str.match(_RISKY_TEXT_PATTERN)
    if not risky.any():
        return series
    return series.where(~risky, "'" + text)


def safe_cell_text(value: str) -> str:
    """:func:`formula_safe` for a text known to be a string (the admin's Excel export of any list)."""
    return formula_safe(value)
