"""Generated regions with planted patterns (exchange/planting.py), through the whole path: bundle →
load → annual clearing (finalized) → `screen`. Every planted institution is flagged by its rule, no
other institution is, and the three files equal the row-by-row reference of MONITORING.md."""
from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import call_command

from common.users import system_user
from drg.models import Case, DrgGroup, Institution, Region
from exchange.bundle import bundle_load
from exchange.synthetic import generate_bundle
from settlement.selectors import run_case_results_frame
from settlement.services import clearing_run_finalize, clearing_run_start
from tests.unit.monitoring import reference_monitoring as ref

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _reference_cases(run) -> list[dict]:
    groups = {g.code: g for g in DrgGroup.objects.filter(region_id=run.region_id, year=run.year)}
    out = []
    results = run_case_results_frame(run=run)
    cases = Case.objects.in_bulk(results["case_id"].tolist())
    codes = dict(Institution.objects.filter(region_id=run.region_id).values_list("id", "code"))
    for r in results.itertuples(index=False):
        case, g = cases[r.case_id], groups[r.valuation_group]
        out.append({
            "institution": codes[r.institution_id], "case_no": case.case_no, "patient_id": case.patient_id,
            "admission": case.admission_date, "discharge": case.discharge_date,
            "total_fen": int(case.total_cost * 100), "self_fen": int(case.self_pay * 100), "status": case.discharge_status,
            "group": r.valuation_group, "kind": g.kind, "base_u": int((g.base_points or 0) * 10_000),
            "avg_fen": int((g.avg_cost or 0) * 100), "exempt": g.readmission_exempt, "category": r.category,
            "points_u": int(r.points * 10_000), "halved": bool(r.readmission_halved),
        })
    return out


@pytest.mark.parametrize("seed", [3, 17, 2024])
def test_planted_institutions_are_flagged_by_their_rule_and_no_other(seed, tmp_path):
    bundle = tmp_path / "bundle"
    summary = generate_bundle(out=bundle, cases=9000, seed=seed, year=2025, plant="demo")
    truth = pd.read_csv(summary.planted, dtype=str)
    assert sorted(truth["rule"]) == ["cost_shifting", "low_standard_admission", "patient_selection", "split_stay", "upcoding"]
    assert not (bundle / "planted.csv").exists() and summary.planted.parent == tmp_path
    bundle_load(path=bundle)
    region = Region.objects.get(code=summary.region)
    batch = system_user()
    planted = {(row.rule, row.institution_code) for row in truth.itertuples()}
    for fund in ("employee", "resident"):
        run = clearing_run_finalize(run=clearing_run_start(region=region, fund=fund, year=2025, user=batch), user=batch, system=True)
        out = tmp_path / fund
        call_command("screen", "--region", region.code, "--fund", fund, "--year", "2025", "--out", str(out), stdout=open("/dev/null", "w"))
        findings = _rows(out / "findings.csv")
        assert findings[0] == ["rule", "institution_code", "period", "value", "reference", "cases"]
        flagged = {(row[0], row[1]) for row in findings[1:]}
        assert flagged == planted, (fund, sorted(flagged ^ planted))

        cases = _reference_cases(run)
        indicators = _rows(out / "indicators.csv")
        assert indicators[0][:3] == ["institution_code", "period", "cases"]
        assert indicators[1:] == ref.indicators(cases, 2025)
        expected_findings, expected_cases = ref.findings(cases, 2025)
        assert findings[1:] == expected_findings
        assert _rows(out / "finding_cases.csv")[1:] == expected_cases
        assert [int(row[5]) for row in findings[1:]] == [
            sum(1 for c in expected_cases if c[:2] == row[:2]) for row in findings[1:]
        ]


def test_planting_is_reproducible_and_refuses_unknown_patterns_or_institutions(tmp_path):
    from exchange.planting import parse_plan

    first = generate_bundle(out=tmp_path / "a", cases=2000, seed=5, plant="demo")
    second = generate_bundle(out=tmp_path / "b", cases=2000, seed=5, plant="demo")
    assert (tmp_path / "a" / "cases.csv").read_bytes() == (tmp_path / "b" / "cases.csv").read_bytes()
    assert first.planted.read_bytes() == second.planted.read_bytes()
    plain = generate_bundle(out=tmp_path / "c", cases=2000, seed=5)
    assert plain.planted is None and (tmp_path / "c" / "cases.csv").read_bytes() != (tmp_path / "a" / "cases.csv").read_bytes()
    assert parse_plan("upcoding=H1, split_stay=H2") == {"H1": "upcoding", "H2": "split_stay"}
    for bad in ("bribery=H1", "upcoding=", "upcoding=H1,split_stay=H1"):
        with pytest.raises(ValueError):
            parse_plan(bad)
    with pytest.raises(ValueError):
        generate_bundle(out=tmp_path / "d", cases=2000, seed=5, plant={"NOPE": "upcoding"})
