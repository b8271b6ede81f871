"""Custom admin pages for the clearing cockpit: the pool page (budget against claims, points and point
value month by month, as server-rendered SVG charts) and the run comparison (per institution: what
changed since the previous run of the same pool and period kind, and why).

Reads only. The charts are inline SVG drawn here (no JavaScript library, no CDN). Money and points
stay Decimal; floats appear only as pixel coordinates of the drawing.
"""
from __future__ import annotations

from django.utils.translation import gettext_lazy as _
import datetime as dt
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, Sum
from django.db.models.functions import ExtractMonth
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from budget.choices import BudgetStatus
from budget.models import Budget
from common.models import ReviewStatus
from common.precision import r2, r4
from drg.choices import Fund
from drg.choices import RevisionStatus
from drg.models import Case, CaseCorrection, CorrectionRequest, ParameterRevision, Region, SpecialReview
from settlement import selectors
from settlement.choices import RESULT_RUN_STATUSES, RunKind, RunStatus
from settlement.domain import results as results_blocks
from settlement.domain.clearing import monthly_budget
from settlement.models import ClearingRun, Evaluation, InstitutionLine, ItemizedClaim, PointAdjustment

ZERO = Decimal("0")
MONTHS = range(1, 13)
RESULT_STATUSES = RESULT_RUN_STATUSES


# --- extension point: panels of the apps above settlement on the pool page ------------------------

#: Callables `(request, region, fund, year) -> SafeString | None`, registered by the apps above
#: settlement (planning's forecast panel) so that settlement never imports them.
POOL_PAGE_PANELS: list = []


def register_pool_panel(panel):
    """Add a panel to the pool page (used as a decorator by the apps above settlement)."""
    if panel not in POOL_PAGE_PANELS:
        POOL_PAGE_PANELS.append(panel)
    return panel


def _pool_panels(request, region, fund: str, year: int) -> list:
    return [html for html in (panel(request, region, fund, year) for panel in POOL_PAGE_PANELS) if html]


# --- SVG charts ----------------------------------------------------------------------------------

@dataclass
class Series:
    name: str
    values: list[Decimal | None]  # one per x label; None = no data
    colour: str
    kind: str = "line"  # line | bar | dashed
    show_values: bool = False


def _nice_step(span: float) -> float:
    raw = span / 5 if span > 0 else 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        if raw <= multiple * magnitude:
            return multiple * magnitude
    return 10 * magnitude


def _tick_label(value: float, decimals: int) -> str:
    if abs(value) >= 10_000:
        return str(_("%(n)s万") % {"n": f"{value / 10_000:,.1f}"})
    return f"{value:,.{decimals}f}"


def svg_chart(*, title: str, x_labels: list[str], series: list[Series], width: int = 760, height: int = 280,
              value_decimals: int = 0, y_from_zero: bool = True) -> SafeString:
    """A small line/bar chart as inline SVG. Every label is escaped."""
    left, right, top, bottom = 70, 16, 34, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    present = [float(v) for s in series for v in s.values if v is not None]  # pixel geometry only
    if not present:
        return format_html(
            '<svg class="drg-chart" role="img" aria-label="{0}" width="{1}" height="60" xmlns="http://www.w3.org/2000/svg">'
            '<text x="8" y="20" font-weight="bold">{0}</text><text x="8" y="44" fill="#777">{2}</text></svg>',
            title, width, _("暂无数据"),
        )
    low = min(0.0, min(present)) if y_from_zero else min(present)
    high = max(present)
    if high == low:
        high = low + (abs(low) or 1.0)
    step = _nice_step(high - low)
    low = step * int(low // step)
    high_tick = step * -int(-high // step)
    if high_tick <= high:
        high_tick += step
    if any(s.show_values for s in series):  # room for the value labels above the peaks and below the dips
        if (high_tick - high) < 0.12 * (high_tick - low):
            high_tick += step
        if not y_from_zero and (min(present) - low) < 0.12 * (high_tick - low):
            low -= step
    span = high_tick - low
    n = len(x_labels)
    slot = plot_w / max(n, 1)

    def x_at(i: int) -> float:
        return left + slot * (i + 0.5)

    def y_at(v: float) -> float:
        return top + plot_h - (v - low) / span * plot_h

    parts = [
        f'<svg class="drg-chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    tick = low
    while tick <= high_tick + step / 1000:
        y = y_at(tick)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{escape(_tick_label(tick, value_decimals if step < 1 else 0))}</text>')
        tick += step
    parts.append(f'<line x1="{left}" y1="{y_at(max(low, 0.0)):.1f}" x2="{width - right}" y2="{y_at(max(low, 0.0)):.1f}" stroke="#999"/>')
    for i, label in enumerate(x_labels):
        parts.append(f'<text x="{x_at(i):.1f}" y="{top + plot_h + 16}" text-anchor="middle" fill="#555">{escape(label)}</text>')
    labels: list[str] = []  # value labels, drawn last so that no line crosses them
    halo = 'stroke="#fff" stroke-width="3" paint-order="stroke"'
    bars = [s for s in series if s.kind == "bar"]
    bar_w = slot * 0.7 / max(len(bars), 1)
    for b, s in enumerate(bars):
        for i, v in enumerate(s.values):
            if v is None:
                continue
            x = x_at(i) - slot * 0.35 + b * bar_w
            y0, y1 = y_at(max(low, 0.0)), y_at(float(v))
            parts.append(
                f'<rect x="{x:.1f}" y="{min(y0, y1):.1f}" width="{bar_w:.1f}" height="{abs(y0 - y1):.1f}" fill="{s.colour}">'
                f'<title>{escape(s.name)} {escape(x_labels[i])}: {escape(_fmt(v, value_decimals))}</title></rect>'
            )
            if s.show_values:
                labels.append(
                    f'<text x="{x + bar_w / 2:.1f}" y="{min(y0, y1) - 4:.1f}" text-anchor="middle" fill="{s.colour}" {halo}>'
                    f'{escape(_fmt(v, value_decimals))}</text>'
                )
    for s in series:
        if s.kind == "bar":
            continue
        points = [(x_at(i), y_at(float(v)), v, i) for i, v in enumerate(s.values) if v is not None]
        if not points:
            continue
        dash = ' stroke-dasharray="6 4"' if s.kind == "dashed" else ""
        path = " ".join(f"{'M' if k == 0 else 'L'}{x:.1f},{y:.1f}" for k, (x, y, _, _) in enumerate(points))
        parts.append(f'<path d="{path}" fill="none" stroke="{s.colour}" stroke-width="2"{dash}/>')
        for k, (x, y, v, i) in enumerate(points):
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{s.colour}"><title>{escape(s.name)} {escape(x_labels[i])}: '
                f'{escape(_fmt(v, value_decimals))}</title></circle>'
            )
            if s.show_values:
                # Above a peak, below a dip, so that neighbouring labels do not run into each other.
                neighbours = [points[j][2] for j in (k - 1, k + 1) if 0 <= j < len(points)]
                below = bool(neighbours) and v < sum(neighbours) / len(neighbours)
                label_y = y + 16 if below else y - 7
                labels.append(
                    f'<text x="{x:.1f}" y="{label_y:.1f}" text-anchor="middle" fill="{s.colour}" {halo}>{escape(_fmt(v, value_decimals))}</text>'
                )
    parts.extend(labels)
    legend_x = left
    for s in series:
        legend_dash = ' stroke-dasharray="4 3"' if s.kind == "dashed" else ""
        swatch = (
            f'<rect x="{legend_x}" y="{height - 14}" width="12" height="8" fill="{s.colour}"/>' if s.kind == "bar"
            else f'<line x1="{legend_x}" y1="{height - 10}" x2="{legend_x + 14}" y2="{height - 10}" stroke="{s.colour}" stroke-width="2"{legend_dash}/>'
        )
        parts.append(swatch)
        parts.append(f'<text x="{legend_x + 18}" y="{height - 6}">{escape(s.name)}</text>')
        legend_x += 30 + 7 * len(s.name) + 6 * sum(1 for ch in s.name if ord(ch) > 0x2E80)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every dynamic text above is escaped


def _fmt(value, decimals: int) -> str:
    return f"{Decimal(value):,.{decimals}f}"


# --- pool overview (reads) -----------------------------------------------------------------------

@dataclass
class MonthRow:
    month: int
    cases: int = 0
    total_cost: Decimal = ZERO
    self_pay: Decimal = ZERO
    fund_claims: Decimal = ZERO  # F: Σ (total_cost − self_pay)
    itemized: Decimal = ZERO  # approved special-outpatient itemized of the month
    budget_to_date: Decimal | None = None  # r2(inpatient × m/12) − itemized to date
    claims_to_date: Decimal = ZERO
    points: Decimal | None = None
    run: ClearingRun | None = None
    point_value: Decimal | None = None

    def cells(self) -> list[str]:
        """The row as the pool page shows it (money 2 places, points and point values 4)."""
        return [
            f"{self.month:02d}", f"{self.cases:,}", money_text(self.total_cost), money_text(self.self_pay),
            money_text(self.fund_claims), money_text(self.claims_to_date), money_text(self.itemized),
            money_text(self.budget_to_date), points(self.points), points(self.point_value),
        ]


@dataclass
class PoolOverview:
    region: Region
    fund: str
    year: int
    budget: Budget | None
    draft_budget: Budget | None
    months: list[MonthRow]
    points_run: ClearingRun | None
    annual_run: ClearingRun | None
    runs: list[ClearingRun]
    last_month: int
    itemized_to_date: Decimal = ZERO
    fund_claims_to_date: Decimal = ZERO
    projected_claims: Decimal | None = None
    projected_ratio: Decimal | None = None  # projected (F + itemized) / inpatient
    warnings: list[str] = field(default_factory=list)


def _best_run(runs: list[ClearingRun]) -> ClearingRun | None:
    """The run that stands for a period: its binding run (finalized, not superseded), else the latest draft."""
    finalized = [r for r in runs if r.status == RunStatus.FINALIZED]
    pool = finalized or [r for r in runs if r.status == RunStatus.DRAFT]
    return max(pool, key=lambda r: (r.created_at, r.pk)) if pool else None


def pool_overview(*, region: Region, fund: str, year: int) -> PoolOverview:
    budget = (
        Budget.objects.filter(region=region, fund=fund, year=year, status=BudgetStatus.APPROVED).order_by("-revision").first()
    )
    draft = Budget.objects.filter(region=region, fund=fund, year=year, status=BudgetStatus.DRAFT).first()
    rows = {m: MonthRow(month=m) for m in MONTHS}
    case_rows = (
        Case.objects.filter(region=region, fund=fund, discharge_date__gte=dt.date(year, 1, 1), discharge_date__lt=dt.date(year + 1, 1, 1))
        .annotate(m=ExtractMonth("discharge_date"))
        .values("m")
        .annotate(n=Count("id"), total=Sum("total_cost"), self_pay=Sum("self_pay"))
        .order_by("m")
    )
    for row in case_rows:
        target = rows[row["m"]]
        target.cases = row["n"]
        target.total_cost = row["total"] or ZERO
        target.self_pay = row["self_pay"] or ZERO
        target.fund_claims = target.total_cost - target.self_pay
    itemized_rows = (
        ItemizedClaim.objects.filter(region=region, fund=fund, status=ReviewStatus.APPROVED, month__year=year)
        .annotate(m=ExtractMonth("month"))
        .values("m")
        .annotate(s=Sum("approved_amount"))
    )
    for row in itemized_rows:
        rows[row["m"]].itemized = row["s"] or ZERO

    runs = list(
        ClearingRun.objects.filter(region=region, fund=fund, year=year)
        .select_related("started_by", "finalized_by", "superseded_by")
        .order_by("-created_at", "-id")
    )
    monthly_by_month: dict[int, list[ClearingRun]] = {}
    annual_runs: list[ClearingRun] = []
    for run in runs:
        if run.kind == RunKind.MONTHLY:
            monthly_by_month.setdefault(run.month, []).append(run)
        else:
            annual_runs.append(run)
    annual = _best_run(annual_runs)

    itemized_cum = ZERO
    claims_cum = ZERO
    for m in MONTHS:
        row = rows[m]
        itemized_cum += row.itemized
        claims_cum += row.fund_claims
        row.claims_to_date = claims_cum
        if budget is not None:
            row.budget_to_date = monthly_budget(inpatient=budget.inpatient, month=m, itemized_to_date=itemized_cum)
        row.run = _best_run(monthly_by_month.get(m, []))
        if row.run is not None and row.run.totals.get("point_value"):
            row.point_value = Decimal(str(row.run.totals["point_value"]))

    # Points by discharge month, from the run that covers most of the year.
    points_run = annual or next((rows[m].run for m in reversed(MONTHS) if rows[m].run is not None), None)
    if points_run is not None:
        for m, points in selectors.run_points_by_discharge_month(run=points_run).items():
            rows[m].points = points

    last_month = max((m for m in MONTHS if rows[m].cases or rows[m].itemized), default=0)
    overview = PoolOverview(
        region=region, fund=fund, year=year, budget=budget, draft_budget=draft, months=[rows[m] for m in MONTHS],
        points_run=points_run, annual_run=annual, runs=runs[:20], last_month=last_month,
        itemized_to_date=itemized_cum, fund_claims_to_date=claims_cum,
    )
    if budget is None:
        overview.warnings.append(_("此基金池尚无已批准预算"))
    elif last_month:
        spent = sum((rows[m].fund_claims + rows[m].itemized for m in MONTHS if m <= last_month), ZERO)
        overview.projected_claims = r2(Fraction(spent) * 12 / last_month)
        if budget.inpatient:
            overview.projected_ratio = r4(Fraction(overview.projected_claims) / Fraction(budget.inpatient))
            if overview.projected_claims > budget.inpatient:
                over = overview.projected_claims - budget.inpatient
                overview.warnings.append(
                    _("超支预警：按 1–%(last)s 月的进度，全年基金按项目申报加按项目付费将达 %(projected)s，"
                      "超出住院预算 %(budget)s 共 %(over)s（%(share)s）。") % {
                        "last": last_month, "projected": f"{overview.projected_claims:,.2f}", "over": f"{over:,.2f}",
                        "share": f"{r4(Fraction(over) / Fraction(budget.inpatient)):.2%}", "budget": f"{budget.inpatient:,.2f}",
                    }
                )
    return overview


def pool_charts(overview: PoolOverview, *, width: int = 620) -> list[SafeString]:
    """Budget against claims, the point value month by month, points by discharge month (in that order:
    the page sets them side by side when the screen is wide enough)."""
    labels = [f"{m:02d}" for m in MONTHS]
    rows = overview.months
    upto = overview.last_month or 12
    annual_value = overview.annual_run.totals.get("point_value") if overview.annual_run else None
    return [
        svg_chart(
            title=_("预算与基金按项目费用（累计，元）"),
            x_labels=labels,
            series=[
                Series(_("DRG 预算（至本月）"), [r.budget_to_date for r in rows], "#1f6fb2", "dashed"),
                Series(_("基金按项目"), [r.claims_to_date if r.month <= upto else None for r in rows], "#c0392b"),
                Series(_("门诊特殊病"), [r.itemized or None for r in rows], "#e0a100", "bar", show_values=True),
            ],
            width=width,
        ),
        svg_chart(
            title=_("点值（月度预付，元/点）"),
            x_labels=labels,
            series=[
                Series(_("月度点值"), [r.point_value for r in rows], "#6a1b9a", show_values=True),
                *(
                    [Series(_("年度点值 %(value)s（#%(run)s）") % {"value": points(annual_value), "run": overview.annual_run.pk}, [Decimal(str(annual_value))] * 12, "#999", "dashed")]
                    if annual_value else []
                ),
            ],
            value_decimals=4,
            y_from_zero=False,
            width=width,
        ),
        svg_chart(
            title=_("点数（按出院月）") + (f" · #{overview.points_run.pk}" if overview.points_run else ""),
            x_labels=labels,
            series=[Series(_("点数"), [r.points for r in rows], "#2e7d32", "bar")],
            width=width,
        ),
    ]


# --- run comparison ------------------------------------------------------------------------------

def previous_run(run: ClearingRun) -> ClearingRun | None:
    """The run to compare with: the previous run of the same pool, kind and period; for a monthly run
    with none, the run that stands for the month before (finalized first)."""
    same = (
        ClearingRun.objects.filter(region_id=run.region_id, fund=run.fund, year=run.year, kind=run.kind, month=run.month, status__in=RESULT_STATUSES)
        .filter(Q(created_at__lt=run.created_at) | Q(created_at=run.created_at, pk__lt=run.pk))
        .order_by("-created_at", "-id")
        .first()
    )
    if same is not None or run.kind != RunKind.MONTHLY or run.month == 1:
        return same
    earlier = list(
        ClearingRun.objects.filter(region_id=run.region_id, fund=run.fund, year=run.year, kind=RunKind.MONTHLY, month=run.month - 1, status__in=RESULT_STATUSES)
    )
    return _best_run(earlier)


def comparable_runs(run: ClearingRun) -> list[ClearingRun]:
    """Every other run of the pool with results, monthly and annual alike (an annual run against the
    December prepayment shows what the clearing changed)."""
    return list(
        ClearingRun.objects.filter(region_id=run.region_id, fund=run.fund, year=run.year, status__in=RESULT_STATUSES)
        .exclude(pk=run.pk)
        .select_related("region")
        .order_by("kind", "month", "-created_at", "-id")
    )


@dataclass
class CompareRow:
    code: str
    name: str
    before: InstitutionLine | None
    after: InstitutionLine | None
    cells: list[tuple[str, str, str, str]]  # (label, before, after, delta)
    why: list[str]


def _d(value) -> Decimal | None:
    return None if value is None else Decimal(value)


def _delta(before, after, places: int) -> str:
    if before is None or after is None:
        return ""
    diff = Decimal(after) - Decimal(before)
    if diff == 0:
        return "0"
    return f"{diff:+,.{places}f}"


def _pct(value) -> str:
    return "—" if value is None else f"{Decimal(value):.2%}"


def compare_runs(*, run: ClearingRun, baseline: ClearingRun | None) -> tuple[list[CompareRow], list[tuple[str, str, str, str]]]:
    """Per institution: points, point value, payment and their differences, with a 'why' column."""
    money_field = "fund_payment" if run.kind == RunKind.ANNUAL else "due"
    corrected = corrections_between(run=run, baseline=baseline)
    after = {line.institution_id: line for line in run.lines.select_related("institution")}
    before = {line.institution_id: line for line in baseline.lines.select_related("institution")} if baseline else {}
    rows: list[CompareRow] = []
    for institution_id in sorted(set(after) | set(before), key=lambda k: (after.get(k) or before.get(k)).institution.code):
        a, b = after.get(institution_id), before.get(institution_id)
        inst = (a or b).institution
        cells = []
        for label, name, places in (
            (_("点数"), "points", 4), (_("点值"), "point_value", 4),
            (_("基金支付") if money_field == "fund_payment" else _("应付"), money_field, 2),
            *(((_("清算余额"), "balance", 2),) if run.kind == RunKind.ANNUAL else ((_("本月预付"), "prepay", 2),)),
        ):
            old = _d(getattr(b, name, None)) if b else None
            new = _d(getattr(a, name, None)) if a else None
            fmt = points if places == 4 else money_text
            cells.append((label, fmt(old), fmt(new), _delta(old, new, places)))
        why: list[str] = []
        if b is None:
            why.append(_("新进入清算"))
        elif a is None:
            why.append(_("不在本次清算"))
        else:
            if a.case_count != b.case_count:
                why.append(_("病例数 %(before)s→%(after)s（%(diff)s）") % {"before": f"{b.case_count:,}", "after": f"{a.case_count:,}", "diff": f"{a.case_count - b.case_count:+,d}"})
            if corrected.get(institution_id):
                why.append(_("对比批次之后病例更正 %(n)s 例") % {"n": corrected[institution_id]})
            if a.itemized_fund != b.itemized_fund:
                why.append(_("按项目统筹支付 %(diff)s") % {"diff": f"{a.itemized_fund - b.itemized_fund:+,.2f}"})
            if a.raw_points != b.raw_points and a.case_count == b.case_count:
                why.append(_("原始点数 %(diff)s（更正或计点变化）") % {"diff": f"{a.raw_points - b.raw_points:+,.4f}"})
            if (a.penalty_points or ZERO) != (b.penalty_points or ZERO):
                why.append(_("扣点 %(before)s→%(after)s") % {"before": f"{b.penalty_points:,.4f}", "after": f"{a.penalty_points:,.4f}"})
            if (a.uplift or ZERO) != (b.uplift or ZERO):
                why.append(_("中治率上浮 %(before)s→%(after)s") % {"before": _pct(b.uplift), "after": _pct(a.uplift)})
            if a.point_value != b.point_value:
                why.append(_("基金池点值 %(diff)s") % {"diff": f"{a.point_value - b.point_value:+,.4f}"})
            if run.kind == RunKind.ANNUAL and a.quality_score != b.quality_score:
                why.append(_("考核得分 %(before)s→%(after)s") % {"before": b.quality_score, "after": a.quality_score})
            if run.kind == RunKind.ANNUAL and a.prepaid != b.prepaid:
                why.append(_("已预付 %(before)s→%(after)s") % {"before": money_text(b.prepaid), "after": money_text(a.prepaid)})
        rows.append(CompareRow(code=inst.code, name=inst.name, before=b, after=a, cells=cells, why=why))
    keys = (
        ("drg_budget", _("B DRG 预算"), 2), ("fund_claims", _("F 基金按项目"), 2), ("self_pay", _("S 个人负担"), 2),
        ("points", _("P 点数"), 4), ("distributed", _("A 可分配"), 2), ("point_value", _("V 点值"), 4),
    ) if run.kind == RunKind.ANNUAL else (
        ("budget_to_date", _("B_m 预算至本月"), 2), ("fund_claims", _("F 基金按项目"), 2), ("self_pay", _("S 个人负担"), 2),
        ("points", _("P 点数"), 4), ("point_value", _("V_m 点值"), 4),
    )
    pool_rows = []
    for key, label, places in keys:
        old = _d(baseline.totals.get(key)) if baseline and baseline.totals.get(key) is not None else None
        new = _d(run.totals.get(key)) if run.totals.get(key) is not None else None
        fmt = points if places == 4 else money_text
        pool_rows.append((label, fmt(old), fmt(new), _delta(old, new, places)))
    pool_rows.append((_("病例数"), f"{baseline.case_count:,}" if baseline else "—", f"{run.case_count:,}", _delta(baseline.case_count if baseline else None, run.case_count, 0)))
    return rows, pool_rows


def corrections_between(*, run: ClearingRun, baseline: ClearingRun | None) -> dict[int, int]:
    """institution id -> number of case corrections of the run's period recorded between the two runs."""
    if baseline is None:
        return {}
    low, high = sorted((baseline.created_at, run.created_at))
    start = dt.date(run.year, 1, 1)
    end = dt.date(run.year + 1, 1, 1) if run.month in (None, 12) else dt.date(run.year, run.month + 1, 1)
    rows = (
        CaseCorrection.objects.filter(
            case__region_id=run.region_id, case__fund=run.fund, case__discharge_date__gte=start, case__discharge_date__lt=end,
            changed_at__gt=low, changed_at__lte=high,
        )
        .values("case__institution_id")
        .annotate(n=Count("id"))
    )
    return {row["case__institution_id"]: row["n"] for row in rows}


# A run's stored totals, in the order and with the labels of SETTLEMENT.md (unknown keys last, as stored).
TOTAL_LABELS = {
    "total": _("总额"), "reserve": _("调剂金"), "outpatient": _("门诊"), "inpatient": _("住院"),
    "special_outpatient": _("门诊特殊病"), "drg_budget": _("B DRG 预算"), "budget_to_date": _("B_m 预算至本月"),
    "fund_claims": _("F 基金按项目"), "self_pay": _("S 个人负担"), "points": _("P 点数"), "banded": _("结余留用·超支分担"),
    "from_reserve": _("动用调剂金"), "distributed": _("A 可分配"), "point_value": _("V 点值"),
}
POINT_KEYS = ("points", "point_value")


BUDGET_KEYS = ("total", "reserve", "outpatient", "inpatient")


def totals_rows(totals: dict, *, same_as: Budget | None = None) -> list[tuple[str, str]]:
    """(label, text) for each total; with `same_as`, the budget lines equal to that budget's are left
    out (the page shows them already)."""
    keys = [k for k in TOTAL_LABELS if k in totals] + sorted(k for k in totals if k not in TOTAL_LABELS and k != "point_value_exact")
    if same_as is not None:
        keys = [k for k in keys if not (k in BUDGET_KEYS and _same(totals[k], getattr(same_as, k)))]
    rows = []
    for key in keys:
        value = totals[key]
        try:
            text = points(value) if key in POINT_KEYS else money_text(value)
        except (ArithmeticError, TypeError, ValueError):  # not a number (a note, a fraction): shown as stored
            text = str(value)
        rows.append((str(TOTAL_LABELS.get(key, key)), text))
    return rows


def _same(stored, value) -> bool:
    try:
        return Decimal(str(stored)) == value
    except ArithmeticError:
        return False


def money_text(value) -> str:
    return "—" if value is None else f"{Decimal(value):,.2f}"


def points(value) -> str:
    return "—" if value is None else f"{Decimal(value):,.4f}"


# --- views (wired in settlement/admin.py: ClearingRunAdmin.get_urls) ------------------------------

def pool_view(model_admin, request, region_id: int, fund: str, year: int):
    user = request.user
    if not (user.has_perm("settlement.view_clearingrun") or user.has_perm("budget.view_budget")):
        raise PermissionDenied
    if fund not in Fund.values:
        raise Http404(_("未知险种"))
    region = get_object_or_404(Region, pk=region_id)
    overview = pool_overview(region=region, fund=fund, year=year)
    budget = overview.budget
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("基金池 %(region)s · %(fund)s · %(year)s") % {"region": f"{region.code} {region.name}", "fund": Fund(fund).label, "year": year},
        "opts": ClearingRun._meta,
        "overview": overview,
        "charts": pool_charts(overview),
        "panels": _pool_panels(request, region, fund, year),
        "fund_label": Fund(fund).label,
        "budget_lines": [] if budget is None else [
            (label, money_text(value)) for label, value in (
                (_("总额"), budget.total), (_("调剂金"), budget.reserve), (_("门诊"), budget.outpatient),
                (_("住院"), budget.inpatient), (_("基层倾斜"), budget.primary_care_earmark),
            )
        ],
        "against": [] if budget is None else [
            (str(label), money_text(value)) for label, value in (
                (_("门诊特殊病按项目（累计）"), overview.itemized_to_date),
                (_("DRG 预算 B = 住院 − 门诊特殊病"), budget.inpatient - overview.itemized_to_date),
                (_("基金按项目 F（1–%(month)s 月）") % {"month": overview.last_month or 0}, overview.fund_claims_to_date),
                (_("全年预测"), overview.projected_claims),
            )
        ] + ([(str(_("预测 ÷ 住院预算")), f"{overview.projected_ratio:.1%}")] if overview.projected_ratio is not None else []),
        "annual_totals": [] if overview.annual_run is None else totals_rows(overview.annual_run.totals, same_as=budget),
        "switch_funds": [(Fund(f).label, reverse("admin:settlement_pool", args=[region.pk, f, year])) for f in Fund.values if f != fund],
        "switch_years": [(y, reverse("admin:settlement_pool", args=[region.pk, fund, y])) for y in (year - 1, year + 1)],
        "runs_url": reverse("admin:settlement_clearingrun_changelist") + f"?region__id__exact={region.pk}&fund__exact={fund}&year={year}",
        "budget_url": reverse("admin:budget_budget_change", args=[budget.pk]) if budget else None,
        "budgets_url": reverse("admin:budget_budget_changelist") + f"?region__id__exact={region.pk}&fund__exact={fund}&year={year}",
        "start_url": (reverse("admin:settlement_clearingrun_add") + f"?region={region.pk}&fund={fund}&year={year}")
        if user.has_perm("settlement.start_clearingrun") else None,
    }
    return TemplateResponse(request, "admin/settlement/pool.html", context)


def compare_view(model_admin, request, object_id):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    run = get_object_or_404(ClearingRun.objects.select_related("region"), pk=object_id)
    choices = comparable_runs(run)
    baseline = None
    against = request.GET.get("against")
    if against:
        baseline = next((r for r in choices if str(r.pk) == against), None)
    if baseline is None:
        baseline = previous_run(run)
    rows, pool_rows = compare_runs(run=run, baseline=baseline) if run.status in RESULT_STATUSES else ([], [])
    context = {
        **model_admin.admin_site.each_context(request),
        "title": (_("对比 %(run)s 与 %(baseline)s") % {"run": run, "baseline": baseline}) if baseline else (_("对比 %(run)s（无更早批次）") % {"run": run}),
        "opts": ClearingRun._meta,
        "run": run,
        "baseline": baseline,
        "choices": choices,
        "rows": rows,
        "pool_rows": pool_rows,
        "headers": [label for label, *_ in rows[0].cells] if rows else [],
        "run_url": reverse("admin:settlement_clearingrun_change", args=[run.pk]),
        "baseline_url": reverse("admin:settlement_clearingrun_change", args=[baseline.pk]) if baseline else None,
        "pool_url": reverse("admin:settlement_pool", args=[run.region_id, run.fund, run.year]),
    }
    return TemplateResponse(request, "admin/settlement/compare.html", context)


# --- the cockpit on the admin index ----------------------------------------------------------------

def cockpit_context(request) -> dict:
    """What waits for the bureau today: review queues with counts, runs awaiting finalization, and the
    pools of this year and last (budget, latest run, pool page). Shown above the app list."""
    user = request.user
    queues = []
    overdue_before = timezone.now() - dt.timedelta(days=settings.REVIEW_OVERDUE_DAYS)
    for perm, model, status, label in (
        ("budget.view_budget", Budget, BudgetStatus.DRAFT, _("待批预算")),
        ("drg.view_parameterrevision", ParameterRevision, RevisionStatus.DRAFT, _("待批参数修订")),
        ("drg.view_specialreview", SpecialReview, ReviewStatus.SUBMITTED, _("特病单议")),
        ("settlement.view_itemizedclaim", ItemizedClaim, ReviewStatus.SUBMITTED, _("门诊特殊病")),
        ("drg.view_correctionrequest", CorrectionRequest, ReviewStatus.SUBMITTED, _("病例更正")),
        ("settlement.view_pointadjustment", PointAdjustment, "draft", _("违规扣点")),
        ("settlement.view_evaluation", Evaluation, "draft", _("考核评价")),
        ("settlement.view_clearingrun", ClearingRun, RunStatus.DRAFT, _("待定稿清算")),
        ("settlement.view_clearingrun", ClearingRun, RunStatus.FAILED, _("失败清算")),
    ):
        if user.has_perm(perm):
            opts = model._meta
            pending = model.objects.filter(status=status)
            url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist") + f"?status__exact={status}"
            if model is ClearingRun and status == RunStatus.FAILED:  # acknowledged failures wait for no one
                pending = pending.filter(acknowledged_at__isnull=True)
                url += "&acknowledged=no"
            count = pending.count()
            queues.append({"label": label, "count": count, "url": url})
    pools = []
    if user.has_perm("budget.view_budget") or user.has_perm("settlement.view_clearingrun"):
        year = timezone.localdate().year
        years = (year, year - 1)
        latest_runs: dict[tuple, ClearingRun] = {}
        for run in ClearingRun.objects.filter(year__in=years).order_by("-created_at", "-id").only(
            "id", "region_id", "fund", "year", "month", "kind", "status", "created_at", "totals"
        ):
            latest_runs.setdefault((run.region_id, run.fund, run.year), run)
        seen = set()
        for budget in Budget.objects.filter(year__in=years).select_related("region").order_by("-year", "region__code", "fund", "-revision"):
            key = (budget.region_id, budget.fund, budget.year)
            if key in seen:
                continue
            seen.add(key)
            run = latest_runs.get(key)
            pools.append({
                "label": f"{budget.region.name} · {budget.get_fund_display()} · {budget.year}",
                "budget": _("第 %(revision)s 版 %(status)s · %(total)s") % {"revision": budget.revision, "status": budget.get_status_display(), "total": money_text(budget.total)},
                "run": None if run is None else f"{run} · {run.get_status_display()}",
                "run_url": None if run is None else reverse("admin:settlement_clearingrun_change", args=[run.pk]),
                "url": reverse("admin:settlement_pool", args=[budget.region_id, budget.fund, budget.year]),
            })
    return {"cockpit_queues": queues, "cockpit_pools": pools}


# --- a run's stored progress, timings and parameters, as an officer reads them ----------------------

PROGRESS_PATTERNS = (
    (re.compile(r"^queued$"), _("排队中")),
    (re.compile(r"^loading inputs$"), _("读取输入")),
    (re.compile(r"^valuing (?P<n>\d+) cases in (?P<k>\d+) chunks$"), _("分 %(k)s 块计点 %(n)s 例病例")),
    (re.compile(r"^valuing (?P<n>\d+) cases$"), _("计点 %(n)s 例病例")),
    (re.compile(r"^clearing$"), _("清算")),
    (re.compile(r"^storing (?P<n>\d+) case results$"), _("保存 %(n)s 条病例结果")),
    (re.compile(r"^done$"), _("完成")),
    (re.compile(r"^failed$"), _("失败")),
)

STAGE_LABELS = {
    "load": _("读取"), "value": _("计点"), "clear": _("清算"), "store": _("保存"), "total": _("合计"),
    "chunks": _("分块"), "reduce": _("汇总"), "start": _("开始"), "end": _("结束"),
}

PARAMETER_LABELS = {
    "scheme": _("付费方案"), "budget": _("预算"), "itemized": _("门诊特殊病"), "period": _("期间"), "start": _("起"), "end": _("止"),
    "revision": _("修订版次"), "total": _("总额"), "reserve": _("调剂金"), "outpatient": _("门诊"), "inpatient": _("住院"),
    "penalties": _("扣点"), "scores": _("考核得分"), "prepaid": _("已预付"), "withheld": _("暂扣"), "prepaid_before": _("此前已预付"),
    "upto": _("上限"), "multiple": _("倍数"), "hospital_share": _("医院留用比例"), "fund_share": _("基金分担比例"),
    "min_rate": _("最低中治率"), "uplift": _("上浮"), "all_case_avg_cost": _("全部病例次均费用"),
    "high_outlier_tiers": _("高倍率分档"), "low_outlier_multiple": _("低倍率界值"), "readmission_days": _("再入院天数"),
    "readmission_factor": _("再入院系数"), "prepay_ratio": _("预付比例"), "surplus_tiers": _("结余分档"),
    "overrun_tiers": _("超支分档"), "tcm_rate_tiers": _("中医占比分档"), "month": _("月份"), "year": _("年度"),
    "revisions": _("参数修订"), "catalog": _("病组目录"), "institutions": _("机构属性"), "id": _("编号"),
    "settled_runs": _("已计入的此前清算"),
}


def progress_text(progress: str) -> str:
    """The stored progress (written by the services in a fixed vocabulary) in the user's language."""
    for pattern, label in PROGRESS_PATTERNS:
        match = pattern.match(progress or "")
        if match:
            return str(label % {k: f"{int(v):,}" for k, v in match.groupdict().items()})
    return progress or ""


def stage_label(key: str) -> str:
    return str(STAGE_LABELS.get(key, key))


def _param_value(value) -> str:
    if value is None:
        return str(_("无上限"))
    if isinstance(value, list):
        return "；".join(_param_value(item) for item in value) or "—"
    if isinstance(value, dict):
        return "，".join(f"{PARAMETER_LABELS.get(k, k)} {_param_value(v)}" for k, v in value.items()) or "—"
    return str(value)


def parameter_rows(parameters: dict, prefix: str = "") -> list[tuple[str, str]]:
    """(label, value) rows of a run's parameters: nested sections flattened, tiers written out."""
    rows: list[tuple[str, str]] = []
    for key, value in (parameters or {}).items():
        label = f"{prefix}{PARAMETER_LABELS.get(key, key)}"
        if isinstance(value, dict) and value and all(isinstance(v, (dict, list)) or k in PARAMETER_LABELS for k, v in value.items()):
            rows.extend(parameter_rows(value, prefix=f"{label} · "))
        else:
            rows.append((label, _param_value(value)))
    return rows


# --- a run's case results (why each case got its points) -------------------------------------------

RESULTS_PER_PAGE = 100


def results_view(model_admin, request, object_id):
    """The per-case results of one run, read from its stored blocks: filter by institution, category,
    readmission halving, valuation group and case number; 100 rows a page."""
    from django.core.paginator import Paginator

    from common.text import printable
    from drg.choices import CaseCategory
    from drg.models import Institution

    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    run = get_object_or_404(ClearingRun.objects.select_related("region"), pk=object_id)
    institutions = list(
        Institution.objects.filter(pk__in=run.result_blocks.values("institution_id")).order_by("code").values_list("pk", "code", "name")
    )
    chosen = request.GET.get("institution", "")
    institution_id = int(chosen) if chosen.isdigit() and any(pk == int(chosen) for pk, *_ in institutions) else None
    has_results = run.status in RESULT_STATUSES
    frame = selectors.run_case_results_units(run=run, institution_id=institution_id) if has_results else None
    filters = {
        "category": request.GET.get("category", "") if request.GET.get("category", "") in CaseCategory.values else "",
        "halved": request.GET.get("halved", "") in ("1", "on", "true"),
        "group": printable(request.GET.get("group", ""))[:16].strip(),
        "q": printable(request.GET.get("q", ""))[:64].strip(),
    }
    total = 0
    if frame is not None:
        total = len(frame)
        if filters["category"]:
            frame = frame[frame["category"] == filters["category"]]
        if filters["halved"]:
            frame = frame[frame["readmission_halved"].to_numpy(bool)]
        if filters["group"]:
            frame = frame[frame["valuation_group"].astype(str).str.upper().str.startswith(filters["group"].upper())]
        if filters["q"]:
            matching = Case.objects.filter(
                institution_id__in=[pk for pk, *_ in institutions], case_no__icontains=filters["q"]
            ).values_list("pk", flat=True)
            frame = frame[frame["case_id"].isin(list(matching[:10_000]))]
        frame = frame.sort_values(["institution_id", "case_id"], kind="stable")
    page = Paginator(frame if frame is not None else [], RESULTS_PER_PAGE).get_page(request.GET.get("page"))
    rows = []
    if frame is not None and len(page.object_list):
        shown = selectors.case_results_with_cases(page.object_list)
        labels = dict(CaseCategory.choices)
        rows = results_blocks.as_records(shown)
        for row in rows:
            row["category_label"] = labels.get(row["category"], row["category"])
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("病例计点结果：%(run)s") % {"run": run},
        "opts": ClearingRun._meta,
        "run": run,
        "run_url": reverse("admin:settlement_clearingrun_change", args=[run.pk]),
        "institutions": institutions,
        "institution_id": institution_id,
        "categories": CaseCategory.choices,
        "filters": filters,
        "page": page,
        "rows": rows,
        "total": total,
        "matched": len(frame) if frame is not None else 0,
        "query": query.urlencode(),
        "has_results": has_results,
    }
    return TemplateResponse(request, "admin/settlement/results.html", context)
