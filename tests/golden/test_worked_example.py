"""The spec's worked example (SETTLEMENT.md §8), reproduced file for file through the bulk commands
exactly as another system would drive them: load_bundle, twelve finalized monthly `clear` runs and
the annual run per fund, export_clearing for each, pay_incentives."""
from __future__ import annotations

import filecmp
from pathlib import Path

import pytest
from django.core.management import call_command

REGION, YEAR = "331083", 2025


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


@pytest.mark.django_db(transaction=True)
def test_every_expected_file_is_reproduced_exactly(worked_bundle, worked_expected, tmp_path):
    call_command("load_bundle", str(worked_bundle), stdout=open("/dev/null", "w"))
    out = tmp_path / "out"
    for fund in ("employee", "resident"):
        for month in range(1, 13):
            call_command("clear", region=REGION, fund=fund, year=YEAR, month=month, finalize=True, stdout=open("/dev/null", "w"))
            call_command("export_clearing", region=REGION, fund=fund, year=YEAR, month=month,
                         out=out / fund / f"month-{month:02d}", stdout=open("/dev/null", "w"))
        call_command("clear", region=REGION, fund=fund, year=YEAR, finalize=True, stdout=open("/dev/null", "w"))
        call_command("export_clearing", region=REGION, fund=fund, year=YEAR, out=out / fund / "annual", stdout=open("/dev/null", "w"))
    call_command("pay_incentives", region=REGION, year=YEAR, out=out, stdout=open("/dev/null", "w"))

    expected_files = _files(worked_expected)
    assert _files(out) == expected_files
    assert len(expected_files) == 2 * 12 + 2 * 3 + 1
    different = [str(f) for f in expected_files if not filecmp.cmp(out / f, worked_expected / f, shallow=False)]
    assert different == [], f"differs from the spec: {different}; e.g. {(out / different[0]).read_text() if different else ''}"
