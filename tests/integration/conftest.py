"""Fixtures shared by the integration tests."""
from __future__ import annotations

import pytest

from common.users import system_user
from exchange.bundle import bundle_load
from drg.models import Region
from settlement.services import clearing_run_finalize, clearing_run_start


@pytest.fixture
def employee_year(worked_bundle):
    """The worked example loaded; the employee pool's twelve monthly runs and its annual run, each
    finalized (by the batch system user) before the next, as the expected files were made.
    Returns (region, {month: monthly run}, annual run)."""
    bundle_load(path=worked_bundle)
    region = Region.objects.get(code="331083")
    batch = system_user()
    monthly = {}
    for month in range(1, 13):
        run = clearing_run_start(region=region, fund="employee", year=2025, month=month, user=batch)
        monthly[month] = clearing_run_finalize(run=run, user=batch, system=True)
    annual = clearing_run_finalize(run=clearing_run_start(region=region, fund="employee", year=2025, user=batch), user=batch, system=True)
    return region, monthly, annual
