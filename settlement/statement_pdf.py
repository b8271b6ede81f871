"""Printable PDF statements (结算单) of a clearing run: one A4 page per institution, in Chinese, with
the institution's line, the pool's totals, the run's inputs fingerprint and a signature/seal area.

Built with reportlab and its built-in CJK CID font STSong-Light (Adobe's Song typeface, referenced by
name and rendered by the PDF reader): no font file is shipped or needed on the server, and the text
stays selectable and searchable. WeasyPrint was not chosen because it needs Pango from the OS.
The numbers are the run's stored lines and totals (settlement.statements reads them), never a
recomputation.
"""
from __future__ import annotations

import io
from decimal import Decimal
from typing import Sequence

from django.utils import timezone
from django.utils.translation import gettext as _
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from drg.models import Institution
from settlement import statements
from settlement.choices import RunStatus
from settlement.models import ClearingRun, InstitutionLine

FONT = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(FONT))

TITLE = ParagraphStyle("title", fontName=FONT, fontSize=16, leading=22, alignment=TA_CENTER, spaceAfter=4)
SUB = ParagraphStyle("sub", fontName=FONT, fontSize=9.5, leading=13, alignment=TA_CENTER, textColor=colors.HexColor("#444444"))
BODY = ParagraphStyle("body", fontName=FONT, fontSize=10, leading=14)
SMALL = ParagraphStyle("small", fontName=FONT, fontSize=8, leading=11, textColor=colors.HexColor("#555555"))


def _text(value, kind: str) -> str:
    if value is None or value == "":
        return "—"
    if kind == statements.MONEY:
        return f"{Decimal(value):,.2f}"
    if kind == statements.POINTS:
        return f"{Decimal(value):,.4f}"
    if kind == statements.RATE:
        return f"{Decimal(value):.2%}"
    if kind == statements.INT:
        return f"{int(value):,}"
    return str(value)


def _grid(rows: Sequence[Sequence[str]], widths: Sequence[float], *, header: bool = False) -> Table:
    table = Table([[Paragraph(str(cell), BODY) for cell in row] for row in rows], colWidths=widths)
    style = [
        ("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#999999")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#f0f3f7")),
        ("BACKGROUND", (2, 0), (2, -1), colors.HexColor("#f0f3f7")),
    ]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde5ef")))
    table.setStyle(TableStyle(style))
    return table


def _institution_page(run: ClearingRun, line: InstitutionLine) -> list:
    institution = line.institution
    columns = [c for c in statements.columns_of(run) if c.field not in ("institution_code", "institution_name")]
    pairs = [(str(c.header), _text(statements._value(line, c.field), c.kind)) for c in columns]
    if len(pairs) % 2:
        pairs.append(("", ""))
    rows = [[a, b, c, d] for (a, b), (c, d) in zip(pairs[0::2], pairs[1::2])]
    totals = run.totals or {}
    pool_rows = [
        (_("DRG 预算 B") if "drg_budget" in totals else _("预算至本月 B_m"), _text(totals.get("drg_budget", totals.get("budget_to_date")), statements.MONEY)),
        (_("基金按项目 F"), _text(totals.get("fund_claims"), statements.MONEY)),
        (_("可分配 A"), _text(totals.get("distributed"), statements.MONEY)) if "distributed" in totals else (_("点数 P"), _text(totals.get("points"), statements.POINTS)),
        (_("点值 V"), _text(totals.get("point_value"), statements.POINTS)),
    ]
    pool_grid = [[a, b, c, d] for (a, b), (c, d) in zip(pool_rows[0::2], pool_rows[1::2])]
    finalized = (
        _("%(who)s 于 %(when)s 定稿") % {"who": run.finalized_by, "when": f"{timezone.localtime(run.finalized_at):%Y-%m-%d %H:%M}"}
        if run.status == RunStatus.FINALIZED and run.finalized_at else _("草稿，非最终")
    )
    money_key = "fund_payment" if run.kind == "annual" else "prepay"
    amount = getattr(line, money_key, None)
    width = A4[0] - 36 * mm
    return [
        Paragraph(_("DRG 点数付费结算单"), TITLE),
        Paragraph(f"{run.region.code} {run.region.name} · {run.get_fund_display()} · {statements.period_label(run)}", SUB),
        Spacer(1, 6 * mm),
        _grid([
            [_("定点医疗机构"), f"{institution.code} {institution.name}", _("清算批次"), f"{run}（{run.get_status_display()}）"],
            [_("病例数"), f"{line.case_count:,}", _("状态"), finalized],
            [_("统筹支付") if money_key == "fund_payment" else _("本月预付"), _text(amount, statements.MONEY) + " " + _("元"),
             _("清算差额") if money_key == "fund_payment" else _("暂扣"),
             _text(line.balance if money_key == "fund_payment" else line.withheld, statements.MONEY) + " " + _("元")],
        ], [width * 0.17, width * 0.33, width * 0.17, width * 0.33]),
        Spacer(1, 5 * mm),
        Paragraph(_("机构结算明细"), BODY),
        Spacer(1, 2 * mm),
        _grid(rows, [width * 0.22, width * 0.28, width * 0.22, width * 0.28]),
        Spacer(1, 5 * mm),
        Paragraph(_("基金池合计"), BODY),
        Spacer(1, 2 * mm),
        _grid(pool_grid, [width * 0.22, width * 0.28, width * 0.22, width * 0.28]),
        Spacer(1, 4 * mm),
        Paragraph(_("输入指纹（可复现校验）：%(fingerprint)s") % {"fingerprint": run.fingerprint or "—"}, SMALL),
        Paragraph(_("金额单位：元；点数、点值保留 4 位小数。本结算单数据取自清算批次存档，不作重新计算。"), SMALL),
        Spacer(1, 12 * mm),
        _signature_area(width),
    ]


def _signature_area(width: float) -> Table:
    rows = [
        [_("经办人（签字）："), "", _("审核人（签字）："), ""],
        [_("医保经办机构（盖章）"), "", _("定点医疗机构确认（盖章）"), ""],
        [_("日期：    年    月    日"), "", _("日期：    年    月    日"), ""],
    ]
    table = Table([[Paragraph(cell, BODY) for cell in row] for row in rows], colWidths=[width * 0.25, width * 0.25] * 2,
                  rowHeights=[14 * mm, 30 * mm, 10 * mm])
    table.setStyle(TableStyle([
        ("LINEBELOW", (1, 0), (1, 0), 0.5, colors.black), ("LINEBELOW", (3, 0), (3, 0), 0.5, colors.black),
        ("BOX", (0, 1), (1, 1), 0.5, colors.HexColor("#999999")), ("BOX", (2, 1), (3, 1), 0.5, colors.HexColor("#999999")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]))
    return table


def statement_pdf(*, run: ClearingRun, institution: Institution | None = None) -> bytes:
    """One page per institution (one institution, or every institution of the run)."""
    lines = statements.statement_lines(run=run, institution=institution)
    if institution is None:
        statements.check_conservation(run=run, lines=lines)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm, bottomMargin=16 * mm,
        title=str(_("DRG 点数付费结算单")), author=f"{run.region.name}", subject=f"{run}",
    )
    story: list = []
    for index, line in enumerate(lines):
        if index:
            story.append(PageBreak())
        story.extend(_institution_page(run, line))
    doc.build(story)
    return buffer.getvalue()
