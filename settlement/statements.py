"""Statements (结算单) of a clearing run, per institution and per pool, as Excel and CSV; and the
year-end pack for finance (one workbook, every pool of the region and year, totals that add up).

Everything is read from the run's stored InstitutionLine rows, totals and parameters: a statement
shows what the run computed, never a recomputation. Every statement says whether its run is the
binding one of its period, a superseded one (and by which run) or a draft, and shows the earlier
settlements the run is net of (SETTLEMENT.md §6): the `settled_before` column, and, line by line,
`earlier_settlements()` — the Excel sheet and the admin run page render those rows, and any other
format (a PDF) renders the same rows. Amounts are written as numbers with the
formats 0.00 (money) and 0.0000 (points, point values); CSV writes the same values as text with
exactly 2 or 4 decimals (UTF-8 with a BOM so that Excel opens the Chinese names correctly).
"""
from __future__ import annotations

import csv
import io
import json
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Sequence

from django.utils import timezone
from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from common.precision import r2, r4
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
    Column("institution_code", "机构编码 code", TEXT),
    Column("institution_name", "机构名称 institution", TEXT),
    Column("case_count", "病例数 cases", INT, True),
    Column("raw_points", "原始点数 raw points", POINTS, True),
    Column("penalty_points", "扣减点数 penalty", POINTS, True),
    Column("tcm_rate", "中治率 TCM rate", RATE),
    Column("uplift", "上浮 uplift", RATE),
    Column("points", "结算点数 points", POINTS, True),
    Column("point_value", "点值 point value", POINTS),
    Column("gross_amount", "点数金额 gross", MONEY, True),
    Column("self_pay", "个人负担 self pay", MONEY, True),
    Column("fund_payment", "基金支付 fund payment", MONEY, True),
    Column("itemized_fund", "按项目基金 itemized fund", MONEY, True),
    Column("surplus", "结余(+)/超支(−) surplus", MONEY, True),
    Column("prepaid", "已预付 prepaid", MONEY, True),
    Column("withheld", "质量保证金 withheld", MONEY, True),
    Column("quality_score", "考核得分 score", MONEY),
    Column("quality_deduction", "质量扣款 quality deduction", MONEY, True),
    Column("settled_before", "此前年度清算已结算 settled before", MONEY, True),
    Column("balance", "清算余额 balance (+pay / −recover)", MONEY, True),
)

MONTHLY_COLUMNS: tuple[Column, ...] = (
    Column("institution_code", "机构编码 code", TEXT),
    Column("institution_name", "机构名称 institution", TEXT),
    Column("case_count", "病例数 cases (YTD)", INT, True),
    Column("points", "点数 points (YTD)", POINTS, True),
    Column("point_value", "点值 point value", POINTS),
    Column("due", "应付 due (YTD)", MONEY, True),
    Column("prepaid_to_date", "累计预付 prepaid to date", MONEY, True),
    Column("settled_before", "此前已预付 prepaid before", MONEY, True),
    Column("prepay", "本月预付 prepay this month", MONEY, True),
    Column("withheld", "质量保证金 withheld (YTD)", MONEY, True),
    Column("self_pay", "个人负担 self pay", MONEY, True),
    Column("itemized_fund", "按项目基金 itemized fund", MONEY, True),
)

CASE_COLUMNS: tuple[Column, ...] = (
    Column("case_no", "病案号 case_no", TEXT),
    Column("discharge_date", "出院日期 discharged", TEXT),
    Column("drg_code", "病组 DRG", TEXT),
    Column("valuation_group", "计价病组 valued as", TEXT),
    Column("category", "类别 category", TEXT),
    Column("coefficient", "系数 coefficient", POINTS),
    Column("ratio", "倍率 ratio", POINTS),
    Column("base_points", "基准点数 base", POINTS),
    Column("points_before_readmission", "点数(折前) before readmission", POINTS),
    Column("readmission_halved", "再入院减半 halved", TEXT),
    Column("points", "点数 points", POINTS, True),
)


def columns_of(run: ClearingRun) -> tuple[Column, ...]:
    return MONTHLY_COLUMNS if run.kind == RunKind.MONTHLY else ANNUAL_COLUMNS


# --- reads ---------------------------------------------------------------------------------------

def run_standing(run: ClearingRun) -> str:
    """Binding, superseded (by which run) or draft, as every statement says it."""
    if run.status == RunStatus.FINALIZED:
        return "有效结算 binding"
    if run.status == RunStatus.SUPERSEDED:
        successor = run.successor
        by = f"run #{successor.pk}" if successor is not None else "a later run"
        return f"已被 {by} 取代，非有效结算 SUPERSEDED by {by}, not binding"
    if run.status == RunStatus.DRAFT:
        return "草稿，非最终 DRAFT, not final"
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
    Column("institution_code", "机构编码 code", TEXT),
    Column("institution_name", "机构名称 institution", TEXT),
    Column("run", "清算批次 run", TEXT),
    Column("period", "期间 period", TEXT),
    Column("finalized_at", "定稿时间 finalized", TEXT),
    Column("standing", "状态 standing", TEXT),
    Column("amount", "已结算金额 amount settled", MONEY, True),
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
        raise StatementError(f"institution {institution.code} has no line in run #{run.pk} (no valued cases in the pool)")
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
            raise StatementError(f"run #{run.pk}: Σ fund payments {paid} ≠ distributed {distributed}; the statement is not issued")
    return paid


def period_label(run: ClearingRun) -> str:
    if run.kind == RunKind.MONTHLY:
        return f"{run.year}-{run.month:02d} 月度预付 monthly (1–{run.month})"
    return f"{run.year} 年度清算 annual"


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
        ("统筹区 region", f"{run.region.code} {run.region.name}", TEXT),
        ("险种 fund", run.get_fund_display(), TEXT),
        ("期间 period", period_label(run), TEXT),
        ("清算批次 run", f"#{run.pk} ({run.get_status_display()})", TEXT),
        ("状态 standing", run_standing(run), TEXT),
        ("取代 supersedes", f"#{run.supersedes_id}" if run.supersedes_id else "—", TEXT),
        ("发起 started by", str(run.started_by or "—"), TEXT),
        ("定稿 finalized by", f"{run.finalized_by} {timezone.localtime(run.finalized_at):%Y-%m-%d %H:%M}" if run.finalized_by else "—", TEXT),
        ("输入指纹 inputs fingerprint", run.fingerprint, TEXT),
        ("预算修订 budget revision", budget.get("revision", "—"), TEXT),
        ("总额 total budget", dec(totals.get("total", budget.get("total"))), MONEY),
        ("调剂金 reserve", dec(totals.get("reserve", budget.get("reserve"))), MONEY),
        ("门诊 outpatient", dec(totals.get("outpatient", budget.get("outpatient"))), MONEY),
        ("住院 inpatient", dec(totals.get("inpatient", budget.get("inpatient"))), MONEY),
        ("门诊特殊病按项目 special outpatient itemized", dec(totals.get("special_outpatient", params.get("itemized"))), MONEY),
    ]
    if run.kind == RunKind.ANNUAL:
        rows += [
            ("B  DRG预算 drg budget = inpatient − itemized", dec(totals.get("drg_budget")), MONEY),
            ("F  基金按项目 fund claims Σ(total − self pay)", dec(totals.get("fund_claims")), MONEY),
            ("S  个人负担 self pay Σ", dec(totals.get("self_pay")), MONEY),
            ("P  点数 points Σ", dec(totals.get("points")), POINTS),
            ("结余留用/超支分担 banded (retained surplus or fund share)", dec(totals.get("banded")), MONEY),
            ("调剂金支出 from reserve", dec(totals.get("from_reserve")), MONEY),
            ("A  可分配 distributed", dec(totals.get("distributed")), MONEY),
            ("V  点值 point value = (A + S) / P", dec(totals.get("point_value")), POINTS),
            ("V  exact", totals.get("point_value_exact", ""), TEXT),
        ]
    else:
        budget_to_date = dec(totals.get("budget_to_date"))
        fund_claims = dec(totals.get("fund_claims"))
        rows += [
            ("B_m  预算至本月 budget to date = r2(inpatient × m/12) − itemized", budget_to_date, MONEY),
            ("F  基金按项目 fund claims (YTD)", fund_claims, MONEY),
            ("S  个人负担 self pay (YTD)", dec(totals.get("self_pay")), MONEY),
            ("P  点数 points (YTD)", dec(totals.get("points")), POINTS),
            ("A  min(B_m, F)", min(budget_to_date, fund_claims) if budget_to_date is not None and fund_claims is not None else None, MONEY),
            ("V_m  点值 point value = (min(B_m, F) + S) / P", dec(totals.get("point_value")), POINTS),
            ("V_m  exact", totals.get("point_value_exact", ""), TEXT),
        ]
    rows += [
        ("全部病例次均费用 A (all-case average cost)", dec(scheme.get("all_case_avg_cost")), MONEY),
        ("预付比例 prepay ratio", dec(scheme.get("prepay_ratio")), POINTS),
        ("结余分档 surplus tiers", _tiers(scheme.get("surplus_tiers"), "hospital_share"), TEXT),
        ("超支分档 overrun tiers", _tiers(scheme.get("overrun_tiers"), "fund_share"), TEXT),
        ("中治率分档 TCM rate tiers", json.dumps(scheme.get("tcm_rate_tiers", []), ensure_ascii=False), TEXT),
        ("高倍率分档 high-outlier tiers", json.dumps(scheme.get("high_outlier_tiers", []), ensure_ascii=False), TEXT),
        ("低倍率界值 low-outlier multiple", dec(scheme.get("low_outlier_multiple")), POINTS),
        ("再入院 readmission days / factor", f"{scheme.get('readmission_days', '—')} / {scheme.get('readmission_factor', '—')}", TEXT),
    ]
    return rows


def _tiers(tiers, share_key: str) -> str:
    if not tiers:
        return "—"
    def pct(value) -> str:
        return format((Decimal(str(value)) * 100).normalize(), "f")

    parts = []
    for tier in tiers:
        upto = "∞" if tier.get("upto") is None else f"{pct(tier['upto'])}% of B"
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
    return str(value)


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
    if kind in (MONEY, POINTS, RATE) and not isinstance(value, Decimal):
        return Decimal(str(value))
    if kind == TEXT and isinstance(value, bool):
        return "是 yes" if value else ""
    return value


def _write_table(ws, *, title: str, subtitle: str, columns: Sequence[Column], rows: Iterable[Sequence], totals: dict | None = None) -> None:
    """Title, subtitle, a styled header row (frozen), the rows, an optional total row; widths fitted."""
    ws.cell(row=1, column=1, value=title).font = TITLE_FONT
    ws.cell(row=2, column=1, value=subtitle)
    header_row = 3
    widths = [_display_width(c.header) + 2 for c in columns]
    for index, column in enumerate(columns, start=1):
        cell = ws.cell(row=header_row, column=index, value=column.header)
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
        ws.cell(row=row_number, column=1, value="合计 Total").font = TOTAL_FONT
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
    ws.cell(row=start_row, column=1, value=title or f"计算参数 Inputs of run #{run.pk}").font = TITLE_FONT
    header = start_row + 1
    for index, text in enumerate(("项目 item", "数值 value"), start=1):
        cell = ws.cell(row=header, column=index, value=text)
        cell.font = HEADER_FONT
        cell.fill = HEADER_FILL
    row = header
    for label, value, kind in pool_inputs(run):
        row += 1
        ws.cell(row=row, column=1, value=label)
        cell = ws.cell(row=row, column=2, value=_cell_value(value, kind) if value is not None else "—")
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
    ws.title = "结算单 Statement"
    who = f"{institution.code} {institution.name}" if institution is not None else "全部机构 all institutions"
    title = f"DRG点数付费结算单 · {run.region.name} · {run.get_fund_display()} · {period_label(run)}"
    subtitle = f"{who} · run #{run.pk} · {run_standing(run)}"
    totals = None
    if institution is None:
        check_conservation(run=run, lines=lines)
        totals = line_totals(lines, columns)
    _write_table(ws, title=title, subtitle=subtitle, columns=columns, rows=_line_rows(lines, columns), totals=totals)
    _write_inputs(wb.create_sheet("计算参数 Inputs"), run)
    earlier = earlier_settlements(run=run, institution=institution)
    _write_table(
        wb.create_sheet("此前结算 Earlier settlements"),
        title=("此前已预付 Prepayments already made this year" if run.kind == RunKind.MONTHLY
               else "此前年度清算 Annual balances already settled this year") + f" · {who}",
        subtitle=f"run #{run.pk} is net of these (the settled_before column); superseded runs included: whatever was paid counts"
        if earlier else f"run #{run.pk}: none (the first finalized run of its kind this year)",
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
            wb.create_sheet("病例 Cases"), title=f"病例点数 Case points · {who}", subtitle=f"run #{run.pk}",
            columns=CASE_COLUMNS, rows=rows, totals={"points": sum((r[-1] for r in rows), ZERO)},
        )
    return _to_bytes(wb)


# --- year-end pack -----------------------------------------------------------------------------

SUMMARY_COLUMNS: tuple[Column, ...] = (
    Column("fund", "险种 fund", TEXT),
    Column("run", "清算批次 run", TEXT),
    Column("total", "总额 total", MONEY, True),
    Column("reserve", "调剂金 reserve", MONEY, True),
    Column("inpatient", "住院 inpatient", MONEY, True),
    Column("special_outpatient", "门诊特殊病 itemized", MONEY, True),
    Column("drg_budget", "B DRG预算", MONEY, True),
    Column("fund_claims", "F 基金按项目", MONEY, True),
    Column("distributed", "A 可分配 distributed", MONEY, True),
    Column("from_reserve", "调剂金支出 from reserve", MONEY, True),
    Column("point_value", "V 点值", POINTS),
    Column("fund_payment", "Σ 基金支付 fund payment", MONEY, True),
    Column("prepaid", "Σ 已预付 prepaid", MONEY, True),
    Column("quality_deduction", "Σ 质量扣款", MONEY, True),
    Column("settled_before", "Σ 此前已结算 settled before", MONEY, True),
    Column("balance", "Σ 清算余额 balance", MONEY, True),
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
    summary.title = "汇总 Summary"
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
        ws = wb.create_sheet(f"{fund} 清算 clearing"[:31])
        _write_table(
            ws, title=f"年度清算 Annual clearing · {region.name} · {run.get_fund_display()} · {year}",
            subtitle=f"run #{run.pk} · finalized by {run.finalized_by} {timezone.localtime(run.finalized_at):%Y-%m-%d} · Σ fund payment = distributed = {paid}",
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
            Column("institution_code", "机构编码 code", TEXT), Column("institution_name", "机构名称 institution", TEXT),
            *(Column(f"m{m:02d}", f"{m:02d}月 prepay", MONEY, True) for m in months), Column("sum", "合计 Σ", MONEY, True),
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
            wb.create_sheet(f"{fund} 月度预付 prepay"[:31]),
            title=f"月度预付 Monthly prepayments · {run.get_fund_display()} · {year}",
            subtitle="finalized monthly runs, re-runs (补差) included; the annual clearing deducts their sum as prepaid",
            columns=prepay_columns, rows=prepay_rows, totals=prepay_totals,
        )
        _write_inputs(wb.create_sheet(f"{fund} 参数 inputs"[:31]), run)
    missing = sorted({c for c, _ in ClearingRun._meta.get_field("fund").choices} - set(runs))
    subtitle = "finalized annual runs only · generated from the stored run results"
    if missing:
        subtitle += f" · not finalized, not included: {', '.join(missing)}"
    _write_table(
        summary, title=f"年终结算汇总 Year-end pack · {region.code} {region.name} · {year}", subtitle=subtitle,
        columns=SUMMARY_COLUMNS, rows=summary_rows,
        totals={c.field: sum((row[i] for row in summary_rows), ZERO) for i, c in enumerate(SUMMARY_COLUMNS) if c.total},
    )
    return _to_bytes(wb)


def year_end_pack_filename(*, region: Region, year: int) -> str:
    return f"year_end_pack_{region.code}_{year}.xlsx"


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)
