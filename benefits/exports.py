"""Files for finance: special_outpatient.csv (BENEFITS.md, the contract) and per-payer statements
(CSV and Excel) of the critical-illness insurance and medical assistance (and the basic part the
pool pays as itemized payments) per month or year."""
from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

from django.utils.translation import gettext as _
from openpyxl import Workbook
from openpyxl.styles import Font

from benefits import selectors
from common.spreadsheet import formula_safe
from benefits.choices import Payer
from drg.models import Region

OUTPUT_COLUMNS = ("claim_no", "institution_code", "fund", "patient_id", "basic", "critical", "assistance", "patient")
STATEMENT_COLUMNS = ("month", "institution_code", "institution_name", "fund", "claims", "amount")
# Text a spreadsheet would read as a formula gets a leading apostrophe: the one guard of common/.
cell_text = formula_safe


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def special_outpatient_csv_text(*, region: Region, year: int) -> str:
    """One row per settled claim of the year, sorted by claim_no (then institution code), amounts
    with exactly 2 decimals; basic + critical + assistance + patient = total_cost."""
    rows = selectors.settled_claims(region_id=region.pk, year=year).values_list(
        "claim_no", "institution__code", "fund", "patient_id", "basic", "critical", "assistance", "patient_pay",
    )
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(OUTPUT_COLUMNS)
    for claim_no, inst, fund, patient_id, basic, critical, assistance, patient in rows:
        writer.writerow([cell_text(claim_no), cell_text(inst), fund, cell_text(patient_id), _money(basic), _money(critical), _money(assistance), _money(patient)])
    return buffer.getvalue()


def special_outpatient_write(*, region: Region, year: int, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "special_outpatient.csv"
    path.write_text(special_outpatient_csv_text(region=region, year=year), encoding="utf-8")
    return path


def statement_csv_text(*, region: Region, year: int, payer: str, month: int | None = None) -> str:
    lines = selectors.payer_statement(region_id=region.pk, year=year, payer=payer, month=month)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(STATEMENT_COLUMNS)
    for line in lines:
        writer.writerow([line["month"], cell_text(line["institution_code"]), cell_text(line["institution_name"]), line["fund"],
                         line["claims"], _money(line["amount"])])
    writer.writerow([_("合计"), "", "", "", sum(l["claims"] for l in lines), _money(sum((l["amount"] for l in lines), Decimal("0")))])
    return buffer.getvalue()


def statement_xlsx_bytes(*, region: Region, year: int, payer: str, month: int | None = None) -> bytes:
    lines = selectors.payer_statement(region_id=region.pk, year=year, payer=payer, month=month)
    wb = Workbook()
    ws = wb.active
    ws.title = str(Payer(payer).label)[:31]
    period = f"{year}-{month:02d}" if month else str(year)
    ws.append([cell_text(f"{region.name} {Payer(payer).label} {period}")])
    ws["A1"].font = Font(bold=True)
    ws.append([_("月份"), _("机构编码"), _("机构名称"), _("险种"), _("结算单数"), _("金额")])
    for line in lines:
        ws.append([line["month"], cell_text(line["institution_code"]), cell_text(line["institution_name"]), line["fund"],
                   line["claims"], line["amount"]])
        ws.cell(row=ws.max_row, column=6).number_format = "#,##0.00"
    ws.append([_("合计"), None, None, None, sum(l["claims"] for l in lines), sum((l["amount"] for l in lines), Decimal("0"))])
    ws.cell(row=ws.max_row, column=6).number_format = "#,##0.00"
    ws.freeze_panes = "A3"
    for column, width in zip("ABCDEF", (10, 14, 30, 10, 10, 16)):
        ws.column_dimensions[column].width = width
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
