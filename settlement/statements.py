"""Statements (结算单) of a clearing run, per institution and per pool, as Excel and CSV; and the
year-end pack for finance (one workbook, every pool of the region and year, totals that add up).

Everything is read from the run's stored InstitutionLine rows, totals and parameters: a statement
shows what the run computed, never a recomputation. Every statement says whether its run is the
binding one of its period, a superseded one (and by which run) or a draft, and shows the earlier
settlements the run is net of (SETTLEMENT.md §6): the `settled_before` column, and, line by line,
`earlier_settlements()` — the Excel sheet and the admin run page render those rows, and any other
format (a PDF) renders the same rows. Every text cell goes through common.spreadsheet.formula_safe (a hospital's code or case_no that a
spreadsheet would read as a formula is written as text). Amounts are written as numbers with the
formats 0.00 (money) and 0.0000 (points, point values); CSV writes the same values as text with
exactly 2 or 4 decimals (UTF-8 with a BOM so that Excel opens the Chinese names correctly).
"""
from __future__ import annotations

from django.utils.translation import gettext_lazy as _
import csv
import io
import json
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Sequence

from django.utils import timezone
from django.utils.functional import Promise
from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from common.precision import r2, r4
from common.spreadsheet import formula_safe
from drg.models import Institution, Region
from settlement.choices import PAID_RUN_STATUSES, RESULT_RUN_STATUSES, RunKind, RunStatus
from settlement.models import ClearingRun, InstitutionLine
from settlement.selectors import run_case_results_frame

ZERO = Decimal("0")
MONEY_FORMAT = "0.00"
POINTS_FORMAT = "0.0000"
RATE_FORMAT = "0.00%"
TEXT, INT, POINTS, MONEY, RATE = "text", "int", "points", "money", "rate"


class StatementError(ValueError):
    """A statement cannot be produced as asked (no results, totals that do not add up, …)."""


@dataclass(frozen=True)
class Column:
    field: str
    header: str
    kind: str
    total: bool = False  # summed in a pool statement's total row


ANNUAL_COLUMNS: tuple[Column, ...] = (
    Column("institution_code", _("机构编码"), TEXT),
    Column("institution_name", _("机构名称"), TEXT),
    Column("case_count", _("病例数"), INT, True),
    Column("raw_points", _("原始点数"), POINTS, True),
    Column("penalty_points", _("扣减点数"), POINTS, True),
    Column("tcm_rate", _("中治率"), RATE),
    Column("uplift", _("上浮"), RATE),
    Column("points", _("结算点数"), POINTS, True),
    Column("point_value", _("点值"), POINTS),
    Column("gross_amount", _("点数金额"), MONEY, True),
    Column("self_pay", _("个人负担"), MONEY, True),
    Column("fund_payment", _("基金支付"), MONEY, True),
    Column("itemized_fund", _("按项目基金"), MONEY, True),
    Column("surplus", _("结余(+)/超支(−)"), MONEY, True),
    Column("prepaid", _("已预付"), MONEY, True),
    Column("withheld", _("质量保证金"), MONEY, True),
    Column("quality_score", _("考核得分"), MONEY),
    Column("quality_deduction", _("质量扣款"), MONEY, True),
    Column("settled_before", _("此前年度清算已结算"), MONEY, True),
    Column("balance", _("清算余额"), MONEY, True),
)

MONTHLY_COLUMNS: tuple[Column, ...] = (
    Column("institution_code", _("机构编码"), TEXT),
    Column("institution_name", _("机构名称"), TEXT),
    Column("case_count", _("病例数"), INT, True),
    Column("points", _("点数"), POINTS, True),
    Column("point_value", _("点值"), POINTS),
    Column("due", _("应付"), MONEY, True),
    Column("prepaid_to_date", _("累计预付"), MONEY, True),
    Column("settled_before", _("此前已预付"), MONEY, True),
    Column("prepay", _("本月预付"), MONEY, True),
    Column("withheld", _("质量保证金"), MONEY, True),
    Column("self_pay", _("个人负担"), MONEY, True),
    Column("itemized_fund", _("按项目基金"), MONEY, True),
)

CASE_COLUMNS: tuple[Column, ...] = (
    Column("case_no", _("病案号"), TEXT),
    Column("discharge_date", _("出院日期"), TEXT),
    Column("drg_code", _("病组"), TEXT),
    Column("valuation_group", _("计价病组"), TEXT),
    Column("category", _("类别"), TEXT),
    Column("coefficient", _("系数"), POINTS),
    Column("ratio", _("倍率"), POINTS),
    Column("base_points", _("基准点数"), POINTS),
    Column("points_before_readmission", _("点数(折前)"), POINTS),
    Column("readmission_halved", _("再入院减半"), TEXT),
    Column("points", _("点数"), POINTS, True),
)


def columns_of(run: ClearingRun) -> tuple[Column, ...]:
    return MONTHLY_COLUMNS if run.kind == RunKind.MONTHLY else ANNUAL_COLUMNS


# --- reads ---------------------------------------------------------------------------------------

def run_standing(run: ClearingRun) -> str:
    """Binding, superseded (by which run) or draft, as every statement says it."""
    if run.status == RunStatus.FINALIZED:
        return _("有效结算")
    if run.status == RunStatus.SUPERSEDED:
        successor = run.successor
        if successor is not None:
            return _("已被清算 #%(pk)s 取代，非有效结算") % {"pk": successor.pk}
        return _("已被后续清算取代，非有效结算")
    if run.status == RunStatus.DRAFT:
        return _("草稿，非最终")
    return run.get_status_display()


@dataclass(frozen=True)
class EarlierSettlement:
    """One amount an earlier finalized run of the pool-year paid an institution, which a run is net of:
    a monthly run's prepayment (for a monthly run) or an annual run's balance (for an annual run)."""

    run: ClearingRun
    institution_code: str
    institution_name: str
    amount: Decimal

    @property
    def standing(self) -> str:
        return run_standing(self.run)


def earlier_settlements(*, run: ClearingRun, institution: Institution | None = None) -> list[EarlierSettlement]:
    """The settlements `run` is net of, per earlier run and institution (Σ per institution is the
    line's `settled_before`): the finalized runs of the same kind it recorded when it was computed
    (`parameters["settled_runs"]`; runs computed before that was recorded: those finalized before it)."""
    recorded = (run.parameters or {}).get("settled_runs")
    earlier = ClearingRun.objects.filter(region_id=run.region_id, fund=run.fund, year=run.year, kind=run.kind, status__in=PAID_RUN_STATUSES)
    if recorded is not None:
        earlier = earlier.filter(pk__in=recorded)
    else:
        earlier = earlier.filter(finalized_at__lt=run.created_at)
    field = "prepay" if run.kind == RunKind.MONTHLY else "balance"
    lines = (
        InstitutionLine.objects.filter(run__in=earlier.exclude(pk=run.pk))
        .select_related("run__region", "run__superseded_by", "institution")
        .order_by("institution__code", "run__finalized_at", "run_id")
    )
    if institution is not None:
        lines = lines.filter(institution=institution)
    return [
        EarlierSettlement(run=line.run, institution_code=line.institution.code, institution_name=line.institution.name,
                          amount=getattr(line, field) or ZERO)
        for line in lines
    ]


EARLIER_COLUMNS: tuple[Column, ...] = (
    Column("institution_code", _("机构编码"), TEXT),
    Column("institution_name", _("机构名称"), TEXT),
    Column("run", _("清算批次"), TEXT),
    Column("period", _("期间"), TEXT),
    Column("finalized_at", _("定稿时间"), TEXT),
    Column("standing", _("状态"), TEXT),
    Column("amount", _("已结算金额"), MONEY, True),
)


def _earlier_rows(settlements: Sequence[EarlierSettlement]):
    for item in settlements:
        finalized = f"{timezone.localtime(item.run.finalized_at):%Y-%m-%d %H:%M}" if item.run.finalized_at else ""
        yield [item.institution_code, item.institution_name, f"#{item.run.pk}", period_label(item.run), finalized, item.standing, item.amount]


def statement_lines(*, run: ClearingRun, institution: Institution | None = None) -> list[InstitutionLine]:
    if run.status not in RESULT_RUN_STATUSES:
        raise StatementError(f"run #{run.pk} is {run.status}; it has no results yet")
    lines = run.lines.select_related("institution").order_by("institution__code")
    if institution is not None:
        lines = lines.filter(institution=institution)
    lines = list(lines)
    if institution is not None and not lines:
        raise StatementError(_("机构 %(institution)s 在 %(run)s 中没有结算行（本基金池无其计点病例）") % {"institution": f"{institution.code} {institution.name}", "run": run})
    return lines


def _value(line: InstitutionLine, field: str):
    if field == "institution_code":
        return line.institution.code
    if field == "institution_name":
        return line.institution.name
    return getattr(line, field)


def line_totals(lines: Sequence[InstitutionLine], columns: Sequence[Column]) -> dict[str, Decimal | int]:
    totals: dict[str, Decimal | int] = {}
    for column in columns:
        if column.total:
            totals[column.field] = sum((_value(line, column.field) or 0 for line in lines), 0 if column.kind == INT else ZERO)
    return totals


def check_conservation(*, run: ClearingRun, lines: Sequence[InstitutionLine]) -> Decimal:
    """Annual: Σ fund_payment must equal the distributed pool A, to the cent (SETTLEMENT.md §4)."""
    paid = sum((line.fund_payment or ZERO for line in lines), ZERO)
    if run.kind == RunKind.ANNUAL:
        distributed = Decimal(str(run.totals.get("distributed", "0")))
        if paid != distributed:
            raise StatementError(_("%(run)s：统筹支付合计 %(paid)s ≠ 可分配 %(distributed)s，不出具结算单") % {"run": run, "paid": paid, "distributed": distributed})
    return paid


def period_label(run: ClearingRun) -> str:
    if run.kind == RunKind.MONTHLY:
        return str(_("%(year)s 年 %(month)02d 月预付（1–%(month)s 月累计）") % {"year": run.year, "month": run.month})
    return str(_("%(year)s 年度清算") % {"year": run.year})


def statement_filename(*, run: ClearingRun, institution: Institution | None = None, ext: str) -> str:
    period = f"{run.year}-{run.month:02d}" if run.month else f"{run.year}"
    who = f"_{institution.code}" if institution is not None else ""
    return f"statement_{run.region.code}_{run.fund}_{period}_run{run.pk}{who}.{ext}"


def pool_inputs(run: ClearingRun) -> list[tuple[str, object, str]]:
    """The formulas' inputs of a run: (label, value, kind) rows for the second sheet."""
    totals, params = run.totals or {}, run.parameters or {}
    scheme = params.get("scheme", {})
    budget = params.get("budget", {})

    def dec(value):
        return None if value in (None, "") else Decimal(str(value))

    rows: list[tuple[str, object, str]] = [
        (_("统筹区"), f"{run.region.code} {run.region.name}", TEXT),
        (_("险种"), run.get_fund_display(), TEXT),
        (_("期间"), period_label(run), TEXT),
        (_("清算批次"), f"#{run.pk} ({run.get_status_display()})", TEXT),
        (_("状态"), run_standing(run), TEXT),
        (_("取代"), f"#{run.supersedes_id}" if run.supersedes_id else "—", TEXT),
        (_("发起"), str(run.started_by or "—"), TEXT),
        (_("定稿"), f"{run.finalized_by} {timezone.localtime(run.finalized_at):%Y-%m-%d %H:%M}" if run.finalized_by else "—", TEXT),
        (_("输入指纹"), run.fingerprint, TEXT),
        (_("预算修订"), budget.get("revision", "—"), TEXT),
        (_("总额"), dec(totals.get("total", budget.get("total"))), MONEY),
        (_("调剂金"), dec(totals.get("reserve", budget.get("reserve"))), MONEY),
        (_("门诊"), dec(totals.get("outpatient", budget.get("outpatient"))), MONEY),
        (_("住院"), dec(totals.get("inpatient", budget.get("inpatient"))), MONEY),
        (_("门诊特殊病按项目"), dec(totals.get("special_outpatient", params.get("itemized"))), MONEY),
    ]
    if run.kind == RunKind.ANNUAL:
        rows += [
            (_("B  DRG 预算 = 住院 − 门诊特殊病"), dec(totals.get("drg_budget")), MONEY),
            (_("F  基金按项目"), dec(totals.get("fund_claims")), MONEY),
            (_("S  个人负担"), dec(totals.get("self_pay")), MONEY),
            (_("P  点数"), dec(totals.get("points")), POINTS),
            (_("结余留用/超支分担"), dec(totals.get("banded")), MONEY),
            (_("调剂金支出"), dec(totals.get("from_reserve")), MONEY),
            (_("A  可分配"), dec(totals.get("distributed")), MONEY),
            (_("V  点值"), dec(totals.get("point_value")), POINTS),
            (_("V  精确值"), totals.get("point_value_exact", ""), TEXT),
        ]
    else:
        budget_to_date = dec(totals.get("budget_to_date"))
        fund_claims = dec(totals.get("fund_claims"))
        rows += [
            (_("B_m  预算至本月"), budget_to_date, MONEY),
            (_("F  基金按项目"), fund_claims, MONEY),
            (_("S  个人负担"), dec(totals.get("self_pay")), MONEY),
            (_("P  点数"), dec(totals.get("points")), POINTS),
            ("A  min(B_m, F)", min(budget_to_date, fund_claims) if budget_to_date is not None and fund_claims is not None else None, MONEY),
            (_("V_m  点值"), dec(totals.get("point_value")), POINTS),
            ("V_m  exact", totals.get("point_value_exact", ""), TEXT),
        ]
    rows += [
        (_("全部病例次均费用"), dec(scheme.get("all_case_avg_cost")), MONEY),
        (_("预付比例"), dec(scheme.get("prepay_ratio")), POINTS),
        (_("结余分档"), _tiers(scheme.get("surplus_tiers"), "hospital_share"), TEXT),
        (_("超支分档"), _tiers(scheme.get("overrun_tiers"), "fund_share"), TEXT),
        (_("中治率分档"), json.dumps(scheme.get("tcm_rate_tiers", []), ensure_ascii=False), TEXT),
        (_("高倍率分档"), json.dumps(scheme.get("high_outlier_tiers", []), ensure_ascii=False), TEXT),
        (_("低倍率界值"), dec(scheme.get("low_outlier_multiple")), POINTS),
        (_("再入院"), f"{scheme.get('readmission_days', '—')} / {scheme.get('readmission_factor', '—')}", TEXT),
    ]
    return rows


def _tiers(tiers, share_key: str) -> str:
    if not tiers:
        return "—"
    def pct(value) -> str:
        return format((Decimal(str(value)) * 100).normalize(), "f")

    parts = []
    for tier in tiers:
        upto = "∞" if tier.get("upto") is None else f"{pct(tier['upto'])}% B"
        parts.append(f"≤{upto}: {pct(tier.get(share_key, 0))}%")
    return "; ".join(parts)


# --- CSV -----------------------------------------------------------------------------------------

def _text(value, kind: str) -> str:
    if value is None:
        return ""
    if kind == MONEY:
        return str(r2(Decimal(value)))
    if kind == POINTS:
        return str(r4(Decimal(value)))
    if kind == RATE:
        return str(Decimal(value))
    if isinstance(value, bool):
        return "1" if value else "0"
    return formula_safe(str(value))


def statement_csv(*, run: ClearingRun, institution: Institution | None = None) -> bytes:
    """The run's lines (one institution's, or the whole pool's) as CSV text with a header row."""
    lines = statement_lines(run=run, institution=institution)
    if institution is None:
        check_conservation(run=run, lines=lines)
    columns = columns_of(run)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([c.field for c in columns])
    for line in lines:
        writer.writerow([_text(_value(line, c.field), c.kind) for c in columns])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


# --- Excel ---------------------------------------------------------------------------------------

HEADER_FONT = Font(bold=True, color="FFFFFF")
HEADER_FILL = PatternFill("solid", fgColor="1F4E79")
TITLE_FONT = Font(bold=True, size=13)
TOTAL_FONT = Font(bold=True)
TOTAL_BORDER = Border(top=Side(style="thin"), bottom=Side(style="double"))
NUMBER_FORMATS = {MONEY: MONEY_FORMAT, POINTS: POINTS_FORMAT, RATE: RATE_FORMAT, INT: "0"}


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in str(text))


def _cell_value(value, kind: str):
    if value is None:
        return None
    if isinstance(value, Promise):  # a translated label
        value = str(value)
    if kind in (MONEY, POINTS, RATE) and not isinstance(value, Decimal):
        return Decimal(str(value))
    if kind == TEXT and isinstance(value, bool):
        return str(_("是")) if value else ""
    return formula_safe(value)


def _write_table(ws, *, title: str, subtitle: str, columns: Sequence[Column], rows: Iterable[Sequence], totals: dict | None = None) -> None:
    """Title, subtitle, a styled header row (frozen), the rows, an optional total row; widths fitted."""
    ws.cell(row=1, column=1, value=formula_safe(str(title))).font = TITLE_FONT
    ws.cell(row=2, column=1, value=formula_safe(str(subtitle)))
    header_row = 3
    widths = [_display_width(str(c.header)) + 2 for c in columns]
    for index, column in enumerate(columns, start=1):
        cell = ws.cell(row=header_row, column=index, value=str(column.header))
        cell.font = HEADER_FONT
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    row_number = header_row
    for row in rows:
        row_number += 1
        for index, (column, value) in enumerate(zip(columns, row), start=1):
            cell = ws.cell(row=row_number, column=index, value=_cell_value(value, column.kind))
            if column.kind in NUMBER_FORMATS:
                cell.number_format = NUMBER_FORMATS[column.kind]
            widths[index - 1] = max(widths[index - 1], _display_width(_text(value, column.kind)) + 2)
    if totals is not None:
        row_number += 1
        ws.cell(row=row_number, column=1, value=str(_("合计"))).font = TOTAL_FONT
        for index, column in enumerate(columns, start=1):
            cell = ws.cell(row=row_number, column=index)
            cell.border = TOTAL_BORDER
            if column.field in totals:
                cell.value = _cell_value(totals[column.field], column.kind)
                cell.number_format = NUMBER_FORMATS.get(column.kind, "General")
                cell.font = TOTAL_FONT
    for index, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(index)].width = min(max(width, 8), 48)
    ws.row_dimensions[header_row].height = 32
    ws.freeze_panes = ws.cell(row=header_row + 1, column=3 if len(columns) > 3 else 1)


def _write_inputs(ws, run: ClearingRun, *, title: str | None = None, start_row: int = 1) -> int:
    ws.cell(row=start_row, column=1, value=str(title or _("清算批次 %(run)s 的计算参数") % {"run": run})).font = TITLE_FONT
    header = start_row + 1
    for index, text in enumerate((_("项目"), _("数值")), start=1):
        cell = ws.cell(row=header, column=index, value=str(text))
        cell.font = HEADER_FONT
        cell.fill = HEADER_FILL
    row = header
    for label, value, kind in pool_inputs(run):
        row += 1
        ws.cell(row=row, column=1, value=formula_safe(str(label)))
        cell = ws.cell(row=row, column=2, value=_cell_value(value, kind) if value is not None else "—")  # text: formula_safe
        if kind in NUMBER_FORMATS and value is not None:
            cell.number_format = NUMBER_FORMATS[kind]
    ws.column_dimensions["A"].width = 56
    ws.column_dimensions["B"].width = 64
    if start_row == 1:
        ws.freeze_panes = ws.cell(row=header + 1, column=1)
    return row


def _line_rows(lines: Sequence[InstitutionLine], columns: Sequence[Column]):
    for line in lines:
        yield [_value(line, c.field) for c in columns]


def _to_bytes(wb: Workbook) -> bytes:
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def statement_xlsx(*, run: ClearingRun, institution: Institution | None = None) -> bytes:
    """Excel statement: sheet 1 the lines (one institution or the pool, with a total row for the pool),
    sheet 2 the formulas' inputs; an institution's statement adds its cases' valuation on sheet 3."""
    lines = statement_lines(run=run, institution=institution)
    columns = columns_of(run)
    wb = Workbook()
    ws = wb.active
    ws.title = str(_("结算单"))
    who = f"{institution.code} {institution.name}" if institution is not None else _("全部机构")
    title = f"DRG点数付费结算单 · {run.region.name} · {run.get_fund_display()} · {period_label(run)}"
    subtitle = f"{who} · {_('清算')} #{run.pk} · {run_standing(run)}"
    totals = None
    if institution is None:
        check_conservation(run=run, lines=lines)
        totals = line_totals(lines, columns)
    _write_table(ws, title=title, subtitle=subtitle, columns=columns, rows=_line_rows(lines, columns), totals=totals)
    _write_inputs(wb.create_sheet(str(_("计算参数"))), run)
    earlier = earlier_settlements(run=run, institution=institution)
    _write_table(
        wb.create_sheet(str(_("此前结算"))),
        title=(_("此前已预付") if run.kind == RunKind.MONTHLY
               else _("此前年度清算")) + f" · {who}",
        subtitle=_("清算 #%(pk)s 扣除以下金额（即“此前已结算”列）；含已被取代的清算：已支付的都计入") % {"pk": run.pk}
        if earlier else _("清算 #%(pk)s：无（本年度同类第一次定稿的清算）") % {"pk": run.pk},
        columns=EARLIER_COLUMNS, rows=_earlier_rows(earlier), totals={"amount": sum((e.amount for e in earlier), ZERO)},
    )
    if institution is not None:
        results = run_case_results_frame(run=run, institution_id=institution.pk, with_case=True)
        results = results.sort_values("case_no", kind="stable")[
            ["case_no", "discharge_date", "drg_code", "valuation_group", "category", "coefficient",
             "ratio", "base_points", "points_before_readmission", "readmission_halved", "points"]
        ]
        rows = [[None if _is_missing(value) else value for value in row] for row in results.itertuples(index=False, name=None)]
        for row in rows:
            row[1] = row[1].isoformat() if row[1] else ""
            row[9] = bool(row[9])
        _write_table(
            wb.create_sheet(str(_("病例"))), title=f"{_('病例点数')} · {who}", subtitle=str(run),
            columns=CASE_COLUMNS, rows=rows, totals={"points": sum((r[-1] for r in rows), ZERO)},
        )
    return _to_bytes(wb)


# --- year-end pack -----------------------------------------------------------------------------

SUMMARY_COLUMNS: tuple[Column, ...] = (
    Column("fund", _("险种"), TEXT),
    Column("run", _("清算批次"), TEXT),
    Column("total", _("总额"), MONEY, True),
    Column("reserve", _("调剂金"), MONEY, True),
    Column("inpatient", _("住院"), MONEY, True),
    Column("special_outpatient", _("门诊特殊病"), MONEY, True),
    Column("drg_budget", "B DRG预算", MONEY, True),
    Column("fund_claims", "F 基金按项目", MONEY, True),
    Column("distributed", _("A 可分配"), MONEY, True),
    Column("from_reserve", _("调剂金支出"), MONEY, True),
    Column("point_value", "V 点值", POINTS),
    Column("fund_payment", _("Σ 基金支付"), MONEY, True),
    Column("prepaid", _("Σ 已预付"), MONEY, True),
    Column("quality_deduction", "Σ 质量扣款", MONEY, True),
    Column("settled_before", _("Σ 此前已结算"), MONEY, True),
    Column("balance", _("Σ 清算余额"), MONEY, True),
)


def year_end_runs(*, region: Region, year: int) -> dict[str, ClearingRun]:
    """fund -> the binding annual run of the region and year."""
    runs = (
        ClearingRun.objects.filter(region=region, year=year, kind=RunKind.ANNUAL, status=RunStatus.FINALIZED)
        .select_related("region", "started_by", "finalized_by")
        .order_by("fund", "finalized_at", "id")
    )
    latest: dict[str, ClearingRun] = {}
    for run in runs:
        latest[run.fund] = run
    return latest


def year_end_pack_xlsx(*, region: Region, year: int) -> bytes:
    """One workbook for finance: a summary of every pool of the year, each pool's institution lines with
    totals, the monthly prepayments, and the inputs. Only finalized annual runs; Σ fund_payment of each
    pool must equal its distributed amount (asserted: no pack is issued otherwise)."""
    runs = year_end_runs(region=region, year=year)
    if not runs:
        raise StatementError(f"region {region.code} has no finalized annual run for {year}; finalize the annual clearing first")
    wb = Workbook()
    summary = wb.active
    summary.title = str(_("汇总"))
    summary_rows = []
    for fund, run in sorted(runs.items()):
        lines = statement_lines(run=run)
        paid = check_conservation(run=run, lines=lines)
        assert paid == Decimal(str(run.totals["distributed"])), "Σ fund_payment must equal distributed"
        sums = line_totals(lines, ANNUAL_COLUMNS)
        totals = run.totals
        summary_rows.append([
            run.get_fund_display(), f"#{run.pk}", *(Decimal(str(totals.get(k, "0"))) for k in
            ("total", "reserve", "inpatient", "special_outpatient", "drg_budget", "fund_claims", "distributed", "from_reserve", "point_value")),
            paid, sums["prepaid"], sums["quality_deduction"], sums["settled_before"], sums["balance"],
        ])
        ws = wb.create_sheet(f"{run.get_fund_display()}{_('清算')}"[:31])
        _write_table(
            ws, title=f"{_('年度清算')} · {region.name} · {run.get_fund_display()} · {year}",
            subtitle=_("%(run)s · %(who)s 于 %(when)s 定稿 · 统筹支付合计 = 可分配 = %(paid)s") % {
                "run": run, "who": run.finalized_by, "when": f"{timezone.localtime(run.finalized_at):%Y-%m-%d}", "paid": f"{paid:,.2f}",
            },
            columns=ANNUAL_COLUMNS, rows=_line_rows(lines, ANNUAL_COLUMNS), totals=sums,
        )
        # every finalized monthly run counts, superseded ones included (a re-run prepays the difference)
        monthly_lines = (
            InstitutionLine.objects.filter(run__region=region, run__fund=fund, run__year=year, run__kind=RunKind.MONTHLY,
                                           run__status__in=PAID_RUN_STATUSES)
            .select_related("institution", "run")
        )
        months = sorted({line.run.month for line in monthly_lines})
        prepay_columns = (
            Column("institution_code", _("机构编码"), TEXT), Column("institution_name", _("机构名称"), TEXT),
            *(Column(f"m{m:02d}", f"{m:02d}{_('月预付')}", MONEY, True) for m in months), Column("sum", _("合计"), MONEY, True),
        )
        grid: dict[int, dict[str, Decimal]] = {}
        names: dict[int, tuple[str, str]] = {}
        for line in monthly_lines:
            names[line.institution_id] = (line.institution.code, line.institution.name)
            cells = grid.setdefault(line.institution_id, {})
            key = f"m{line.run.month:02d}"
            cells[key] = cells.get(key, ZERO) + (line.prepay or ZERO)
        prepay_rows = []
        for institution_id, (code, name) in sorted(names.items(), key=lambda kv: kv[1][0]):
            values = grid[institution_id]
            prepay_rows.append([code, name, *(values.get(f"m{m:02d}") for m in months), sum(values.values(), ZERO)])
        prepay_totals = {c.field: sum((row[i] or ZERO for row in prepay_rows), ZERO) for i, c in enumerate(prepay_columns) if c.total}
        _write_table(
            wb.create_sheet(f"{run.get_fund_display()}{_('月度预付')}"[:31]),
            title=f"{_('月度预付')} · {run.get_fund_display()} · {year}",
            subtitle=_("已定稿的月度清算，含重新清算（补差）；年度清算以其合计作为已预付扣除"),
            columns=prepay_columns, rows=prepay_rows, totals=prepay_totals,
        )
        _write_inputs(wb.create_sheet(f"{run.get_fund_display()}{_('参数')}"[:31]), run)
    fund_labels = dict(ClearingRun._meta.get_field("fund").choices)
    missing = sorted(set(fund_labels) - set(runs))
    subtitle = str(_("仅含已定稿的年度清算 · 由已存储的清算结果生成"))
    if missing:
        subtitle += " · " + _("未定稿，未纳入：%(funds)s") % {"funds": "、".join(str(fund_labels[f]) for f in missing)}
    _write_table(
        summary, title=f"{_('年终结算汇总')} · {region.code} {region.name} · {year}", subtitle=subtitle,
        columns=SUMMARY_COLUMNS, rows=summary_rows,
        totals={c.field: sum((row[i] for row in summary_rows), ZERO) for i, c in enumerate(SUMMARY_COLUMNS) if c.total},
    )
    return _to_bytes(wb)


def year_end_pack_filename(*, region: Region, year: int) -> str:
    return f"year_end_pack_{region.code}_{year}.xlsx"


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)
