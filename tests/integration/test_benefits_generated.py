"""A generated region: settle_special_outpatient writes, value for value, what BENEFITS.md gives when
computed independently from the bundle's files (the reference loop per patient-fund-year, exact
Decimal inputs), with every category present and heavy users reaching the caps and the threshold."""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command

from benefits.domain.engine import ClaimIn, StayIn, settle_patient_year
from benefits.domain.parameters import parse_benefits
from exchange.synthetic import generate_bundle

pytestmark = pytest.mark.django_db


def read(path):
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def fen(text: str) -> int:
    return int(Decimal(text) * 100)


def test_settle_special_outpatient_matches_the_spec_on_a_generated_region(tmp_path):
    bundle = tmp_path / "bundle"
    generate_bundle(out=bundle, cases=3000, seed=7, year=2025, region="339902")
    call_command("load_bundle", str(bundle))
    call_command("settle_special_outpatient", region="339902", year=2025, out=tmp_path / "out")
    written = read(tmp_path / "out" / "special_outpatient.csv")

    params = json.loads((bundle / "params.json").read_text(encoding="utf-8"), parse_float=Decimal)
    terms, errors = parse_benefits(params["benefits"])
    assert errors == []
    levels = {r["code"]: int(r["level"]) for r in read(bundle / "institutions.csv")}
    patients = {r["patient_id"]: r["category"] for r in read(bundle / "patients.csv")}
    diseases = read(bundle / "special_diseases.csv")
    stays = defaultdict(list)
    for case in read(bundle / "cases.csv"):
        day = date.fromisoformat(case["discharge_date"])
        if day.year == 2025:
            stays[(case["patient_id"], case["fund"])].append(StayIn(day, fen(case["total_cost"]) - fen(case["self_pay"])))
    claims = defaultdict(list)
    totals = {}
    for r in read(bundle / "special_outpatient_claims.csv"):
        claims[(r["patient_id"], r["fund"])].append(ClaimIn(
            r["claim_no"], r["institution_code"], date.fromisoformat(r["service_date"]), r["disease_code"], levels[r["institution_code"]],
            fen(r["total_cost"]), fen(r["eligible_cost"]), key=(r["claim_no"], r["institution_code"])))
        totals[(r["claim_no"], r["institution_code"])] = r["total_cost"]
    expected = {}
    for (pid, fund), items in claims.items():
        t = terms[fund]
        caps = {d["code"]: fen(d["annual_cap"]) if d["annual_cap"] else int(t.class_caps[d["class"]] * 100) for d in diseases}
        for s in settle_patient_year(claims=items, stays=stays[(pid, fund)], category=patients.get(pid, "ordinary"), terms=t, disease_caps=caps):
            expected[s.key] = [f"{Decimal(v).scaleb(-2):.2f}" for v in (s.basic, s.critical, s.assistance, s.patient)]
    assert len(written) == len(expected) >= 150
    assert [r["claim_no"] for r in written] == sorted(r["claim_no"] for r in written)
    for row in written:
        key = (row["claim_no"], row["institution_code"])
        assert [row["basic"], row["critical"], row["assistance"], row["patient"]] == expected[key], key
        assert sum(Decimal(row[c]) for c in ("basic", "critical", "assistance", "patient")) == Decimal(totals[key])
    # the generated year exercises every layer and category
    assert set(patients.values()) == {"ordinary", "poor", "subsistence", "destitute", "birth_defect"}
    assert any(Decimal(r["critical"]) > 0 for r in written) and any(Decimal(r["assistance"]) > 0 for r in written)
    capped = [r for r in written if Decimal(r["basic"]) == 0]
    assert capped, "some claims find their disease cap or the shared cap used up"
