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
    print(open(tmp_path / "indicators.csv").read())
    print(open(tmp_path / "findings.csv").read())
    print(open(tmp_path / "finding_cases.csv").read())
    assert indicators[0]["institution_code"] == "*" and indicators[0]["period"] == "2025"
