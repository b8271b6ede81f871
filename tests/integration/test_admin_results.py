"""The admin's case results of a run (read from the run's stored blocks) and the case page's
valuations, on the spec's worked example: the numbers are those of expected/employee/annual/case_points.csv."""
from __future__ import annotations

import csv

import pytest
from django.urls import reverse

from drg.models import Case
from tests.integration.admin_helpers import make_user

pytestmark = pytest.mark.django_db


def _expected(worked_expected) -> dict[str, dict]:
    with open(worked_expected / "employee" / "annual" / "case_points.csv", encoding="utf-8") as handle:
        return {row["case_no"]: row for row in csv.DictReader(handle)}


def _rows(html: str) -> dict[str, list[str]]:
    import re

    body = html.split('id="result_list"')[1].split("</tbody>")[0]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S):
        cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]
        if len(cells) == 12:
            rows[cells[0]] = cells
    return rows


def test_the_run_results_page_lists_every_case_with_the_spec_points(client, employee_year, worked_expected):
    region, _, annual = employee_year
    client.force_login(make_user("olga", "operator"))
    url = reverse("admin:settlement_clearingrun_results", args=[annual.pk])

    response = client.get(url)

    assert response.status_code == 200
    rows = _rows(response.content.decode())
    expected = _expected(worked_expected)
    assert set(rows) == set(expected)
    for case_no, row in expected.items():
        assert rows[case_no][1] == row["institution_code"] and rows[case_no][4] == row["valuation_group"]
        assert rows[case_no][-1] == row["points"], case_no
    change = client.get(reverse("admin:settlement_clearingrun_change", args=[annual.pk])).content.decode()
    assert url in change  # the run page links to its results


def test_the_results_page_filters_by_category_case_number_and_halving(client, employee_year, worked_expected):
    _, _, annual = employee_year
    client.force_login(make_user("olga", "operator"))
    url = reverse("admin:settlement_clearingrun_results", args=[annual.pk])
    expected = _expected(worked_expected)

    high = _rows(client.get(url, {"category": "high"}).content.decode())
    one = _rows(client.get(url, {"q": "c02"}).content.decode())
    halved = client.get(url, {"halved": "1"})

    assert set(high) == {c for c, row in expected.items() if row["category"] == "high"} and high
    assert set(one) == {"c02"}
    assert halved.status_code == 200 and all(row[10] == "是" for row in _rows(halved.content.decode()).values())


HOSTILE_FILTERS = [
    {"q": "c0\x001"}, {"page": "abc"}, {"page": "99999"}, {"institution": "not-a-number"}, {"institution": "999999"},
    {"category": "=HYPERLINK(\"x\")"}, {"group": "\x1b[31m" * 50}, {"q": "'; DROP TABLE drg_case; --"},
]


def test_the_results_page_survives_hostile_filters(client, employee_year):
    _, _, annual = employee_year
    client.force_login(make_user("olga", "operator"))
    url = reverse("admin:settlement_clearingrun_results", args=[annual.pk])
    for query in HOSTILE_FILTERS:
        assert client.get(url, query).status_code == 200, query


def test_the_case_page_shows_the_case_valuation_in_every_run(client, employee_year, worked_expected):
    region, monthly, annual = employee_year
    client.force_login(make_user("olga", "operator"))
    case = Case.objects.get(region=region, case_no="c02")

    html = client.get(reverse("admin:drg_case_change", args=[case.pk])).content.decode()

    section = html.split('id="valuations"')[1]
    runs_valuing = [run for run in [*monthly.values(), annual] if run.month is None or run.month >= case.discharge_date.month]
    for run in runs_valuing:
        assert reverse("admin:settlement_clearingrun_change", args=[run.pk]) in section
    assert _expected(worked_expected)["c02"]["points"] in section


def test_a_hospital_cannot_open_the_bureau_results_page(client, employee_year):
    _, _, annual = employee_year
    response = client.get(reverse("admin:settlement_clearingrun_results", args=[annual.pk]))
    assert response.status_code == 302  # to the login page
