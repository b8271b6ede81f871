"""PLANNING.md §1 and §3 on a generated three-year region: the rate_setting command's files against
an independent per-group computation, and the forecast with the previous year's season, its
backtest and track-record band."""
from __future__ import annotations

import csv
import json
from decimal import Decimal
from fractions import Fraction

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from common.models import ReviewStatus
from drg.models import Case, DrgGroup, Region, SpecialReview
from exchange.synthetic import generate_bundle
from planning import services
from planning.models import Forecast, Season
from settlement.models import ClearingRun
from settlement.selectors import run_case_results_frame

REGION = "339901"
YEARS = (2022, 2023, 2024)
DEVNULL = open("/dev/null", "w")


@pytest.fixture
def three_years(tmp_path):
    for offset, year in enumerate(YEARS):
        out = tmp_path / f"bundle-{year}"
        generate_bundle(out=out, cases=4000, seed=11 + offset, year=year, region=REGION)
        call_command("load_bundle", str(out), stdout=DEVNULL)
    return Region.objects.get(code=REGION)


def _exact_half_up(value: Fraction, places: int) -> str:
    scaled = value * 10**places
    whole = int((scaled + Fraction(1, 2)) // 1)  # values here are positive
    return f"{Decimal(whole).scaleb(-places):.{places}f}"


def _reference(region, years, weights, min_cases=30):
    """§1 written out plainly, group by group, with Fractions (independent of planning.domain)."""
    catalog = {g.code: g for g in DrgGroup.objects.filter(region=region, year=max(years))}
    reviewed = set(SpecialReview.objects.filter(status=ReviewStatus.APPROVED, case__region=region).values_list("case_id", flat=True))
    costs: dict = {}
    daily: dict = {}
    for case_id, adm, dis, code, total in Case.objects.filter(region=region).values_list(
            "id", "admission_date", "discharge_date", "drg_code", "total_cost"):
        if dis.year not in years or case_id in reviewed or code not in catalog or catalog[code].kind == "unstable":
            continue
        if catalog[code].kind == "per_diem":
            entry = daily.setdefault((code, dis.year), [Fraction(0), 0, 0])
            entry[0] += Fraction(total)
            entry[1] += max(1, (dis - adm).days)
            entry[2] += 1
        else:
            costs.setdefault((code, dis.year), []).append(Fraction(total))
    w = dict(zip(years, weights))
    kept_by_group: dict = {}
    year_sum: dict = {}
    year_n: dict = {}
    trimmed: dict = {}
    for (code, year), values in costs.items():
        values = sorted(values)
        n = len(values)
        keep = values
        if n >= 4:
            def q(p):
                h = (n - 1) * p
                i = int(h)
                return values[i] + (h - i) * (values[min(i + 1, n - 1)] - values[i])
            q1, q3 = q(Fraction(1, 4)), q(Fraction(3, 4))
            keep = [v for v in values if q1 - Fraction(3, 2) * (q3 - q1) <= v <= q3 + Fraction(3, 2) * (q3 - q1)]
        trimmed[code] = trimmed.get(code, 0) + n - len(keep)
        kept_by_group.setdefault(code, {})[year] = keep
        year_sum[year] = year_sum.get(year, 0) + sum(keep)
        year_n[year] = year_n.get(year, 0) + len(keep)

    def weighted(per_year):
        return sum(w[y] * v for y, v in per_year.items()) / sum(w[y] for y in per_year)

    a = Fraction(Decimal(_exact_half_up(weighted({y: year_sum[y] / year_n[y] for y in year_sum}), 2)))
    rows = {}
    for code, group in sorted(catalog.items()):
        if group.kind == "unstable":
            continue
        previous = group.base_points if group.kind == "stable" else group.daily_points
        if group.kind == "stable":
            per_year = kept_by_group.get(code, {})
            kept, cut = sum(len(v) for v in per_year.values()), trimmed.get(code, 0)
        else:
            per_year = {y: d for (c, y), d in daily.items() if c == code}
            kept, cut = sum(d[2] for d in per_year.values()), 0
        prev_text = "" if previous is None else f"{previous:.4f}"
        row = [code, group.kind, str(kept), str(cut)]
        if kept + cut == 0 or kept < min_cases:
            cost = "" if group.avg_cost is None else f"{group.avg_cost:.2f}"
            row += [cost, prev_text, prev_text, "", "no_cases" if kept + cut == 0 else "too_few_cases"]
        else:
            if group.kind == "stable":
                cost = _exact_half_up(weighted({y: sum(v) / len(v) for y, v in per_year.items()}), 2)
                points = _exact_half_up(Fraction(Decimal(cost)) / a * 100, 4)
            else:
                exact = weighted({y: d[0] / d[1] for y, d in per_year.items()})
                cost, points = _exact_half_up(exact, 2), _exact_half_up(exact / a * 100, 4)
            change = "" if not previous else _exact_half_up(Fraction(Decimal(points)) / Fraction(previous) - 1, 4) \
                if Fraction(Decimal(points)) >= Fraction(previous) else "-" + _exact_half_up(1 - Fraction(Decimal(points)) / Fraction(previous), 4)
            row += [cost, points, prev_text, change, "set"]
        rows[code] = row
    return a, rows


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # data migrations (rules, roles) restored
def test_rate_setting_files_match_an_independent_computation(three_years, tmp_path):
    out = tmp_path / "rs"
    call_command("rate_setting", region=REGION, year=2025, reference="2022,2023,2024", weights="2,3,5", out=str(out), stdout=DEVNULL)
    a, expected = _reference(three_years, YEARS, (2, 3, 5))
    assert json.loads((out / "scheme.json").read_text()) == {"all_case_avg_cost": _exact_half_up(a, 2)}
    with open(out / "rate_setting.csv", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == ["code", "kind", "cases", "trimmed", "avg_cost", "points", "previous_points", "change", "status"]
    for row in rows:  # a change of exactly zero prints as 0.0000
        if row[7] == "0.0000":
            expected[row[0]][7] = expected[row[0]][7].replace("-0.0000", "0.0000")
    assert rows == [expected[code] for code in sorted(expected)]
    statuses = {row[8] for row in rows}
    assert "set" in statuses and "too_few_cases" in statuses
    assert sum(int(row[3]) for row in rows) > 0  # the IQR rule trimmed some cases
    with open(out / "drg_groups.csv", encoding="utf-8") as handle:
        groups = {row["code"]: row for row in csv.DictReader(handle)}
    for row in rows:
        if row[8] == "set" and row[1] == "stable":
            assert (groups[row[0]]["base_points"], groups[row[0]]["avg_cost"]) == (row[5], row[4])
        elif row[8] == "set":
            assert groups[row[0]]["daily_points"] == row[5]
    assert list(groups) == sorted(groups)

    # the default reference years are the three before the target year, weights 2:3:5
    again = tmp_path / "rs-default"
    call_command("rate_setting", region=REGION, year=2025, out=str(again), stdout=DEVNULL)
    assert (again / "rate_setting.csv").read_text() == (out / "rate_setting.csv").read_text()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # data migrations (rules, roles) restored
@pytest.mark.parametrize("options, message", [
    ({"reference": "2022,2023", "weights": "2,3,5"}, "weights"),
    ({"reference": "2024,2023"}, "ascending"),
    ({"reference": "2022,2025"}, "before the target year"),
    ({"reference": "20x2"}, "four-digit"),
    ({"weights": "2,0,5"}, "positive"),
    ({"reference": "2017,2018,2019"}, "no catalog"),
    ({"region": "nope"}, "unknown region"),
])
def test_rate_setting_refuses_bad_arguments_clearly(three_years, tmp_path, options, message):
    arguments = {"region": REGION, "year": 2025, "out": str(tmp_path / "x"), **options}
    with pytest.raises(CommandError, match=message):
        call_command("rate_setting", stdout=DEVNULL, **arguments)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # data migrations (rules, roles) restored
def test_forecast_uses_the_previous_years_season_and_has_a_track_record(three_years, capsys):
    for year in (2023, 2024):
        for month in range(1, 13):
            call_command("clear", region=REGION, fund="employee", year=year, month=month, finalize=True, stdout=DEVNULL)
        call_command("clear", region=REGION, fund="employee", year=year, finalize=True, stdout=DEVNULL)
    # one forecast per finalized monthly run of months 1–11, made on finalization
    assert sorted(Forecast.objects.filter(fund="employee", year=2024).values_list("month", flat=True)) == list(range(1, 12))
    forecast = Forecast.objects.get(fund="employee", year=2024, month=6)
    assert forecast.season_source == "previous_year"
    assert Forecast.objects.get(fund="employee", year=2023, month=6).season_source == "uniform"  # no 2022 annual run
    # season_P = share of 2023's annual case points discharged in January–June
    annual_2023 = ClearingRun.objects.get(region=three_years, fund="employee", year=2023, kind="annual", status="finalized")
    assert Season.objects.filter(run=annual_2023).exists()  # recorded when the annual run was finalized
    points = list(run_case_results_frame(run=annual_2023, with_case=True)[["discharge_date", "points"]].itertuples(index=False, name=None))
    share = Fraction(sum(p for d, p in points if d.month <= 6)) / Fraction(sum(p for d, p in points))
    assert Fraction(forecast.season_points) == share
    run = forecast.run
    assert f"{forecast.points:.4f}" == _exact_half_up(Fraction(run.totals["points"]) / share, 4)
    assert sum(line.points for line in forecast.lines.all()) == Decimal(run.totals["points"])

    call_command("forecast_backtest", region=REGION, fund="employee", year=2024)
    printed = capsys.readouterr().out
    assert printed.count("%") == 11 and "previous_year" in printed
    band = services.forecast_band(region=three_years, fund="employee", year=2025)
    assert sorted(band) == list(range(1, 12)) and all(0 <= e < 1 for e in band.values())
