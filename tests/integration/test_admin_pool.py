"""The pool page and the run comparison on the spec's worked example (SETTLEMENT.md §8): the numbers the
bureau sees are those of expected/employee/* — the point value month by month in the table and in the
chart, the budget lines against claims, the annual run — and a late correction shows up in the
comparison of a second annual run, with its reason. (The screenshots of the same pages are made by
docs/screenshots/make_screenshots.py, outside the test run.)"""
from __future__ import annotations

import csv
import json
from decimal import Decimal

import pytest
from django.urls import reverse

from common.users import system_user
from settlement.selectors import run_case_results_frame
from tests.integration.admin_helpers import make_user

pytestmark = pytest.mark.django_db


def monthly_point_values(expected_dir) -> dict[int, str]:
    """V_m of each month: one point value per monthly run, the same on every institution's line."""
    values = {}
    for month in range(1, 13):
        with open(expected_dir / "employee" / f"month-{month:02d}" / "monthly.csv", encoding="utf-8") as handle:
            found = {row["point_value"] for row in csv.DictReader(handle)}
        assert len(found) == 1, (month, found)
        values[month] = found.pop()
    return values


def money(value: str) -> str:
    return f"{Decimal(value):,.2f}"


def test_the_pool_page_shows_the_worked_example_month_by_month(client, employee_year, worked_expected):
    region, _, annual = employee_year
    pool = json.loads((worked_expected / "employee" / "annual" / "pool.json").read_text(encoding="utf-8"))
    client.force_login(make_user("alan", "approver"))

    response = client.get(reverse("admin:settlement_pool", args=[region.pk, "employee", 2025]))

    assert response.status_code == 200
    html = response.content.decode()
    table = html.split('class="pool-months"')[1]
    charts = html.split('id="pool-charts"')[1].split('class="pool-months"')[0]
    value_chart = charts.split("点值（月度预付，元/点）", 1)[1]
    for month, value in monthly_point_values(worked_expected).items():
        row = table.split(f'<td class="num">{month:02d}</td>')[1].split("</tr>")[0]
        assert f'<td class="num">{value}</td>' in row, (month, value)  # the V_m column of the month's row
        assert f">{value}</text>" in value_chart, (month, value)  # the label on the chart
    assert f"年度点值 {pool['point_value']}（#{annual.pk}）" in value_chart
    assert f"点数（按出院月） · #{annual.pk}" in charts
    assert html.count('class="drg-chart"') == 3
    # Budget lines, claims to date and the annual run's totals, as stored in pool.json.
    for key in ("total", "reserve", "inpatient", "special_outpatient", "drg_budget", "fund_claims", "distributed"):
        assert f'<td class="num">{money(pool[key])}</td>' in html, key
    against = dict(response.context["against"])
    assert against["门诊特殊病按项目（累计）"] == money(pool["special_outpatient"])
    assert against["DRG 预算 B = 住院 − 门诊特殊病"] == money(pool["drg_budget"])
    assert against["基金按项目 F（1–12 月）"] == money(pool["fund_claims"])
    annual_totals = dict(response.context["annual_totals"])
    assert annual_totals["V 点值"] == pool["point_value"] and annual_totals["A 可分配"] == money(pool["distributed"])
    overview = response.context["overview"]
    assert overview.months[-1].claims_to_date == Decimal(pool["fund_claims"])
    assert overview.points_run == annual
    assert sum(row.points for row in overview.months if row.points is not None) == sum(run_case_results_frame(run=annual)["points"])


def test_the_comparison_explains_a_late_correction(client, employee_year, worked_expected):
    from common.reviews import review_approve
    from drg.models import Case, CorrectionRequest
    from settlement.services import clearing_run_start

    region, _, first = employee_year
    pool = json.loads((worked_expected / "employee" / "annual" / "pool.json").read_text(encoding="utf-8"))
    approver = make_user("alan", "approver")
    case = Case.objects.filter(region=region, fund="employee", institution__code="H3").order_by("case_no").first()
    request = CorrectionRequest.objects.create(
        institution=case.institution, case=case, reason="cost missed at month close", proposed={"total_cost": str(case.total_cost * 4)},
    )
    review_approve(record=request, user=approver, note="checked against the HIS bill")
    second = clearing_run_start(region=region, fund="employee", year=2025, user=system_user())
    client.force_login(approver)

    response = client.get(reverse("admin:settlement_clearingrun_compare", args=[second.pk]))

    assert response.status_code == 200
    assert response.context["baseline"] == first
    html = response.content.decode()
    assert f"对比 #{second.pk} 职工医保 2025 年度清算 与 #{first.pk} 职工医保 2025 年度清算" in html
    pool_rows = {label: (before, after, delta) for label, before, after, delta in response.context["pool_rows"]}
    added = case.total_cost * 3
    assert pool_rows["F 基金按项目"] == (money(pool["fund_claims"]), money(str(Decimal(pool["fund_claims"]) + added)), f"+{added:,.2f}")
    assert pool_rows["B DRG 预算"] == (money(pool["drg_budget"]), money(pool["drg_budget"]), "0")
    assert pool_rows["V 点值"][0] == pool["point_value"] and pool_rows["V 点值"][1] != pool["point_value"]
    rows = {row.code: row for row in response.context["rows"]}
    assert sorted(rows) == ["H1", "H2", "H3"]
    assert any("对比批次之后病例更正 1 例" in reason for reason in rows["H3"].why)
    assert any(reason == f"按项目统筹支付 +{added:,.2f}" for reason in rows["H3"].why)
    assert not any("更正" in reason for reason in rows["H1"].why)
    points_cell = rows["H1"].cells[0]
    assert points_cell[0] == "点数" and points_cell[3] == "0"  # H1's points did not move, its payment did
    assert "对比批次之后病例更正 1 例" in html
