"""`screen` on the worked example: the §4 files from the binding run."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_screen_writes_the_three_files_from_the_binding_annual_run(employee_year, tmp_path):
    call_command("screen", "--region", "331083", "--fund", "employee", "--year", "2025", "--out", str(tmp_path), stdout=open("/dev/null", "w"))
    indicators = _rows(tmp_path / "indicators.csv")
    assert indicators[0]["institution_code"] == "*" and indicators[0]["period"] == "2025"
    pool = indicators[0]
    # the worked example's employee pool: 20 cases, Σ points 3257.4 (its annual case_points.csv)
    assert (pool["cases"], pool["points"], pool["cmi"], pool["time_index"]) == ("20", "3257.4000", "1.2611", "1.0000")
    h3 = next(r for r in indicators if r["institution_code"] == "H3" and r["period"] == "2025")
    assert (h3["cases"], h3["transfer_share"], h3["low_share"]) == ("2", "0.5000", "0.5000")
    h1_march = next(r for r in indicators if r["institution_code"] == "H1" and r["period"] == "2025-03")
    assert h1_march["cmi"] == "" and h1_march["time_index"] == ""  # a per-diem stay only: no stable cases
    assert (tmp_path / "findings.csv").read_bytes() == b"rule,institution_code,period,value,reference,cases\r\n"
    assert (tmp_path / "finding_cases.csv").read_bytes() == b"rule,institution_code,case_institution_code,case_no\r\n"


def test_screen_refuses_an_unknown_region_or_a_pool_without_a_finalized_run(worked_bundle, tmp_path):
    from exchange.bundle import bundle_load

    with pytest.raises(CommandError):
        call_command("screen", "--region", "nope\x00", "--fund", "employee", "--year", "2025", "--out", str(tmp_path))
    bundle_load(path=worked_bundle)
    with pytest.raises(CommandError, match="尚无已定稿"):
        call_command("screen", "--region", "331083", "--fund", "employee", "--year", "2025", "--out", str(tmp_path))
    assert not (tmp_path / "indicators.csv").exists()


def test_the_latest_finalized_monthly_run_is_the_source_before_an_annual_one(worked_bundle, tmp_path):
    from common.users import system_user
    from drg.models import Region
    from exchange.bundle import bundle_load
    from settlement.services import clearing_run_finalize, clearing_run_start

    bundle_load(path=worked_bundle)
    region = Region.objects.get(code="331083")
    batch = system_user()
    for month in (1, 2, 3):
        clearing_run_finalize(run=clearing_run_start(region=region, fund="employee", year=2025, month=month, user=batch), user=batch, system=True)
    clearing_run_start(region=region, fund="employee", year=2025, month=4, user=batch)  # a draft is not binding
    call_command("screen", "--region", "331083", "--fund", "employee", "--year", "2025", "--out", str(tmp_path), stdout=open("/dev/null", "w"))
    rows = _rows(tmp_path / "indicators.csv")
    assert [(r["institution_code"], r["period"], r["cases"]) for r in rows if r["institution_code"] == "*"] == [
        ("*", "2025", "7"), ("*", "2025-01", "3"), ("*", "2025-02", "1"), ("*", "2025-03", "3"),
    ]


def test_a_paused_batch_stores_no_indicators_until_refreshed(worked_bundle, django_capture_on_commit_callbacks):
    from common.users import system_user
    from drg.models import Region
    from exchange.bundle import bundle_load
    from monitoring.models import IndicatorValue
    from monitoring.receivers import refresh_on_finalize_paused
    from settlement.services import clearing_run_finalize, clearing_run_start

    bundle_load(path=worked_bundle)
    region = Region.objects.get(code="331083")
    batch = system_user()
    with refresh_on_finalize_paused(), django_capture_on_commit_callbacks(execute=True):
        clearing_run_finalize(run=clearing_run_start(region=region, fund="employee", year=2025, month=1, user=batch), user=batch, system=True)
    assert not IndicatorValue.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        clearing_run_finalize(run=clearing_run_start(region=region, fund="employee", year=2025, month=2, user=batch), user=batch, system=True)
    assert IndicatorValue.objects.get(institution_code="*", period="2025").cases == 4
