"""GET /api/v1/forecast/: the caller's own year-end estimate, labelled as such (PLANNING.md §3)."""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from django.core.management import call_command

from drg.models import Institution
from planning.models import Forecast, ForecastLine
from tests.api.conftest import client_for

DEVNULL = open("/dev/null", "w")


@pytest.fixture
def forecast_year(worked_bundle):
    call_command("load_bundle", str(worked_bundle), stdout=DEVNULL)
    for month in (1, 2, 3):
        call_command("clear", region="331083", fund="employee", year=2025, month=month, finalize=True, stdout=DEVNULL)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # data migrations (rules, roles) restored
def test_a_hospital_reads_only_its_own_estimate(forecast_year):
    h1 = Institution.objects.get(code="H1")
    forecast = Forecast.objects.get(fund="employee", year=2025, month=3)
    assert forecast.season_source == "uniform" and Fraction(forecast.season_points) == Fraction(3, 12)
    assert forecast.points == Decimal(forecast.run.totals["points"]) * 4  # P̂ = P_3 / (3/12)
    line = ForecastLine.objects.get(forecast=forecast, institution=h1)

    response = client_for(h1).get("/api/v1/forecast/")
    assert response.status_code == 200
    body = response.json()
    assert len(body) == 1  # one pool (employee) and year: the newest forecast
    row = body[0]
    assert row["estimate"] is True and "估算" in row["label"] and "不作为结算支付依据" in row["label"]
    assert (row["fund"], row["year"], row["month"]) == ("employee", 2025, 3)
    assert row["point_value_estimate"] == str(forecast.point_value)
    assert row["payment_estimate"] == str(line.payment) and row["points_to_date"] == str(line.points)
    assert row["band"] is None  # no past year: no track record yet

    h3 = Institution.objects.get(code="H3")  # no employee cases before April: no forecast of its own
    assert client_for(h3).get("/api/v1/forecast/").json() == []


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # data migrations (rules, roles) restored
def test_bad_requests_are_refused_without_a_server_error(forecast_year):
    h1 = Institution.objects.get(code="H1")
    client = client_for(h1)
    for year in ("20x5", "2025\x00", "٢٠٢٥", "=1+1", "9" * 500):
        assert client.get("/api/v1/forecast/", {"year": year}).status_code == 400
    assert client.get("/api/v1/forecast/", {"year": "2024"}).json() == []
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/forecast/").status_code == 401


@pytest.mark.django_db
def test_the_forecast_is_in_the_openapi_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/forecast/"]["get"]
    assert "estimate" in operation["summary"]
