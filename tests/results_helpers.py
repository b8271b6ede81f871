"""Reading and writing a run's case results in tests, through the stored blocks (settlement.selectors,
settlement.domain.results), as the product does."""
from __future__ import annotations

from decimal import Decimal

import pandas as pd

from drg.models import Case
from settlement.domain import results as blocks
from settlement.models import CaseResultBlock
from settlement.selectors import run_case_result, run_case_result_count, run_case_results_frame

__all__ = ["result_count", "result_of", "result_tuples", "store_result"]

result_count = run_case_result_count


def result_of(run, case_no: str) -> dict | None:
    """The result of the case numbered `case_no` (of the run's region) in `run`, or None."""
    case = Case.objects.get(region_id=run.region_id, case_no=case_no)
    return run_case_result(run=run, case=case)


def result_tuples(run, fields) -> list[tuple]:
    """(field, …) of every case result of `run`, in case id order (Decimals as the model held them)."""
    frame = run_case_results_frame(run=run)
    return [tuple(None if v is pd.NA else v for v in row) for row in frame[list(fields)].itertuples(index=False, name=None)]


def _units(value) -> int | None:
    return None if value is None else int(Decimal(str(value)).scaleb(4))


def store_result(run, case, *, valuation_group: str | None = None, coefficient="1.1", ratio="1.0000", category="normal",
                 base_points="80", readmission_halved=False, points_before_readmission=None, points="88.0000") -> None:
    """Add (or replace) one case's result in `run`'s block of the case's institution."""
    row = {
        "case_id": case.pk, "valuation_group": valuation_group or case.drg_code, "coefficient": _units(coefficient),
        "ratio": _units(ratio), "category": category, "base_points": _units(base_points), "readmission_halved": readmission_halved,
        "points_before_readmission": _units(points_before_readmission if points_before_readmission is not None else points),
        "points": _units(points),
    }
    block = CaseResultBlock.objects.filter(run=run, institution_id=case.institution_id).first()
    frame = blocks.decode_block(block.data) if block else blocks.empty_frame()
    frame = pd.concat([frame[frame["case_id"] != case.pk], pd.DataFrame([row])], ignore_index=True)
    data = blocks.encode_block(frame)
    if block:
        block.data, block.cases = data, len(frame)
        block.save()
    else:
        CaseResultBlock.objects.create(run=run, institution_id=case.institution_id, cases=len(frame), data=data)
