"""Render a payout for finance: incentives.csv (EXCHANGE.md) and a formatted Excel workbook. Every
text cell goes through common.spreadsheet.formula_safe (no payee code or name becomes a formula)."""
from __future__ import annotations

import csv
import io
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from django.utils import timezone

from common.precision import r2
from common.spreadsheet import formula_safe, formula_safe_row
from incentives.models import Payout
from incentives.selectors import payout_lines

CSV_COLUMNS = ("payee_code", "rule", "count", "amount")
MONEY_FORMAT = "#,##0.00"


def _money(value: Decimal) -> str:
    return f"{r2(value):.2f}"


def _local(moment):
    """Excel has no time zones: write aware datetimes as local wall-clock time."""
    return timezone.localtime(moment).replace(tzinfo=None) if moment else None


def payout_csv_text(*, payout: Payout) -> str:
    """incentives.csv: payee_code, rule, count, amount (2 decimals), sorted by payee then rule, CRLF."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    rows = payout.lines.order_by("payee_code", "rule_code").values_list("payee_code", "rule_code", "count", "amount")
    for payee_code, rule_code, count, amount in rows:
        writer.writerow([formula_safe(payee_code), formula_safe(rule_code), count, _money(amount)])
    return buffer.getvalue()


def payout_xlsx_bytes(*, payout: Payout) -> bytes:
    """A workbook with the lines (one sheet, totals row, money formats, frozen header, filter) and a
    summary sheet (who computed, approved, paid; totals; budget and pro rata)."""
    wb = Workbook()
    ws = wb.active
    ws.title = "lines 明细"
    header = [
        ("payee_code 收款方", 14),
        ("payee 名称", 30),
        ("rule 规则", 20),
        ("rule name 规则名称", 26),
        ("count 数量", 12),
        ("unit amount 单价", 14),
        ("rate 比例", 10),
        ("fees 费用基数", 14),
        ("gross 应计", 16),
        ("capped 封顶后", 16),
        ("amount 实付", 16),
        ("sources 来源记录数", 12),
    ]
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="DDEBF7")
    thin = Side(style="thin", color="999999")
    ws.append([title for title, _ in header])
    for index, (_, width) in enumerate(header, start=1):
        cell = ws.cell(row=1, column=index)
        cell.font, cell.fill = bold, fill
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        cell.border = Border(bottom=thin)
        ws.column_dimensions[get_column_letter(index)].width = width
    lines = list(payout_lines(payout=payout).defer(None))
    for line in lines:
        ws.append(
            formula_safe_row([
                line.payee_code,
                line.institution.name if line.institution_id else "健共体集团 group",
                line.rule_code,
                line.rule.name,
                line.count,
                line.unit_amount,
                line.rate,
                line.basis_amount,
                line.gross_amount,
                line.capped_amount,
                line.amount,
                len(line.source_ids),
            ])
        )
    last = ws.max_row
    total_row = last + 1
    ws.cell(row=total_row, column=1, value="合计 total").font = bold
    for column in (9, 10, 11):
        letter = get_column_letter(column)
        cell = ws.cell(row=total_row, column=column, value=f"=SUM({letter}2:{letter}{last})" if lines else 0)
        cell.font = bold
        cell.border = Border(top=thin)
    for row in ws.iter_rows(min_row=2, max_row=total_row):
        for cell in row[5:6] + row[7:11]:
            cell.number_format = MONEY_FORMAT
        row[6].number_format = "0.00%"
        row[4].number_format = "#,##0"
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(header))}{max(last, 1)}"

    summary = wb.create_sheet("summary 汇总")
    rows = [
        ("region 统筹区", f"{payout.region.code} {payout.region.name}"),
        ("year 年度", payout.year),
        ("status 状态", payout.get_status_display()),
        ("computed by 计算人", payout.computed_by.get_username()),
        ("computed at", _local(payout.computed_at)),
        ("approved by 审核人", payout.approved_by.get_username() if payout.approved_by_id else ""),
        ("approved at", _local(payout.approved_at)),
        ("paid at 支付时间", _local(payout.paid_at)),
        ("gross total 应计合计", payout.gross_total),
        ("capped total 封顶后合计", payout.capped_total),
        ("fiscal budget 财政预算", payout.budget_amount),
        ("pro-rated 按比例分配", "yes 是" if payout.prorated else "no 否"),
        ("total payable 实付合计", payout.total),
    ]
    for label, value in rows:
        summary.append([label, formula_safe(value)])
    for row in summary.iter_rows(min_row=1, max_row=summary.max_row):
        row[0].font = bold
        if isinstance(row[1].value, Decimal):
            row[1].number_format = MONEY_FORMAT
        elif row[1].value is not None and hasattr(row[1].value, "year") and not isinstance(row[1].value, int):
            row[1].number_format = "yyyy-mm-dd hh:mm"
    summary.column_dimensions["A"].width = 26
    summary.column_dimensions["B"].width = 30

    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
