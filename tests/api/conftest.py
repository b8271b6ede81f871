"""Fixtures for the hospital API tests: a small region (two institutions, a 2025 catalog), an API
key per institution, and clients that send them."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from drg.models import Case, DrgGroup, Institution, PaymentScheme, Region
from drg.services import credential_issue
from settlement.choices import RunKind, RunStatus
from settlement.models import ClearingRun


@pytest.fixture(autouse=True)
def _fresh_throttle_cache():
    cache.clear()  # throttle counters live in the cache
    yield
    cache.clear()


@pytest.fixture
def region(db) -> Region:
    region = Region.objects.create(code="331083", name="玉环市")
    PaymentScheme.objects.create(region=region, year=2025, all_case_avg_cost=Decimal("10000.00"))
    for code, kind, base, avg, daily in (
        ("GB25", "stable", "80", "8000.00", None),
        ("ES23", "stable", "250", "25000.00", None),
        ("MH01", "per_diem", None, None, "4"),
        ("0000", "unstable", None, None, None),
    ):
        DrgGroup.objects.create(
            region=region, year=2025, code=code, name=code, kind=kind,
            base_points=Decimal(base) if base else None, avg_cost=Decimal(avg) if avg else None,
            daily_points=Decimal(daily) if daily else None,
        )
    return region


@pytest.fixture
def h1(region) -> Institution:
    return Institution.objects.create(region=region, code="H1", name="人民医院", level=3, category="general", coefficient=Decimal("1.1"))


@pytest.fixture
def h2(region) -> Institution:
    return Institution.objects.create(region=region, code="H2", name="中医院", level=2, category="tcm")


def client_for(institution: Institution) -> APIClient:
    _credential, raw_key = credential_issue(institution=institution, name="HIS", user=None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


@pytest.fixture
def api(h1) -> APIClient:
    """A client holding H1's key."""
    return client_for(h1)


@pytest.fixture
def api_h2(h2) -> APIClient:
    return client_for(h2)


def case_row(case_no: str = "c01", **overrides) -> dict:
    row = {
        "case_no": case_no, "fund": "employee", "patient_id": "P001", "admission_date": "2025-01-03",
        "discharge_date": "2025-01-10", "drg_code": "GB25", "total_cost": "8000.00", "self_pay": "1600.00",
        "discharge_status": "normal", "tcm_treatment": 0, "tcm_cost": "0", "surgery_grade": 3, "malignant_tumor_surgery": 1,
    }
    row.update(overrides)
    return row


def stored_case(institution: Institution, case_no: str = "c01", **overrides) -> Case:
    values = dict(
        fund="employee", patient_id="P001", admission_date=dt.date(2025, 1, 3), discharge_date=dt.date(2025, 1, 10),
        drg_code="GB25", total_cost=Decimal("8000.00"), self_pay=Decimal("1600.00"),
    )
    values.update(overrides)
    return Case.objects.create(region=institution.region, institution=institution, case_no=case_no, **values)


def finalized_run(region: Region, *, fund: str = "employee", year: int = 2025, month: int | None = 1) -> ClearingRun:
    return ClearingRun.objects.create(
        region=region, fund=fund, year=year, month=month, kind=RunKind.MONTHLY if month else RunKind.ANNUAL,
        status=RunStatus.FINALIZED,
    )
