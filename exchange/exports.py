"""The files the bulk commands write (EXCHANGE.md): a clearing run's outputs (`export_clearing`)
and a year's incentive payout (`pay_incentives`). The numbers are the apps' (settlement's stored
run lines and case results, incentives' payout); this module only lays them out as the public
contract says. Text cells pass common.spreadsheet.formula_safe (the worked example's files are
unchanged by it: none of their texts looks like a formula)."""
from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

from django.core.exceptions import ValidationError

from common.units_text import units_to_text
from common.precision import r2, r4
from common.spreadsheet import formula_safe, formula_safe_series
from drg.models import Region
from incentives.exports import payout_csv_text, payout_xlsx_bytes
from incentives.models import Payout
from incentives.services import payouts_compute
from settlement.choices import RESULT_RUN_STATUSES, RunKind
from settlement.models import ClearingRun
from settlement.selectors import run_case_results_units

ZERO = Decimal("0")


# --- clearing: export_clearing ---------------------------------------------------------------------

ANNUAL_COLUMNS = ["institution_code", "points", "point_value", "gross_amount", "self_pay", "fund_payment",
                  "itemized_fund", "surplus", "prepaid", "withheld", "quality_deduction", "balance"]
MONTHLY_COLUMNS = ["institution_code", "points", "point_value", "due", "prepay", "withheld"]
POOL_KEYS = ["total", "reserve", "outpatient", "inpatient", "drg_budget", "special_outpatient", "fund_claims",
             "distributed", "point_value"]
POINT_FIELDS = {"points", "point_value"}


def _text(name: str, value) -> str:
    if value is None:
        value = ZERO
    return str(r4(value)) if name in POINT_FIELDS else str(r2(value))


def clearing_export(*, run: ClearingRun, out_dir: Path) -> list[Path]:
    """Write the run's outputs as EXCHANGE.md says; returns the files written."""
    if run.status not in RESULT_RUN_STATUSES:
        raise ValidationError(f"run #{run.pk} is {run.status}; it has no results to export")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = list(run.lines.select_related("institution").order_by("institution__code"))
    written = []
    columns = MONTHLY_COLUMNS if run.kind == RunKind.MONTHLY else ANNUAL_COLUMNS
    name = "monthly.csv" if run.kind == RunKind.MONTHLY else "clearing.csv"
    with open(out_dir / name, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for line in lines:
            writer.writerow([formula_safe(line.institution.code)] + [_text(c, getattr(line, c)) for c in columns[1:]])
    written.append(out_dir / name)
    if run.kind == RunKind.ANNUAL:
        results = run_case_results_units(run=run, with_case=True)[["case_no", "institution_code", "valuation_group", "category", "points"]]
        results = results.sort_values(["institution_code", "case_no"], kind="stable")
        results.insert(2, "fund", run.fund)
        for column in ("case_no", "institution_code", "valuation_group"):  # text a spreadsheet must not evaluate
            results[column] = formula_safe_series(results[column])
        results["points"] = units_to_text(results["points"], 4).to_numpy()
        results.to_csv(out_dir / "case_points.csv", index=False, lineterminator="\r\n")
        written.append(out_dir / "case_points.csv")
        pool = {key: run.totals[key] for key in POOL_KEYS}
        (out_dir / "pool.json").write_text(json.dumps(pool, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(out_dir / "pool.json")
    return written


# --- incentives: pay_incentives ------------------------------------------------------------------

CSV_NAME = "incentives.csv"
XLSX_NAME = "incentives.xlsx"


def payout_export(*, payout: Payout, out_dir: Path, excel: bool = False) -> list[Path]:
    """Write DIR/incentives.csv (and DIR/incentives.xlsx with excel=True); returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / CSV_NAME
    csv_path.write_bytes(payout_csv_text(payout=payout).encode("utf-8"))
    written = [csv_path]
    if excel:
        xlsx_path = out_dir / XLSX_NAME
        xlsx_path.write_bytes(payout_xlsx_bytes(payout=payout))
        written.append(xlsx_path)
    return written


def payouts_compute_export(*, region: Region, year: int, out_dir: Path, user=None, excel: bool = False) -> Payout:
    """The batch door (`pay_incentives`): compute the year's draft payout and write its files."""
    payout = payouts_compute(region=region, year=year, user=user)
    payout_export(payout=payout, out_dir=out_dir, excel=excel)
    return payout
