"""The worked example driven through the bulk commands as another system would drive them, and the
comparison with the spec's expected files (used by the golden test and the migration test)."""
from __future__ import annotations

import filecmp
from pathlib import Path

from django.core.management import call_command

REGION, YEAR = "331083", 2025
FUNDS = ("employee", "resident")


def files_under(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def load_worked_example(bundle: Path) -> None:
    call_command("load_bundle", str(bundle), stdout=open("/dev/null", "w"))


def clear_and_export_year(out: Path) -> None:
    """Twelve finalized monthly `clear` runs and the annual run per fund, `export_clearing` for each,
    then `pay_incentives`, all into `out` in the layout of the expected files."""
    quiet = {"stdout": open("/dev/null", "w")}
    for fund in FUNDS:
        for month in range(1, 13):
            call_command("clear", region=REGION, fund=fund, year=YEAR, month=month, finalize=True, **quiet)
            call_command("export_clearing", region=REGION, fund=fund, year=YEAR, month=month, out=out / fund / f"month-{month:02d}", **quiet)
        call_command("clear", region=REGION, fund=fund, year=YEAR, finalize=True, **quiet)
        call_command("export_clearing", region=REGION, fund=fund, year=YEAR, out=out / fund / "annual", **quiet)
    call_command("pay_incentives", region=REGION, year=YEAR, out=out, **quiet)


def assert_reproduces(out: Path, expected: Path) -> None:
    """Every expected file is written, nothing else, each byte for byte."""
    expected_files = files_under(expected)
    assert files_under(out) == expected_files
    assert len(expected_files) == 2 * 12 + 2 * 3 + 1
    different = [str(f) for f in expected_files if not filecmp.cmp(out / f, expected / f, shallow=False)]
    assert different == [], f"differs from the spec: {different}; e.g. {(out / different[0]).read_text() if different else ''}"
