"""The indicators workbook (Excel) and the CMI trend chart (SVG) of the admin dashboard."""
from __future__ import annotations

import io
from decimal import Decimal

from django.utils.html import escape
from django.utils.translation import gettext as _
from openpyxl import Workbook

from common.spreadsheet import formula_safe
from openpyxl.styles import Font

INDICATOR_LABELS = {
    "institution_code": "机构编码", "period": "期间", "cases": "病例数", "points": "点数", "cmi": "CMI",
    "cost_per_point": "每点费用", "time_index": "时间消耗指数", "cost_index": "费用消耗指数", "high_share": "高倍率占比",
    "low_share": "低倍率占比", "readmission_share": "再入院减半占比", "self_pay_share": "个人负担占比",
    "special_review_share": "特病单议占比", "transfer_share": "转院占比",
}


def safe_cell(value):
    """A spreadsheet cell value: text starting like a formula (= + - @) gets a leading apostrophe,
    control characters are dropped, numbers stay numbers."""
    if value is None:
        return None
    if isinstance(value, (int, Decimal)):
        return value
    text = "".join(ch for ch in str(value) if ch in "\t\n" or ch >= " ")
    return formula_safe(text)


def indicators_workbook(*, title: str, rows: list, names: dict[str, str]) -> bytes:
    """One sheet of the pool's indicators (every institution and period), with institution names."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "indicators"
    columns = list(INDICATOR_LABELS)
    sheet.append([safe_cell(title)])
    sheet.append([_("机构名称")] + [_(INDICATOR_LABELS[c]) for c in columns])
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in rows:
        code = row.institution_code
        sheet.append([safe_cell(names.get(code, _("统筹区合计") if code == "*" else ""))] + [safe_cell(getattr(row, c)) for c in columns])
    for row_cells in sheet.iter_rows(min_row=3):
        for cell in row_cells:
            if isinstance(cell.value, Decimal):
                cell.number_format = "0.0000"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


PALETTE = ("#1f6fb2", "#b26a00", "#2e7d32", "#b3261e", "#6a1b9a", "#00838f", "#5d4037", "#c2185b")


def cmi_trend_svg(*, series: dict[str, list[tuple[int, Decimal]]], pool: list[tuple[int, Decimal]], width: int = 640, height: int = 260) -> str:
    """Monthly CMI per institution (solid) and the pool (dashed, black), months 1–12 on x."""
    values = [v for points in [*series.values(), pool] for _, v in points if v is not None]
    if not values:
        return ""
    low, high = min(values), max(values)
    if low == high:
        low, high = low - Decimal("0.1"), high + Decimal("0.1")
    left, right, top, bottom = 44, 110, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom

    def xy(month: int, value: Decimal) -> str:
        x = left + (month - 1) * plot_w / 11
        y = top + float((high - value) / (high - low)) * plot_h
        return f"{x:.1f},{y:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{escape(_("CMI 月度趋势"))}">']
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>')
    for label_value in (low, (low + high) / 2, high):
        y = top + float((high - label_value) / (high - low)) * plot_h
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{label_value:.2f}</text>')
    for month in range(1, 13):
        x = left + (month - 1) * plot_w / 11
        parts.append(f'<text x="{x:.1f}" y="{height - 10}" font-size="10" text-anchor="middle">{month}</text>')
    lines = [(code, PALETTE[i % len(PALETTE)], pts, "") for i, (code, pts) in enumerate(sorted(series.items()))]
    lines.append((_("统筹区"), "#000", pool, ' stroke-dasharray="5,3"'))
    for i, (label, colour, pts, dash) in enumerate(lines):
        pts = [(m, v) for m, v in pts if v is not None]
        if not pts:
            continue
        coords = " ".join(xy(m, v) for m, v in pts)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6"{dash} points="{coords}"/>')
        parts.append(f'<text x="{width - right + 8}" y="{top + 12 + 13 * i}" font-size="11" fill="{colour}">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
